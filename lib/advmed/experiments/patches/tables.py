"""The tables of chapter 6: settings, Finlayson et al.'s patch table beside ours, every patch
at every scale, and how the patches were made.

Inputs are the :class:`~.run.PatchExperiment` of :func:`~.run.patch_experiment`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...attacks.patch import BASE, side_fraction
from ...metrics import fmt_interval
from ...plots import task_label
from .. import references
from ..profiles import Profile
from .run import KINDS, PatchExperiment

#: Finlayson et al.'s columns for each of our kinds (``FINLAYSON_PATCH`` rows).
STUDY_COLUMNS = {"white-box": "white", "black-box": "black", "natural": "natural"}


def settings_table(profile: Profile) -> pd.DataFrame:
    """The chapter's settings, one row each, with the scale convention written out."""
    s = profile.patch
    values = {
        "tasks": ", ".join(s.tasks or profile.tasks), "target model": s.model,
        "training images (train split)": s.n_train, "test images": "all" if s.n_eval is None else s.n_eval,
        "steps x batch": f"{s.steps} x {s.batch_size} (Adam, lr {s.lr:g})",
        "training scales": f"{s.scale_range[0]:g}-{s.scale_range[1]:g} (sides "
                           f"{side_fraction(s.scale_range[0]):.2f}-{side_fraction(s.scale_range[1]):.2f} of the image)",
        "rotation": f"up to {s.max_rotation:g} degrees", "shape": s.shape,
        "comparison scale": f"{s.eval_scale:g} (side {side_fraction(s.eval_scale):.2f} of the image = Finlayson et al.'s "
                            f"\"{BASE:g}\")",
        "scale sweep": ", ".join(f"{v:g}" for v in s.eval_scales), "placements per test image": s.n_placements,
        "natural patch": f"cut at the {s.natural_location} of a training image of the target class",
        "black-box patch trained on": "chapter 5's surrogate of the target (same architecture, another seed)",
        "bootstrap resamples": profile.eval.n_boot, "seed": profile.seed,
    }
    return pd.DataFrame({"value": [str(v) for v in values.values()]}, index=pd.Index(list(values), name="setting"))


