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
# # 2. White-box attacks
#
# How much does a small, carefully chosen change of the pixels change the diagnosis?
# This chapter attacks the classifiers of chapter 1 with the four gradient attacks the
# reference studies used, measures accuracy and ROC AUC as the budget grows, repeats
# the two studies' own settings beside their published figures, and shows how visible
# the perturbations are.
#
# Every number below is computed by the cells of this page. Re-run it with other
# settings with, for example,
# `python -m advmed.book run book/02_whitebox.py -p profile cpu -p eps_255 "[0, 1, 2]"`.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks; or a list such as ["pneumonia_cxr"]
models = None  # None: the profile's models; or a list such as ["resnet18:scratch"]
eps_255 = None  # None: the profile's eps grid, in /255 pixel levels, e.g. [0, 1, 2, 4, 8]
n_images = None  # test images attacked per task (None: the profile's)
steps = None  # iterations of I-FGSM, PGD and MI-FGSM (None: the profile's)
n_boot = None  # bootstrap resamples for the 95 % intervals (None: the profile's)
report_eps_255 = None  # eps of the perceptibility table and the gallery (None: the profile's)
explorer_pairs = None  # (task, model) pairs in the explorer (None: the profile's)

# %%
import time
import warnings

warnings.filterwarnings("ignore")  # library warnings would land on stderr in the book

import pandas as pd
from IPython import get_ipython
from IPython.display import Markdown, display

from advmed import experiment, profiles, references
from advmed import robustness as rob
from advmed import robustness_plots as rplots
from advmed import robustness_studies as studies
from advmed import widgets
from advmed.cache import tensor_digest
from advmed.data import get_task

# the figures are matplotlib Figures built without pyplot: display() renders them as PNG
get_ipython().run_line_magic("matplotlib", "inline")
t_start = time.time()
prof = profiles.get_profile(profile, tasks=tasks, models=models)
prof["attacks"] = rob.attack_settings(prof, eps_255=eps_255, n_images=n_images, steps=steps,
                                      report_eps_255=report_eps_255)
if n_boot is not None:
    prof["eval"]["n_boot"] = n_boot
att = prof["attacks"]
seed = int(prof["seeds"][0])
display(Markdown(f"**Profile `{prof['name']}`**: {prof['description']}."))
pd.DataFrame({"value": [", ".join(f"{t} ({v['size']} px)" for t, v in prof["tasks"].items()),
                        ", ".join(f"{m['arch']} ({m['init']})" for m in prof["models"]),
                        "all" if att["n_images"] is None else att["n_images"],
                        ", ".join(f"{e:g}" for e in att["eps_255"]), att["steps"], att["restarts"],
                        prof["eval"]["n_boot"], seed]},
             index=["tasks", "models", "test images per task", "eps grid (/255)",
                    "iterations", "PGD restarts", "bootstrap resamples", "seed"])

# %% [markdown]
# ## Threat model
#
# The attacker knows the model completely (architecture and weights: *white box*),
# sees one image at a time and may change every pixel by at most $\epsilon$ in the
# $L_\infty$ norm, keeping the image valid: $x_{adv} \in [0, 1]^d$ and
# $\lVert x_{adv} - x \rVert_\infty \le \epsilon$. Its goal is a wrong diagnosis
# (untargeted), or a chosen one (targeted). Every $\epsilon$ in this book is in
# **[0, 1] pixel units**, written as multiples of 1/255 (one grey level of an 8-bit
# image); each study's own convention is converted beside it.
#
# ## Attacks
#
# All four ascend the cross-entropy loss $L$ of the model's logits along the sign of
# its input gradient (`advmed.attacks`; the model is attacked in eval mode, pixels are
# clipped to [0, 1] after every step):
#
# - **FGSM** (Goodfellow, Shlens & Szegedy, ICLR 2015): one step,
#   $x_{adv} = x + \epsilon\,\mathrm{sign}(\nabla_x L)$.
# - **I-FGSM** (Kurakin, Goodfellow & Bengio, ICLR 2017 workshop): $T$ smaller steps
#   of size $\alpha$, each projected back onto the $\epsilon$-ball.
# - **PGD** (Madry et al., ICLR 2018): I-FGSM from a random start inside the ball.
# - **MI-FGSM** (Dong et al., CVPR 2018): I-FGSM on an accumulated, normalised
#   gradient (momentum $\mu = 1$).
#
# Unless a study's setting says otherwise, I-FGSM and PGD step by
# $\alpha = 2.5\,\epsilon / T$ (Madry et al.) and MI-FGSM by $\epsilon / T$ (Dong et al.).
# The studies stated their budgets in other units; converted with
# `advmed.references.eps_to_pixels`:

# %%
studies.eps_conventions()

# %% [markdown]
# ## The models under attack
#
# The profile's models, loaded from the checkpoint cache written by chapter 1
# (trained now if the cache lacks them). `init used` says what the model started from.

# %%
zoo = experiment.trained_models(prof, progress=False)
rob.model_table(zoo)

# %% [markdown]
# ## Accuracy and AUC against the budget
#
# Every attack runs on the same held-out test images of each task (a stratified subset
# drawn with the profile's seed; `n` in the tables). Shaded bands and bracketed
# intervals are percentile-bootstrap 95 % intervals over those images. Dotted lines
# mark the two studies' budgets in pixels; dashed, AUC = 0.5 (chance). Results are
# memoised per model, so re-executing the page reloads them.

# %%
results = rob.whitebox_results(prof, zoo, progress=False)
for task_name in prof["tasks"]:
    fig = rplots.robustness_curves(results, task_name, title=get_task(task_name).title)
    display(fig)
    grids = pd.concat({"accuracy": rob.accuracy_grid(results[results["task"] == task_name]),
                       "AUC": rob.accuracy_grid(results[results["task"] == task_name], metric="auc")},
                      axis=1)
    display(grids)

# %% [markdown]
# The same results with their intervals and the *flip rate* (of the images the model
# classified correctly, the share the attack makes it get wrong):

# %%
pd.set_option("display.max_rows", 400)
rob.sweep_table(results)

# %%
worst = results[results["attack"] != "clean"].groupby(["task", "arch", "init"], sort=False)
summary = []
for (task_name, arch, init), g in worst:
    clean = results[(results["task"] == task_name) & (results["arch"] == arch)
                    & (results["init"] == init) & (results["attack"] == "clean")].iloc[0]
    low = g.loc[g["eps_255"] == g["eps_255"].min()]
    summary.append(f"{task_name} / {arch} ({init}): accuracy {clean['accuracy']:.3f} clean, "
                   f"{low['accuracy'].min():.3f} at {low['eps_255'].iloc[0]:g}/255 (worst attack), "
                   f"{g.loc[g['eps_255'] == g['eps_255'].max(), 'accuracy'].min():.3f} "
                   f"at {g['eps_255'].max():g}/255")
display(Markdown("At a glance (lowest accuracy over the four attacks):\n\n"
                 + "\n".join(f"- {s}" for s in summary)))

# %% [markdown]
# ## AdversarialMed's setting
#
# AdversarialMed attacked a DenseNet-121 fine-tuned from CheXNet on the Kermany
# pneumonia X-rays at 224 px, with $\epsilon = 0.02$ in ImageNet-normalised units
# (the pixel value after subtracting the mean and dividing by the standard deviation),
# which is the pixel budget in the table above. The README gives no step size for the
# attacks; we use the step and iteration count of their adversarial training
# (0.005 normalised, 10 iterations) for I-FGSM, PGD and MI-FGSM. Same images as above.

# %%
adv_med = studies.adversarialmed_results(prof, zoo, progress=False)
adv_med_table = studies.adversarialmed_comparison(adv_med)
adv_med_table if not adv_med_table.empty else Markdown(
    "*This profile has no `pneumonia_cxr` task, so there is no AdversarialMed comparison.*")

