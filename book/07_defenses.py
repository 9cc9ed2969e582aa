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
# # Defenses
#
# Do the defenses the studies proposed survive an attacker who knows them? This chapter
# rebuilds AdversarialMed's three defenses {cite:p}`li2019adversarialmed` (JPEG compression,
# adversarial training in the two forms the study names, its repository's iterative recipe and its
# text's one-step FGSM, and VAE denoising) and Hirano et al.'s adversarial retraining against
# universal perturbations {cite:p}`hirano2021universal`, with bit-depth reduction, the simplest of
# the input squeezers the peers compare such defenses with {cite:p}`xu2018feature`, as a baseline,
# and measures each twice on the same
# test images: against an *oblivious* attacker, who crafts the adversarial images on the
# undefended model, and against an *adaptive* one, who attacks the defense itself
# {cite:p}`athalye2018obfuscated,tramer2020adaptive`. {numref}`tab-def-study` sets the studies'
# claims beside ours; {numref}`fig-def-clean-robust` shows what each defense costs on clean images
# and what it keeps under attack; a certified baseline, randomized smoothing
# {cite:p}`cohen2019certified`, closes the chapter ({numref}`fig-def-certified`). Every run is
# in the {ref}`appendix <def-appendix>`.
#
# Every number on this page is computed by its cells. Re-run it with other settings with, for
# example, `python -m advmed.book run book/07_defenses.py -p profile cpu -p eps_255 "[0.5, 1]"`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's defended tasks; or a list such as ["pneumoniamnist"]
eps_255 = None  # None: the profile's budgets (L-inf, /255 pixel levels), e.g. [0.5, 1, 2]
n_images = None  # test images per task (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)
retrain_rounds = None  # Hirano et al.'s retraining rounds (None: the profile's)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it): imports, quiet warnings, offline
# interactive tables, the chapter's clock, the profile with this run's parameters.
from IPython import get_ipython
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.kernel import records
from advmed.experiments.defenses import plots as dplots
from advmed.experiments.defenses import report, run, tables

get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, eval={"n_boot": n_boot},
                            defense={"tasks": tasks, "eps_255": eps_255, "n_images": n_images,
                                     "retrain_rounds": retrain_rounds})
pages.glue_numbers("def-study", report.study_numbers(prof))

# %% tags=["remove-input"]
pages.banner(prof.name, prof.defense.n_images)

# %% tags=["hide-input"]
pages.table(tables.settings_brief(prof), "tab-def-settings",
            f"The chapter's main settings (profile `{prof.name}`); every setting is in the appendix.",
            data=tables.settings_table(prof).reset_index())

# %% tags=["remove-input"]
Markdown(report.budget_note(prof))

# %% [markdown]
# ## Defenses and attackers
#
# Each defense wraps the task's model into a model (pixels in [0, 1] in, logits out,
# `advmed.defenses`), so every attack of the book runs on it unchanged:
#
# - **JPEG compression** at quality {glue:text}`def-study-jpeg-quality` (AdversarialMed's:
#   {glue:text}`def-study-jpeg-quality-study`), the real codec (libjpeg through Pillow) in front of
#   the classifier.
# - **Adversarial training** with AdversarialMed's loss, {glue:text}`def-study-at-clean-weight:g`
#   clean + {glue:text}`def-study-at-adv-weight:g` adversarial, I-FGSM examples at their
#   $\epsilon$ ({glue:text}`def-study-at-eps:g` normalised,
#   {glue:text}`def-study-at-eps-255:.2f`/255), step {glue:text}`def-study-at-step:g` normalised,
#   {glue:text}`def-study-at-steps` iterations, crafted with the true labels and the model in eval mode; PGD training
#   {cite:p}`madry2018towards` where the profile asks. It fine-tunes chapter 1's clean model of the
#   task, as AdversarialMed fine-tuned a trained chest X-ray network, and keeps the epoch with the
#   best robust balanced accuracy on validation images: started from ImageNet weights instead, that
#   rule kept a first epoch which predicted one class for almost every image.
# - **VAE denoising**: a convolutional VAE trained on the clean training images reconstructs the
#   input (AdversarialMed's patch-wise variant where the profile sets a patch size).
# - **UAP retraining** {cite:p}`hirano2021universal,moosavidezfooli2017universal`: rounds of
#   fine-tuning on training images of which half carry a UAP of the current model.
#
# The **oblivious** attacker runs PGD on the undefended model and submits its images to the
# defended one. The **adaptive** attacker runs chapter 2's robust ensemble (APGD-CE, APGD with
# the margin loss, PGD; {cite:p}`croce2020reliable`) on the defended model: through JPEG by BPDA
# (the real codec forward, the identity backward; {cite:p}`athalye2018obfuscated`), end to end
# through the VAE, directly on the retrained weights. It also tries PGD through a differentiable
# JPEG {cite:p}`reich2024differentiable`, PGD on the expectation over the VAE's sampled latents
# (EOT), and the oblivious images; per image the worst case counts, so the adaptive attacker is at
# least as strong as the oblivious one by construction. Each defended model also runs chapter 2's
# gradient-masking diagnostics {cite:p}`carlini2019evaluating`, with the undefended model as the
# transfer surrogate. A defense they flag is attacked harder, not labelled
# {cite:p}`tramer2020adaptive`: at every budget its survivors meet FGSM, PGD and APGD with more
# iterations and restarts, the margin loss, transfer from the undefended model and from the
# defense's other sources, and Square, which needs no gradient; the worst case over all of them is
# reported, converged when the last two attacks break no further image, else as an upper bound.
# Every adversarial image is also judged after rounding to an 8-bit image, the form in which an
# attacker delivers a file; budgets below one grey level exist only in floating point. The rounded
# images come from attacks run in floating point, not searched on the 8-bit grid, so the two
# numbers bracket the 8-bit threat model: its robust accuracy is at least the float one (that
# attacker has every 8-bit image and more to choose from) and at most the rounded one. Where the
# rounded number is much higher, at budgets of one or two grey levels, rounding has undone part of
# the perturbation; that is not robustness a defense earned.