def finlayson_table(exp: PatchExperiment, *, numeric: bool = False) -> pd.DataFrame:
    """Finlayson et al.'s patch table (accuracy and AUC after the white-box, black-box and
    natural patch) beside ours at the comparison scale, task by task, with our setting."""
    study = {r["task"]: r for r in references.FINLAYSON_PATCH}
    scale = exp.settings.eval_scale
    rows = []
    for k, run in exp.runs.items():
        r = run.at(scale)
        ref = study.get(k.task)
        col = STUDY_COLUMNS[k.kind]
        tm = exp.trained[k.model]
        row = {"task": k.task, "patch": k.kind, "our model": f"{k.arch} ({tm.init_used}), {tm.config.size} px",
               "trained on": run.source, "area": round(float(r["area"]), 3), "n": int(r["n_images"]),
               "accuracy study": ref[f"{col}_acc"] if ref else np.nan,
               "AUC study": ref[f"{col}_auc"] if ref else np.nan}
        if numeric:
            row.update({"accuracy ours": r["accuracy"], "accuracy_lo": r["accuracy_lo"], "accuracy_hi": r["accuracy_hi"],
                        "AUC ours": r["auc"], "auc_lo": r["auc_lo"], "auc_hi": r["auc_hi"],
                        "success ours": r["success_rate"], "clean accuracy": r["clean_accuracy"],
                        "clean AUC": r["clean_auc"]})
        else:
            row.update({"accuracy ours": fmt_interval(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"]),
                        "AUC ours": fmt_interval(r["auc"], r["auc_lo"], r["auc_hi"]),
                        "targeted success ours": round(float(r["success_rate"]), 3),
                        "clean accuracy / AUC": f"{r['clean_accuracy']:.3f} / {r['clean_auc']:.3f}"})
        row["accuracy ours - study"] = (round(float(r["accuracy"]) - ref[f"{col}_acc"], 4) if ref else np.nan)
        row["AUC ours - study"] = round(float(r["auc"]) - ref[f"{col}_auc"], 4) if ref else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["_order"] = out["patch"].map({k: i for i, k in enumerate(KINDS)})
        out = out.sort_values(["task", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return out


def scale_table(exp: PatchExperiment) -> pd.DataFrame:
    """Every patch at every scale: side and area covered, accuracy, AUC, targeted success."""
    rows = []
    for k, run in exp.runs.items():
        for _, r in run.evals.iterrows():
            rows.append({"task": k.task, "patch": k.kind, "scale": r["scale"], "side": round(float(r["side_fraction"]), 3),
                         "area": round(float(r["area"]), 3), "accuracy": round(float(r["accuracy"]), 3),
                         "AUC": round(float(r["auc"]), 3), "targeted success": round(float(r["success_rate"]), 3),
                         "success 95 % interval": f"[{r['success_rate_lo']:.3f}, {r['success_rate_hi']:.3f}]"})
    return pd.DataFrame(rows)


def training_table(exp: PatchExperiment) -> pd.DataFrame:
    """How each patch was made: trained on what, its size, steps, seconds, the share of the
    last training batches sent to the target (per class)."""
    rows = []
    for k, run in exp.runs.items():
        s = run.summary
        p = run.patch
        gray = p.shape[1] == 1 or bool(all(torch.equal(p[:, 0], p[:, c]) for c in range(1, p.shape[1])))
        rows.append({"task": k.task, "patch": k.kind, "made from": run.source, "patch pixels": int(p.shape[-1]),
                     "gray": gray, "steps": s.get("steps", 0),
                     "seconds": round(float(s.get("seconds", 0.0)), 1),
                     "training success (per target class)": ", ".join(f"{v:.2f}" for v in s.get("final_success", []))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the page's summaries
# In-text tables of a dozen rows at most and a few short columns (DESIGN.md, "Pages"); the long
# tables above go to the chapter's appendix.
def settings_brief(profile: Profile) -> pd.DataFrame:
    """The settings a reader needs to read the page (every one: :func:`settings_table`)."""
    s = profile.patch
    rows = {
        "tasks": ", ".join(s.tasks or profile.tasks), "target model": s.model,
        "training images, test images": f"{s.n_train}, {'all' if s.n_eval is None else s.n_eval}",
        "steps × batch (Adam)": f"{s.steps} × {s.batch_size}",
        "training scales": f"{s.scale_range[0]:g}–{s.scale_range[1]:g}",
        "comparison scale": f"{s.eval_scale:g} (a disc {side_fraction(s.eval_scale):.2f} of the image side)",
        "scale sweep": ", ".join(f"{v:g}" for v in s.eval_scales),
        "rotation": f"up to {s.max_rotation:g}°", "placements per test image": s.n_placements,
        "seed, bootstrap resamples": f"{profile.seed}, {profile.eval.n_boot}",
    }
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


def finlayson_summary(exp: PatchExperiment) -> pd.DataFrame:
    """Finlayson et al.'s patch table beside ours in short columns: one row per task and patch,
    the study's accuracy and AUC beside ours [95 % interval], and our targeted success (the
    setting of each row: :func:`finlayson_table`)."""
    t = finlayson_table(exp, numeric=True)
    if t.empty:
        return t
    return pd.DataFrame({
        "task": t["task"].map(task_label).to_numpy(), "patch": t["patch"].to_numpy(),
        "accuracy study": t["accuracy study"].astype(float).to_numpy(),
        "accuracy ours": [fmt_interval(a, lo, hi, 2) for a, lo, hi in zip(t["accuracy ours"], t["accuracy_lo"],
                                                                          t["accuracy_hi"])],
        "AUC study": t["AUC study"].astype(float).to_numpy(),
        "AUC ours": [fmt_interval(a, lo, hi, 2) for a, lo, hi in zip(t["AUC ours"], t["auc_lo"], t["auc_hi"])],
        "targeted success": t["success ours"].astype(float).to_numpy(),
    })


def perceptibility_summary(perc: pd.DataFrame) -> pd.DataFrame:
    """:func:`~.run.perceptibility` in short columns: one row per task and patch, the share of the
    image it covers (%), the largest pixel change (grey levels) and the median PSNR (dB) and SSIM
    of a patched held-out image against the clean one."""
    if perc.empty:
        return perc
    return pd.DataFrame({"task": perc["task"].map(task_label).to_numpy(), "patch": perc["kind"].to_numpy(),
                         "area (%)": (100 * perc["area"]).round(1).to_numpy(),
                         "largest change (/255)": perc["linf_255"].round(0).astype(int).to_numpy(),
                         "PSNR (dB), median": perc["psnr_db"].round(1).to_numpy(),
                         "SSIM, median": perc["ssim"].round(3).to_numpy()})


__all__ = ["STUDY_COLUMNS", "finlayson_summary", "finlayson_table", "perceptibility_summary", "scale_table", "settings_brief", "settings_table",
           "training_table"]
