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
# # Black-box attacks
#
# Chapters 2 to 4 gave the attacker the model's weights. A deployed diagnostic model rarely
# hands them out, so this chapter takes them away. Three attackers remain:
#
# - the **transfer** attacker trains a model of its own (a *surrogate*) on images of the
#   target's task and attacks that, hoping the adversarial images fool the target too {cite:p}`szegedy2014intriguing,papernot2017practical`.
#   {cite:t}`finlayson2019adversarial` crafted their black-box attacks this way, on a separately
#   trained model, and report that *black-box attacks still succeed*;
# - the **score-based** attacker sends images to the target and reads its output
#   probabilities: the Square Attack {cite:p}`andriushchenko2020square` and SimBA-DCT
#   {cite:p}`guo2019simple` need no gradient and no training data, only queries;
# - the **label-only** attacker sees the predicted class and nothing else, the second case
#   the notes on {cite:t}`finlayson2018adversarial` name beside probabilities ("a probability
#   distribution or just a label"): HopSkipJump {cite:p}`chen2020hopskipjump`;
# - the **universal score-based** attacker builds one perturbation for all images from those
#   scores: U-SimBA {cite:p}`koga2022simple`, at chapter 3's bounds.
#
# For each we report what it needs, what it costs (queries, seconds) and what it achieves
# ({numref}`fig-bb-transfer`, {numref}`fig-bb-queries`, {numref}`tab-bb-costs`), and we hold
# every result against chapter 2's white-box worst case on the same images
# ({numref}`tab-bb-check`): an attacker with less access can never do better than the strongest
# attacker with full access, so a black-box attack that beats the white-box evaluation exposes
# that evaluation. {numref}`tab-bb-studies` sets the two studies' settings beside ours; every
# result is in the chapter's {ref}`appendix <bb-appendix>`.
#
# Every number on this page is computed by its cells. Re-run it with other settings, e.g.
# `python -m advmed.book run book/05_blackbox.py -p profile cpu -p eps_255 2`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["referable_dr"]
models = None  # None: the profile's models; or a list such as ["mobilenet_v1_075:imagenet"]
eps_255 = None  # L-inf budget of the transfer and Square attacks in /255 (None: the profile's)
n_images = None  # test images per task for the transfer attacks (None: the profile's)
steps = None  # iterations of the attacks on a surrogate (None: the profile's)
query_images = None  # images per task for the query attacks (None: the profile's)
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
from advmed.experiments.blackbox import plots as bplots
from advmed.experiments.blackbox import report, run, tables
from advmed.experiments.kernel import surrogates

# the figures are matplotlib Figures built without pyplot: display() renders them as PNG
get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot},
                            blackbox={"eps_255": eps_255, "n_images": n_images, "steps": steps,
                                      "query_images": query_images})
pages.glue_numbers("bb-study", report.study_numbers())

# %% tags=["remove-input"]
pages.banner(prof.name, prof.blackbox.n_images,
             what=f"test images per task for the transfer attacks ({prof.blackbox.query_images} for the query attacks)")

# %% tags=["hide-input"]
pages.table(compare.settings_side_by_side(prof, ["finlayson", "koga"], chapter="blackbox"), "tab-bb-studies",
            f"The studies' settings beside ours (profile `{prof.name}`: {prof.description}).")
pages.table(tables.settings_brief(prof), "tab-bb-settings",
            "How the black-box attacks are run; every setting is in the appendix.",
            data=tables.settings_table(prof))

# %% tags=["remove-input"]
Markdown(report.budget_note(prof))

# %% [markdown]
# ## The models under attack and the attacker's surrogates
#
# The targets are the profile's models from chapter 1 (the checkpoint cache). For each task's
# target (`target model` in {numref}`tab-bb-settings`), two surrogates are trained through the
# same training code: the **same architecture with another seed** (another initialisation,
# batch order, augmentation and random training subset), and the **same architecture on data
# the target never saw**: the target's training images, and every other image of their
# patients or lesions, are left out before the surrogate's own subset is drawn. The profile's
# other architectures are surrogates too. Where the target trained on the whole training
# split, no unseen data exists and {numref}`tab-bb-surrogates` shows a dash (the appendix says
# why).

# %%
zoo = models_zoo.trained_models(prof, progress=False)
sur = surrogates.trained_surrogates(prof, zoo)