# %%
zoo = models_zoo.trained_models(prof, tasks=run.defense_tasks(prof),
                                models=[prof.defense.model], progress=False)
results = run.defense_results(prof, zoo, progress=False)

# %% [markdown]
# ## The studies' claims beside ours
#
# {numref}`tab-def-study` reads the robust numbers at the budget of the profile's grid nearest
# AdversarialMed's {glue:text}`def-study-eps-255:.2f`/255. The studies gave JPEG's and the VAE's
# protection in words only; we read "protects partly" as adding at least
# {glue:text}`def-study-partial-gain:.2f` of robust accuracy over the undefended model, and Hirano
# et al.'s "helped" as a fresh UAP of the retrained model fooling at least
# {glue:text}`def-study-retraining-helped:.2f` fewer images.

# %% tags=["hide-input"]
claims = report.claim_numbers(results)
records.write_record(report.headline_record(prof, zoo, claims, results))
eps = tables.nearest_eps(results, tables.adversarialmed_eps_255())
pages.table(tables.study_summary(results), "tab-def-study",
            "The studies' defense claims beside ours, against the oblivious and the adaptive attacker. The study's "
            "setting, ours and the difference are in the appendix.", data=tables.study_table(results))

# %% tags=["remove-input"]
Markdown("\n\n".join([report.at_reading(claims), report.preprocessing_reading(claims),
                      report.retraining_reading(claims)]))

# %% [markdown]
# ## Clean against robust
#
# {numref}`tab-def-ranking` ranks the defenses by what the adaptive attacker leaves of their
# accuracy at that budget, averaged over the defended tasks, beside the clean accuracy each
# costs. {numref}`tab-def-summary` gives every defense on every task, oblivious and adaptive side
# by side, with the verdict of the masking diagnostics.
# {numref}`fig-def-clean-robust` draws the same AUCs: the vertical segment between a circle and a
# cross is what the attacker gains by knowing the defense. {numref}`fig-def-curves` follows the
# robust accuracy over the whole budget grid.

# %% tags=["hide-input"]
pages.table(tables.defense_ranking(results, eps), "tab-def-ranking",
            "The defenses ranked by the adaptive attacker's robust accuracy at the reporting budget (per defended "
            "task and their mean, best first), the clean accuracy each costs against the undefended model (mean over "
            "tasks), and the least trusted evaluation over its tasks (upper bound where an escalation did not "
            "converge).", data=tables.defense_table(results, eps))

