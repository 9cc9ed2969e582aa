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
# # 6. Adversarial patches
#
# Every attack so far changed every pixel a little. An *adversarial patch* (Brown, Mané, Roy,
# Abadi & Gilmer 2017) changes a few pixels a lot: one small picture, the same for every image,
# pasted anywhere, that makes the model answer a chosen class. It is trained with
# *expectation over transformations* (Athalye et al., ICML 2018): every training step pastes
# it at a random place, scale and rotation, so that it works wherever it lands.
#
# Finlayson et al. (2019) trained such patches against their medical classifiers, one per
# class, and pasted each on the images of the other class: the patch trained on the target
# (white box) and the patch trained on a separately trained model (black box) both drove
# accuracy and AUC to about zero, while a **natural patch** of the same size, cut from a real
# image of the target class, did not. This chapter repeats the three and shows how the effect
# grows with the patch's size.
#
# Re-run this page with other settings, e.g.
# `python -m advmed.book run book/06_patches.py -p profile cpu -p steps 500`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks (those of its patch section); or a list such as ["melanoma_derm"]
n_train = None  # training images each patch is trained on (None: the profile's)
n_eval = None  # held-out test images each patch is evaluated on (None: the profile's)
steps = None  # Adam steps per patch (None: the profile's)
eval_scales = None  # the scale sweep, e.g. [0.5, 1.0, 1.5] (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)

# %%
import time
import warnings

warnings.filterwarnings("ignore")  # library warnings would land on stderr in the book

import pandas as pd
from IPython import get_ipython
from IPython.display import Markdown, display

from advmed.experiments import profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.patches import plots as pplots
from advmed.experiments.patches import report, run, tables

get_ipython().run_line_magic("matplotlib", "inline")
pd.set_option("display.max_colwidth", 120)
t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, eval={"n_boot": n_boot},
                            patch={"n_train": n_train, "n_eval": n_eval, "steps": steps, "eval_scales": eval_scales})
display(Markdown(f"**Profile `{prof.name}`**: {prof.description}."))
display(Markdown(report.scale_note()))
tables.settings_table(prof)

# %% [markdown]
# ## Training the patches
#
# For each task's target: a **white-box** patch trained on the target itself, a **black-box**
# patch trained on chapter 5's surrogate of the target (the same architecture trained with
# another seed; it is trained now if chapter 5 has not run), and the **natural** control, a
# crop of a training image of each class at the adversarial patch's size. Patches of gray
# tasks (chest X-rays) are gray. `training success` is the share of the last training batches
# that the patch sent to its class, on the model it was trained on.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
exp = run.patch_experiment(prof, zoo)
tables.training_table(exp)

# %% [markdown]
# ## Finlayson et al.'s patch table beside ours
#
# Accuracy and AUC of the target on held-out test images, each carrying the patch that targets
# its other class, at the comparison scale (one random placement and rotation per image, as
# theirs), with bootstrap 95 % intervals. The study's figures are from their table; the
# setting columns say how ours differ (model, resolution, the area the patch covers).
# `targeted success` is the share of images sent to the patch's class among those the model
# did not already give that class.

# %%
table = tables.finlayson_table(exp)
table

# %%
Markdown(report.finlayson_reading(tables.finlayson_table(exp, numeric=True)))

# %% [markdown]
# ## What the patches look like
#
# Each row: the two patches (one per target class, as printed: the disc on white), then
# held-out images with the patch for their other class pasted at the comparison scale, and the
# target's prediction (red: the patch's class).

# %%
for task_name in exp.tasks():
    display(pplots.patch_gallery(exp, task_name))

# %% [markdown]
# ## Success against the patch's size
#
# The same patches pasted at every scale of the sweep (the dotted line is the comparison
# scale); the panel titles give the share of the image the patch covers at each scale.

# %%
display(pplots.success_vs_scale(exp))
display(pplots.success_vs_scale(exp, metric="auc"))
tables.scale_table(exp)

# %%
Markdown(report.scale_reading(exp))

# %% [markdown]
# ## Where we differ from the study, and why
#
# - **Models and resolution.** Finlayson et al. patched ResNet-50 / Inception models at
#   224 px; the table's `our model` column gives ours. The patch covers the same share of the
#   image at every resolution (it is sized relative to the image), so resolution matters less
#   here than for the small perturbations of chapter 2.
# - **Training.** They trained with plain gradient descent for 7 epochs; we train with Adam for
#   the profile's steps, which in the small profiles is far fewer images seen. A longer-trained
#   patch is at least as strong.
# - **Scale range.** Their code sampled scales relative to the whole image side and let the
#   patch leave the image; ours keeps the whole patch inside and samples `training scales`.
# - **Natural patch.** Theirs was a mole cropped from a melanoma image for dermoscopy; ours is
#   the centre crop of a random training image of the class, for every task.

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof.name}`."))
