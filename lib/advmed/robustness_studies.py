"""Our white-box attacks in the studies' settings, beside the studies' published figures.

(a) AdversarialMed (Li & Liu 2019; ``references.ADVERSARIALMED_ATTACKS``): FGSM, I-FGSM,
    PGD and MI-FGSM on the pneumonia chest X-rays at their eps 0.02 *in ImageNet-
    normalised units*, i.e. 0.02 x 0.226 = 0.00452 in [0, 1] pixels (1.15/255;
    ``references.eps_to_pixels(0.02, "imagenet_normalised")``). Their README gives no
    attack step size; we use the step and iteration count of their adversarial training
    (0.005 normalised = 0.00113 pixels, 10 iterations; BRIEF.md) for the three iterative
    attacks.
(b) Finlayson et al. (2019; ``references.FINLAYSON_PGD``): PGD *targeted to the other
    class*, eps 0.02 and step 0.01 in their [-1, 1] input range, i.e. eps 0.01 (2.55/255)
    and step 0.005 in [0, 1] pixels, 20 iterations.

Both run on the same held-out test images as the eps sweep
(:func:`advmed.robustness.test_images`) and are memoised per model the same way.
Every comparison row carries the setting of both sides (data, resolution, model,
initialisation, eps in both units, steps), so a difference can be read against it.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import references
from .robustness import (
    ATTACK_LABELS,
    ATTACKS,
    _model_columns,
    memoised_sweep,
    test_images,
)

# AdversarialMed's attack setting, in their (ImageNet-normalised) units.
ADVERSARIALMED_STEP_NORMALISED = 0.005
ADVERSARIALMED_STEPS = 10
ADVERSARIALMED_TASK = "pneumonia_cxr"
ADVERSARIALMED_SETTING = {"data": "Kermany paediatric CXR", "size": 224, "model": "DenseNet-121",
                          "init": "CheXNet (ImageNet, then ChestX-ray14)"}
FINLAYSON_SETTING = {"size": 224, "model": "ResNet-50 / Inception-v3", "init": "ImageNet"}


def adversarialmed_eps() -> dict[str, float]:
    """Their eps and step converted to [0, 1] pixels (and /255)."""
    eps = references.eps_to_pixels(references.ADVERSARIALMED_ATTACKS["eps_normalised"], "imagenet_normalised")
    step = references.eps_to_pixels(ADVERSARIALMED_STEP_NORMALISED, "imagenet_normalised")
    return {"eps_study": references.ADVERSARIALMED_ATTACKS["eps_normalised"], "eps": eps,
            "eps_255": eps * 255, "step_study": ADVERSARIALMED_STEP_NORMALISED, "step": step,
            "steps": ADVERSARIALMED_STEPS}


def finlayson_eps() -> dict[str, float]:
    """Their eps and step ([-1, 1] inputs) converted to [0, 1] pixels (and /255)."""
    f = references.FINLAYSON_PGD
    eps = references.eps_to_pixels(f["eps_minus1_1"], "minus1_1")
    step = references.eps_to_pixels(f["step_minus1_1"], "minus1_1")
    return {"eps_study": f["eps_minus1_1"], "eps": eps, "eps_255": eps * 255,
            "step_study": f["step_minus1_1"], "step": step, "steps": int(f["steps"])}


def _n_images(profile: Mapping[str, Any], n_images: int | None) -> int | None:
    return profile.get("attacks", {}).get("n_images") if n_images is None else n_images


def _n_boot(profile: Mapping[str, Any], n_boot: int | None) -> int:
    return int(profile.get("eval", {}).get("n_boot", 1000) if n_boot is None else n_boot)


# --------------------------------------------------------------------------- (a) AdversarialMed
def adversarialmed_results(profile: Mapping[str, Any], zoo: Mapping[tuple, Any], *,
                           n_images: int | None = None, n_boot: int | None = None,
                           refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Clean, FGSM, I-FGSM, PGD, MI-FGSM at AdversarialMed's eps for every pneumonia_cxr
    model of ``zoo`` (empty when the profile has no such task)."""
    s = adversarialmed_eps()
    seed = int(profile.get("seeds", [0])[0])
    n = _n_images(profile, n_images)
    models = {k: tm for k, tm in zoo.items() if k[0] == ADVERSARIALMED_TASK}
    if not models:
        return pd.DataFrame()
    images = test_images(ADVERSARIALMED_TASK, profile, n)
    frames = []
    for key, tm in tqdm(list(models.items()), desc="AdversarialMed setting", disable=not progress):
        sweep = memoised_sweep("whitebox_adversarialmed", tm, images, settings={"n_images": n},
                               refresh=refresh, attacks=list(ATTACKS), eps_255=[0.0, s["eps_255"]],
                               steps=s["steps"], step_size=s["step"], seed=seed,
                               n_boot=_n_boot(profile, n_boot))
        cols = _model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True)


