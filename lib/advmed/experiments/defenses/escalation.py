"""A flagged defense attacked harder instead of labelled (chapter 7).

When chapter 2's masking diagnostics fire on a defended model, its adaptive worst case may be an
overestimate; the remedy is a stronger attacker (Carlini et al. 2019; Tramer et al. 2020), not a
label. :func:`escalate_defense` runs :func:`advmed.attacks.escalate` at every budget of the
defense's grid, from the adaptive worst case already found:

- the gradient stages (FGSM, PGD and APGD with more iterations and restarts, the margin loss,
  APGD-T with four classes or more) differentiate the defense's attackable view (BPDA for JPEG,
  end to end through the VAE, the weights themselves);
- transfer stages craft PGD, without early stopping, on the undefended model and on each extra
  source of the defense (kornia's differentiable JPEG, EOT through the sampled VAE);
- Square queries the defense as deployed (gradient-free: the check against masked gradients).

Only the deployed model scores. The budgets are nested: each budget starts from the lower-margin
of its own adaptive worst case and the escalated one of the smaller budget. The cap is the list
of stages, sized by the profile (``defense.escalation_factor`` x chapter 2's iterations,
``defense.escalation_restarts``, ``defense.escalation_square_queries``); a budget whose last
two stages still broke an image is reported as an upper bound, not converged
(:data:`advmed.attacks.escalate.NOT_CONVERGED`). The images an escalation found are judged after
rounding to 8 bits as well and folded into the 8-bit worst case.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...attacks import default_stages, escalate, worst_case, worst_case_choice
from ...attacks.escalate import PRIOR
from ...attacks.quantize import to_8bit
from ...models import as_rgb, gray_view, predict_proba
from ..kernel import batching
from ..profiles import Profile
from .common import Defended
from .evaluate import Scores

#: The names of the escalation's models (``escalate(..., sources=)``).
ATTACKABLE, UNDEFENDED = "the defense's attackable view", "the undefended model"


class EscalatedDefense(NamedTuple):
    """The worst case after escalation (``scores``, both threat models) and the path: one row per
    budget and stage (:meth:`advmed.attacks.Escalation.to_frame`), the first row of each budget
    the adaptive worst case it started from."""

    scores: Scores
    path: pd.DataFrame


def escalation_stages(num_classes: int, profile: Profile, extra_sources: Sequence[str]) -> tuple:
    """The profile's stages (:func:`advmed.attacks.default_stages`) for a defense whose extra
    adaptive sources are ``extra_sources``."""
    s = profile.defense
    return default_stages(num_classes, steps=int(profile.whitebox.robust_steps), factor=int(s.escalation_factor),
                          restarts=int(s.escalation_restarts), square_queries=s.escalation_square_queries,
                          gradient_source=ATTACKABLE, transfer_sources=(UNDEFENDED, *extra_sources))


def _lower_margin(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    choice, _ = worst_case_choice([a[None], b[None]], y)
    return np.where(choice[0][:, None] == 1, b, a)


def escalate_defense(d: Defended, undefended: nn.Module, x: torch.Tensor, y: torch.Tensor, adaptive: Scores, *,
                     eps_grid: Sequence[float], profile: Profile, progress: bool = False) -> EscalatedDefense:
    """Escalate the adaptive worst case ``adaptive`` of defense ``d`` at every budget of
    ``eps_grid`` ([0, 1] pixel units, ascending), nested over the budgets (module docstring)."""
    scored, x_att, _ = gray_view(d.evaluated, x)
    sources: dict[str, nn.Module] = {ATTACKABLE: gray_view(d.attackable, x)[0],
                                     UNDEFENDED: gray_view(undefended, x)[0]}
    sources.update({name: gray_view(m, x)[0] for name, m in d.extra_sources.items()})
    stages = escalation_stages(int(adaptive.proba.shape[-1]), profile, tuple(d.extra_sources))
    y_np = y.cpu().numpy()
    bs = batching(profile, x).get("batch_size")
    proba, proba_8bit, frames = [], [], []
    previous: Any = None
    for i, eps in enumerate(eps_grid):
        start = adaptive.proba[i] if previous is None else _lower_margin(adaptive.proba[i], previous, y_np)
        esc = escalate(scored, x_att, y, eps=float(eps), proba=start, stages=stages, seed=profile.seed,
                       sources=sources, batch_size=bs, progress=progress)
        previous = esc.proba
        proba.append(esc.proba)
        p8 = adaptive.proba_8bit[i].copy()
        found = np.asarray(esc.found_by != PRIOR)
        if found.any():
            rounded = to_8bit(as_rgb(esc.x_adv[torch.as_tensor(found, device=x.device)], x.shape[1]))
            candidate = p8.copy()
            candidate[found] = predict_proba(d.evaluated, rounded)
            p8 = _lower_margin(p8, candidate, y_np)
        proba_8bit.append(p8)
        frames.append(esc.to_frame(start="adaptive worst case").assign(status=esc.status))
    scores = Scores(worst_case([np.stack(proba)], y_np), worst_case([np.stack(proba_8bit)], y_np))
    return EscalatedDefense(scores, pd.concat(frames, ignore_index=True))


__all__ = ["ATTACKABLE", "UNDEFENDED", "EscalatedDefense", "escalate_defense", "escalation_stages"]
