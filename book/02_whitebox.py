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
# # White-box attacks
#
# How much does a small, carefully chosen change of the pixels change the diagnosis? This
# chapter attacks the classifiers of chapter 1 with the four gradient attacks the reference
# studies used, measures accuracy and ROC AUC as the budget grows ({numref}`fig-wb-accuracy`,
# {numref}`fig-wb-auc`, {numref}`tab-wb-pgd`), repeats the two studies' own settings beside
# their published figures ({numref}`tab-wb-adversarialmed`, {numref}`tab-wb-finlayson`), and
# shows how visible the perturbations are ({numref}`tab-wb-visibility`,
# {numref}`fig-wb-examples`). Every result for every model, attack and budget is in the
# chapter's {ref}`appendix <wb-appendix>`.
#
# Every number on this page is computed by its cells. Re-run it with other settings with, for
# example, `python -m advmed.book run book/02_whitebox.py -p profile cpu -p eps_255 "[0, 1, 2]"`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["pneumonia_cxr"]
models = None  # None: the profile's models; or a list such as ["resnet18:scratch"]
eps_255 = None  # None: the profile's eps grid, in /255 pixel levels, e.g. [0, 1, 2, 4, 8]
n_images = None  # test images attacked per task (None: the profile's)
steps = None  # iterations of I-FGSM, PGD and MI-FGSM (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)
report_eps_255 = None  # eps of the perceptibility table and the gallery (None: the profile's)
explorer_pairs = None  # (task, model) pairs in the explorer (None: the profile's)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it): imports, quiet warnings, offline
# interactive tables, the chapter's clock, the profile with this run's parameters.
from IPython import get_ipython
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import compare, profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.kernel import records
from advmed.experiments.whitebox import plots as wplots
from advmed.experiments.whitebox import report, run, tables

# the figures are matplotlib Figures built without pyplot: display() renders them as PNG
get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot},
                            whitebox={"eps_255": eps_255, "n_images": n_images, "steps": steps,
                                      "report_eps_255": report_eps_255},
                            explorer={"pairs": explorer_pairs})
att = prof.whitebox
pages.glue_numbers("wb-study", report.study_settings())

# %% tags=["remove-input"]
pages.banner(prof.name, att.n_images, what="test images attacked per task")

# %% tags=["hide-input"]
pages.table(tables.settings_table(prof), "tab-wb-settings",
            f"The chapter's settings (profile `{prof.name}`: {prof.description}).")

# %% tags=["hide-input"]
pages.table(compare.settings_side_by_side(prof, ["adversarialmed", "finlayson"], chapter="whitebox"),
            "tab-wb-beside", "The two white-box studies' settings beside this profile's, aspect by aspect: every "
            "difference that could move a number of this chapter.")

# %% [markdown]
# ## Threat model
#
# The attacker knows the model completely (architecture and weights: *white box*), sees one
# image at a time and may change every pixel by at most $\epsilon$ in the $L_\infty$ norm,
# keeping the image valid: $x_{adv} \in [0, 1]^d$ and $\lVert x_{adv} - x \rVert_\infty \le
# \epsilon$. Its goal is a wrong diagnosis (untargeted), or a chosen one (targeted). Every
# $\epsilon$ in this book is in **[0, 1] pixel units**, written in grey levels of an 8-bit image
# (/255); each study's own convention is converted beside it.
#
# ## Attacks
#
# All four ascend the cross-entropy loss $L$ of the model's logits along the sign of its input
# gradient (`advmed.attacks`; the model is attacked in eval mode, pixels are clipped to [0, 1]
# after every step):
#
# - **FGSM** {cite:p}`goodfellow2015explaining`: one step,
#   $x_{adv} = x + \epsilon\,\mathrm{sign}(\nabla_x L)$.
# - **I-FGSM** {cite:p}`kurakin2017adversarial`: $T$ smaller steps of size $\alpha$, each
#   projected back onto the $\epsilon$-ball.
# - **PGD** {cite:p}`madry2018towards`: I-FGSM from a random start inside the ball.
# - **MI-FGSM** {cite:p}`dong2018boosting`: I-FGSM on an accumulated, normalised gradient
#   (momentum $\mu = 1$).
#
# Unless a study's setting says otherwise, I-FGSM and PGD step by $\alpha = 2.5\,\epsilon / T$
# {cite:p}`madry2018towards` and MI-FGSM by $\epsilon / T$ {cite:p}`dong2018boosting`. The
# studies stated their budgets in other units; {numref}`tab-wb-conventions` converts them with
# `advmed.experiments.references.eps_to_pixels`.

