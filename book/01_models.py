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
import warnings

import pandas as pd
from IPython.display import Markdown, display

from advmed import plots
from advmed.data import get_task
from advmed.experiments import cards, compare, profiles, references, zoo as models_zoo

warnings.filterwarnings("ignore", category=UserWarning)
t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot})
display(Markdown(f"**Profile `{prof.name}`**: {prof.description}."))
profiles.profile_table(prof)

# %% [markdown]
# ## The tasks
#
# Each task is a dataset and a label view. Pixels are in [0, 1]; grayscale images are
# replicated to three channels so that one perturbation fits every architecture.
# Counts are per class (in the order of the `classes` column). The last columns are
# computed from the patient ids in the chest X-ray file names and the HAM10000 lesion
# ids: the validation sets we carve share no patient or lesion with training, while
# the official Kaggle chest X-ray test folder does share `personN` ids with its train
# folder (we keep the published split so that our numbers compare with the studies').

# %%
cards.dataset_cards(prof)

# %% [markdown]
# A few test images of each class, at the resolution the profile trains on.

# %%
for task_name in prof.tasks:
    ds = models_zoo.test_set(task_name, prof, limit="all", progress=False)
    display(plots.image_grid(ds, per_class=6,
                             title=f"{get_task(task_name).title} ({ds.images.shape[-1]} px)"))

# %% [markdown]
# ## Training
#
# One model per task and architecture. Models start from ImageNet weights where they
# are available (`init_used` says what actually happened: only the MobileNet v1
# weights ship with the data mirror, so torchvision architectures asked for ImageNet
# weights offline fall back to training from scratch), use a class-weighted
# cross-entropy against class imbalance, and keep the epoch with the best validation
# AUC. Checkpoints are cached by a hash of their full configuration, so a second build
# loads them instead of training.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
models_zoo.training_summary(zoo)

# %%
display(plots.training_curves(models_zoo.labelled(zoo), title="Validation curves"))

# %% [markdown]
# ## Clean test performance
#
# Accuracy, balanced accuracy, ROC AUC, sensitivity and specificity with percentile
# bootstrap 95 % intervals on the test split (`n_test` says how many images: the
# profile may use a stratified subset). For binary tasks sensitivity is the recall of
# the second class (pneumonia, melanoma, referable DR).

# %%
predictions = models_zoo.clean_predictions(prof, trained=zoo, progress=False)
clean = models_zoo.clean_results(prof, trained=zoo, predictions=predictions, progress=False)
clean

# %% [markdown]
# ### Beside the studies
#
# The reference figures were measured in other settings, and each row says which:
# MedMNIST v2 trained ResNets on the official splits at 28 or 224 px (RetinaMNIST there
# is the 5-grade task); AdversarialMed fine-tuned a DenseNet-121 from CheXNet at 224 px.
# A negative difference means our model is worse than the study's.

# %%
clean_numeric = models_zoo.clean_results(prof, trained=zoo, predictions=predictions,
                                         numeric=True, progress=False)
compare.compare_clean(clean_numeric, references.CLEAN).round(3)

# %%
compare.study_citations(["medmnist", "adversarialmed"])

# %% [markdown]
# ## ROC curves and confusion matrices

# %%
for task_name in prof.tasks:
    display(plots.roc_curves(models_zoo.labelled(predictions, task=task_name), title=get_task(task_name).title))

# %%
for label, p in models_zoo.labelled(predictions).items():
    display(plots.confusion_matrix(p.y, p.proba.argmax(1), p.classes, title=label))

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof.name}`."))
