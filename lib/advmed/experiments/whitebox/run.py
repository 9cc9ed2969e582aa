"""White-box robustness: accuracy and AUC of a model under gradient attacks, over eps.

One model: :func:`attack_sweep` runs every attack at every eps on the *same* test images
and measures the adversarial images with :func:`advmed.metrics.classification_metrics`
(accuracy, AUC, ... with percentile-bootstrap 95 % intervals) and their size with
:func:`advmed.metrics.perturbation_stats` (L2, Linf, PSNR, SSIM; median, min, max).

A profile: :func:`whitebox_results` does the same for every task x model of a profile,
memoised per model with :func:`advmed.cache.memo` under a key made of the model's
checkpoint key (``TrainConfig.key()``), a hash of the test images and labels, the attack
settings and the seed, so that a warm book build reloads it instead of attacking again.

Attacks (``advmed.attacks``): FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015), I-FGSM
(Kurakin, Goodfellow & Bengio, ICLR 2017 workshop), PGD (Madry et al., ICLR 2018) and
MI-FGSM (Dong et al., CVPR 2018). Every eps is an L-inf budget in [0, 1] pixel units;
``eps_255`` is the same budget in 8-bit levels (eps = eps_255 / 255).

The evaluation of one model (the sweep, the ensemble's robust accuracy, the masking
diagnostics) and the studies' own settings are the kernel's
(:mod:`advmed.experiments.kernel.evaluation`, :mod:`advmed.experiments.kernel.studies`):
chapters 5 and 7 read the same memoised results. The tables that compare them with the
published figures are in :mod:`.tables`, the figures in :mod:`.plots`, the prose in
:mod:`.report`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..kernel import (ATTACKS, ENSEMBLE, RobustResults, adversarialmed_eps, adversarialmed_results, attack_sweep,
                      batching, diagnostics_results, finlayson_eps, finlayson_results, memoised_sweep, model_columns,
                      robust_results, test_images)
from ..profiles import Profile


def whitebox_results(profile: Profile, zoo: Mapping[tuple, Any], *, attacks: Sequence[str] | None = None,
                     refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """:func:`attack_sweep` for every (task, arch, init) of ``zoo``, memoised per model.

    The sweeps stop each image at its first success (robust accuracy of each attack, and
    affordable at 300 images); the studies' settings (:func:`adversarialmed_results`,
    :func:`finlayson_results`) run the full iterations as the studies did.

    Args:
        profile: :func:`~advmed.experiments.profiles.get_profile`; its ``whitebox`` section
            gives ``n_images``, ``eps_255``, ``steps`` and ``restarts``, its first seed the seed,
            ``eval.n_boot`` the bootstrap resamples.
        zoo: :func:`~advmed.experiments.zoo.trained_models`.
        attacks: attack names (default the four of :data:`ATTACKS`).
        refresh: recompute even when a stored result exists.
        progress: a tqdm bar over the models.

    Returns:
        The sweeps stacked, with leading columns ``task, arch, init, init_used, size``.
    """
    s = profile.whitebox
    attacks = tuple(attacks or ATTACKS)
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="white-box sweeps", unit="model", disable=not progress):
        task = key[0]
        if task not in sets:
            sets[task] = test_images(task, profile)
        sweep = memoised_sweep(
            "whitebox", tm, sets[task], settings={"n_images": s.n_images}, refresh=refresh,
            attacks=list(attacks), eps_255=[float(e) for e in s.eps_255], steps=int(s.steps),
            seed=profile.seed, restarts=int(s.restarts), n_boot=int(profile.eval.n_boot), early_stop=True,
            **batching(profile, sets[task]))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def with_ensemble(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """:func:`whitebox_results` with the ensemble's curves (:attr:`RobustResults.curves`)
    appended as ``attack = "ensemble"`` rows (its clean rows dropped: the sweep has them), so
    figures and tables draw the worst case beside the single attacks."""
    if curves.empty:
        return results
    extra = curves[curves["eps_255"] > 0]
    return pd.concat([results, extra[[c for c in extra.columns if c in results.columns]]], ignore_index=True)


#: Accuracies closer than this are equal (they are shares of the same images: a difference of one
#: image is far larger).
ACCURACY_TOLERANCE = 1e-9


def ensemble_check(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Is the ensemble's worst case (:func:`robust_results`) at or below every single attack of
    the sweep (:func:`whitebox_results`), for every model and budget?

    The ensemble's members (APGD-CE, APGD-margin or APGD-T, PGD with restarts) are not the
    sweep's attacks, so this is not true by construction: an image that FGSM, I-FGSM or MI-FGSM
    breaks and no member does makes a single attack stronger than the "worst case". Both run on
    the same test images (:func:`test_images`) at the same budgets.

    Returns:
        One row per model and nonzero budget: ``task, arch, init, init_used, eps_255``,
        ``ensemble`` (its accuracy), ``lowest_single`` and ``lowest_attack`` (the single attack
        that leaves the lowest accuracy), ``attacks`` (how many single attacks were compared)
        and ``at_or_below`` (the ensemble's accuracy is at most every single attack's).
        Empty when either input is.
    """
    columns = ["task", "arch", "init", "init_used", "eps_255", "ensemble", "lowest_single", "lowest_attack",
               "attacks", "at_or_below"]
    if results.empty or curves.empty:
        return pd.DataFrame(columns=columns)
    single = results[(results["attack"] != "clean") & (results["attack"] != ENSEMBLE) & (results["eps_255"] > 0)]
    ens = curves[curves["eps_255"] > 0]
    rows = []
    for _, e in ens.iterrows():
        same = single[(single["task"] == e["task"]) & (single["arch"] == e["arch"]) & (single["init"] == e["init"])
                      & np.isclose(single["eps_255"].astype(float), float(e["eps_255"]))]
        if same.empty:
            continue
        low = same.loc[same["accuracy"].astype(float).idxmin()]
        rows.append({"task": e["task"], "arch": e["arch"], "init": e["init"], "init_used": e["init_used"],
                     "eps_255": float(e["eps_255"]), "ensemble": float(e["accuracy"]),
                     "lowest_single": float(low["accuracy"]), "lowest_attack": str(low["attack"]),
                     "attacks": int(same["attack"].nunique()),
                     "at_or_below": bool(float(e["accuracy"]) <= float(low["accuracy"]) + ACCURACY_TOLERANCE)})
    return pd.DataFrame(rows, columns=columns)


__all__ = ["ATTACKS", "ENSEMBLE", "RobustResults", "adversarialmed_eps", "adversarialmed_results", "attack_sweep",
           "diagnostics_results", "ensemble_check", "finlayson_eps", "finlayson_results", "robust_results", "test_images",
           "whitebox_results", "with_ensemble"]
