"""The adversarial evaluation of one defended model, whatever the defense (chapter 7).

- **clean** accuracy and AUC (bootstrap 95 % intervals);
- **oblivious** attacker: PGD crafted on the *undefended* model at every budget (full
  iterations), evaluated on the defended model (:func:`transfer_scores`);
- **adaptive** attacker (Athalye, Carlini & Wagner 2018; Tramer et al. 2020): chapter 2's robust
  ensemble on the defense's attackable view (:func:`ensemble_scores`), APGD-margin on that view run
  every iteration (:data:`AUC_SOURCE`: the ensemble stops each image at its first success, which
  leaves an AUC upper bound; this source pushes every image as far as the budget allows), PGD
  transferred from the defense's extra sources and the oblivious images themselves; the
  per-image worst case over them all (:func:`advmed.attacks.worst_case`), nested over the
  budgets: at least as strong as the oblivious attacker by construction;
- the studies' four attacks at AdversarialMed's setting, and APGD-margin at that budget
  (:func:`study_attack_rows`);
- chapter 2's masking diagnostics on the attackable view (:func:`diagnostics`);
- every adversarial image judged twice: as found (float) and rounded to 8 bits as an image file
  delivers it (:mod:`advmed.attacks.quantize`); each source gives both (:class:`Scores`), the
  worst case is taken in each threat model separately, and the curves and the study attacks'
  rows carry ``accuracy_8bit`` / ``auc_8bit`` beside ``accuracy`` / ``auc``.

Every eps is in [0, 1] pixel units; nothing here is memoised (:mod:`.run` memoises a defense's
whole evaluation).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...attacks import default_ensemble, get_attack, robust_accuracy, worst_case
from ...attacks.quantize import to_8bit
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
#: The attack an AUC is measured with (Croce & Hein 2020's APGD on the CW margin, every iteration,
#: no early stop): an early-stopped attack leaves each fooled image just past the boundary, so
#: the AUC of its images is an upper bound; this one pushes every image as far as the budget allows.
AUC_ATTACK = "apgd-margin"
#: The adaptive attacker's source that is :data:`AUC_ATTACK` on the attackable view.
AUC_SOURCE = "APGD-margin, every iteration"
#: The columns of a run's diagnostics when none ran (the undefended reference).
NO_DIAGNOSTICS = ("check", "passed", "summary", "numbers")


def _craft(attack: str, source: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, seed: int,
           step_size: float | None = None) -> torch.Tensor:
    """One attack's images crafted on ``source`` at ``eps``, every iteration (no early stop), gray
    images attacked in one channel and returned with ``x``'s channels. ``attack``: a registry
    name, or :data:`AUC_ATTACK`."""
    m_att, x_att, _ = gray_view(source, x)
    if attack == AUC_ATTACK:
        x_adv = get_attack("apgd").call(m_att, x_att, y, eps=eps, steps=steps, seed=seed, early_stop=False,
                                        loss="margin")
    else:
        x_adv = get_attack(attack).call(m_att, x_att, y, eps=eps, steps=steps, step_size=step_size, seed=seed,
                                        early_stop=False)
    return as_rgb(x_adv.detach(), x.shape[1])


def transfer_images(source: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    steps: int, seed: int, attack: str = "pgd") -> list[torch.Tensor]:
    """``attack`` (PGD by default) images crafted on ``source`` at each budget (every iteration,
    gray images in one channel, returned with ``x``'s channels)."""
    return [_craft(attack, source, x, y, eps=eps, steps=steps, seed=seed) for eps in eps_grid]


class Scores(NamedTuple):
    """What one source of adversarial images leaves: ``(E, N, K)`` softmax scores of the defended
    model per budget, on the images as found (``proba``, the float threat model) and rounded to
    8 bits (``proba_8bit``)."""

    proba: np.ndarray
    proba_8bit: np.ndarray


def transfer_scores(source: nn.Module, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    eps_grid: Sequence[float], steps: int, seed: int, attack: str = "pgd") -> Scores:
    """:class:`Scores` of ``target`` on ``attack`` images crafted on ``source`` at each budget
    (:func:`transfer_images`), as found and rounded to 8 bits."""
    images = transfer_images(source, x, y, eps_grid=eps_grid, steps=steps, seed=seed, attack=attack)
    return Scores(np.stack([predict_proba(target, x_adv) for x_adv in images]),
                  np.stack([predict_proba(target, to_8bit(x_adv)) for x_adv in images]))


def _ensemble(model: nn.Module, x: torch.Tensor, profile: Profile) -> tuple[nn.Module, torch.Tensor, dict, list]:
    """The attacked view of ``model`` (gray images in one channel), its images, the batching and
    chapter 2's robust ensemble for its number of classes."""
    s = ensemble_settings(profile, x)
    m_att, x_att, _ = gray_view(model, x)
    k = int(predict_proba(model, x[:1]).shape[1])
    members = default_ensemble(k, steps=s["steps"], restarts=s["restarts"], pgd_restarts=s["pgd_restarts"])
    return m_att, x_att, s, members


def ensemble_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    profile: Profile) -> Scores:
    """:class:`Scores` of the adversarial images the robust ensemble found on ``model``, as found
    and rounded to 8 bits (:func:`advmed.attacks.robust_accuracy`'s ``proba_8bit``)."""
    m_att, x_att, s, members = _ensemble(model, x, profile)
    res = robust_accuracy(m_att, x_att, y, eps_grid=list(eps_grid), n_boot=0, seed=profile.seed, progress=False,
                          batch_size=s.get("batch_size"), ensemble=members)
    return Scores(np.asarray(res.proba), np.asarray(res.proba_8bit))


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
    (the studies' protocol: accuracy and AUC of the last iterate), and :data:`AUC_ATTACK` with
    chapter 2's ensemble iterations at the same eps (the strongest AUC measure), crafted on the
    undefended model (oblivious) and on the defense's attackable view (adaptive), evaluated on the
    defended model."""
    st = adversarialmed_eps()
    steps = study_steps(st["steps"], profile)
    auc_steps = int(ensemble_settings(profile)["steps"])
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    rows = []
    for attacker, source in (("oblivious", undefended), ("adaptive", attackable)):
        for name in (*STUDY_ATTACKS, AUC_ATTACK):
            n_steps = auc_steps if name == AUC_ATTACK else steps
            x_adv = _craft(name, source, x, y, eps=st["eps"], steps=n_steps, seed=seed,
                           step_size=None if name == AUC_ATTACK else st["step"])
            row = {"attacker": attacker, "attack": name, "eps_255": st["eps_255"], "steps": n_steps}
            for suffix, images in (("", x_adv), ("_8bit", to_8bit(x_adv))):
                m = classification_metrics(y_np, predict_proba(evaluated, images), n_boot=n_boot, seed=seed)
                for k in ("accuracy", "auc"):
                    row[f"{k}{suffix}"], row[f"{k}{suffix}_lo"], row[f"{k}{suffix}_hi"] = m[k]
            rows.append(row)
    return pd.DataFrame(rows)


def curve_rows(attacker: str, y: np.ndarray, scores: Scores, eps_grid: Sequence[float], *, n_boot: int,
                seed: int) -> list[dict[str, Any]]:
    rows = []
    for e, p, p8 in zip(eps_grid, scores.proba, scores.proba_8bit):
        row: dict[str, Any] = {"attacker": attacker, "eps": float(e), "eps_255": float(e) * 255}
        for suffix, proba in (("", p), ("_8bit", p8)):
            m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
            for name in ("accuracy", "auc"):
                row[f"{name}{suffix}"], row[f"{name}{suffix}_lo"], row[f"{name}{suffix}_hi"] = m[name]
        rows.append(row)
    return rows


def _worst(sources: Sequence[Scores], y: np.ndarray) -> Scores:
    """The per-image worst case over ``sources`` in each threat model separately."""
    return Scores(worst_case([s.proba for s in sources], y), worst_case([s.proba_8bit for s in sources], y))


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
        adaptive source leaves alone), ``infer_seconds`` (per image), ``study_attacks`` and
        ``adaptive_scores`` (the adaptive worst case's :class:`Scores`, where an escalation starts).
    """
    s = profile.defense
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    proba_clean = predict_proba(evaluated, x)
    oblivious = transfer_scores(undefended, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    oblivious = _worst([oblivious], y_np)
    sources = {ENSEMBLE_SOURCE: ensemble_scores(attackable, x, y, eps_grid=eps_grid, profile=profile),
               AUC_SOURCE: transfer_scores(attackable, evaluated, x, y, eps_grid=eps_grid, seed=seed,
                                           steps=int(ensemble_settings(profile)["steps"]), attack=AUC_ATTACK)}
    for name, src in (extra_sources or {}).items():
        sources[name] = transfer_scores(src, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    sources[OBLIVIOUS_SOURCE] = oblivious
    adaptive = _worst(list(sources.values()), y_np)
    rows = curve_rows("oblivious", y_np, oblivious, eps_grid, n_boot=n_boot, seed=seed)
    rows += curve_rows("adaptive", y_np, adaptive, eps_grid, n_boot=n_boot, seed=seed)
    src_rows = [{"source": name, "eps_255": float(e) * 255,
                 "accuracy": float((p.proba[i].argmax(1) == y_np).mean()),
                 "accuracy_8bit": float((p.proba_8bit[i].argmax(1) == y_np).mean())}
                for name, p in sources.items() for i, e in enumerate(eps_grid)]
    return {"clean": _clean_row(y_np, proba_clean, n_boot=n_boot, seed=seed), "curves": pd.DataFrame(rows),
            "sources": pd.DataFrame(src_rows), "infer_seconds": _infer_seconds(evaluated, x),
            "study_attacks": study_attack_rows(evaluated, attackable, undefended, x, y, profile=profile),
            "adaptive_scores": adaptive}


def diagnostics(attackable: nn.Module, undefended: nn.Module, images: Any, profile: Profile) -> pd.DataFrame:
    """Chapter 2's masking diagnostics (:func:`~advmed.experiments.kernel.diagnostics_sweep`)
    on ``defense.diag_images`` of the images, the undefended model as the transfer surrogate."""
    w = profile.whitebox
    images = subset(images, profile.defense.diag_images, profile.seed).images
    return diagnostics_sweep(attackable, images, surrogate=undefended, eps_255=float(w.diag_eps_255),
                             steps=list(w.diag_steps), restarts=list(w.diag_restarts),
                             eps_grid_255=[float(e) for e in w.diag_eps_grid_255],
                             chosen_steps=int(w.robust_steps), chosen_restarts=int(w.robust_restarts),
                             seed=profile.seed, **batching(profile, images))


__all__ = ["AUC_ATTACK", "AUC_SOURCE", "ENSEMBLE_SOURCE", "NO_DIAGNOSTICS", "OBLIVIOUS_SOURCE", "STUDY_ATTACKS", "Scores", "curve_rows", "diagnostics",
           "ensemble_images", "ensemble_scores", "evaluate_defense", "study_attack_rows", "transfer_images",
           "transfer_scores"]