# %% tags=["hide-input"]
pages.table(tables.surrogate_summary(sur), "tab-bb-surrogates",
            "The surrogates of each task's target and their validation AUC.", data=tables.surrogate_table(sur))

# %% tags=["remove-input"]
Markdown(report.surrogates_reading(sur))

# %% [markdown]
# ## Transfer
#
# Every source (a surrogate and the attack run on it) crafts adversarial images of the same
# test images once, at the chapter's $L_\infty$ budget, running all its iterations; each target
# then classifies them ({numref}`fig-bb-transfer`). The cells where source and target are the
# same model are the white-box attack; the ensemble source attacks the logits averaged over
# every source but the target {cite:p}`liu2017delving`. {numref}`tab-bb-transfer` reads off, for
# each target, its clean accuracy, the lowest accuracy any other source leaves, and the
# white-box attack's; the appendix names the source that did best.

# %%
transfer = run.transfer_results(prof, zoo, sur, progress=False)

# %% tags=["hide-input"]
pages.figure(bplots.transfer_grid(transfer), "fig-bb-transfer",
             "Accuracy of each target model (columns) on test images crafted on each source (rows: the attack and "
             "the model it ran on), one panel per task; zero means every image fooled. Source = target is the "
             "white-box attack.")

# %% tags=["hide-input"]
pages.table(tables.transfer_brief(transfer), "tab-bb-transfer",
            "Accuracy clean → under the best transfer attack (white box in brackets), one row per target model, "
            "one column per task. Which source did best is in the appendix.",
            data=tables.transfer_summary(transfer))

# %% tags=["remove-input"]
Markdown(report.disjoint_reading(transfer.rows))

# %% [markdown]
# ## Finlayson et al.'s black box
#
# Their black-box setting: PGD *targeted to the other class* at their budget, step and
# iterations (stated in their [-1, 1] pixel range; the appendix gives both units), crafted on a
# separately trained model and fed to the target {cite:p}`finlayson2018adversarial`. Ours
# crafts on the target's two trained surrogates; the white-box column is the same attack on the
# target itself (chapter 2). In {numref}`tab-bb-finlayson`, *to the other class* is the share of
# images the target then assigns to the other class.

# %% tags=["hide-input"]
fin = run.finlayson_blackbox(prof, zoo, sur, progress=False)
pages.table(tables.finlayson_summary(fin), "tab-bb-finlayson",
            "Finlayson et al.'s targeted PGD crafted on a surrogate: the target's accuracy in white box and in "
            "black box [95 % interval], the share sent to the other class, whether that reaches our reading "
            "of \"still succeeds\", and which way the errors go: the share of diseased images sent to normal "
            "(missed diagnoses) and of normal ones sent to the disease (false alarms), each over the images of "
            "that kind the target classified correctly.", data=fin)

# %% tags=["remove-input"]
Markdown(report.finlayson_reading(fin, prof))

# %% [markdown]
# ## AdversarialMed's attacks in black box
#
# AdversarialMed studied FGSM, I-FGSM, PGD and MI-FGSM "both white- and black-box". Here the
# four run at their budget, step and iterations (chapter 2's study setting) on the chest X-ray
# target's two trained surrogates, untargeted, and the target scores the result;
# {numref}`tab-bb-adversarialmed` puts the same attacks in white box beside them.

# %% tags=["hide-input"]
am = run.adversarialmed_blackbox(prof, zoo, sur, progress=False)
pages.table(tables.adversarialmed_summary(am), "tab-bb-adversarialmed",
            "AdversarialMed's four attacks at their setting, crafted on a surrogate: the target's accuracy and "
            "AUC in white box and in black box [95 % interval], and the share of the clean-correct diseased "
            "images sent to normal (missed diagnoses) and of normal ones sent to the disease (false alarms).",
            data=am)

# %% tags=["remove-input"]
Markdown(report.adversarialmed_reading(am))

