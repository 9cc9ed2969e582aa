"""The white-box chapter's tables: sweeps, accuracy grids, perceptibility, the models, and
our attacks in the studies' settings beside the studies' published figures.

Every comparison row carries the setting of both sides (data, resolution, model,
initialisation, eps in both units, steps), so a difference can be read against it.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ...attacks import attack_label
from ...attacks.quantize import deliverable
from ...data import get_task
from ...metrics import fmt_interval
from ...plots import model_label, task_label
from .. import references
from ..kernel import ATTACKS, adversarialmed_eps, finlayson_eps, model_columns
from ..kernel.evaluation import PERTURBATION_STATS
from ..profiles import Profile


def settings_table(profile: Profile) -> pd.DataFrame:
    """The chapter's settings: tasks, models, images, budgets, iterations, bootstrap, seed."""
    s = profile.whitebox
    values = {"tasks": ", ".join(f"{t} ({size} px)" for t, size in profile.tasks.items()),
              "models": ", ".join(f"{m.arch} ({m.init})" for m in profile.models),
              "test images per task": "all" if s.n_images is None else s.n_images,
              "eps grid (/255)": ", ".join(f"{e:g}" for e in s.eps_255), "iterations": s.steps,
              "PGD restarts": s.restarts, "bootstrap resamples": profile.eval.n_boot, "seed": profile.seed}
    return pd.DataFrame({"value": list(values.values())}, index=pd.Index(list(values), name="setting"))


def sweep_table(results: pd.DataFrame, *, metrics: Iterable[str] = ("accuracy", "auc"),
                digits: int = 3) -> pd.DataFrame:
    """A readable sweep: one row per (model, attack, eps), ``"value [lo, hi]"`` strings.

    The eps column is written both ways: ``eps_255`` (8-bit levels) and ``eps`` ([0, 1]).
    """
    id_cols = [c for c in ("task", "arch", "init", "init_used", "size") if c in results]
    out = results[id_cols + ["attack", "eps_255", "eps", "steps"]].copy()
    out["attack"] = out["attack"].map(attack_label)
    out["eps"] = out["eps"].round(5)
    for m in metrics:
        out[m] = [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                  zip(results[m], results[f"{m}_lo"], results[f"{m}_hi"])]
    out["flip_rate"] = results["flip_rate"].round(digits)
    return out.reset_index(drop=True)


def accuracy_grid(results: pd.DataFrame, *, metric: str = "accuracy") -> pd.DataFrame:
    """Wide view: rows (task, arch, init, attack), columns eps in /255, cells ``metric``.

    The clean value is repeated as the eps 0 column of every attack.
    """
    keys = [c for c in ("task", "arch", "init") if c in results]
    clean = results[results["attack"] == "clean"]
    adv = results[results["attack"] != "clean"]
    parts = [adv]
    for a in adv["attack"].unique():
        parts.append(clean.assign(attack=a))
    full = pd.concat(parts, ignore_index=True)
    full["attack"] = pd.Categorical(full["attack"], [a for a in ATTACKS if a in set(full["attack"])]
                                    + sorted(set(full["attack"]) - set(ATTACKS)), ordered=True)
    grid = full.pivot_table(index=keys + ["attack"], columns="eps_255", values=metric,
                            observed=True).round(3)
    grid.columns = [f"{c:g}/255" for c in grid.columns]
    return grid


