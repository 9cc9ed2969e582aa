# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. UAPs without medical data
#
# Chapter 3 built its universal perturbations from the medical training images. An
# attacker rarely has those: they are protected health data. Minagi, Hirano & Takemoto
# (J. Imaging 2022) asked whether that protects the model, and found that it does not when
# the model was fine-tuned from ImageNet: a UAP built **only from natural photos** (ImageNet
# or Open Images), against the medical model's own predictions on those photos, also fools
# it on medical images. Their reasoning: fine-tuning changes a pretrained network little, so
# directions that disturb its ImageNet features survive into the medical model. Models
# trained from scratch were less vulnerable, but not immune.
#
# Here every profile has the same architecture twice, MobileNet v1 0.75 fine-tuned from
# ImageNet and trained from scratch, so the effect of transfer learning is isolated from
# the effect of the architecture.
#
# **How the natural-image UAPs are made.**
#
# - *Images*: `imagenet_samples` photos (no medical image), resized to the task's
#   resolution; for grayscale tasks (chest X-rays) their luminance replicated to 3
#   channels, as Minagi et al. fed grayscale photos to grayscale models.
# - *Labels*: none. A non-targeted UAP pushes each photo away from the medical model's
#   own prediction on it ("pneumonia" or "normal" for a photo of a dog).
# - *Size*: Minagi et al.'s code (`kztakemoto/Natural_UAP`, `run_Natural_UAP.py`) sets the
#   bound from the mean norm of the **medical training images**, not of the photos
#   (`norm_rate x mean ||X_train||_p`). We do the same, so a natural-image UAP, the
#   medical-image UAP of chapter 3 and the random control all have the same absolute
#   bound; the table also shows the bound the photos' own norm would have given
#   (`eps_if_natural_ref`).
# - *Evaluation*: the same held-out medical test images as chapter 3.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["melanoma_derm"]
models = None  # None: the profile's natural_models (MobileNet v1 0.75, ImageNet and scratch)
zetas = None  # None: the profile's; fractions of the mean *medical* image norm
norms = None  # None: the profile's (e.g. ["l2", "linf"])
n_build = None  # medical training images for the comparison UAPs and the norm reference
n_eval = None  # held-out medical test images (None: the profile's)
natural_images = None  # ImageNet photos a natural-image UAP is built from (None: the profile's)
max_passes = None  # passes over the build images (None: the profile's)
method = None  # "iterative" or "batched" (None: the profile's)
zeta_reference = "medical"  # "medical" (Minagi et al.'s code) or "natural": whose norm zeta refers to

# %%
import time
import warnings

warnings.filterwarnings("ignore")  # library warnings would go to stderr

from IPython.display import Markdown, display

from advmed.data import get_task
from advmed.experiments import profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.universal import plots as uplots
from advmed.experiments.universal import report, run, tables

t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks,
                            uap={"zetas": zetas, "norms": norms, "n_build": n_build, "n_eval": n_eval,
                                 "natural_images": natural_images, "max_passes": max_passes, "method": method,
                                 "natural_models": models})
attacked = run.available_models(prof, prof.uap.natural_models)
display(Markdown(f"**Profile `{prof.name}`**: {prof.description}. Natural-image UAPs against: "
                 f"{', '.join(attacked)}; zeta relative to the **{zeta_reference}** images."))
tables.settings_table(prof)

# %% [markdown]
# ## UAPs from photos, from medical images, and random
#
# For each task, model, norm and zeta: the fooling rate on held-out medical images of the
# UAP built from photos (`natural_uap`), of the UAP built from medical training images
# (`medical_uap`, the same run as chapter 3, reloaded from the cache when chapter 3 ran),
# and of a random perturbation of the natural UAP's norm (`random`), each with a bootstrap
# 95 % interval. `natural_above_random` says whether the two intervals are disjoint.

# %%
zoo = models_zoo.trained_models(prof, models=attacked, progress=False)
natural = run.natural_uap_experiment(prof, trained=zoo, zeta_reference=zeta_reference, progress=False)
medical = run.uap_experiment(profiles.get_profile(prof, uap={"targeted": False}), trained=zoo, progress=False)
table = tables.natural_vs_medical(natural, medical)
shown = ["task", "arch", "init_used", "size", "norm", "zeta", "eps", "eps_if_natural_ref", "method",
         "n_natural", "n_eval", "natural_uap", "medical_uap", "random", "natural_above_random"]
table[shown]

# %%
uplots.natural_rate_bars(table)

# %% [markdown]
# ## Transfer learning as a security hole?
#
# Minagi et al.'s central comparison: the same architecture fine-tuned from ImageNet vs
# trained from scratch. Below, per task, norm and zeta, the natural-image fooling rate of
# each, and how much of the medical-image UAP's effect the photos recover (natural /
# medical).

# %%
tables.transfer_learning_table(table)

# %%
Markdown(report.transfer_learning_sentence(table))

# %% [markdown]
# ## Beside the study's logged case
#
# Minagi et al. log one case numerically: melanoma, InceptionV3 fine-tuned from ImageNet,
# L2, zeta 4 %. Our rows for the same task, norm and zeta differ in architecture
# (MobileNet v1 0.75 instead of InceptionV3), resolution (`size` instead of 299 px), the
# number of photos (`n_natural`) and of test images (`n_eval`), and the optimiser (see the
# settings). If the profile has no melanoma task or no L2 / 4 % setting, only the study's row
# is shown.

# %%
tables.minagi_comparison(table)

# %% [markdown]
# ## What the photo-built perturbations look like
#
# Amplified as in chapter 3 (gain in each title); then held-out medical images before and
# after the natural-image UAP with the highest fooling rate of each task.

# %%
largest = max(prof.uap.zetas)
for task_name in natural.sets:
    display(uplots.uap_gallery(natural, natural.keys(task=task_name, zeta=largest),
                               title=f"{get_task(task_name).title}: UAPs from photos, zeta {largest:g}"))

# %%
for task_name in natural.sets:
    display(uplots.before_after(natural, natural.strongest(task_name), n=4))
    display(uplots.confusion_under_uap(natural, natural.strongest(task_name)))

# %% [markdown]
# ## Explorer
#
# The same explorer as chapter 3, with the UAP built from photos beside the one built from
# medical images and the photo UAP's random control.

# %%
uplots.explorer(medical, natural, profile=prof)

# %% [markdown]
# ## Reading the result
#
# The question is not whether our numbers equal the study's (the setting columns say why
# they cannot), but whether the ordering holds: photo-built UAPs above random controls,
# below medical-image UAPs, and stronger against the ImageNet-initialised model than
# against the one trained from scratch. The summary line above counts each of these from
# the table; where the ordering fails, the rows say at which resolution and norm. Small
# inputs (28-64 px) are the least favourable case for this attack: the photos are shrunk
# to a few thousand pixels, where little of what made them "natural" survives.

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof.name}`."))
