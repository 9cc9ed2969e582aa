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
# # Tasks, data and clean models
#
# Before attacking anything we need classifiers worth attacking. This chapter introduces the
# tasks ({numref}`tab-models-tasks`, {numref}`fig-models-images`), trains the models of the
# chosen profile ({numref}`fig-models-curves`) and measures their clean test performance
# ({numref}`tab-models-auc`, {numref}`fig-models-roc`) next to the figures the reference studies
# report ({numref}`tab-models-studies`). The long tables are in the chapter's
# {ref}`appendix <models-appendix>`.
#
# Every number on this page is computed by its cells. Re-run it with other settings with, for
# example, `python -m advmed.book run book/01_models.py -p profile smoke`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["pneumonia_cxr"]
models = None  # None: the profile's models; or a list such as ["resnet18:scratch"]
n_boot = None  # bootstrap resamples for the intervals (None: the profile's)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it): imports, quiet warnings, offline
# interactive tables, the chapter's clock, the profile with this run's parameters.
from IPython.display import Markdown

from advmed import pages, plots
from advmed.experiments import cards, compare, profiles, references
from advmed.experiments import zoo as models_zoo
from advmed.experiments.kernel import records

page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot})
pages.glue_numbers("profile", models_zoo.profile_descriptions())  # the front page's table of profiles

# %% tags=["remove-input"]
pages.banner(prof.name, prof.eval.max_test, what="test images per task (clean evaluation)")

# %% tags=["remove-input"]
Markdown(f"This page was executed with the profile **`{prof.name}`**: {prof.description}. "
         "Its settings are listed in the appendix.")

# %% tags=["hide-input"]
pages.table(compare.settings_side_by_side(prof, ["adversarialmed", "finlayson", "hirano", "minagi"]),
            "tab-models-beside", "The studies' data, models and training beside this profile's, aspect by aspect "
            "(the attack rows are each chapter's).")

# %% [markdown]
# ## The tasks
#
# Each task is a dataset and a label view ({numref}`tab-models-tasks`). Pixels are in [0, 1];
# grayscale images are replicated to three channels so that one perturbation fits every
# architecture. Chest X-rays come from {cite:t}`kermany2018identifying`, dermoscopy from
# HAM10000 {cite:p}`tschandl2018ham10000`, and PneumoniaMNIST and RetinaMNIST from MedMNIST v2
# {cite:p}`yang2023medmnist`. The validation sets we carve share no patient or lesion with
# training, while the official Kaggle chest X-ray test folder shares `personN` ids with its
# train folder (we keep the published split so that our numbers compare with the studies');
# the appendix counts the shared ids.

# %% tags=["hide-input"]
card = cards.dataset_cards(prof)
pages.table(cards.card_summary(card), "tab-models-tasks",
            "The tasks: classes, images per split (counts per class, in the order of the classes) and the "
            "resolution the profile trains on. Sources, licences, split rules and shared patient / lesion ids "
            "are in the appendix.", data=card)

# %% tags=["hide-input"]
pages.figure(plots.task_image_grid(models_zoo.test_sets(prof)), "fig-models-images",
             "Four random test images of each class of every task, at the profile's resolution; `n` is the "
             "number of test images of the class.")

# %% [markdown]
# ## Training
#
# One model per task and architecture. Models start from ImageNet weights where they are
# available (only the MobileNet v1 weights ship with the data mirror, so torchvision
# architectures asked for ImageNet weights offline fall back to training from scratch; the
# appendix says what each model actually started from), use a class-weighted cross-entropy
# against class imbalance, and keep the epoch with the best validation AUC
# ({numref}`fig-models-curves`). Checkpoints are cached by a hash of their full configuration,
# so a second build loads them instead of training.

# %%
zoo = models_zoo.trained_models(prof, progress=False)