# %% [markdown]
# ## Query attacks: scores and labels
#
# The attacker sends images to the target and reads its probabilities (through
# `advmed.attacks.blackbox.ScoreOracle`, which counts every forward pass of every image).
# The Square Attack searches the surface of the $L_\infty$ ball of the chapter's budget;
# SimBA-DCT adds or subtracts one low-frequency DCT direction at a time (a fixed $L_2$ step;
# it has no bound, so the appendix reports its perturbation's size). HopSkipJump reads only
# the predicted class: it starts from a misclassified noise image and walks along the decision
# boundary towards the clean image, estimating the boundary's direction from the labels of
# random probes; an image counts as a success once its boundary point lies within the same
# $L_\infty$ budget as the Square Attack's. Each image stops at its
# first success, so {numref}`fig-bb-queries` is the success rate among the images the target
# classified correctly within each query budget; {numref}`tab-bb-queries` reads it off at the
# full budget.

# %%
queries = run.query_results(prof, zoo, progress=False)

# %% tags=["hide-input"]
pages.figure(bplots.query_curves(queries), "fig-bb-queries",
             "Success rate of the query attacks (scores: Square, SimBA-DCT; labels only: HopSkipJump) against the "
             "queries each image may send (log scale), among "
             "the images the target classified correctly: one panel per task, one line per attack.")

# %% tags=["hide-input"]
records.write_record(report.headline_record(prof, zoo, fin, sur, queries=tables.query_record(queries)))
pages.table(tables.query_summary(queries), "tab-bb-queries",
            "The query attacks at their full budget: success among the attacked images, median queries of the "
            "successes and seconds per image.", data=tables.query_table(queries, prof.blackbox.curve_queries))

# %% [markdown]
# ## A universal perturbation from queries alone
#
# U-SimBA grows one perturbation for a set of training images by trying one DCT direction at a
# time, keeping it when the summed probability of the images' predicted class falls (of the
# target class rises, for a targeted one): two queries per image and iteration, no gradient,
# no labels. The bounds are chapter 3's (zeta times the mean image norm); each perturbation is
# then added to held-out images, beside a random perturbation of the same norm
# ({numref}`tab-bb-usimba`, {numref}`fig-bb-usimba`). {numref}`tab-bb-koga` sets Koga &
# Takemoto's logged case beside our runs at its norm and zeta.

# %%
usim = run.usimba_results(prof, zoo, progress=False)

# %% tags=["hide-input"]
pages.table(tables.usimba_summary(usim), "tab-bb-usimba",
            "Non-targeted U-SimBA perturbations: fooling rate on the images each was built from, on held-out "
            "images, and of a random perturbation of the same norm. Targeted ones are in the appendix.",
            data=tables.usimba_table(usim, zoo))

# %% tags=["hide-input"]
koga = tables.koga_comparison(usim, zoo)
pages.table(tables.koga_summary(koga), "tab-bb-koga",
            "Koga & Takemoto's logged U-SimBA case beside ours at the same norm and zeta (no row of ours when this "
            "profile runs other bounds).", data=koga)

# %% tags=["remove-input"]
Markdown(report.koga_reading(koga))

# %% tags=["hide-input"]
pages.figure(bplots.usimba_gallery(usim, prof, zoo), "fig-bb-usimba",
             "Non-targeted U-SimBA perturbations, amplified (gain in each title; mid-grey means no change), each beside "
             "a held-out image with the perturbation added unamplified, as the model sees it.")

# %% [markdown]
# ## Against the white-box worst case
#
# Every $L_\infty$ black-box result (each transfer source, the Square Attack) against chapter
# 2's ensemble worst case (APGD-CE, APGD-margin, PGD with restarts; {cite:t}`croce2020reliable`)
# on the same images, at the smallest budget of chapter 2's grid that is at least the black-box
# one ({numref}`tab-bb-check`). *Images beaten* counts images a black-box attack fooled and the
# white-box ensemble did not: it must be zero. Where it is not, chapter 2's masking diagnostics of
# the model are in the appendix.

# %%
check = run.whitebox_check(prof, zoo, transfer, queries, progress=False)

# %% tags=["hide-input"]
pages.table(tables.check_summary(check), "tab-bb-check",
            "The black-box results against chapter 2's white-box worst case, per task: the lowest accuracy any "
            "black-box attack left beside the white-box ensemble's on the same images, and the images a black-box "
            "attack fooled that the ensemble did not.", data=check.table)

# %% tags=["remove-input"]
Markdown(report.check_reading(check))

