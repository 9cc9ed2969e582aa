"""The white-box chapter's prose: every sentence with a number is written here from results,
never typed into the chapter.

Each function returns Markdown text (a ``str``) computed from the tables of
:mod:`.tables` and the results of :mod:`.run`, so the chapter displays it with
``IPython.display.Markdown`` and the words change when the numbers do.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np
import pandas as pd

from ...attacks import attack_label
from .. import references
from ..kernel import adversarialmed_eps, finlayson_eps
from ..kernel.records import WhiteboxRecord, make_record
from ..profiles import Profile
from .tables import SHORT_CHECK_NAMES

#: The AUC of a classifier that ranks at random.
CHANCE_AUC = 0.5
#: An accuracy within this of the study's figure is read as agreeing with it (Finlayson et al.
#: report "about 0"; the rows give both numbers, so a reader can apply another reading).
STUDY_TOLERANCE = 0.05
#: The accuracy below which a model counts as "wrong on more than half of the images" (the
#: abstract's count, :attr:`WhiteboxHeadline.models_below_half`).
HALF = 0.5


def adversarialmed_reading(table: pd.DataFrame, profile: Profile) -> str:
    """What the setting columns of the AdversarialMed comparison say about the differences."""
    if table.empty:
        return ""
    st = references.ADVERSARIALMED_ATTACKS["setting"]
    size = profile.task_size(references.ADVERSARIALMED_ATTACKS["task"])
    ratio = (st["size"] / size) ** 2
    fgsm = table[table["attack"] == attack_label("fgsm")]
    iters = table[table["attack"].isin([attack_label(a) for a in ("ifgsm", "pgd", "mifgsm")])]
    study_fgsm_auc = float(fgsm["auc study"].iloc[0])
    if ratio > 1:
        resolution = (
            f"(i) **resolution**: the study's images have {ratio:.1f}× as many pixels as ours ({size} px against "
            f"{st['size']} px); under the linear view of {{cite:t}}`goodfellow2015explaining` an $L_\\infty$ "
            f"perturbation moves a logit by up to $\\epsilon\\,\\lVert w\\rVert_1$, which grows with the number of "
            f"input pixels, so the same $\\epsilon$ buys the attacker more at {st['size']} px")
    else:
        resolution = (f"(i) **resolution**: ours ({size} px) has at least the study's pixels ({st['size']} px), so "
                      "it does not explain a gap")
    text = (
        f"Our FGSM accuracy at the study's budget ranges over "
        f"{fgsm['accuracy ours'].min():.3f}–{fgsm['accuracy ours'].max():.3f} across models "
        f"(study {fgsm['accuracy study'].iloc[0]:.4f}), the iterative attacks over "
        f"{iters['accuracy ours'].min():.3f}–{iters['accuracy ours'].max():.3f} "
        f"(study {iters['accuracy study'].max():g} for all three). "
        f"Reasons visible in the setting columns: {resolution}; (ii) **model and initialisation**: a "
        f"{st['model']} initialised from {st['init']}, against the models and initialisations of ours that the "
        f"columns list; (iii) **the study's AUC under FGSM**, {study_fgsm_auc:.4f}, "
        f"{'far below' if study_fgsm_auc < CHANCE_AUC / 2 else 'below'} chance ({CHANCE_AUC:g}), means the "
        f"attack *reversed* the ranking of almost every pair of images, the signature of an attack that "
        f"drives every image towards the wrong class with high confidence. A nearly perfect "
        f"inversion is easier to reach when the model is saturated (its probabilities at the ends of their range).")
    if iters["accuracy ours"].max() < fgsm["accuracy ours"].min():
        text += (" As in the study, every iterative attack does better than FGSM on every model: "
                 "that ordering, not the exact figures, is what carries over to our setting.")
    return text


def finlayson_reading(results: pd.DataFrame, *, bullets: bool = True) -> str:
    """Clean -> attacked per model (``bullets``; the page shows them as a table instead), then
    the setting differences behind any gap with the study.

    ``results`` is :func:`~.run.finlayson_results` (numeric, one clean and one attacked row
    per model); the study's figures come from :data:`advmed.experiments.references.FINLAYSON_PGD`.
    """
    if results.empty:
        return ""
    study = {r["task"]: r for r in references.FINLAYSON_PGD["rows"]}
    lines, matched, far = [], 0, []
    for (task, arch, init), g in results.groupby(["task", "arch", "init"], sort=False):
        clean = g[g["attack"] == "clean"].iloc[0]
        adv = g[g["attack"] != "clean"].iloc[0]
        lines.append(f"- {task} / {arch} ({adv['init_used']}, {int(adv['size'])} px): accuracy "
                     f"{clean['accuracy']:.3f} → {adv['accuracy']:.3f}, AUC {clean['auc']:.3f} → "
                     f"{adv['auc']:.3f}, {adv['target_rate']:.3f} pushed to the other class")
        if task in study:
            matched += 1
            if abs(float(adv["accuracy"]) - study[task]["accuracy"]) > STUDY_TOLERANCE:
                far.append(adv)
    text = ("Targeted PGD at the study's budget, clean → attacked:\n\n" + "\n".join(lines) + "\n\n") if bullets else ""
    if not matched:
        return text + ("The study ran none of these tasks: the rows show how our models fare under "
                       "its attack, without a study figure to compare with.")
    if not far:
        return text + (f"Every row with a study figure is within {STUDY_TOLERANCE:g} of the study's accuracy: at "
                       "this budget targeted PGD flips practically every decision, as the study reports.")
    far_rows = pd.DataFrame(far)
    study_size = int(references.FINLAYSON_PGD["setting"]["size"])
    smaller = sorted({int(s) for s in far_rows["size"] if int(s) < study_size})
    reasons = []
    if smaller:
        reasons.append(f"the images are smaller ({', '.join(f'{s} px' for s in smaller)} against {study_size} px: "
                       "fewer pixels for the same per-pixel budget, see the AdversarialMed discussion)")
    if (far_rows["task"] == "referable_dr").any():
        reasons.append("our fundus task uses RetinaMNIST thumbnails, not the study's photographs")
    n_scratch = int((far_rows["init_used"] == "scratch").sum())
    if n_scratch:
        reasons.append(f"{n_scratch} of these models {'was' if n_scratch == 1 else 'were'} trained from scratch, not "
                       "fine-tuned from ImageNet as in the study")
    why = (" The setting columns differ there: " + "; ".join(reasons) + ".") if reasons else ""
    return text + (f"{len(far)} of {matched} rows with a study figure differ from the study's accuracy by more "
                   f"than {STUDY_TOLERANCE:g}.{why}")


def robust_reading(curves: pd.DataFrame, results: pd.DataFrame, diag: pd.DataFrame) -> str:
    """The worst case per model at the smallest and largest budget, how much lower it is than
    the best single attack, and which models the diagnostics flag (their numbers are not
    called robustness)."""
    if curves.empty:
        return ""
    lines = []
    flagged = set()
    if not diag.empty:
        bad = diag[~diag["passed"]]
        flagged = set(zip(bad["task"], bad["arch"], bad["init"]))
    for (task, arch, init), g in curves.groupby(["task", "arch", "init"], sort=False):
        g = g.sort_values("eps_255")
        adv = g[g["eps_255"] > 0]
        lo, hi = adv.iloc[0], adv.iloc[-1]
        single = results[(results["task"] == task) & (results["arch"] == arch) & (results["init"] == init)
                         & (results["attack"] != "clean") & (results["eps_255"] == lo["eps_255"])]
        gap = float(single["accuracy"].min() - lo["accuracy"]) if not single.empty else float("nan")
        note = " (flagged by a diagnostic: not a robustness claim)" if (task, arch, init) in flagged else ""
        lines.append(f"- {task} / {arch} ({g['init_used'].iloc[0]}): {lo['accuracy']:.3f} at "
                     f"{lo['eps_255']:g}/255, {hi['accuracy']:.3f} at {hi['eps_255']:g}/255; the best single "
                     f"attack leaves {gap:+.3f} more at {lo['eps_255']:g}/255{note}")
    return "Worst case over the ensemble:\n\n" + "\n".join(lines)


class EnsembleCounts(NamedTuple):
    """How often the ensemble's worst case is at or below every single attack (glued)."""

    pairs: int  # model x nonzero budget pairs compared
    at_or_below: int  # of them, where the ensemble leaves no more accuracy than any single attack
    models: int


