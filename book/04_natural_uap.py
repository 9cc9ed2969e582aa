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
# # UAPs without medical data
#
# Chapter 3 built its universal perturbations from the medical training images. An attacker
# rarely has those: they are protected health data. {cite:t}`minagi2022natural` asked whether
# that protects the model, and found that it does not when the model was fine-tuned from
# ImageNet: a UAP built **only from natural photos** (ImageNet or Open Images), against the
# medical model's own predictions on those photos, also fools it on medical images. Their
# reasoning: fine-tuning changes a pretrained network little, so directions that disturb its
# ImageNet features survive into the medical model. Models trained from scratch were less
# vulnerable, but not immune.
#
# The chapter attacks one architecture fine-tuned from ImageNet and, where the profile has it,
# the same architecture trained from scratch (the line under the settings says which); every row
# is in the chapter's {ref}`appendix <natural-appendix>`.
#
# **How the natural-image UAPs are made.**
#
# - *Images*: `imagenet_samples` photos (no medical image), resized to the task's resolution;
#   for grayscale tasks (chest X-rays) their luminance replicated to the three channels, as Minagi et al.
#   fed grayscale photos to grayscale models.
# - *Labels*: none. A non-targeted UAP pushes each photo away from the medical model's own
#   prediction on it ("pneumonia" or "normal" for a photo of a dog).
# - *Size*: Minagi et al.'s code (`kztakemoto/Natural_UAP`, `run_Natural_UAP.py`) sets the bound
#   from the mean norm of the **medical training images**, not of the photos
#   (`norm_rate x mean ||X_train||_p`). We do the same, so a natural-image UAP, the medical-image
#   UAP of chapter 3 and the random control all have the same absolute bound; the appendix also
#   shows the bound the photos' own norm would have given.
# - *Evaluation*: the same held-out medical test images as chapter 3.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
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

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it): imports, quiet warnings, offline
# interactive tables, the chapter's clock, the profile with this run's parameters.
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import compare, profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.kernel import records
from advmed.experiments.universal import plots as uplots
from advmed.experiments.universal.fidelity import plots as fplots
from advmed.experiments.universal.fidelity import report as freport
from advmed.experiments.universal.fidelity import run as frun
from advmed.experiments.universal.fidelity import tables as ftables
from advmed.experiments.universal import report, run, tables

page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks,
                            uap={"zetas": zetas, "norms": norms, "n_build": n_build, "n_eval": n_eval,
                                 "natural_images": natural_images, "max_passes": max_passes, "method": method,
                                 "natural_models": models})
attacked = run.available_models(prof, prof.uap.natural_models)
pages.glue_numbers("natural-study", report.study_numbers())

# %% tags=["remove-input"]
pages.banner(prof.name, prof.uap.n_eval, what="held-out test images per UAP")

# %% tags=["hide-input"]
pages.table(tables.settings_brief(prof, natural=True), "tab-natural-settings",
            f"How the natural-image UAPs are built (profile `{prof.name}`, against {', '.join(attacked)}, zeta "
            f"relative to the {zeta_reference} images); every setting is in the appendix.",
            data=tables.settings_table(prof))

# %% tags=["hide-input"]
pages.table(compare.settings_side_by_side(prof, ["minagi"], chapter="natural"), "tab-natural-beside",
            "Minagi et al.'s setting beside this profile's, aspect by aspect.")

# %% tags=["remove-input"]
Markdown(report.natural_models_sentence(attacked))

# %% [markdown]
# ## UAPs from photos, from medical images, and random
#
# For each task, model, norm and zeta: the fooling rate on held-out medical images of the UAP
# built from photos, of the UAP built from medical training images (the same run as chapter 3,
# reloaded from the cache when chapter 3 ran), and of a random perturbation of the natural UAP's
# norm, each with a bootstrap 95 % interval ({numref}`fig-natural-rates`).

# %%
zoo = models_zoo.trained_models(prof, models=attacked, progress=False)
natural = run.natural_uap_experiment(
    prof, trained=zoo, zeta_reference=zeta_reference, progress=False)