# %%
def adversarialmed_reading(table, prof):
    """What the setting columns say about the differences (computed, not typed)."""
    if table.empty:
        return Markdown("")
    size = prof["tasks"]["pneumonia_cxr"]["size"]
    ratio = (224 / size) ** 2
    fgsm = table[table["attack"] == "FGSM"]
    iters = table[table["attack"].isin(["I-FGSM", "PGD", "MI-FGSM"])]
    text = (
        f"Our FGSM accuracy at the study's budget ranges over "
        f"{fgsm['accuracy ours'].min():.3f}–{fgsm['accuracy ours'].max():.3f} across models "
        f"(study {fgsm['accuracy study'].iloc[0]:.4f}), the iterative attacks over "
        f"{iters['accuracy ours'].min():.3f}–{iters['accuracy ours'].max():.3f} "
        f"(study {iters['accuracy study'].max():g} for all three). "
        f"Reasons visible in the setting columns: (i) **resolution**: the study's images "
        f"have {ratio:.1f}× as many pixels as ours ({size} px); under the linear view of "
        f"Goodfellow et al. (2015) an $L_\\infty$ perturbation moves a logit by up to "
        f"$\\epsilon\\,\\lVert w\\rVert_1$, which grows with the number of input pixels, so the "
        f"same $\\epsilon$ buys the attacker more at 224 px; (ii) **model and initialisation**: a "
        f"DenseNet-121 fine-tuned from CheXNet versus our smaller networks trained from scratch "
        f"or from ImageNet; (iii) **the study's AUC under FGSM**, {fgsm['auc study'].iloc[0]:.4f}, "
        f"{'far below' if fgsm['auc study'].iloc[0] < 0.25 else 'below'} 0.5, means the attack "
        f"*reversed* the ranking of almost every pair of images, the signature of an attack that "
        f"drives every image towards the wrong class with high confidence. A nearly perfect "
        f"inversion is easier to reach when the model is saturated (its probabilities at 0 or 1).")
    if iters["accuracy ours"].max() < fgsm["accuracy ours"].min():
        text += (" As in the study, every iterative attack does better than FGSM on every model: "
                 "that ordering, not the exact figures, is what carries over to our setting.")
    return Markdown(text)


adversarialmed_reading(adv_med_table, prof)

# %% [markdown]
# ## Finlayson et al.'s setting
#
# Finlayson et al. fine-tuned ImageNet ResNet-50 / Inception models at 224 px on
# fundoscopy, chest X-ray and dermoscopy with inputs in [-1, 1], and ran PGD
# *targeted to the other class* with $\epsilon = 0.02$ and step 0.01 in that range,
# 20 iterations: half those numbers in [0, 1] pixels. Their chest X-ray task was
# pneumothorax, ours is pneumonia; their fundus task referable diabetic retinopathy on
# full-resolution photographs, ours the same label on RetinaMNIST. `to target` is the
# share of images classified as the other class after the attack.

# %%
fin = studies.finlayson_results(prof, zoo, progress=False)
fin_table = studies.finlayson_comparison(fin)
fin_table