# %% tags=["hide-input"]
pages.table(tables.conventions_table(), "tab-wb-conventions",
            "The studies' budgets in their own input space and in /255 pixel levels (AdversarialMed: × the mean "
            "ImageNet standard deviation; Finlayson et al.: halved, their range being twice as wide).",
            data=tables.eps_conventions())

# %% [markdown]
# ## Accuracy and AUC against the budget
#
# The profile's models, loaded from the checkpoint cache written by chapter 1 (trained now if
# the cache lacks them; the appendix lists them), are attacked on the same held-out test images
# of each task (a stratified subset drawn with the profile's seed). {numref}`fig-wb-accuracy`
# and {numref}`fig-wb-auc` show accuracy and AUC against the budget, with percentile-bootstrap
# 95 % bands over those images; {numref}`tab-wb-pgd` reads PGD off at the reporting budget.
# Results are memoised per model, so re-executing the page reloads them.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
results = run.whitebox_results(prof, zoo, progress=False)

# %% tags=["hide-input"]
pages.figure(wplots.robustness_grid(results, metric="accuracy"), "fig-wb-accuracy",
             "Accuracy against the $L_\\infty$ budget (/255 pixel levels): one row per task, one column per attack, "
             "one colour per model, shaded 95 % bootstrap bands; dotted: the two studies' budgets converted to "
             "pixels.")

# %% tags=["hide-input"]
pages.figure(wplots.robustness_grid(results, metric="auc"), "fig-wb-auc",
             "ROC AUC against the budget, laid out as {numref}`fig-wb-accuracy`; dashed: chance. An AUC below chance "
             "means the attack reversed the ranking of the images.")

# %% tags=["hide-input"]
pages.glue_numbers("wb", report.headline(results, att.report_eps_255))
pages.table(tables.attack_summary(results, att.report_eps_255), "tab-wb-pgd",
            "Accuracy clean → under PGD at the reporting budget, one row per model, one column per task. Every "
            "attack and budget, with intervals and flip rates, is in the appendix.", data=results)

# %% tags=["remove-input"]
Markdown(report.summary_sentence(results, att.report_eps_255))

# %% [markdown]
# An error is not the same harm both ways: a diseased patient classified as healthy misses a
# required treatment, a healthy one classified as diseased is sent for an unnecessary one
# {cite:p}`finlayson2019adversarial`. {numref}`tab-wb-harm` splits PGD's damage at the reporting
# budget by direction, each share over the images of that kind the model classified correctly
# without the attack.

# %% tags=["hide-input"]
pages.table(tables.harm_summary(results, att.report_eps_255), "tab-wb-harm",
            "PGD at the reporting budget, by the direction of the error: the share of diseased images sent to no "
            "disease (missed diagnoses) and of the others sent to a disease (false alarms) [95 % bootstrap "
            "interval], each over the images of that kind classified correctly without the attack.")

# %% [markdown]
# (wb-robust)=
# ## The worst case over an attack ensemble
#
# A single attack with a fixed number of steps can stall, and its accuracy then overstates
# robustness. The number this book calls *robust accuracy* is, per test image and budget, the
# worst case over an ensemble {cite:p}`croce2020reliable`: APGD with the cross-entropy loss,
# APGD with the margin loss (the targeted DLR loss on tasks with at least four classes) and
# PGD with restarts, each run at {glue:text}`wb-robust-steps` iterations. The budgets are
# nested: an image broken at one budget counts as broken at every larger one, so the curve
# cannot rise with eps, and attacks stop on an image as soon as it is misclassified.
# {numref}`fig-wb-robust` sets the ensemble beside FGSM and PGD, {numref}`fig-wb-robust-auc` gives its AUC,
# and {numref}`tab-wb-robust` reads it off per model.
#
# The ensemble's members are not the four attacks above, so nothing forces its worst case below
# theirs: an image that only FGSM, I-FGSM or MI-FGSM breaks would make a single attack stronger.
# The check under the figures compares them for every model and budget: the ensemble lies at or
# below every single attack in {glue:text}`wb-ensemble-at-or-below` of
# {glue:text}`wb-ensemble-pairs` model–budget pairs.

# %%
robust = run.robust_results(prof, zoo, progress=False)

# %% tags=["hide-input"]
pages.glue_numbers("wb-robust", {"steps": att.robust_steps})
ensemble = run.ensemble_check(results, robust.curves)
pages.glue_numbers("wb-ensemble", report.ensemble_counts(ensemble))
pages.figure(wplots.robustness_grid(run.with_ensemble(results, robust.curves), metric="accuracy",
                                    attacks=("fgsm", "pgd", run.ENSEMBLE)), "fig-wb-robust",
             "Accuracy against the budget under FGSM, PGD and the ensemble's worst case (right column), laid out "
             "as {numref}`fig-wb-accuracy`; the check below the figures says where the ensemble lies at or below "
             "every single attack.")

