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
# # 1. Tasks, data and clean models
#
# Before attacking anything we need classifiers worth attacking. This chapter
# introduces the tasks, shows the data each one is built from, trains (or loads from
# the checkpoint cache) the models of the chosen profile, and measures their clean
# test performance next to the figures the reference studies report.
#
# Every number below is computed by the cells of this page. Re-run it with other
# settings with, for example,
# `python -m advmed.book run book/01_models.py -p profile smoke`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["pneumonia_cxr"]
models = None  # None: the profile's models; or a list such as ["resnet18:scratch"]
n_boot = None  # bootstrap resamples for the intervals (None: the profile's)

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from advmed import data, experiment, plots, profiles, references
from advmed.tasks import get_task

t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, models=models)
if n_boot is not None:
    prof["eval"]["n_boot"] = n_boot
display(Markdown(f"**Profile `{prof['name']}`**: {prof['description']}."))
profiles.profile_table(prof["name"]) if (tasks, models) == (None, None) else pd.DataFrame(
    {"value": [prof["tasks"], prof["models"]]}, index=["tasks", "models"])

# %% [markdown]
# ## The tasks
#
# Each task is a dataset and a label view. Pixels are in [0, 1]; grayscale images are
# replicated to three channels so that one perturbation can be applied to every
# architecture. Validation sets never share a patient (chest X-ray) or a lesion
# (HAM10000) with the training or test sets.

# %%
cards = experiment.dataset_cards(prof)
cards

# %% [markdown]
# A few images of each class, at the resolution the profile trains on.

# %%
for task_name in prof["tasks"]:
    ds = experiment.test_set(task_name, prof, limit=None)
    fig = plots.image_grid(ds.images, ds.labels, ds.classes, per_class=6,
                           title=f"{get_task(task_name).title} ({ds.images.shape[-1]} px)")
    plt.show()

# %% [markdown]
# ## Training
#
# One model per task and architecture. Models start from ImageNet weights where
# they are available (`init used` says what actually happened: torchvision weights
# cannot be fetched offline, so those fall back to training from scratch), use a
# class-weighted cross-entropy against class imbalance and stop early on validation
# AUC. Checkpoints are cached by a hash of their full configuration, so a second
# build loads them.

# %%
zoo = experiment.trained_models(prof)
experiment.training_summary(zoo)

# %% [markdown]
# ## Clean test performance
#
# Accuracy, ROC AUC, sensitivity and specificity with bootstrap 95 % intervals,
# on the test split (the profile may use a stratified subset of it; `n test` says
# how many images).

# %%
clean = experiment.clean_results(prof, zoo)
clean

# %% [markdown]
# ### Beside the studies
#
# The references were measured in other settings: the row says which. The
# MedMNIST v2 figures come from ResNets trained on the official splits at 28 or
# 224 px; AdversarialMed's from a DenseNet-121 fine-tuned from CheXNet at 224 px.

# %%
experiment.compare_clean_with_references(clean, references.CLEAN)

# %% [markdown]
# ## ROC curves and confusion matrices

# %%
for task_name in prof["tasks"]:
    fig = plots.roc_curves(experiment.task_predictions(zoo, prof, task_name),
                           title=get_task(task_name).title)
    plt.show()

# %%
for (task_name, arch, init), trained in zoo.items():
    preds = experiment.task_predictions(zoo, prof, task_name)[(arch, init)]
    fig = plots.confusion_matrix(preds["y"], preds["proba"].argmax(1), trained.classes,
                                 title=f"{task_name} · {arch} ({init})")
    plt.show()

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof['name']}`."))