def adversarialmed_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """The study's accuracy and AUC beside ours, one row per (our model, attack).

    Columns: the setting (data, px study -> ours, model, init, eps in the study's units,
    eps in pixels and /255, steps and step), then ``accuracy`` / ``auc`` for study, ours
    (with bootstrap 95 % interval) and ``ours - study``.
    """
    if results.empty:
        return pd.DataFrame()
    s = adversarialmed_eps()
    study = {r["attack"]: r for r in references.ADVERSARIALMED_ATTACKS["rows"]}
    st = ADVERSARIALMED_SETTING
    rows = []
    for _, r in results.iterrows():
        ref = study.get(r["attack"])
        if ref is None:
            continue
        clean = r["attack"] == "clean"
        row = {
            "attack": ATTACK_LABELS.get(r["attack"], r["attack"]),
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
        for m in ("accuracy", "auc"):
            row[f"{m} study"] = ref[m]
            row[f"{m} ours"] = round(float(r[m]), 3)
            row[f"{m} 95% CI"] = f"[{r[f'{m}_lo']:.3f}, {r[f'{m}_hi']:.3f}]"
            row[f"{m} ours − study"] = round(float(r[m]) - ref[m], 3)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- (b) Finlayson
def finlayson_results(profile: Mapping[str, Any], zoo: Mapping[tuple, Any], *,
                      n_images: int | None = None, n_boot: int | None = None,
                      refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Targeted PGD to the other class in Finlayson et al.'s setting, for every binary
    task x model of ``zoo`` (multiclass tasks are left out: "the other class" is
    undefined there)."""
    s = finlayson_eps()
    seed = int(profile.get("seeds", [0])[0])
    n = _n_images(profile, n_images)
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="Finlayson setting", disable=not progress):
        task = key[0]
        if len(getattr(tm, "classes", ())) not in (0, 2):
            continue
        if task not in sets:
            sets[task] = test_images(task, profile, n)
        if len(sets[task].classes) != 2:
            continue
        sweep = memoised_sweep("whitebox_finlayson", tm, sets[task], settings={"n_images": n},
                               refresh=refresh, attacks=["pgd"], eps_255=[0.0, s["eps_255"]],
                               steps=s["steps"], step_size=s["step"], seed=seed, targeted=True,
                               target="other", n_boot=_n_boot(profile, n_boot))
        cols = _model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def finlayson_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Targeted PGD, study vs ours, one row per (task, our model): clean and attacked
    accuracy / AUC, the share of images pushed to the other class, and the study's
    figure and the difference where the study ran that task (blank elsewhere)."""
    if results.empty:
        return pd.DataFrame()
    from .data import get_task

    s = finlayson_eps()
    study = {r["task"]: r for r in references.FINLAYSON_PGD["rows"]}
    st = FINLAYSON_SETTING
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
        for m in ("accuracy", "auc"):
            row[f"{m} study"] = ref[m] if ref else np.nan
            row[f"{m} ours"] = round(float(adv[m]), 3)
            row[f"{m} 95% CI"] = f"[{adv[f'{m}_lo']:.3f}, {adv[f'{m}_hi']:.3f}]"
            row[f"{m} ours − study"] = round(float(adv[m]) - ref[m], 3) if ref else np.nan
        rows.append(row)
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