# %% tags=["hide-input"]
pages.figure(wplots.robustness_grid(run.with_ensemble(results, robust.curves), metric="auc",
                                    attacks=("pgd", run.ENSEMBLE)), "fig-wb-robust-auc",
             "ROC AUC under PGD and under the ensemble's worst case (the AUC of the scores of each image's "
             "adversarial example at that budget); dashed: chance.")

# %% tags=["hide-input"]
pages.table(tables.robust_table(robust.curves), "tab-wb-robust",
            "Robust accuracy [95 % bootstrap interval] per model and budget: the worst case over the ensemble on "
            "nested budgets; after a semicolon, the accuracy once each adversarial image is rounded to an 8-bit image, as "
            "an image file would deliver it, where that differs. Budgets marked (float) are below one grey level: "
            "no 8-bit file carries them. The ensemble's cost per member is in the appendix.", data=robust.curves)

# %% tags=["remove-input"]
Markdown(report.ensemble_reading(ensemble))

# %% [markdown]
# (wb-diagnostics)=
# ## Is the evaluation strong enough?
#
# A low accuracy is easy to believe; a high one must be checked, because gradient masking
# makes a model look robust to gradient attacks while leaving it open to others
# {cite:p}`athalye2018obfuscated,carlini2019evaluating`. On a subset of test images every
# model goes through six checks: more steps and restarts no longer lower accuracy (the attack
# has converged), the margin loss does not beat the cross-entropy by much, the white-box attack
# is at least as strong as a transfer attack from another model of the task, accuracy reaches
# zero at a large budget, FGSM is not stronger than the iterative attack, and accuracy does not
# rise with eps. {numref}`tab-wb-diagnostics` gives the verdicts; the numbers behind each are
# in the appendix. A model that fails a check has its robust accuracy reported as unevaluated,
# not as robustness.

# %%
diagnostics = run.diagnostics_results(prof, zoo, progress=False)

# %% tags=["hide-input"]
pages.table(tables.diagnostics_table(diagnostics), "tab-wb-diagnostics",
            "Masking diagnostics per model: the checks passed, those that flag the model (converged: more steps "
            "and restarts change nothing; CE ~ margin; ≥ transfer: white box at least as strong as transfer; "
            "reaches zero; FGSM ≥ iter.: FGSM no stronger than the iterative attack; monotone: no rise with eps) and "
            "whether its robust accuracy is believed.", data=diagnostics)

# %% tags=["remove-input"]
Markdown(report.diagnostics_reading(diagnostics) + "\n\n" + report.robust_reading(robust.curves, results,
                                                                                   diagnostics))

# %% [markdown]
# ## AdversarialMed's setting
#
# AdversarialMed {cite:p}`li2019adversarialmed` attacked a DenseNet-121 fine-tuned from CheXNet
# {cite:p}`rajpurkar2017chexnet` on the Kermany pneumonia X-rays at
# {glue:text}`wb-study-am-size` px, with $\epsilon$ = {glue:text}`wb-study-am-eps` in
# ImageNet-normalised units (the pixel value after subtracting the mean and dividing by the
# standard deviation), which is the pixel budget of
# {numref}`tab-wb-conventions`. The README gives no step size for the attacks; we use the step
# and iteration count of their adversarial training ({glue:text}`wb-study-am-step` normalised,
# {glue:text}`wb-study-am-steps` iterations) for I-FGSM, PGD and MI-FGSM, on the same images as
# above. {numref}`tab-wb-adversarialmed` sets their figures beside the range of ours; the appendix
# has every model with its setting.

# %% tags=["hide-input"]
adv_med = run.adversarialmed_results(prof, zoo, progress=False)
adv_med_table = tables.adversarialmed_comparison(adv_med)
pages.table(tables.adversarialmed_summary(adv_med_table), "tab-wb-adversarialmed",
            "AdversarialMed's setting: the study's accuracy and AUC beside the lowest–highest of our models "
            "(pneumonia task only; empty when the profile has none).", data=adv_med_table)

# %% tags=["remove-input"]
Markdown(report.adversarialmed_reading(adv_med_table, prof))