def ensemble_counts(check: pd.DataFrame) -> EnsembleCounts:
    """:class:`EnsembleCounts` of :func:`~.run.ensemble_check`."""
    models = check.groupby(["task", "arch", "init"]).ngroups if not check.empty else 0
    return EnsembleCounts(pairs=len(check), at_or_below=int(check["at_or_below"].sum()) if len(check) else 0,
                          models=models)


def ensemble_reading(check: pd.DataFrame) -> str:
    """Whether the ensemble is the worst case it is meant to be (:func:`~.run.ensemble_check`):
    at or below every single attack at every budget of every model, or where it is not."""
    if check.empty:
        return "*No ensemble result to check against the single attacks.*"
    c = ensemble_counts(check)
    attacks = int(check["attacks"].max())
    if c.at_or_below == c.pairs:
        return (f"**Checked.** At every budget of every model ({c.pairs} model–budget pairs, {c.models} models), "
                f"the ensemble's robust accuracy is at or below the accuracy each of the {attacks} single attacks "
                "leaves on the same images: it is the number to believe.")
    bad = check[~check["at_or_below"]]
    where = "; ".join(f"{r['task']} / {r['arch']} ({r['init_used']}) at {r['eps_255']:g}/255: ensemble "
                      f"{r['ensemble']:.3f}, {attack_label(r['lowest_attack'])} {r['lowest_single']:.3f}"
                      for _, r in bad.iterrows())
    return (f"**Checked.** The ensemble's robust accuracy is at or below every single attack in {c.at_or_below} of "
            f"{c.pairs} model–budget pairs. In the others a single attack breaks images that no member of the "
            f"ensemble breaks, so there the lower of the two is the better estimate of robust accuracy: {where}.")


