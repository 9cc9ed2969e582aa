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
# # 5. Black-box attacks
#
# Chapters 2 to 4 gave the attacker the model's weights. A deployed diagnostic model rarely
# hands them out, so this chapter takes them away. Three attackers remain:
#
# - the **transfer** attacker trains a model of its own (a *surrogate*) and attacks that,
#   hoping the adversarial images fool the target too (Szegedy et al. 2014; Papernot et al.
#   2017). Finlayson et al. (2019) crafted their black-box attacks this way, on a separately
#   trained model, and report that *black-box attacks still succeed*;
# - the **score-based** attacker sends images to the target and reads its output
#   probabilities: the Square Attack (Andriushchenko et al., ECCV 2020) and SimBA-DCT (Guo et
#   al., ICML 2019) need no gradient and no training data, only queries;
# - the **universal score-based** attacker builds one perturbation for all images from those
#   scores: U-SimBA (Koga & Takemoto, Algorithms 2022), at chapter 3's bounds.
#
# For each we report what it needs, what it costs (queries, seconds) and what it achieves,
# and we hold every result against chapter 2's white-box worst case on the same images: an
# attacker with less access can never do better than the strongest attacker with full access,
# so a black-box attack that beats the white-box evaluation exposes that evaluation.
#
# Re-run this page with other settings, e.g.
# `python -m advmed.book run book/05_blackbox.py -p profile cpu -p eps_255 2`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["referable_dr"]
models = None  # None: the profile's models; or a list such as ["mobilenet_v1_075:imagenet"]
eps_255 = None  # L-inf budget of the transfer and Square attacks in /255 (None: the profile's)
n_images = None  # test images per task for the transfer attacks (None: the profile's)
steps = None  # iterations of the attacks on a surrogate (None: the profile's)
query_images = None  # images per task for the query attacks (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)

# %%
import time
import warnings

warnings.filterwarnings("ignore")  # library warnings would land on stderr in the book

import pandas as pd
from IPython import get_ipython
from IPython.display import Markdown, display

from advmed.data import get_task
from advmed.experiments import profiles
from advmed.experiments import zoo as models_zoo
from advmed.experiments.blackbox import plots as bplots
from advmed.experiments.blackbox import report, run, surrogates, tables

get_ipython().run_line_magic("matplotlib", "inline")
pd.set_option("display.max_rows", 200)
pd.set_option("display.max_colwidth", 120)
t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, models=models, eval={"n_boot": n_boot},
                            blackbox={"eps_255": eps_255, "n_images": n_images, "steps": steps,
                                      "query_images": query_images})
display(Markdown(f"**Profile `{prof.name}`**: {prof.description}."))
tables.settings_table(prof)

# %%
Markdown(report.budget_note(prof))

# %% [markdown]
# ## The models under attack and the attacker's surrogates
#
# The targets are the profile's models from chapter 1 (the checkpoint cache). For each task's
# target (`target model` in the settings), two surrogates are trained through the same
# training code: the **same architecture with another seed** (another initialisation, batch
# order, augmentation and random training subset), and the **same architecture on data the
# target never saw**: the target's training images, and every other image of their patients
# or lesions, are left out before the surrogate's own subset is drawn. The profile's other
# architectures are surrogates too. Where the target trained on the whole training split, no
# unseen data exists and the table says so.

# %%
zoo = models_zoo.trained_models(prof, progress=False)
sur = surrogates.trained_surrogates(prof, zoo)
display(Markdown(report.surrogates_reading(sur)))
tables.surrogate_table(sur)

# %% [markdown]
# ## Transfer matrices
#
# Every source (rows: a surrogate and the attack run on it) crafts adversarial images of the
# same test images once, at the chapter's $L_\infty$ budget, running all its iterations; each
# target (columns) then classifies them. The diagonal is the white-box attack (source =
# target); the last row attacks the ensemble of every source but the target, logits averaged
# (Liu et al., ICLR 2017). Cells are the target's accuracy (then AUC) on the adversarial
# images: low means the attack transferred.

# %%
transfer = run.transfer_results(prof, zoo, sur)
for task_name in transfer.images:
    display(Markdown(f"**{get_task(task_name).title}**"))
    acc = tables.transfer_matrix(transfer, task_name)
    display(bplots.transfer_heatmap(acc, title=f"{task_name}: accuracy of the target"))
    display(pd.concat({"accuracy": acc, "AUC": tables.transfer_matrix(transfer, task_name, metric="auc")}, axis=1))

