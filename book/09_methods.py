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
# # Methods
#
# Everything the other chapters do, in one place: the data, the models, the threat models and
# how the studies' budgets convert to ours, how robustness is evaluated, the statistics behind
# every interval and verdict, and what each profile runs. Every number on this page is computed
# from the library's settings by its cells.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it).
from IPython import get_ipython

from advmed import pages
from advmed.experiments import profiles
from advmed.experiments.claims import methods, tables

get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile)
pages.glue_numbers("method", methods.protocol(prof))
pages.glue_numbers("margin", methods.margins())

# %% tags=["remove-input"]
pages.banner(prof.name, prof.whitebox.n_images)

# %% [markdown]
# ## Data and splits
#
# The tasks are the studies' (the {doc}`01_models` chapter shows each dataset's card): Kermany's
# paediatric chest X-rays for pneumonia, dermoscopy images of melanoma and naevi from HAM10000,
# fundus photographs for referable diabetic retinopathy, and the MedMNIST versions of the
# pneumonia and retina tasks {cite:p}`yang2023medmnist`. Each keeps its official test split
# where it has one; splits are drawn with a fixed seed, stratified by class, and images of one
# patient (Kermany) or one lesion (HAM10000) never fall in two splits. The test images are
# never seen in training or model selection. The natural-image universal perturbations are
# built from ImageNet photographs only.
#
# ## Models and training
#
# The networks are the profile's (the profiles table at the end of the chapter): torchvision architectures and
# MobileNet v1, fine-tuned from ImageNet or trained from scratch, with the studies' recipes
# (optimiser, learning rate, augmentation) and early stopping on the validation set. Adversarial
# training crafts every training example with all iterations of its attack (no early stop), keeps
# the batch-normalisation statistics of the batches it trains on, and selects the epoch by robust
# balanced accuracy under a fixed PGD attack on validation images.
#
# ## Threat models and budgets
#
# All budgets are in [0, 1] pixel units under the L-infinity norm unless a chapter says L2.
# The studies state theirs in other units: AdversarialMed in the ImageNet-normalised space, so
# their budget is multiplied by the mean ImageNet channel deviation; Finlayson et al. on inputs
# in [-1, 1], so it is halved; Hirano et al. as a share zeta of the mean image norm
# ({numref}`tab-methods-eps`). A white-box attacker knows the weights; a black-box one crafts
# on a surrogate (another seed, or a model trained on disjoint data) or queries scores only; an
# adaptive attacker also knows the defense.

# %% tags=["hide-input"]
pages.table(methods.eps_conversions(), "tab-methods-eps",
            "The studies' budgets and step sizes in their own units, in [0, 1] pixels and in grey levels (/255).")

# %% [markdown]
# ## The evaluation protocol
#
# Robust accuracy is the worst case, image by image, over an ensemble of strong attacks
# {cite:p}`croce2020reliable`: APGD with cross-entropy, APGD with a targeted margin loss where a
# task has enough classes, and PGD with restarts, each run for
# {glue:text}`method-robust-steps` iterations here. An image counts as robust only if every
# attack fails on it, and larger budgets contain smaller ones, so the curve is monotone in the
# budget. Diagnostics check the evaluation {cite:p}`carlini2019evaluating`: more iterations (up to
# {glue:text}`method-diag-steps`) and restarts (up to {glue:text}`method-diag-restarts`) must not
# lower accuracy further, the cross-entropy and margin losses must agree, a transfer attack from
# another model must not beat the white-box attacks, one step must not beat many, accuracy must
# not rise with the budget, and a large enough budget must reach zero; each allows at least one
# image of difference. When one of them fires on a defended model, its survivors are attacked
# again by stronger and stronger attacks (more iterations and restarts, the margin loss, transfer,
# Square) until two in a row break nothing, or the profile's cap is reached: then its number is an
# upper bound and its verdicts are inconclusive. Decisions (is this image misclassified?)
# may stop an attack early; AUCs and training examples never do. Attacked images are clipped to
# [0, 1] after every step.
#
# ## Statistics
#
# Each profile attacks {glue:text}`method-attacked-images` test images per task. Every accuracy,
# AUC and rate carries a {glue:text}`method-level-pct` % percentile bootstrap interval over the
# images ({glue:text}`method-n-boot` resamples); where a record keeps only a proportion and its
# number of images, the Wilson interval; for an AUC without its scores, the Hanley-McNeil
# standard error; for a difference of two rates, Newcombe's interval (which ignores the pairing
# and is wider for positively correlated rates); for a claim over several perturbations or
# models, a bootstrap over them. The records keep rates, not each image's outcome, so two rates
# measured on the same images are compared with Newcombe's unpaired interval rather than a
# paired test; it is the wider of the two when the rates are positively correlated.
#
# The claims registry fixes, before the numbers, each claim's rule and margin
# (the rules table below): a study figure is matched by the two one-sided tests of
# equivalence within its margin ({glue:text}`margin-figure-margin` for a clean figure reported
# once, {glue:text}`margin-attack-margin` for an attacked one); "about zero" is below
# {glue:text}`margin-about`; "same direction" needs an effect of at least
# {glue:text}`margin-effect` with its whole interval. The registry's fingerprint is
# {glue:text}`margin-fingerprint`; a test compares it with the last entry of the changelog
# ({numref}`tab-methods-changelog`), so no rule moves after the results without a dated reason.

# %% tags=["hide-input"]
pages.appendix_table(tables.rules(), "tab-methods-rules",
                     "The registry's rules: for each claim, setting and part, the kind of test, the study's figure or "
                     "bound (in [0, 1]), the margin, and the effect size that same direction needs.")

# %% tags=["hide-input"]
pages.table(methods.changelog_table(), "tab-methods-changelog",
            "The claims registry's changelog: each accepted fingerprint, its date and why the rules changed.")

# %% [markdown]
# ## Profiles
#
# One parameter sizes every chapter (the table below): a tiny profile exists for
# the tests and its numbers mean nothing; a processor profile is a miniature of the studies at
# reduced resolution, with test subsets and small networks; a graphics-card profile runs the
# studies' resolutions, architectures and full test sets.

# %% tags=["hide-input"]
pages.appendix_table(methods.profiles_overview(), "tab-methods-profiles",
                     "What each profile runs: the tasks at their sides, the models, the test and attacked images per "
                     "task, the white-box ensemble's iterations and PGD restarts, and the bootstrap resamples.")

# %% tags=["remove-input"]
page.footer(prof.name)