class StudySettings(NamedTuple):
    """The two studies' white-box settings that the chapter's prose quotes, from
    :mod:`advmed.experiments.references` (glued, never typed): AdversarialMed's (``am_``, eps and
    step in ImageNet-normalised units) and Finlayson et al.'s (``fin_``, in their [-1, 1] range and
    in [0, 1] pixels), each with its resolution and iterations."""

    am_size: int
    am_eps: float
    am_step: float
    am_steps: int
    fin_size: int
    fin_eps: float
    fin_step: float
    fin_steps: int
    fin_eps_pixels: float
    fin_step_pixels: float


def study_settings() -> StudySettings:
    """:class:`StudySettings` from the references (the kernel's unit conversions)."""
    a, f = adversarialmed_eps(), finlayson_eps()
    return StudySettings(
        am_size=int(references.ADVERSARIALMED_ATTACKS["setting"]["size"]), am_eps=float(a["eps_study"]),
        am_step=float(a["step_study"]), am_steps=int(a["steps"]),
        fin_size=int(references.FINLAYSON_PGD["setting"]["size"]), fin_eps=float(f["eps_study"]),
        fin_step=float(f["step_study"]), fin_steps=int(f["steps"]), fin_eps_pixels=round(float(f["eps"]), 6),
        fin_step_pixels=round(float(f["step"]), 6))