# %% tags=["hide-input"]
pages.table(tables.defense_summary(results, eps), "tab-def-summary",
            "Every defense at the reporting budget: accuracy clean, against the oblivious and against the adaptive "
            "attacker (escalated where the masking diagnostics flag the defense), the adaptive attacker's images once "
            "rounded to an 8-bit image as a file delivers them (an upper bound for an attacker who searches the 8-bit "
            "grid; the float number is the lower one), and the evaluation: passed (the diagnostics pass), "
            "converged (flagged, then escalated until two stronger attacks in a row broke nothing) or upper bound "
            "(flagged, escalated to its cap and still breaking images). AUCs, costs and what each escalation found "
            "are in the appendix.",
            data=tables.defense_table(results, eps))

# %% tags=["hide-input"]
pages.figure(dplots.clean_vs_robust(results, eps), "fig-def-clean-robust",
             "Clean AUC (x) against AUC under attack at the reporting budget (y), one colour per defense: circles for "
             "the oblivious attacker, crosses for the adaptive one; dotted: no loss under attack.")

# %% [markdown]
# AdversarialMed measured its defenses with FGSM, I-FGSM, PGD and MI-FGSM at its own budget
# ({glue:text}`def-study-eps-255:.2f`/255) and the step of its adversarial training, a fixed
# number of iterations;
# {numref}`tab-def-adversarialmed` repeats that measure on every defense, for both attackers, and
# adds the AUC of an attacker who pushes every image as far as that budget allows (APGD on the
# margin loss, no early stop): an attack that stops at the first misclassification leaves fooled
# images just past the boundary, so the AUC of its images flatters the defense.

# %% tags=["hide-input"]
pages.table(tables.study_attacks_summary(results), "tab-def-adversarialmed",
            "The lowest AUC on the defended model over the studies' four attacks at AdversarialMed's setting "
            f"({tables.adversarialmed_eps_255():.2f}/255, their step, last iterate), crafted on the undefended model "
            "(oblivious) or on the defense (adaptive); APGD with the margin loss at the same budget, every "
            "iteration and chapter 2's ensemble iterations (the strongest AUC measure: no image stops at the "
            "boundary); the last column, the lowest adaptive AUC of all five with the images rounded to an 8-bit "
            "image. Each attack is in the appendix.", data=tables.study_attacks_table(results))

# %% tags=["hide-input"]
pages.figure(dplots.robust_curves(results), "fig-def-curves",
             "Robust accuracy against the $L_\\infty$ budget (/255), one line per defense: left the oblivious "
             "attacker, right the adaptive one; solid: the adversarial images as found, dotted: rounded to an 8-bit "
             "image. Shaded: budgets below one grey level, which no 8-bit file carries (the float threat model only).")

# %% tags=["remove-input"]
Markdown(report.diagnostics_reading(results))

# %% [markdown]
# ## Explore: one image, one defense, two attackers
#
# Pick a defense, a budget and an attacker: the frame shows one test image through that defense,
# the defended model's probabilities clean and attacked, and the robust accuracy that setting
# leaves over every test image; the JPEG quality slider appears for the JPEG defense, and in a
# notebook with a kernel other qualities are attacked on demand.

# %%
dplots.explorer(results, profile=prof, zoo=zoo)

# %% [markdown]
# ## How the adversarially trained models were chosen
#
# Each adversarially trained model keeps the epoch with the best robust balanced accuracy on the
# validation images under PGD at its training budget, and stops when that has not improved for
# a few epochs or at the profile's epoch cap ({numref}`fig-def-at-curves`); the clean validation
# AUC of the same epochs shows what the robustness costs. A kept epoch at the very start with a clean AUC near chance would be a model
# that is robust because it predicts one class.

# %% tags=["hide-input"]
if results.training_curves():
    pages.figure(dplots.at_curves(results), "fig-def-at-curves",
                 "Training of each adversarially trained model, one panel per task: robust balanced accuracy on the "
                 "validation images under PGD at the training budget (solid; it chooses the kept epoch, ringed) "
                 "and clean validation AUC (dashed), per epoch.")

# %% tags=["remove-input"]
Markdown(report.at_training_reading(results, zoo, prof))

# %% [markdown]
# ## Does the adversarial loss regularise?
#
# AdversarialMed's text makes a second claim for adversarial training: its loss "provides extra
# regularization power", most of all when a task has little data. The experiment that sentence
# implies trains the defended model's recipe twice on the same shrinking training sets, with the
# plain loss and with the study's adversarial loss, over several seeds, and compares clean test
# AUC ({numref}`fig-def-regularisation`). The two runs of a seed share their training images and
# their initialisation, so the difference is read seed by seed; both keep the epoch with the best
# clean validation AUC, since the question is clean generalisation (robust selection would favour
# an adversarially trained model's early, nearly one-class epochs).

