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
# # Adversarial patches
#
# Every attack so far changed every pixel a little. An *adversarial patch*
# {cite:p}`brown2017adversarial` changes a few pixels a lot: one small picture, the same for every
# image, pasted anywhere, that makes the model answer a chosen class. It is trained with
# *expectation over transformations* {cite:p}`athalye2018synthesizing`: every training step
# pastes it at a random place, scale and rotation, so that it works wherever it lands.
#
# {cite:t}`finlayson2019adversarial` trained such patches against their medical classifiers, one
# per class, and pasted each on the images of the other class: the patch trained on the target
# (white box) and the patch trained on a separately trained model (black box) both drove
# accuracy and AUC to about zero, while a **natural patch** of the same size, cut from a real
# image of the target class, did not. This chapter repeats the three ({numref}`tab-patch-finlayson`,
# {numref}`fig-patch-gallery`) and shows how the effect grows with the patch's size
# ({numref}`fig-patch-scale`). {numref}`tab-patch-studies` sets the study's setting beside ours;
# every result is in the chapter's {ref}`appendix <patch-appendix>`.
#
# Every number on this page is computed by its cells. Re-run it with other settings, e.g.
# `python -m advmed.book run book/06_patches.py -p profile cpu -p steps 500`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks (those of its patch section); or a list such as ["melanoma_derm"]
n_train = None  # training images each patch is trained on (None: the profile's)
n_eval = None  # held-out test images each patch is evaluated on (None: the profile's)
steps = None  # Adam steps per patch (None: the profile's)
eval_scales = None  # the scale sweep, e.g. [0.5, 1.0, 1.5] (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it): imports, quiet warnings, offline
# interactive tables, the chapter's clock, the profile with this run's parameters.
from IPython import get_ipython
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import compare, profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.kernel import records
from advmed.experiments.patches import plots as pplots
from advmed.experiments.patches import report, run, tables

# the figures are matplotlib Figures built without pyplot: display() renders them as PNG
get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, eval={"n_boot": n_boot},
                            patch={"n_train": n_train, "n_eval": n_eval, "steps": steps, "eval_scales": eval_scales})
pages.glue_numbers("patch-study", report.study_numbers())

# %% tags=["remove-input"]
pages.banner(prof.name, prof.patch.n_eval, what="held-out test images per task")

# %% tags=["hide-input"]
pages.table(compare.settings_side_by_side(prof, ["finlayson"], chapter="patches"), "tab-patch-studies",
            f"Finlayson et al.'s setting beside ours (profile `{prof.name}`: {prof.description}).")
pages.table(tables.settings_brief(prof), "tab-patch-settings",
            "How the patches are trained and judged; every setting is in the appendix.",
            data=tables.settings_table(prof))

# %% tags=["remove-input"]
Markdown(report.scale_note())

# %% [markdown]
# ## Training the patches
#
# For each task's target: a **white-box** patch trained on the target itself, a **black-box**
# patch trained on chapter 5's surrogate of the target (the same architecture trained with
# another seed; it is trained now if chapter 5 has not run), and the **natural** control, a
# crop of a training image of each class at the adversarial patch's size. Patches of gray
# tasks (chest X-rays) are gray. The appendix lists how each patch was made and the share of
# the last training batches that it sent to its class, on the model it was trained on.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
exp = run.patch_experiment(prof, zoo, progress=False)

# %% [markdown]
# ## Finlayson et al.'s patch table beside ours
#
# {numref}`tab-patch-finlayson` gives the target's accuracy and AUC on held-out test images,
# each carrying the patch that targets its other class, at the comparison scale (one random
# placement and rotation per image, as theirs), with bootstrap 95 % intervals. The study's
# figures are from their table; the appendix gives each row's setting (model, resolution, the
# area the patch covers). *Targeted success* is the share of images sent to the patch's class
# among those the model did not already give that class.

# %% tags=["hide-input"]
numeric = tables.finlayson_table(exp, numeric=True)
records.write_record(report.headline_record(prof, zoo, numeric))
pages.table(tables.finlayson_summary(exp), "tab-patch-finlayson",
            "Accuracy and AUC of the target with the patch that targets each image's other class, at the "
            "comparison scale: the study's beside ours [95 % interval], one row per task and patch.", data=numeric)

# %% tags=["remove-input"]
Markdown(report.finlayson_reading(numeric))

