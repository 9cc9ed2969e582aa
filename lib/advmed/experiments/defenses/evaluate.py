"""The adversarial evaluation of one defended model, whatever the defense (chapter 7).

- **clean** accuracy and AUC (bootstrap 95 % intervals);
- **oblivious** attacker: PGD crafted on the *undefended* model at every budget (full
  iterations), evaluated on the defended model (:func:`transfer_probas`);
- **adaptive** attacker (Athalye, Carlini & Wagner 2018; Tramer et al. 2020): chapter 2's robust
  ensemble on the defense's attackable view (:func:`ensemble_probas`), PGD transferred from the
  defense's extra sources and the oblivious images themselves; the per-image worst case over
  them all (:func:`advmed.attacks.worst_case`), nested over the budgets: at least as strong as
  the oblivious attacker by construction;
- the studies' four attacks at AdversarialMed's setting (:func:`study_attack_rows`);
- chapter 2's masking diagnostics on the attackable view (:func:`diagnostics`).

Every eps is in [0, 1] pixel units; nothing here is memoised (:mod:`.run` memoises a defense's
whole evaluation).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...attacks import default_ensemble, get_attack, robust_accuracy, worst_case
from ...metrics import classification_metrics
from ...models import as_rgb, gray_view, predict_proba
from ..kernel import adversarialmed_eps, batching, diagnostics_sweep, ensemble_settings, study_steps, subset
from ..profiles import Profile

#: The adaptive attacker's source that is the oblivious attacker's image.
OBLIVIOUS_SOURCE = "oblivious images"
#: The adaptive attacker's source that is the robust ensemble on the attackable view.
ENSEMBLE_SOURCE = "ensemble"
#: The studies' four attacks, run at AdversarialMed's setting on every defense (their own measure).
STUDY_ATTACKS = ("fgsm", "ifgsm", "pgd", "mifgsm")
#: The columns of a run's diagnostics when none ran (the undefended reference).
NO_DIAGNOSTICS = ("check", "passed", "summary", "numbers")


def transfer_images(source: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    steps: int, seed: int) -> list[torch.Tensor]:
    """PGD images crafted on ``source`` at each budget (full iterations, gray images in one
    channel, returned with ``x``'s channels)."""
    m_att, x_att, _ = gray_view(source, x)
    pgd = get_attack("pgd")
    return [as_rgb(pgd.call(m_att, x_att, y, eps=eps, steps=steps, seed=seed, early_stop=False).detach(), x.shape[1])
            for eps in eps_grid]


def transfer_probas(source: nn.Module, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    eps_grid: Sequence[float], steps: int, seed: int) -> np.ndarray:
    """``(E, N, K)`` scores of ``target`` on PGD images crafted on ``source`` at each budget
    (:func:`transfer_images`)."""
    return np.stack([predict_proba(target, x_adv)
                     for x_adv in transfer_images(source, x, y, eps_grid=eps_grid, steps=steps, seed=seed)])


def _ensemble(model: nn.Module, x: torch.Tensor, profile: Profile) -> tuple[nn.Module, torch.Tensor, dict, list]:
    """The attacked view of ``model`` (gray images in one channel), its images, the batching and
    chapter 2's robust ensemble for its number of classes."""
    s = ensemble_settings(profile)
    m_att, x_att, _ = gray_view(model, x)
    k = int(predict_proba(model, x[:1]).shape[1])
    members = default_ensemble(k, steps=s["steps"], restarts=s["restarts"], pgd_restarts=s["pgd_restarts"])
    return m_att, x_att, s, members


def ensemble_probas(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    profile: Profile) -> np.ndarray:
    """``(E, N, K)`` scores of the adversarial images the robust ensemble found on ``model``."""
    m_att, x_att, s, members = _ensemble(model, x, profile)
    res = robust_accuracy(m_att, x_att, y, eps_grid=list(eps_grid), n_boot=0, seed=profile.seed, progress=False,
                          batch_size=s.get("batch_size"), ensemble=members)
    return np.asarray(res.proba)


def ensemble_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    profile: Profile) -> list[torch.Tensor]:
    """The robust ensemble's image of every input at each budget, each budget run alone:
    ``robust_accuracy`` keeps one image per input (the one of its first budget), the explorer
    shows one per budget. Returned with ``x``'s channels."""
    m_att, x_att, s, members = _ensemble(model, x, profile)
    out = []
    for eps in eps_grid:
        res = robust_accuracy(m_att, x_att, y, eps_grid=[float(eps)], n_boot=0, seed=profile.seed, progress=False,
                              batch_size=s.get("batch_size"), ensemble=members)
        out.append(as_rgb(res.x_adv.detach().to(x.device), x.shape[1]))
    return out