# %%
def finlayson_reading(table):
    """Clean -> attacked per row, then the setting differences behind any gap (computed)."""
    if table.empty:
        return Markdown("")
    ours = lambda col: table[col].str.split(" → ").str[-1]
    t = table.assign(model=ours("model (study → ours)"), init_used=ours("init (study → ours)"),
                     px=ours("px (study → ours)").astype(int))
    lines = [f"- {r.task} / {r.model} ({r.init_used}, {r.px} px): accuracy "
             f"{r['clean accuracy']:.3f} → {r['accuracy ours']:.3f}, AUC {r['clean auc']:.3f} → "
             f"{r['auc ours']:.3f}, {r['to target']:.3f} pushed to the other class"
             for _, r in t.iterrows()]
    matched = t[t["accuracy study"].notna()]
    far = matched[matched["accuracy ours − study"].abs() > 0.05]
    text = "Targeted PGD at the study's budget, clean → attacked:\n\n" + "\n".join(lines) + "\n\n"
    if matched.empty:
        return Markdown(text + "The study ran none of these tasks: the rows show how our models "
                        "fare under its attack, without a study figure to compare with.")
    if far.empty:
        return Markdown(text + "Every row with a study figure is within 0.05 of the study's "
                        "accuracy: at this budget targeted PGD flips practically every decision, "
                        "as the study reports.")
    reasons = [f"the images are smaller ({', '.join(sorted({f'{p} px' for p in far['px']}))} against "
               f"224 px: fewer pixels for the same per-pixel budget, see the AdversarialMed discussion)"]
    if (far["task"] == "referable_dr").any():
        reasons.append("our fundus task uses RetinaMNIST thumbnails, not the study's photographs")
    if (far["init_used"] == "scratch").any():
        n_scratch = int((far["init_used"] == "scratch").sum())
        reasons.append(f"{n_scratch} of these models were trained from scratch on a few thousand "
                       f"images, not fine-tuned from ImageNet as in the study")
    text += (f"{len(far)} of {len(matched)} rows with a study figure stay more than 0.05 above the "
             f"study's accuracy. The setting columns differ there: " + "; ".join(reasons) + ".")
    return Markdown(text)


finlayson_reading(fin_table)

# %% [markdown]
# ## How visible are the perturbations?
#
# Per attack at one budget: the perturbation's $L_2$ norm over all pixels and
# channels ([0, 1] units; it grows with the image size), its $L_\infty$ norm in grey
# levels, the PSNR of the adversarial image against the clean one (dB; higher is less
# visible) and SSIM (Wang et al.
# 2004; 1 = identical), as median [min, max] over the test images.

# %%
rob.perceptibility_table(results, att.get("report_eps_255"))

# %% [markdown]
# ## Adversarial examples
#
# One model per task (the profile's first), PGD at the reporting budget, on test images
# the model classifies correctly. The perturbation is amplified so that $\pm\epsilon$
# spans black to white (the gain is in the panel title); mid-grey means no change.

# %%
for task_name in prof["tasks"]:
    first = next(k for k in zoo if k[0] == task_name)
    images = rob.test_images(task_name, prof)
    fig = rplots.gallery(zoo[first], images.images, images.labels, images.classes, attack="pgd",
                         eps_255=float(att.get("report_eps_255", 2)), steps=int(att["steps"]),
                         n_images=int(att.get("gallery_images", 3)), seed=seed,
                         title=f"{get_task(task_name).title}: {first[1]} ({zoo[first].init_used}), "
                               f"PGD eps {float(att.get('report_eps_255', 2)):g}/255")
    display(fig)

# %% [markdown]
# ## Explorer
#
# Choose the image, attack and budget. The frames were computed when this page was
# executed, so the explorer works in the static book; in a live notebook,
# `advmed.widgets.explorer(...)` (without `precompute`) attacks on demand.

# %%
ex = dict(att.get("explorer", {}))
if explorer_pairs is not None:
    ex["pairs"] = int(explorer_pairs)
ex_models, ex_images = rplots.explorer_inputs(prof, zoo, pairs=ex.get("pairs", 1),
                                              n_images=ex.get("n_images", 3), seed=seed)
iterative = {a: {"steps": int(att["steps"])} for a in ("ifgsm", "pgd", "mifgsm")}
# frames are stored by the models' checkpoint keys and the images' digest: a warm build
# reloads them instead of attacking and drawing again
frames_key = {"checkpoints": sorted(tm.config.key() for tm in zoo.values()),
              "images": {t: tensor_digest(x, y) for t, (x, y, _) in ex_images.items()}}
widgets.static_explorer(ex_models, ex_images, attacks=ex.get("attacks", ["fgsm", "pgd"]),
                        eps_255=ex.get("eps_255", [0, 1, 2, 4]), attack_kwargs=iterative,
                        n_images=ex.get("n_images", 3), seed=seed, progress=False,
                        cache_key=frames_key)

# %%
display(Markdown(f"Chapter executed in {time.time() - t_start:.0f} s with profile `{prof['name']}`."))