# %%
non_targeted = profiles.get_profile(prof, uap={"targeted": False})
medical = run.uap_experiment(non_targeted, trained=zoo, progress=False)

# %% tags=["hide-input"]
table = tables.natural_vs_medical(natural, medical)
pages.glue_numbers("natural", tables.natural_headline(table))
pages.figure(uplots.natural_rate_bars(table), "fig-natural-rates",
             "Fooling rate on held-out medical images of the UAP built from photos, of the UAP built from medical "
             "images and of a random control of the same norm: one row per task, one column per bound, one group "
             "per model (bars: value; the appendix has the 95 % intervals).")

# %% [markdown]
# ## Transfer learning as a security hole?
#
# Minagi et al.'s central comparison: the same architecture fine-tuned from ImageNet vs trained
# from scratch. {numref}`tab-natural-rates` gives, per task and norm at the largest zeta, the
# fooling rate of the photo-built and of the medical-image UAP for each initialisation.

# %% tags=["hide-input"]
pages.table(tables.natural_summary(table), "tab-natural-rates",
            "Fooling rate at the largest zeta, per task and norm: for each initialisation the UAP built from "
            "photos and the UAP built from medical images, and the highest random control of the row.",
            data=table)

# %% tags=["remove-input"]
Markdown(report.transfer_learning_sentence(table))

# %% [markdown]
# ## Targeted UAPs from photos
#
# Minagi et al. write that "UAPs from natural images are useful for both non-targeted and
# targeted attacks". A targeted UAP from photos pushes every photo toward one class of the
# medical task (a photo of a dog toward "pneumonia"), under the same bound as above; it is built
# toward each class, at the bound where chapter 3 builds its targeted UAPs.
# {numref}`tab-natural-targeted` gives its targeted success rate (the share of all held-out
# medical images classified as the target, the studies' definition) beside chapter 3's targeted
# UAP from medical images and a random perturbation of the same norm, which counts the images
# already in the target class.

# %%
natural_targeted = run.natural_uap_experiment(
    prof, trained=zoo, targeted=True, zeta_reference=zeta_reference,
    progress=False)

# %%
medical_targeted = run.uap_experiment(prof, trained=zoo, progress=False)

# %% tags=["hide-input"]
targeted_table = tables.natural_vs_medical(natural_targeted, medical_targeted)
pages.table(tables.natural_summary(targeted_table, norm=prof.uap.norms[0]), "tab-natural-targeted",
            f"Targeted success rate at the bound of the targeted UAPs ({prof.uap.norms[0]}; every norm in the "
            "appendix), per task and target class: for each initialisation the UAP built from photos and the UAP "
            "built from medical images, and the highest random control of the row.", data=targeted_table)

# %% tags=["remove-input"]
Markdown(report.targeted_natural_sentence(targeted_table))

# %% [markdown]
# ## Photos from two sources
#
# The study adds that the vulnerability "was observed between different natural image datasets
# and between different model architectures". Our mirror holds one photo collection (ImageNet),
# so we split it into two sources that share no photo and no class: the photos of ImageNet's
# animal classes and those of its other classes (objects, food, plants, scenes), as many of each.
# {numref}`tab-natural-sources` compares, for each model and norm at the largest zeta, the UAPs
# built from each source on the same held-out medical images: their fooling rates, the paired
# difference with its interval and an exact McNemar test of the images only one of them fools,
# and each UAP applied to the other source's photos.

# %%
sources = run.source_comparison(prof, trained=zoo,
                                zeta_reference=zeta_reference, progress=False)

# %% tags=["hide-input"]
pages.table(tables.source_table(sources), "tab-natural-sources",
            "Non-targeted UAPs from two disjoint photo sources at the largest zeta: fooling rate on the held-out "
            "medical images [95 % interval] of each, their paired difference [95 % interval] and exact McNemar "
            "p, the fooling rate of each on the other source's photos (first · second) and the larger random "
            "control.", data=tables.source_table(sources, numeric=True))

