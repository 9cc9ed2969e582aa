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
# # 2. White-box attacks
#
# How much does a small, carefully chosen change of the pixels change the diagnosis?
# This chapter attacks the classifiers of chapter 1 with the four gradient attacks the
# reference studies used, measures accuracy and ROC AUC as the budget grows, repeats
# the two studies' own settings beside their published figures, and shows how visible
# the perturbations are.
#
# Every number below is computed by the cells of this page. Re-run it with other
# settings with, for example,
# `python -m advmed.book run book/02_whitebox.py -p profile cpu -p eps_255 "[0, 1, 2]"`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["pneumonia_cxr"]
models = None  # None: the profile's models; or a list such as ["resnet18:scratch"]
eps_255 = None  # None: the profile's eps grid, in /255 pixel levels, e.g. [0, 1, 2, 4, 8]
n_images = None  # test images attacked per task (None: the profile's)
steps = None  # iterations of I-FGSM, PGD and MI-FGSM (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)
report_eps_255 = None  # eps of the perceptibility table and the gallery (None: the profile's)
explorer_pairs = None  # (task, model) pairs in the explorer (None: the profile's)

# %%
import time
import warnings

warnings.filterwarnings("ignore")  # library warnings would land on stderr in the book

import pandas as pd
from IPython import get_ipython
from IPython.display import Markdown, display

from advmed import widgets
from advmed.data import get_task
from advmed.experiments import profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.whitebox import plots as wplots
from advmed.experiments.whitebox import report, run, tables

# the figures are matplotlib Figures built without pyplot: display() renders them as PNG
get_ipython().run_line_magic("matplotlib", "inline")
t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot},
                            whitebox={"eps_255": eps_255, "n_images": n_images, "steps": steps,
                                      "report_eps_255": report_eps_255},
                            explorer={"pairs": explorer_pairs})
att = prof.whitebox
display(Markdown(f"**Profile `{prof.name}`**: {prof.description}."))
tables.settings_table(prof)

# %% [markdown]
# ## Threat model
#
# The attacker knows the model completely (architecture and weights: *white box*),
# sees one image at a time and may change every pixel by at most $\epsilon$ in the
# $L_\infty$ norm, keeping the image valid: $x_{adv} \in [0, 1]^d$ and
# $\lVert x_{adv} - x \rVert_\infty \le \epsilon$. Its goal is a wrong diagnosis
# (untargeted), or a chosen one (targeted). Every $\epsilon$ in this book is in
# **[0, 1] pixel units**, written as multiples of 1/255 (one grey level of an 8-bit
# image); each study's own convention is converted beside it.
#
# ## Attacks
#
# All four ascend the cross-entropy loss $L$ of the model's logits along the sign of
# its input gradient (`advmed.attacks`; the model is attacked in eval mode, pixels are
# clipped to [0, 1] after every step):
#
# - **FGSM** (Goodfellow, Shlens & Szegedy, ICLR 2015): one step,
#   $x_{adv} = x + \epsilon\,\mathrm{sign}(\nabla_x L)$.
# - **I-FGSM** (Kurakin, Goodfellow & Bengio, ICLR 2017 workshop): $T$ smaller steps
#   of size $\alpha$, each projected back onto the $\epsilon$-ball.
# - **PGD** (Madry et al., ICLR 2018): I-FGSM from a random start inside the ball.
# - **MI-FGSM** (Dong et al., CVPR 2018): I-FGSM on an accumulated, normalised
#   gradient (momentum $\mu = 1$).
#
# Unless a study's setting says otherwise, I-FGSM and PGD step by
# $\alpha = 2.5\,\epsilon / T$ (Madry et al.) and MI-FGSM by $\epsilon / T$ (Dong et al.).
# The studies stated their budgets in other units; converted with
# `advmed.references.eps_to_pixels`:

# %%
tables.eps_conventions()

# %% [markdown]
# ## The models under attack
#
# The profile's models, loaded from the checkpoint cache written by chapter 1
# (trained now if the cache lacks them). `init used` says what the model started from.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
tables.model_table(zoo)