def perceptibility_table(results: pd.DataFrame, eps_255: float | None = None, *,
                         digits: int = 3) -> pd.DataFrame:
    """How visible each attack's perturbation is at one eps: median [min, max] over images.

    Args:
        results: :func:`whitebox_results` (or one sweep).
        eps_255: the eps to report (default: the grid's value closest to 2/255).

    Columns: L2 ([0, 1] pixels, whole image), Linf (in /255 levels), PSNR (dB) and SSIM
    (Wang et al. 2004), each ``"median [min, max]"`` over the test images, and the image
    size, since L2 and PSNR depend on it.
    """
    adv = results[results["attack"] != "clean"]
    grid = np.array(sorted(adv["eps_255"].unique()))
    if len(grid) == 0:
        raise ValueError("no adversarial rows in results")
    chosen = float(grid[np.argmin(np.abs(grid - (2.0 if eps_255 is None else eps_255)))])
    sel = adv[np.isclose(adv["eps_255"], chosen)]
    id_cols = [c for c in ("task", "arch", "init", "size") if c in sel]
    out = sel[id_cols].copy()
    out["attack"] = sel["attack"].map(attack_label)
    out["eps_255"] = chosen
    scale = {"l2": 1.0, "linf": 255.0, "psnr_db": 1.0, "ssim": 1.0}
    names = {"l2": "L2 (pixels)", "linf": "Linf (/255)", "psnr_db": "PSNR (dB)", "ssim": "SSIM"}
    for s in PERTURBATION_STATS:
        k = scale[s]
        d = 2 if s in ("linf", "psnr_db") else digits
        out[names[s]] = [f"{m * k:.{d}f} [{lo * k:.{d}f}, {hi * k:.{d}f}]" for m, lo, hi in
                         zip(sel[f"{s}_median"], sel[f"{s}_min"], sel[f"{s}_max"])]
    return out.reset_index(drop=True)


def model_table(zoo: Mapping[tuple, Any]) -> pd.DataFrame:
    """The models under attack: task, arch, init requested and used, size (px), validation
    AUC and checkpoint key (``TrainConfig.key()``)."""
    rows = []
    for key, tm in zoo.items():
        row = model_columns(key, tm)
        row["val_auc"] = round(float(getattr(tm, "val_auc", float("nan"))), 3)
        row["checkpoint"] = tm.config.key()
        rows.append(row)
    return pd.DataFrame(rows)