# %% tags=["remove-input"]
Markdown(report.source_sentence(sources))

# %% [markdown]
# ## Across architectures
#
# Each photo-built UAP applied to every model of its task, on the same held-out medical images
# ({numref}`fig-natural-transfer`): the rows are the models the chapter attacks, the columns all
# models the profile trains on the task. A UAP applied to its own model gives its fooling rate
# above.

# %%
everyone = models_zoo.trained_models(prof, progress=False)
natural_transfer = run.transfer_matrices(natural, to=everyone, progress=False)

# %% tags=["hide-input"]
pages.figure(uplots.transfer_grid(natural_transfer), "fig-natural-transfer",
             "Fooling rate of the non-targeted photo-built UAP (largest zeta, first norm) built on one model (rows) "
             "and applied to each model of the same task (columns), on held-out medical images.")

# %% [markdown]
# ## Beside the study's logged case
#
# Minagi et al. log one case numerically: melanoma, InceptionV3 fine-tuned from ImageNet at
# {glue:text}`natural-study-minagi-resolution` px, {glue:text}`natural-study-minagi-norm`, zeta
# {glue:text}`natural-study-minagi-zeta`. Our rows for the same task, norm and zeta in
# {numref}`tab-natural-minagi` differ in architecture (ours are the models above, not
# InceptionV3), resolution, the number of photos and of test images, and the optimiser (see the
# settings). If the profile has no melanoma task or not that norm and zeta, only the study's row
# is shown.

# %% tags=["hide-input"]
minagi = tables.minagi_comparison(table)
pages.table(tables.minagi_summary(minagi), "tab-natural-minagi",
            "Minagi et al.'s logged case beside ours (same task, norm and zeta): model, resolution, fooling rate "
            "of the UAP from photos, random control, difference.", data=minagi)

# %% [markdown]
# ## What the photo-built perturbations look like
#
# Amplified as in chapter 3 ({numref}`fig-natural-perturbations`); then held-out medical images
# before and after the natural-image UAP with the highest fooling rate of each task
# ({numref}`fig-natural-before-after`) and where it sends them ({numref}`fig-natural-confusion`).

# %% tags=["hide-input"]
pages.figure(uplots.uap_grid(natural), "fig-natural-perturbations",
             "UAPs built from photos only, at the largest zeta (first norm of the profile): one row per task, one "
             "column per model, amplified (gain under each panel).")

# %% tags=["hide-input"]
pages.figure(uplots.before_after_grid(natural, run.strongest_keys(natural)), "fig-natural-before-after",
             "Held-out medical images before (upper row) and after (lower row) the strongest photo-built UAP of each "
             "task, with the model's prediction (orange: changed).")

# %% tags=["hide-input"]
pages.figure(uplots.confusion_uap_grid(natural, run.confusion_keys(natural, twins=0)), "fig-natural-confusion",
             "Confusion matrices of held-out medical images with the strongest photo-built UAP of each task added.")

# %% tags=["hide-input"]
natural_perceptibility = run.perceptibility(natural)
pages.table(tables.perceptibility_summary(natural_perceptibility), "tab-natural-perceptibility",
            "How visible the photo-built UAPs are on the medical images, measured as chapter 3 measures its UAPs: "
            "per task, norm and zeta, the largest L-inf and L2 norm in grey levels and the lowest median PSNR "
            "(dB) and SSIM of a perturbed held-out image against the clean one.", data=natural_perceptibility)

# %% [markdown]
# ## Explorer
#
# The same explorer as chapter 3, with the UAP built from photos beside the one built from
# medical images and the photo UAP's random control.

# %%
uplots.explorer(medical, natural, profile=prof)

# %% [markdown]
# (natural-fidelity)=
# ## Did fine-tuning keep the ImageNet features?
#
# Minagi et al.'s premise is that a fine-tuned model still carries the features of its
# ImageNet weights, which photo-built UAPs exploit. If fine-tuning moved the weights far from
# ImageNet's, the premise fails for our models whatever the study found.
# {numref}`fig-natural-drift` measures it: for each block of each ImageNet-initialised model,
# the norm of the change of its weights relative to their ImageNet norm.