# %% [markdown]
# ## Finlayson et al.'s setting
#
# {cite:t}`finlayson2018adversarial` fine-tuned ImageNet ResNet-50 / Inception models at
# {glue:text}`wb-study-fin-size` px on fundoscopy, chest X-ray and dermoscopy with inputs in
# [-1, 1], and ran PGD *targeted to the other class* with $\epsilon$ =
# {glue:text}`wb-study-fin-eps` and step {glue:text}`wb-study-fin-step` in that range,
# {glue:text}`wb-study-fin-steps` iterations: $\epsilon$ = {glue:text}`wb-study-fin-eps-pixels`
# and step {glue:text}`wb-study-fin-step-pixels` in [0, 1] pixels. Their chest X-ray task was
# pneumothorax, ours is pneumonia; their fundus task referable diabetic retinopathy on full-resolution
# photographs, ours the same label on RetinaMNIST. In {numref}`tab-wb-finlayson`, *to target* is
# the share of images classified as the other class after the attack.

# %% tags=["hide-input"]
fin = run.finlayson_results(prof, zoo, progress=False)
fin_table = tables.finlayson_comparison(fin)
records.write_record(report.headline_record(prof, zoo, adv_med, fin))
pages.table(tables.finlayson_summary(fin_table), "tab-wb-finlayson",
            "Finlayson et al.'s targeted PGD: the study's accuracy beside the lowest–highest of our models, clean "
            "and attacked, and the share pushed to the other class.", data=fin_table)

# %% tags=["remove-input"]
Markdown(report.finlayson_reading(fin, bullets=False))

# %% [markdown]
# ## How visible are the perturbations?
#
# {numref}`tab-wb-visibility` gives the PSNR of the adversarial image against the clean one (dB;
# higher is less visible) and SSIM {cite:p}`wang2004image` (one for identical images) at the
# reporting budget; the appendix adds the $L_2$ and $L_\infty$ norms, per model, as median [min, max] over
# the test images. {numref}`fig-wb-examples` shows one example per task, with the perturbation
# amplified so that $\pm\epsilon$ spans black to white (mid-grey means no change).

# %% tags=["hide-input"]
pages.table(tables.visibility_summary(results, att.report_eps_255), "tab-wb-visibility",
            "PSNR / SSIM of the adversarial images at the reporting budget: one row per attack, one column per "
            "task, the median over the task's models of each model's median over its test images.",
            data=tables.perceptibility_table(results, att.report_eps_255))

# %% tags=["hide-input"]
pages.figure(wplots.example_grid(prof, zoo), "fig-wb-examples",
             "PGD at the reporting budget on one correctly classified test image per task (the task's first model): "
             "the clean image, the perturbation amplified, the adversarial image (title in orange when the decision "
             "changed) and the class probabilities before and after.")

# %% [markdown]
# ## Explorer
#
# Choose the image, attack and budget. The frames were computed when this page was
# executed, so the explorer works in the static book; run in a notebook with a kernel,
# the same cell attacks on demand (and offers every budget of the sweep).

# %%
wplots.explorer(prof, zoo)

# %% [markdown]
# (wb-appendix)=
# ## Appendix: every model, attack and budget
#
# Interactive tables (search, sort, pages), each downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.model_table(zoo), "tab-wb-models",
                     "The models under attack: the initialisation asked for and used, resolution, validation AUC "
                     "and checkpoint key.")
pages.appendix_table(tables.sweep_table(results), "tab-wb-sweep",
                     "Every attack at every budget: accuracy and AUC [95 % bootstrap interval] and the flip rate (of "
                     "the images the model classified correctly, the share the attack makes it get wrong).",
                     data=results)
pages.appendix_table(adv_med_table, "tab-wb-adversarialmed-full",
                     "AdversarialMed's setting, every model: the setting of both sides and accuracy / AUC, study, "
                     "ours [95 % interval] and ours − study.")
pages.appendix_table(fin_table, "tab-wb-finlayson-full",
                     "Finlayson et al.'s setting, every model: the setting of both sides, clean and attacked "
                     "accuracy / AUC and the share pushed to the other class.")
pages.appendix_table(tables.robust_cost_table(robust.costs), "tab-wb-robust-cost",
                     "The ensemble's cost per model and member over every budget: images attacked, images broken "
                     "(first), gradient evaluations and seconds.")
pages.appendix_table(tables.diagnostics_detail(diagnostics), "tab-wb-diagnostics-full",
                     "Every masking check of every model: the surrogate of the transfer check, the images, the "
                     "verdict, the numbers behind it and its sentence.")
pages.appendix_table(tables.perceptibility_table(results, att.report_eps_255), "tab-wb-perceptibility",
                     "Perceptibility at the reporting budget, every model: L2 norm (pixels, whole image), "
                     "L∞ norm (/255), PSNR (dB) and SSIM, median [min, max] over the test images.")

# %% tags=["remove-input"]
page.footer(prof.name)