def study_attack_rows(evaluated: nn.Module, attackable: nn.Module, undefended: nn.Module, x: torch.Tensor,
                      y: torch.Tensor, *, profile: Profile) -> pd.DataFrame:
    """FGSM, I-FGSM, PGD and MI-FGSM at AdversarialMed's eps (1.15/255) and step, full iterations
    (the studies' protocol: accuracy and AUC of the last iterate), crafted on the undefended model
    (oblivious) and on the defense's attackable view (adaptive), evaluated on the defended model."""
    st = adversarialmed_eps()
    steps = study_steps(st["steps"], profile)
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    rows = []
    for attacker, source in (("oblivious", undefended), ("adaptive", attackable)):
        m_att, x_att, _ = gray_view(source, x)
        for name in STUDY_ATTACKS:
            x_adv = get_attack(name).call(m_att, x_att, y, eps=st["eps"], steps=steps, step_size=st["step"],
                                          seed=seed, early_stop=False).detach()
            m = classification_metrics(y_np, predict_proba(evaluated, as_rgb(x_adv, x.shape[1])), n_boot=n_boot,
                                       seed=seed)
            row = {"attacker": attacker, "attack": name, "eps_255": st["eps_255"], "steps": steps}
            for k in ("accuracy", "auc"):
                row[k], row[f"{k}_lo"], row[f"{k}_hi"] = m[k]
            rows.append(row)
    return pd.DataFrame(rows)


def _curve_rows(attacker: str, y: np.ndarray, proba: np.ndarray, eps_grid: Sequence[float], *, n_boot: int,
                seed: int) -> list[dict[str, Any]]:
    rows = []
    for e, p in zip(eps_grid, proba):
        m = classification_metrics(y, p, n_boot=n_boot, seed=seed)
        row = {"attacker": attacker, "eps": float(e), "eps_255": float(e) * 255}
        for name in ("accuracy", "auc"):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
        rows.append(row)
    return rows


def _clean_row(y: np.ndarray, proba: np.ndarray, *, n_boot: int, seed: int) -> pd.DataFrame:
    m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
    row: dict[str, Any] = {"n": len(y)}
    for name in ("accuracy", "auc"):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
    return pd.DataFrame([row])


def _infer_seconds(model: nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    predict_proba(model, x)
    return (time.perf_counter() - t0) / max(1, len(x))


def evaluate_defense(evaluated: nn.Module, attackable: nn.Module, undefended: nn.Module, x: torch.Tensor,
                     y: torch.Tensor, *, eps_grid: Sequence[float], profile: Profile,
                     extra_sources: Mapping[str, nn.Module] | None = None) -> dict[str, Any]:
    """Clean, oblivious and adaptive numbers of one defended model.

    Args:
        evaluated: the defended model as deployed (real JPEG codec; mean VAE; the trained weights).
        attackable: the view the adaptive ensemble attacks, whose forward is ``evaluated``'s
            (BPDA for JPEG; ``evaluated`` itself otherwise).
        undefended: the oblivious attacker's model.
        extra_sources: more adaptive sources, name -> model PGD is crafted on and transferred to
            ``evaluated`` (kornia's differentiable JPEG; EOT through the sampled VAE).

    Returns:
        ``clean`` (one row), ``curves`` (per attacker and budget), ``sources`` (the accuracy each
        adaptive source leaves alone), ``infer_seconds`` (per image) and ``study_attacks``.
    """
    s = profile.defense
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    proba_clean = predict_proba(evaluated, x)
    oblivious = transfer_probas(undefended, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    oblivious = worst_case([oblivious], y_np)
    sources = {ENSEMBLE_SOURCE: ensemble_probas(attackable, x, y, eps_grid=eps_grid, profile=profile)}
    for name, src in (extra_sources or {}).items():
        sources[name] = transfer_probas(src, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    sources[OBLIVIOUS_SOURCE] = oblivious
    adaptive = worst_case(list(sources.values()), y_np)
    rows = _curve_rows("oblivious", y_np, oblivious, eps_grid, n_boot=n_boot, seed=seed)
    rows += _curve_rows("adaptive", y_np, adaptive, eps_grid, n_boot=n_boot, seed=seed)
    src_rows = [{"source": name, "eps_255": float(e) * 255, "accuracy": float((p[i].argmax(1) == y_np).mean())}
                for name, p in sources.items() for i, e in enumerate(eps_grid)]
    return {"clean": _clean_row(y_np, proba_clean, n_boot=n_boot, seed=seed), "curves": pd.DataFrame(rows),
            "sources": pd.DataFrame(src_rows), "infer_seconds": _infer_seconds(evaluated, x),
            "study_attacks": study_attack_rows(evaluated, attackable, undefended, x, y, profile=profile)}


def diagnostics(attackable: nn.Module, undefended: nn.Module, images: Any, profile: Profile) -> pd.DataFrame:
    """Chapter 2's masking diagnostics (:func:`~advmed.experiments.kernel.diagnostics_sweep`)
    on ``defense.diag_images`` of the images, the undefended model as the transfer surrogate."""
    w = profile.whitebox
    images = subset(images, profile.defense.diag_images, profile.seed).images
    return diagnostics_sweep(attackable, images, surrogate=undefended, eps_255=float(w.diag_eps_255),
                             steps=list(w.diag_steps), restarts=list(w.diag_restarts),
                             eps_grid_255=[float(e) for e in w.diag_eps_grid_255],
                             chosen_steps=int(w.robust_steps), chosen_restarts=int(w.robust_restarts),
                             seed=profile.seed, **batching(profile))


__all__ = ["ENSEMBLE_SOURCE", "NO_DIAGNOSTICS", "OBLIVIOUS_SOURCE", "STUDY_ATTACKS", "diagnostics",
           "ensemble_images", "ensemble_probas", "evaluate_defense", "study_attack_rows", "transfer_images",
           "transfer_probas"]