# %% [markdown]
# ## What the patches look like
#
# {numref}`fig-patch-gallery` shows, for each task and kind of patch, the two patches (one per
# target class, as printed: the disc on white), then held-out images with the patch for their
# other class pasted at the comparison scale, and the target's prediction.

# %% tags=["hide-input"]
pages.figure(pplots.gallery_grid(exp), "fig-patch-gallery",
             "The patches (left pair: one per target class) and held-out images carrying the patch for their "
             "other class at the comparison scale, one row per task and kind of patch; titles give the true class "
             "and the target's prediction (orange: the patch's class).")

# %% [markdown]
# ## How visible a patch is
#
# Chapter 2 measures how visible a perturbation is by the PSNR and the SSIM of the perturbed
# image against the clean one; {numref}`tab-patch-perceptibility` applies the same measure to
# the patches, pasted at the comparison scale on held-out images, with the share of the image
# they cover.

# %% tags=["hide-input"]
perceptibility = run.perceptibility(exp)
pages.table(tables.perceptibility_summary(perceptibility), "tab-patch-perceptibility",
            "How visible each patch is at the comparison scale: the share of the image it covers, its largest "
            "pixel change (grey levels) and the median PSNR (dB) and SSIM of a patched held-out image against the "
            "clean one.", data=perceptibility)

# %% tags=["remove-input"]
Markdown(report.perceptibility_reading(perceptibility))

# %% [markdown]
# ## Success against the patch's size
#
# The same patches pasted at every scale of the sweep ({numref}`fig-patch-scale`); the dotted
# line is the comparison scale, and the ticks give the share of the image the patch covers.

# %% tags=["hide-input"]
pages.figure(pplots.scale_grid(exp), "fig-patch-scale",
             "Targeted success (left) and AUC (right) against the patch's scale, one row per task, one line per "
             "kind of patch with its 95 % bootstrap band; below each scale, the share of the image it covers; "
             "dotted: the comparison scale.")

# %% tags=["remove-input"]
Markdown(report.scale_reading(exp))

# %% [markdown]
# ## Explorer
#
# Choose a task, a patch (white box, black box or natural), its scale, rotation and location to
# see it pasted on held-out images with the target's predictions, beside the targeted success at
# that scale; in a notebook with a kernel, other scales and rotations are computed on demand.

# %%
pplots.explorer(exp, profile=prof)

# %% [markdown]
# ## Where we differ from the study, and why
#
# - **Models and resolution.** Finlayson et al. patched ResNet-50 / Inception models at
#   {glue:text}`patch-study-size` px ({numref}`tab-patch-studies`). The patch covers the same share of the image at every
#   resolution (it is sized relative to the image), so resolution matters less here than for
#   the small perturbations of chapter 2.
# - **Training.** They trained with plain gradient descent, epoch by epoch over their training
#   images; we train with Adam for the profile's steps ({numref}`tab-patch-settings`). A
#   longer-trained patch is at least as strong, so where ours saw fewer images than theirs, our
#   success is a lower bound.
# - **Scale range.** Their code sampled scales relative to the whole image side and let the
#   patch leave the image; ours keeps the whole patch inside and samples the training scales of
#   {numref}`tab-patch-settings`.
# - **Natural patch.** Theirs was a mole cropped from a melanoma image for dermoscopy; ours is
#   the centre crop of a random training image of the class, for every task.

# %% [markdown]
# (patch-appendix)=
# ## Appendix: every patch at every scale
#
# Interactive tables (search, sort, pages), each downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.settings_table(prof), "tab-patch-settings-full", "Every setting of the chapter.")
pages.appendix_table(tables.training_table(exp), "tab-patch-training",
                     "How each patch was made: trained on what (or cut from what), its side in pixels, gray or not, "
                     "steps, seconds, and the share of the last training batches sent to each target class.")
pages.appendix_table(tables.finlayson_table(exp), "tab-patch-finlayson-full",
                     "Finlayson et al.'s patch table beside ours, every row with our setting and the differences "
                     "ours − study.", data=numeric)
pages.appendix_table(tables.scale_table(exp), "tab-patch-scales",
                     "Every patch at every scale: side and area covered, accuracy, AUC, targeted success [95 % "
                     "interval].")

# %% tags=["remove-input"]
page.footer(prof.name)