# %% tags=["hide-input"]
if len(results.regularisation):
    pages.figure(dplots.regularisation_curve(results), "fig-def-regularisation",
                 "Clean test AUC against the share of training images (log scale), standard and adversarial "
                 "training (AdversarialMed's loss): dots, single seeds; markers, the mean over seeds with its "
                 "95 % t-interval.")
    pages.table(tables.regularisation_table(results), "tab-def-regularisation",
                "Clean test AUC per share of training images: each recipe's mean over seeds [95 % t-interval] and "
                "the paired difference, adversarial minus standard.")

# %% tags=["remove-input"]
Markdown(report.regularisation_reading(claims))

# %% [markdown]
# ## A certified baseline
#
# Randomized smoothing {cite:p}`cohen2019certified` classifies by the majority vote of a base
# classifier over Gaussian-noised copies of the image; a lower confidence bound on the vote gives
# each image an $L_2$ radius within which no perturbation can change the vote. The base model is
# the task's recipe trained with the same noise. {numref}`fig-def-certified` shows the share of
# test images certified correct at each radius; it is a guarantee, not a measurement against
# particular attacks.

# %% tags=["hide-input"]
if results.certified is not None:
    pages.figure(dplots.certified_curve(results.certified), "fig-def-certified",
                 "Certified accuracy of the smoothed classifier against the $L_2$ radius ([0, 1] pixels, one channel "
                 "on grey tasks, the units of every other attack of the book): the share of test images classified "
                 "correctly and certified at that radius (abstentions count as wrong). The curve ends at the largest "
                 "radius its number of votes can certify.")

# %% tags=["remove-input"]
Markdown(report.certified_reading(results))

# %% [markdown]
# (def-appendix)=
# ## Appendix: every defense, attacker and budget
#
# Interactive tables (search, sort, pages), each downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.settings_table(prof).reset_index(), "tab-def-settings-full", "Every setting of the chapter.")
pages.appendix_table(tables.study_table(results), "tab-def-study-full",
                     "The studies' defense claims beside ours in full: the study's figure and setting, ours against "
                     "both attackers, our setting, the difference (adaptive − study) and how we read it.")
pages.appendix_table(tables.defense_table(results, eps), "tab-def-summary-full",
                     "Every defense at the reporting budget: clean, oblivious and adaptive accuracy and AUC, the "
                     "diagnostics, training seconds and inference milliseconds per image.")
pages.appendix_table(tables.study_attacks_table(results), "tab-def-adversarialmed-full",
                     "AUC under each of the studies' four attacks at AdversarialMed's setting, oblivious and adaptive.")
pages.appendix_table(tables.curves_table(results), "tab-def-curves",
                     "Every defense, attacker and budget: accuracy and AUC with 95 % bootstrap bounds (a budget of "
                     "zero: clean).")
pages.appendix_table(tables.sources_table(results).reset_index(), "tab-def-sources",
                     "The adaptive attacker's sources, each alone: the robust accuracy it leaves per budget (/255).")
pages.appendix_table(tables.diagnostics_table(results), "tab-def-diagnostics",
                     "The masking diagnostics of every defended model: each check, passed or not, and its numbers.")
pages.appendix_table(tables.escalation_table(results), "tab-def-escalation",
                     "The escalation of every flagged defense, per budget (/255): the adaptive worst case it started "
                     "from, then each stronger attack with the images it attacked (the survivors) and newly broke, the "
                     "accuracy after it and its seconds; status: converged when the last two stages broke nothing, "
                     "else an upper bound, not converged.")
pages.appendix_table(tables.retraining_table(results), "tab-def-retraining",
                     "Hirano et al.'s retraining, round by round: fooling rate of the round's UAPs before, of the same "
                     "UAPs after, and of fresh UAPs of the retrained model; clean accuracy; seconds.")
pages.appendix_table(tables.certified_table(results.certified), "tab-def-certified",
                     "Certified accuracy against the L2 radius ([0, 1] pixels and /255).")
pages.appendix_table(tables.cost_table(results), "tab-def-costs",
                     "What each defense costs: training seconds and inference milliseconds per image (smoothing: its "
                     "certification per image).")

# %% tags=["remove-input"]
page.footer(prof.name)