def diagnostics_reading(diag: pd.DataFrame) -> str:
    """How many models pass every masking check, and for the others which checks flag them
    (the numbers behind each check are in the appendix)."""
    if diag.empty:
        return ""
    per_model = diag.groupby(["task", "arch", "init"], sort=False)["passed"].all()
    text = f"{int(per_model.sum())} of {len(per_model)} models pass every check."
    bad = diag[~diag["passed"]]
    if not bad.empty:
        flagged = [f"{task} / {arch} ({used}): {', '.join(SHORT_CHECK_NAMES.get(c, c) for c in g['check'])}"
                   for (task, arch, used), g in bad.groupby(["task", "arch", "init_used"], sort=False)]
        text += (" Their robust accuracy is reported, not believed: " + "; ".join(flagged) + ". Each check's "
                 "numbers are in the appendix.")
    return text


class WhiteboxHeadline(NamedTuple):
    """The numbers of chapter 2 that the book's abstract quotes (glued, never typed)."""

    eps_255: float  # the reporting budget, /255 levels
    models: int
    clean_accuracy: float  # median over models
    pgd_accuracy: float  # median over models, PGD at eps_255
    fgsm_accuracy: float  # median over models, FGSM at eps_255
    models_below_half: int  # models whose PGD accuracy at eps_255 is below HALF


def headline(results: pd.DataFrame, eps_255: float) -> WhiteboxHeadline:
    """Median clean, PGD and FGSM accuracy over the models at the grid's budget nearest
    ``eps_255``, and how many models PGD drives below 50 % accuracy."""
    adv = results[results["attack"] != "clean"]
    grid = sorted(adv["eps_255"].unique())
    eps = float(min(grid, key=lambda e: abs(e - eps_255)))
    at = adv[np.isclose(adv["eps_255"], eps)]
    clean = results[results["attack"] == "clean"]
    pgd, fgsm = at[at["attack"] == "pgd"], at[at["attack"] == "fgsm"]
    return WhiteboxHeadline(eps_255=eps, models=len(clean), clean_accuracy=float(clean["accuracy"].median()),
                            pgd_accuracy=float(pgd["accuracy"].median()), fgsm_accuracy=float(fgsm["accuracy"].median()),
                            models_below_half=int((pgd["accuracy"] < HALF).sum()))


def summary_sentence(results: pd.DataFrame, eps_255: float) -> str:
    """One sentence for the page instead of a bullet per model: the median accuracy over the
    models, clean and under each attack at the reporting budget, and the worst model."""
    h = headline(results, eps_255)
    adv = results[(results["attack"] == "pgd") & np.isclose(results["eps_255"], h.eps_255)]
    worst = adv.loc[adv["accuracy"].idxmin()]
    return (f"At {h.eps_255:g}/255 the median accuracy over the {h.models} models falls from {h.clean_accuracy:.2f} "
            f"(clean) to {h.fgsm_accuracy:.2f} under FGSM and {h.pgd_accuracy:.2f} under PGD; PGD leaves "
            f"{h.models_below_half} of {h.models} models below {HALF:g}, the lowest being {worst['task']} / "
            f"{worst['arch']} ({worst['init_used']}) at {worst['accuracy']:.2f}.")


# --------------------------------------------------------------------------- the record
def headline_record(profile: Profile, zoo: Mapping[tuple, Any], adversarialmed: pd.DataFrame,
                    finlayson: pd.DataFrame) -> WhiteboxRecord:
    """Chapter 2's record for chapter 8 (:mod:`advmed.experiments.kernel.records`): the studies'
    own settings (:func:`~advmed.experiments.kernel.adversarialmed_results`,
    :func:`~advmed.experiments.kernel.finlayson_results`), as the chapter computed them."""
    return make_record(WhiteboxRecord, profile, adversarialmed=adversarialmed, finlayson=finlayson,
                       sources=[tm.config.key() for tm in zoo.values()])