# %% tags=["hide-input"]
pages.figure(plots.validation_curves(models_zoo.panels(zoo)), "fig-models-curves",
             "Validation loss (top) and validation AUC (bottom) per epoch: one panel per task, one colour per "
             "model (the same colours in every chapter); the ringed dot marks the epoch that was kept.")

# %% tags=["remove-input"]
Markdown(models_zoo.stopping_sentence(zoo))

# %% [markdown]
# ## Clean test performance
#
# {numref}`tab-models-auc` gives the ROC AUC of every model on its task's test split with a
# percentile-bootstrap 95 % interval, and {numref}`fig-models-roc` the ROC curves. Accuracy,
# balanced accuracy, sensitivity and specificity (for binary tasks the recall of the second
# class: pneumonia, melanoma, referable DR) are in the appendix, with the number of test
# images (the profile may use a stratified subset).

# %% tags=["hide-input"]
predictions = models_zoo.clean_predictions(prof, trained=zoo, progress=False)
clean = models_zoo.clean_results(prof, trained=zoo, predictions=predictions, numeric=True, progress=False)
pages.glue_numbers("clean", models_zoo.clean_headline(clean))
pages.glue_numbers("book", {"profile": prof.name})
records.write_record(records.zoo_record(prof, zoo, clean))
pages.table(models_zoo.clean_summary(clean), "tab-models-auc",
            "Clean test ROC AUC [95 % bootstrap interval] of every model (rows) on every task (columns).",
            data=clean)

# %% tags=["hide-input"]
pages.figure(plots.roc_grid(models_zoo.panels(predictions)), "fig-models-roc",
             "ROC curves on the test split, one panel per task, one colour per model; dashed: chance. "
             "Multiclass tasks show the macro average of the one-vs-rest curves.")

# %% [markdown]
# ### Beside the studies
#
# The reference figures were measured in other settings, and each row of
# {numref}`tab-models-studies` says which: MedMNIST v2 {cite:p}`yang2023medmnist` trained ResNets
# on the official splits, AdversarialMed {cite:p}`li2019adversarialmed` fine-tuned a DenseNet-121
# from CheXNet {cite:p}`rajpurkar2017chexnet`, each at the resolution its row gives. A negative
# difference means our model is worse than the study's. The appendix sets every published
# figure beside every model of ours on the same task, accuracy included.

# %% tags=["hide-input"]
comparison = compare.compare_clean(clean, references.CLEAN)
pages.table(compare.clean_comparison_summary(comparison), "tab-models-studies",
            "Published clean test AUC beside ours: for each published figure, our closest model on the same task "
            "(the same architecture where we have it), and ours − study.", data=comparison)

# %% [markdown]
# (models-appendix)=
# ## Appendix: settings and full results
#
# The tables below are interactive (search, sort, pages) and each can be downloaded as CSV.
# {numref}`fig-models-confusion` shows the confusion matrices of every model.

# %% tags=["hide-input"]
pages.appendix_table(profiles.profile_table(prof), "tab-models-profile", "The profile's settings.")
pages.appendix_table(card, "tab-models-cards", "Dataset cards: counts per split, sources, licences, split rules "
                     "and the patient / lesion ids two splits share.")
pages.appendix_table(models_zoo.training_summary(zoo), "tab-models-training",
                     "Training: what each model was asked to start from and what it used, images, epochs, the "
                     "kept epoch, validation AUC, time and checkpoint key.")
pages.appendix_table(models_zoo.clean_intervals(clean), "tab-models-clean",
                     "Clean test performance, every metric with its 95 % bootstrap interval.", data=clean)
pages.appendix_table(comparison, "tab-models-comparison",
                     "Every published clean figure beside every model of ours on the same task.")

# %% tags=["hide-input"]
pages.figure(plots.confusion_grid(models_zoo.confusion_entries(predictions)), "fig-models-confusion",
             "Confusion matrices on the test split: one row per task, one column per model; colour is the "
             "fraction of the true class (recall), each cell gives the count and the row percentage.")

# %% tags=["remove-input"]
page.footer(prof.name)