# %% tags=["hide-input"]
drift = frun.drift_results(zoo)
drift_summary = ftables.drift_summary(drift)
if not drift.empty:
    pages.figure(fplots.drift_plot(drift), "fig-natural-drift",
                 "Relative weight change from the ImageNet weights per block (input to output), one line per "
                 "fine-tuned model: zero is the ImageNet weights unchanged, one a change as large as the weights.")
pages.table(drift_summary, "tab-natural-drift",
            "Weight drift per fine-tuned model: overall (parameter-weighted root mean square over blocks), in the "
            "first and the last block, and the block that moved most.", data=drift)

# %% tags=["remove-input"]
Markdown(freport.drift_sentence(drift, drift_summary))

# %% [markdown]
# ## Does the resolution change the answer?
#
# Where our inputs are smaller than the study's {glue:text}`natural-study-minagi-resolution` px,
# the resolution is the largest departure from its setting. The resolution ablation trains the
# same model with the same recipe at several sides and repeats the three
# measurements of this book at each: clean AUC, robust accuracy under the ensemble of
# chapter 2, and the fooling rate of a photo-built UAP ({numref}`fig-natural-ablation`).

# %%
ablation = frun.resolution_ablation(prof, progress=False)

# %% tags=["hide-input"]
records.write_record(report.natural_record(prof, zoo, table, drift, ablation, targeted=targeted_table,
                                           cross_source=tables.source_table(sources, numeric=True),
                                           transfer=tables.transfer_table(natural_transfer)))
pages.figure(fplots.ablation_plot(ablation), "fig-natural-ablation",
             "Clean AUC, robust accuracy and photo-UAP fooling rate against the image side for one task and "
             "model trained with the same recipe at each side, with 95 % bootstrap intervals.")
pages.table(ftables.ablation_table(ablation), "tab-natural-ablation",
            "The resolution ablation, one row per image side: training images and epochs run, clean AUC, robust "
            "accuracy and photo-UAP fooling rate [95 % intervals], the random control and the training time.",
            data=ablation)

# %% tags=["remove-input"]
Markdown(freport.ablation_sentence(ablation))

# %% [markdown]
# ## Reading the result
#
# The question is not whether our numbers equal the study's (the settings say why they cannot),
# but whether the ordering holds: photo-built UAPs above random controls, below medical-image
# UAPs, and stronger against the ImageNet-initialised model than against the one trained from
# scratch. The summary line above counts each of these from the table; where the ordering
# fails, the appendix rows say at which resolution and norm. Small inputs are the least
# favourable case for this attack: shrunk to a small side, the photos keep little of what made
# them "natural".

# %% [markdown]
# (natural-appendix)=
# ## Appendix: every natural-image UAP
#
# Interactive tables (search, sort, pages), each downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.settings_table(prof), "tab-natural-settings-full", "Every UAP setting of the profile.")
pages.appendix_table(tables.natural_display(table), "tab-natural-all",
                     "Every natural-image UAP beside the medical-image UAP and the random control of the same model, "
                     "norm and zeta [95 % intervals]; the bound from the medical images and the one the photos' own "
                     "norm would give.", data=table)
pages.appendix_table(tables.natural_display(targeted_table), "tab-natural-targeted-all",
                     "Every targeted natural-image UAP beside the targeted medical-image UAP and the random control of "
                     "the same model, norm, zeta and target [95 % intervals].", data=targeted_table)
pages.appendix_table(tables.transfer_table(natural_transfer), "tab-natural-transfer",
                     "Every photo-built UAP applied to every model of its task: fooling rate on held-out medical images.")
pages.appendix_table(tables.transfer_learning_table(table), "tab-natural-transfer-learning",
                     "Per task, norm and zeta: the photo-built UAP's fooling rate for each initialisation, and how much "
                     "of the medical-image UAP's effect the photos recover (natural / medical).")

# %% tags=["remove-input"]
page.footer(prof.name)