# %%
summary = tables.transfer_summary(transfer)
display(summary)
Markdown(report.transfer_reading(summary) + "\n\n" + report.disjoint_reading(transfer.rows))

# %% [markdown]
# ## Finlayson et al.'s black box
#
# Their black-box setting: PGD *targeted to the other class* at their budget, step and
# iterations (stated in their [-1, 1] pixel range; the table gives both units), crafted on a
# separately trained model and fed to the target. Ours crafts on the
# target's two trained surrogates; the white-box column is the same attack on the target
# itself (chapter 2). `to the other class` is the share of images the target then assigns to
# the other class.

# %%
fin = run.finlayson_blackbox(prof, zoo, sur)
tables.finlayson_table(fin)

# %%
Markdown(report.finlayson_reading(fin))

# %% [markdown]
# ## Score-based query attacks
#
# The attacker sends images to the target and reads its probabilities (through
# `advmed.attacks.blackbox.ScoreOracle`, which counts every forward pass of every image).
# The Square Attack searches the surface of the $L_\infty$ ball of the chapter's budget;
# SimBA-DCT adds or subtracts one low-frequency DCT direction at a time (a step of
# `SimBA step` in $L_2$; it has no bound, so its perturbation's size is reported). Each image
# stops at its first success, so the curve below is the success rate among the images the
# target classified correctly, within each query budget.

# %%
queries = run.query_results(prof, zoo)
display(bplots.query_curves(queries))
tables.query_table(queries, prof.blackbox.curve_queries)

# %%
Markdown(report.query_reading(queries))

# %% [markdown]
# ## A universal perturbation from queries alone
#
# U-SimBA grows one perturbation for a set of training images by trying one DCT direction at a
# time, keeping it when the summed probability of the images' predicted class falls (of the
# target class rises, for a targeted one): two queries per image and iteration, no gradient,
# no labels. The bounds are chapter 3's (zeta times the mean image norm); each perturbation is
# then added to held-out images, beside a random perturbation of the same norm.

# %%
usim = run.usimba_results(prof, zoo)
tables.usimba_table(usim, zoo)

# %%
koga = tables.koga_comparison(usim, zoo)
display(koga)
Markdown(report.koga_reading(koga))

# %%
bplots.usimba_gallery(usim, prof, zoo)

# %% [markdown]
# ## Against the white-box worst case
#
# Every $L_\infty$ black-box result (each transfer source, the Square Attack) against chapter
# 2's ensemble worst case (APGD-CE, APGD-margin, PGD with restarts) on the same images, at
# the smallest budget of chapter 2's grid that is at least the black-box one, one row per
# target model. `images beaten` counts images a black-box attack fooled and the white-box
# ensemble did not: it must be 0. Where it is not, chapter 2's masking diagnostics of the model
# are listed below the table.

# %%
check = run.whitebox_check(prof, zoo, transfer, queries)
display(tables.check_table(check))
display(Markdown(report.check_reading(check)))
check.diagnostics if check.flagged else Markdown("*No model is flagged: no diagnostics to show.*")

# %% [markdown]
# ## What each attack needs and costs
#
# Queries are forward passes of the target per attacked image (median over the successes for
# the query attacks; a transfer attack submits each image once; U-SimBA's queries build one
# perturbation, which then attacks any image for free). Seconds are wall time on this
# machine; `one-off seconds` is training the surrogates or building the universal perturbation.
# None of these attackers needs the target's training data; all but the transfer attacker need
# its output scores, and none works from labels alone (decision-based attacks are not run here).

# %%
costs = tables.cost_table(transfer, queries, usim, check)
display(costs)
Markdown(report.cost_reading(costs))

# %% [markdown]
# ## Where we differ from the studies, and why
#
# - **Resolution and models.** Finlayson et al. attacked ResNet-50 / Inception models at
#   224 px, Koga & Takemoto Inception-V3 at 299 px; the rows above carry our models and sizes.
#   At fewer pixels the same per-pixel budget moves a model's output less (Goodfellow et al.
#   2015's linearity argument), and small models transfer differently from large ones.
# - **Surrogates.** Their separately trained model was, as far as their text says, trained on
#   the same data; our disjoint-data surrogate is the stricter attacker, and the seed surrogate
#   is theirs. In the small profiles the surrogates are trained with fewer epochs and images
#   than the target (the settings table); a better-trained surrogate transfers at least as well.
# - **Budgets.** Where this profile runs fewer queries or iterations than the studies (the note
#   at the top), our success rates are lower bounds on what a patient attacker achieves.

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof.name}`."))