# %% [markdown]
# ## Accuracy and AUC against the budget
#
# Every attack runs on the same held-out test images of each task (a stratified subset
# drawn with the profile's seed; `n` in the tables). Shaded bands and bracketed
# intervals are percentile-bootstrap 95 % intervals over those images. Dotted lines
# mark the two studies' budgets in pixels; dashed, AUC = 0.5 (chance). Results are
# memoised per model, so re-executing the page reloads them.

# %%
results = run.whitebox_results(prof, zoo, progress=False)
for task_name in prof.tasks:
    display(wplots.robustness_curves(results, task_name, title=get_task(task_name).title))
    display(tables.task_grids(results, task_name))

# %% [markdown]
# The same results with their intervals and the *flip rate* (of the images the model
# classified correctly, the share the attack makes it get wrong):

# %%
pd.set_option("display.max_rows", 400)
tables.sweep_table(results)

# %%
Markdown(report.at_a_glance(results))

# %% [markdown]
# ## AdversarialMed's setting
#
# AdversarialMed attacked a DenseNet-121 fine-tuned from CheXNet on the Kermany
# pneumonia X-rays at 224 px, with $\epsilon = 0.02$ in ImageNet-normalised units
# (the pixel value after subtracting the mean and dividing by the standard deviation),
# which is the pixel budget in the table above. The README gives no step size for the
# attacks; we use the step and iteration count of their adversarial training
# (0.005 normalised, 10 iterations) for I-FGSM, PGD and MI-FGSM. Same images as above.

# %%
adv_med = run.adversarialmed_results(prof, zoo, progress=False)
adv_med_table = tables.adversarialmed_comparison(adv_med)
adv_med_table if not adv_med_table.empty else Markdown(
    "*This profile has no `pneumonia_cxr` task, so there is no AdversarialMed comparison.*")

# %%
Markdown(report.adversarialmed_reading(adv_med_table, prof))

# %% [markdown]
# ## Finlayson et al.'s setting
#
# Finlayson et al. fine-tuned ImageNet ResNet-50 / Inception models at 224 px on
# fundoscopy, chest X-ray and dermoscopy with inputs in [-1, 1], and ran PGD
# *targeted to the other class* with $\epsilon = 0.02$ and step 0.01 in that range,
# 20 iterations: half those numbers in [0, 1] pixels. Their chest X-ray task was
# pneumothorax, ours is pneumonia; their fundus task referable diabetic retinopathy on
# full-resolution photographs, ours the same label on RetinaMNIST. `to target` is the
# share of images classified as the other class after the attack.

# %%
fin = run.finlayson_results(prof, zoo, progress=False)
fin_table = tables.finlayson_comparison(fin)
fin_table

# %%
Markdown(report.finlayson_reading(fin))

# %% [markdown]
# ## How visible are the perturbations?
#
# Per attack at one budget: the perturbation's $L_2$ norm over all pixels and
# channels ([0, 1] units; it grows with the image size), its $L_\infty$ norm in grey
# levels, the PSNR of the adversarial image against the clean one (dB; higher is less
# visible) and SSIM (Wang et al.
# 2004; 1 = identical), as median [min, max] over the test images.

# %%
tables.perceptibility_table(results, att.report_eps_255)

# %% [markdown]
# ## Adversarial examples
#
# One model per task (the profile's first), PGD at the reporting budget, on test images
# the model classifies correctly. The perturbation is amplified so that $\pm\epsilon$
# spans black to white (the gain is in the panel title); mid-grey means no change.

# %%
for task_name in prof.tasks:
    display(wplots.task_gallery(prof, zoo, task_name))

# %% [markdown]
# ## Explorer
#
# Choose the image, attack and budget. The frames were computed when this page was
# executed, so the explorer works in the static book; run in a notebook with a kernel,
# the same cell attacks on demand (and offers every budget of the sweep).

# %%
wplots.explorer(prof, zoo)

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof.name}`."))