def _study_vs_ours(ours: Mapping[str, Any], study: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accuracy and AUC: the study's figure, ours with its 95 % interval, and ours - study
    (NaN where the study has no figure)."""
    out: dict[str, Any] = {}
    for m in ("accuracy", "auc"):
        out[f"{m} study"] = study[m] if study else np.nan
        out[f"{m} ours"] = round(float(ours[m]), 3)
        out[f"{m} 95% CI"] = f"[{ours[f'{m}_lo']:.3f}, {ours[f'{m}_hi']:.3f}]"
        out[f"{m} ours − study"] = round(float(ours[m]) - study[m], 3) if study else np.nan
    return out


def adversarialmed_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """The study's accuracy and AUC beside ours, one row per (our model, attack).

    Columns: the setting (data, px study -> ours, model, init, eps in the study's units,
    eps in pixels and /255, steps and step), then ``accuracy`` / ``auc`` for study, ours
    (with bootstrap 95 % interval) and ``ours - study``.
    """
    if results.empty:
        return pd.DataFrame()
    s, st = adversarialmed_eps(), references.ADVERSARIALMED_ATTACKS["setting"]
    study = {r["attack"]: r for r in references.ADVERSARIALMED_ATTACKS["rows"]}
    rows = []
    for _, r in results.iterrows():
        ref = study.get(r["attack"])
        if ref is None:
            continue
        clean = r["attack"] == "clean"
        row = {
            "attack": attack_label(r["attack"]),
            "data": st["data"],
            "px (study → ours)": f"{st['size']} → {int(r['size'])}",
            "model (study → ours)": f"{st['model']} → {r['arch']}",
            "init (study → ours)": f"{st['init']} → {r['init_used']}",
            "eps (study, normalised)": 0.0 if clean else s["eps_study"],
            "eps (pixels)": round(float(r["eps"]), 5),
            "eps (/255)": round(float(r["eps_255"]), 2),
            "steps × step (pixels)": "" if clean else f"{int(r['steps'])} × {r['step_size']:.5f}",
            "n": int(r["n"]),
        }
        rows.append({**row, **_study_vs_ours(r, ref)})
    return pd.DataFrame(rows)


def finlayson_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Targeted PGD, study vs ours, one row per (task, our model): clean and attacked
    accuracy / AUC, the share of images pushed to the other class, and the study's
    figure and the difference where the study ran that task (blank elsewhere)."""
    if results.empty:
        return pd.DataFrame()
    s, st = finlayson_eps(), references.FINLAYSON_PGD["setting"]
    study = {r["task"]: r for r in references.FINLAYSON_PGD["rows"]}
    rows = []
    for (task, arch, init), g in results.groupby(["task", "arch", "init"], sort=False):
        clean = g[g["attack"] == "clean"].iloc[0]
        adv = g[g["attack"] != "clean"].iloc[0]
        ref = study.get(task)
        row = {
            "task": task,
            "study task": ref["study_task"] if ref else "(not in the study)",
            "data (ours)": get_task(task).title.split(", ")[-1],
            "px (study → ours)": f"{st['size']} → {int(adv['size'])}",
            "model (study → ours)": f"{st['model']} → {arch}",
            "init (study → ours)": f"{st['init']} → {adv['init_used']}",
            "eps (study, [-1, 1])": s["eps_study"],
            "eps (pixels)": round(float(adv["eps"]), 4),
            "eps (/255)": round(float(adv["eps_255"]), 2),
            "steps × step (pixels)": f"{int(adv['steps'])} × {adv['step_size']:.4f}",
            "n": int(adv["n"]),
            "clean accuracy": round(float(clean["accuracy"]), 3),
            "clean auc": round(float(clean["auc"]), 3),
            "to target": round(float(adv["target_rate"]), 3),
        }
        rows.append({**row, **_study_vs_ours(adv, ref)})
    return pd.DataFrame(rows)


def eps_conventions() -> pd.DataFrame:
    """Each study's eps in its own unit and in ours, computed with
    ``references.eps_to_pixels`` (the table the chapter shows first)."""
    a, f = adversarialmed_eps(), finlayson_eps()
    rows = [
        {"study": "AdversarialMed", "their input space": "ImageNet-normalised (x - mean) / std",
         "their eps": a["eps_study"], "conversion": f"× mean std {references.IMAGENET_MEAN_STD}",
         "eps (pixels)": round(a["eps"], 5), "eps (/255)": round(a["eps_255"], 2),
         "their step": a["step_study"], "step (pixels)": round(a["step"], 5), "steps": a["steps"]},
        {"study": "Finlayson et al.", "their input space": "[-1, 1]",
         "their eps": f["eps_study"], "conversion": "× 0.5 (range twice as wide)",
         "eps (pixels)": round(f["eps"], 5), "eps (/255)": round(f["eps_255"], 2),
         "their step": f["step_study"], "step (pixels)": round(f["step"], 5), "steps": f["steps"]},
    ]
    return pd.DataFrame(rows)


def robust_table(curves: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """The ensemble's worst case per model (rows) and budget (columns, /255): accuracy with its
    95 % interval, followed by the accuracy after rounding the adversarial images to 8 bits
    where it differs (:mod:`advmed.attacks.quantize`); budgets below one grey level are headed
    "(float)": no 8-bit file carries them. ``curves`` is :func:`~.run.robust_results` ``.curves``."""
    def cell(r) -> str:
        text = fmt_interval(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"], digits)
        a8 = r.get("accuracy_8bit", np.nan)
        if r["eps_255"] > 0 and pd.notna(a8) and round(a8, digits) != round(r["accuracy"], digits):
            text += f"; 8-bit {a8:.{digits}f}"
        return text

    t = curves.assign(model=curves["task"] + " / " + curves["arch"] + " (" + curves["init_used"] + ")",
                      value=[cell(r) for _, r in curves.iterrows()])
    wide = t.pivot_table(index="model", columns="eps_255", values="value", aggfunc="first", sort=False)
    wide.columns = ["clean" if c == 0 else f"{c:g}/255" + ("" if deliverable(c / 255) else " (float)")
                    for c in wide.columns]
    return wide.reset_index()


CHECK_NAMES = {"steps_restarts": "converged (steps, restarts)", "ce_vs_margin": "CE vs margin loss",
               "whitebox_vs_transfer": "white-box >= transfer", "reaches_zero": "accuracy reaches 0",
               "single_step": "FGSM not above iterative", "monotone_eps": "no rise with eps"}


SHORT_CHECK_NAMES = {"steps_restarts": "converged", "ce_vs_margin": "CE ~ margin", "whitebox_vs_transfer": "≥ transfer",
                     "reaches_zero": "reaches 0", "single_step": "FGSM ≥ iter.", "monotone_eps": "monotone"}


def diagnostics_table(diag: pd.DataFrame) -> pd.DataFrame:
    """One row per model: how many masking checks it passes (Carlini et al. 2019; Athalye et
    al. 2018), the checks that flag it (short names of :data:`SHORT_CHECK_NAMES`) and whether
    its robust accuracy can be believed (every check passed). Each check's numbers are in
    :func:`diagnostics_detail`."""
    rows = []
    for (task, arch, used), g in diag.groupby(["task", "arch", "init_used"], sort=False):
        bad = [SHORT_CHECK_NAMES.get(c, c) for c in g.loc[~g["passed"], "check"]]
        rows.append({"model": f"{task_label(task)}: {model_label(arch, used)}",
                     "checks passed": f"{int(g['passed'].sum())} of {len(g)}",
                     "flagged by": ", ".join(bad) or "none", "believed": "yes" if not bad else "no"})
    return pd.DataFrame(rows)


def diagnostics_detail(diag: pd.DataFrame) -> pd.DataFrame:
    """Every check's numbers and its sentence, one row per model and check (the appendix)."""
    out = diag[["task", "arch", "init_used", "surrogate", "n", "check", "passed", "numbers", "summary"]].copy()
    out["check"] = out["check"].map(lambda c: CHECK_NAMES.get(c, c))
    return out.reset_index(drop=True)


def robust_cost_table(costs: pd.DataFrame) -> pd.DataFrame:
    """The ensemble's cost per model and member, over every budget: images attacked, broken,
    gradient evaluations and seconds."""
    cols = ["task", "arch", "init_used", "member", "attacked", "broken", "gradients", "seconds"]
    out = costs[cols].copy()
    out["seconds"] = out["seconds"].round(1)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- the page's summaries
# In-text tables: a few rows (models, tasks or attacks) and a few short columns for every
# profile; the long tables above go to the chapter's appendix.
def _model(arch: str, init_used: str) -> str:
    return model_label(arch, init_used)


def _nearest(values: Iterable[float], wanted: float) -> float:
    grid = np.array(sorted(set(float(v) for v in values)))
    return float(grid[np.argmin(np.abs(grid - wanted))])


def conventions_table() -> pd.DataFrame:
    """The studies' budgets in their units and in ours, one row per study (short columns)."""
    a, f = adversarialmed_eps(), finlayson_eps()
    rows = [("AdversarialMed", "(x − mean) / std", a), ("Finlayson et al.", "[−1, 1]", f)]
    return pd.DataFrame([{"study": name, "their input": space, "their eps": d["eps_study"],
                          "eps (/255)": round(d["eps_255"], 2), "their step": d["step_study"],
                          "step (/255)": round(d["step"] * 255, 2), "iterations": d["steps"]}
                         for name, space, d in rows])


def attack_summary(results: pd.DataFrame, eps_255: float, *, attack: str = "pgd",
                   metric: str = "accuracy") -> pd.DataFrame:
    """``metric`` clean -> under ``attack`` at the grid's budget nearest ``eps_255``: one row per
    model, one column per task, cells ``"0.91 → 0.12"``."""
    eps = _nearest(results.loc[results["attack"] != "clean", "eps_255"], eps_255)
    rows: dict[str, dict[str, str]] = {}
    for (task, arch, init), g in results.groupby(["task", "arch", "init"], sort=False):
        clean = g.loc[g["attack"] == "clean", metric]
        adv = g.loc[(g["attack"] == attack) & np.isclose(g["eps_255"], eps), metric]
        if clean.empty or adv.empty:
            continue
        label = _model(arch, g["init_used"].iloc[0])
        rows.setdefault(label, {"model": label})[task_label(task)] = f"{clean.iloc[0]:.2f} → {adv.iloc[0]:.2f}"
    return pd.DataFrame(list(rows.values())).fillna("–")


def harm_summary(results: pd.DataFrame, eps_255: float, *, attack: str = "pgd") -> pd.DataFrame:
    """Which way ``attack``'s errors go at the grid's budget nearest ``eps_255``: per model and
    task, the share of diseased images (correct clean) sent to no disease, a **missed
    diagnosis**, and of the others sent to a disease, a **false alarm** (95 % intervals; the
    images each share is over). Empty where the sweeps carry no harm split."""
    if "missed_rate" not in results.columns:
        return pd.DataFrame()
    eps = _nearest(results.loc[results["attack"] != "clean", "eps_255"], eps_255)
    rows = []
    for (task, arch, init), g in results.groupby(["task", "arch", "init"], sort=False):
        r = g.loc[(g["attack"] == attack) & np.isclose(g["eps_255"], eps)]
        if r.empty:
            continue
        r = r.iloc[0]

        def share(name: str, n: str) -> str:
            return f"{fmt_interval(r[name], r[name + '_lo'], r[name + '_hi'], 2)} of {int(r[n])}"

        rows.append({"task": task_label(task), "model": _model(arch, g["init_used"].iloc[0]),
                     "missed diagnoses": share("missed_rate", "n_disease"),
                     "false alarms": share("false_alarm_rate", "n_normal")})
    return pd.DataFrame(rows)


def adversarialmed_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """:func:`adversarialmed_comparison` in five rows (clean and the four attacks): the study's
    accuracy and AUC beside the range of ours over the models (``"0.47–0.69"``)."""
    if comparison.empty:
        return pd.DataFrame()
    rows = []
    for attack, g in comparison.groupby("attack", sort=False):
        row = {"attack": attack}
        for m, name in (("accuracy", "accuracy"), ("auc", "AUC")):
            lo, hi = g[f"{m} ours"].min(), g[f"{m} ours"].max()
            row[f"{name} study"] = g[f"{m} study"].iloc[0]
            row[f"{name} ours"] = f"{lo:.2f}" if np.isclose(lo, hi) else f"{lo:.2f}–{hi:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def finlayson_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """:func:`finlayson_comparison` in one row per task: the study's task, its accuracy under
    targeted PGD, and the range over our models of clean and attacked accuracy and of the share
    pushed to the other class."""
    if comparison.empty:
        return pd.DataFrame()

    def span(v: pd.Series) -> str:
        lo, hi = float(v.min()), float(v.max())
        return f"{lo:.2f}" if np.isclose(lo, hi) else f"{lo:.2f}–{hi:.2f}"

    rows = []
    for task, g in comparison.groupby("task", sort=False):
        rows.append({"task": task_label(task), "study task": g["study task"].iloc[0],
                     "accuracy study": g["accuracy study"].iloc[0], "clean accuracy ours": span(g["clean accuracy"]),
                     "accuracy ours": span(g["accuracy ours"]), "to target ours": span(g["to target"])})
    return pd.DataFrame(rows)


def visibility_summary(results: pd.DataFrame, eps_255: float) -> pd.DataFrame:
    """How visible each attack is at the grid's budget nearest ``eps_255``: one row per attack,
    one column per task, each cell the median over the task's models of the per-model median
    PSNR (dB) and SSIM, ``"38.1 dB / 0.97"``."""
    adv = results[results["attack"] != "clean"]
    eps = _nearest(adv["eps_255"], eps_255)
    sel = adv[np.isclose(adv["eps_255"], eps)]
    rows = []
    for attack in [a for a in ATTACKS if a in set(sel["attack"])]:
        row = {"attack": attack_label(attack)}
        for task, g in sel[sel["attack"] == attack].groupby("task", sort=False):
            row[task_label(task)] = f"{g['psnr_db_median'].median():.1f} dB / {g['ssim_median'].median():.2f}"
        rows.append(row)
    return pd.DataFrame(rows)