# %% [markdown]
# ## What each attack needs and costs
#
# {numref}`tab-bb-costs` gives the queries to the target per attacked image (median over the
# successes for the query attacks; a transfer attack submits each image once; U-SimBA's queries
# build one perturbation, which then attacks any image for free) and the wall time on this
# machine; *one-off seconds* is training the surrogates or building the universal perturbation.
# The score-based attackers need the target's output scores and no training data. The transfer
# attacker needs nothing from the target but the submission of its images, and it needs training
# data: images of the target's task, from the same distribution. The seed surrogate trained on
# its own draw from the target's training split (the target's very images when both use the
# whole split), the profile's other architectures on exactly the target's images, and the
# disjoint surrogate on images of that split that the target never saw, nor any image of their
# patients or lesions. None of the attackers works from labels alone (decision-based attacks are
# not run here).

# %% tags=["hide-input"]
costs = tables.cost_table(transfer, queries, usim, check)
pages.table(tables.cost_summary(costs), "tab-bb-costs",
            "What each attacker needs and what it cost: queries to the target and seconds per image (medians over "
            "tasks and bounds), one-off seconds in all. Every row is in the appendix.", data=costs)

# %% tags=["remove-input"]
Markdown(report.cost_reading(costs))

# %% [markdown]
# ## Where we differ from the studies, and why
#
# - **Resolution and models.** Finlayson et al. attacked ResNet-50 / Inception models at
#   {glue:text}`bb-study-finlayson-size` px, Koga & Takemoto Inception-V3 at
#   {glue:text}`bb-study-koga-size` px ({numref}`tab-bb-studies`). At fewer pixels
#   the same per-pixel budget moves a model's output less (the linearity argument of
#   {cite:t}`goodfellow2015explaining`), and small models transfer differently from large ones.
# - **Surrogates.** Their separately trained model was, as far as their text says, trained on
#   the same data; our disjoint-data surrogate is the stricter attacker, and the seed surrogate
#   is theirs. Where the profile trains the surrogates with fewer epochs or images than the
#   target (the note at the top, the settings in the appendix), a better-trained surrogate
#   transfers at least as well.
# - **Budgets.** Where this profile runs fewer queries or iterations than the studies (the note
#   at the top), our success rates are lower bounds on what a patient attacker achieves.

# %% [markdown]
# (bb-appendix)=
# ## Appendix: every surrogate, source, query run and perturbation
#
# Interactive tables (search, sort, pages), each downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.settings_table(prof), "tab-bb-settings-full", "Every setting of the chapter.")
pages.appendix_table(tables.surrogate_table(sur), "tab-bb-surrogates-full",
                     "The surrogates: task, target, kind, whether and how it was trained, validation AUC.")
pages.appendix_table(tables.transfer_summary(transfer), "tab-bb-transfer-summary",
                     "Per task and target: clean, white-box and best transfer accuracy and AUC, and the source of the "
                     "best transfer.")
pages.appendix_table(tables.transfer_long(transfer), "tab-bb-transfer-full",
                     "Every transfer cell: source, attack and target, accuracy and AUC [95 % interval], flip rate "
                     "(of the images the target classified correctly, the share the attack makes it get wrong).",
                     data=transfer.rows)
pages.appendix_table(tables.finlayson_table(fin), "tab-bb-finlayson-full",
                     "Finlayson et al.'s black box, every row with both sides' setting (eps in their [-1, 1] range "
                     "and in /255).", data=fin)
pages.appendix_table(tables.query_table(queries, prof.blackbox.curve_queries), "tab-bb-queries-full",
                     "Every query run: success within each budget, median queries, seconds and the perturbation's "
                     "median L2 norm.")
pages.appendix_table(tables.usimba_table(usim, zoo), "tab-bb-usimba-full",
                     "Every U-SimBA perturbation, targeted ones included: bound, iterations, queries, success on the "
                     "build and held-out images, random control, seconds.")
pages.appendix_table(tables.check_table(check), "tab-bb-check-full",
                     "The white-box check per target model: black-box results, the lowest black-box accuracy and "
                     "the white-box ensemble's, images beaten.", data=check.table)
pages.appendix_table(tables.diagnostics_table(check), "tab-bb-diagnostics",
                     "Chapter 2's masking diagnostics of the models a black-box attack beat.")
pages.appendix_table(costs, "tab-bb-costs-full", "Every attack's needs and costs.")

# %% tags=["remove-input"]
page.footer(prof.name)
