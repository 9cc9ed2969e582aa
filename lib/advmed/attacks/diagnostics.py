"""Red flags of gradient masking and of attacks that have not converged, per model.

A robust accuracy is only as good as the attacks behind it. Carlini et al. (2019, "On
evaluating adversarial robustness", sec. 5) and Athalye, Carlini & Wagner (ICML 2018,
"Obfuscated gradients give a false sense of security") list the signs that an
evaluation's attacks are failing rather than the model resisting. Each is one
:class:`Check` here, with the numbers behind it:

- ``steps_restarts``: robust accuracy of APGD-CE at several iteration counts and
  restart counts; the chosen setting must be within ``tol`` of the strongest (more
  iterations or restarts still helping means the attack has not converged).
- ``ce_vs_margin``: APGD with cross-entropy and with the CW margin loss must agree within
  ``tol`` (a saturated softmax zeroes the cross-entropy gradient but not the margin's).
- ``whitebox_vs_transfer``: a transfer attack (PGD crafted on a ``surrogate`` model of
  the same task) must not beat the strongest white-box attack by more than ``tol``
  (only when a surrogate is given).
- ``reaches_zero``: the strongest single attack must bring accuracy to at most ``tol``
  at the largest budget of ``eps_grid`` (32/255 by default: an unbounded-enough attack
  must always win).
- ``single_step``: FGSM must not beat the iterative attacks by more than ``tol`` at any
  budget (iterative attacks contain the single step).
- ``monotone_eps``: no iterative attack's accuracy may rise with the budget by more than
  ``tol`` (a larger ball contains the smaller one, and an attack run to convergence finds
  what it found there). FGSM is left out: one linear step overshoots at large budgets, so its
  accuracy often rises with eps on models with no masking at all (Madry et al. 2018;
  Kurakin et al. 2017, "label leaking"); its rise is reported in the summary, not flagged.

Accuracies are over all images (an image misclassified clean counts as fooled); each
attack runs on the images classified correctly. The grids are arguments so that a
cheap run (the CPU book) can use smaller ones.

Example:
    >>> # report = masking_diagnostics(model, x, y, eps=2 / 255, surrogate=other_model)
    >>> # report.passed, report.flagged, report.to_frame()
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pandas as pd
import torch
from torch import nn

from .checks import check_eps, check_images, check_labels, check_norm, check_steps, frozen_eval
from .losses import resolve_labels
from .whitebox import apgd, fgsm, pgd

DEFAULT_EPS_GRID = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255)


@dataclass(frozen=True)
class Check:
    """One diagnostic: passed or flagged, a sentence, and the numbers behind it."""

    name: str
    passed: bool
    summary: str
    numbers: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskingDiagnostics:
    """Every check of :func:`masking_diagnostics` for one model at one budget."""

    eps: float
    norm: str
    tol: float
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def to_frame(self) -> pd.DataFrame:
        """One row per check: name, passed, summary, and its numbers as ``k=v`` text."""
        return pd.DataFrame([{"check": c.name, "passed": c.passed, "summary": c.summary,
                              "numbers": ", ".join(f"{k}={v:.3f}" for k, v in c.numbers.items())}
                             for c in self.checks])


class _Accuracy:
    """Accuracy after an attack, attacking only the images the model gets right."""

    def __init__(self, model, x, y, batch_size, seed):
        self.model, self.x, self.y, self.bs, self.seed = model, x, y, batch_size, seed
        self.correct = self.predict(x) == y

    @torch.no_grad()
    def predict(self, x):
        bs = x.shape[0] if self.bs is None else self.bs
        return torch.cat([self.model(x[s:s + bs]).argmax(1) for s in range(0, x.shape[0], bs)])

    def __call__(self, attack, **kw) -> float:
        idx = self.correct.nonzero().squeeze(1)
        if idx.numel() == 0:
            return 0.0
        x_adv = attack(self.model, self.x[idx], self.y[idx], batch_size=self.bs, progress=False, **kw)
        return float((self.predict(x_adv) == self.y[idx]).sum()) / self.x.shape[0]

    def transfer(self, surrogate, eps, norm, steps) -> float:
        idx = self.correct.nonzero().squeeze(1)
        if idx.numel() == 0:
            return 0.0
        # early_stop=False: an image stopped just past the surrogate's boundary transfers poorly
        x_adv = pgd(surrogate, self.x[idx], self.y[idx], eps=eps, norm=norm, steps=steps,
                    seed=self.seed, early_stop=False, batch_size=self.bs, progress=False)
        return float((self.predict(x_adv) == self.y[idx]).sum()) / self.x.shape[0]


def _check_grid(values, name, check):
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence")
    return tuple(check(v) for v in values)


def _restarts(r):
    if int(r) != r or r < 1:
        raise ValueError(f"restarts must be integers >= 1, got {r!r}")
    return int(r)


def _convergence(acc, eps, norm, steps_grid, restarts_grid, chosen, tol, seed) -> Check:
    runs = {}
    for s in steps_grid:
        runs[(s, chosen[1])] = None
    for r in restarts_grid:
        runs[(chosen[0], r)] = None
    runs[chosen] = None
    for s, r in runs:
        runs[(s, r)] = acc(apgd, eps=eps, norm=norm, steps=s, restarts=r, loss="ce", seed=seed)
    strongest = min(runs.values())
    gap = runs[chosen] - strongest
    numbers = {f"apgd_ce_{s}x{r}": v for (s, r), v in sorted(runs.items())}
    numbers.update(chosen=runs[chosen], strongest=strongest)
    return Check("steps_restarts", gap <= tol,
                 f"APGD-CE at {chosen[0]} steps x {chosen[1]} restart(s) leaves {runs[chosen]:.3f}, "
                 f"the strongest setting {strongest:.3f} (gap {gap:.3f}, tol {tol:.3g})", numbers)


def _loss_check(ce, margin, tol) -> Check:
    gap = abs(ce - margin)
    return Check("ce_vs_margin", gap <= tol,
                 f"APGD-CE leaves {ce:.3f}, APGD-margin {margin:.3f} (|gap| {gap:.3f}, tol {tol:.3g}); "
                 "a CE much weaker than the margin is the mark of a saturated softmax",
                 {"apgd_ce": ce, "apgd_margin": margin})


def _eps_checks(curves: dict, eps_grid, tol) -> list[Check]:
    """reaches_zero, single_step and monotone_eps from the single attacks' curves."""
    iterative = [min(curves[a][i] for a in curves if a != "fgsm") for i in range(len(eps_grid))]
    last = min(c[-1] for c in curves.values())
    numbers = {f"{a}@{e * 255:g}/255": v for a, c in curves.items() for e, v in zip(eps_grid, c)}
    zero = Check("reaches_zero", last <= tol,
                 f"the strongest single attack leaves {last:.3f} at eps {eps_grid[-1] * 255:g}/255 "
                 f"(tol {tol:.3g})", {"accuracy_at_max_eps": last, "max_eps": eps_grid[-1]})
    lead = max(it - f for it, f in zip(iterative, curves["fgsm"]))
    single = Check("single_step", lead <= tol,
                   f"FGSM beats the best iterative attack by at most {lead:.3f} over the budgets "
                   f"(tol {tol:.3g})", {**{f"fgsm@{e * 255:g}/255": v for e, v in zip(eps_grid, curves['fgsm'])},
                                    **{f"iterative@{e * 255:g}/255": v for e, v in zip(eps_grid, iterative)}})
    def largest_rise(names) -> float:
        return max((curves[a][i + 1] - curves[a][i] for a in names for i in range(len(curves[a]) - 1)),
                   default=0.0)

    rise = largest_rise([a for a in curves if a != "fgsm"])
    fgsm_rise = largest_rise(["fgsm"]) if "fgsm" in curves else 0.0
    mono = Check("monotone_eps", rise <= tol,
                 f"the largest rise of an iterative attack's accuracy with eps is {max(rise, 0.0):.3f} "
                 f"(tol {tol:.3g}; FGSM's, not judged: {max(fgsm_rise, 0.0):.3f})", numbers)
    return [zero, single, mono]


def masking_diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                        norm: str = "linf", steps_grid: Sequence[int] = (10, 50, 100),
                        restarts_grid: Sequence[int] = (1, 5), chosen_steps: Optional[int] = None,
                        chosen_restarts: Optional[int] = None,
                        eps_grid: Sequence[float] = DEFAULT_EPS_GRID,
                        surrogate: Optional[nn.Module] = None, single_steps: Optional[int] = None,
                        tol: float = 0.01, seed: int = 0, batch_size: Optional[int] = None,
                        progress: bool = True) -> MaskingDiagnostics:
    """Run every gradient-masking / convergence check on one model.

    Args:
        model: returns logits (run in eval mode, left as found).
        x, y: float images ``(N, C, H, W)`` in [0, 1] and labels ``(N,)``.
        eps: the budget of the evaluation being checked ([0, 1] pixel units).
        norm: ``"linf"`` or ``"l2"`` (for L2 pass an ``eps_grid`` of L2 budgets).
        steps_grid, restarts_grid: APGD-CE's iterations and restarts to compare.
        chosen_steps, chosen_restarts: the evaluation's setting (default: the largest
            ``steps_grid`` value and the smallest ``restarts_grid`` value).
        eps_grid: increasing budgets of the single-attack curves (default up to 32/255).
        surrogate: another model of the same task for the transfer check (None: skipped).
        single_steps: iterations of PGD / APGD in the eps curves (default: chosen_steps).
        tol: the accuracy difference each check allows (0.01), raised to one image (``1 / N``)
            when that is larger: on N images an accuracy moves in steps of 1/N, so a smaller
            tolerance would flag a model for a single image, which sampling alone explains.
        seed: random starts of every attack.
        batch_size: chunk size of every attack and evaluation.
        progress: print nothing (kept for the common signature; the runs are short).

    Returns:
        A :class:`MaskingDiagnostics`: ``passed``, ``flagged``, ``to_frame()``.
    """
    check_images(x)
    check_labels(y, x)
    norm = check_norm(norm)
    eps = check_eps(eps, norm=norm, x=x)
    steps_grid = _check_grid(steps_grid, "steps_grid", check_steps)
    restarts_grid = _check_grid(restarts_grid, "restarts_grid", _restarts)
    eps_grid = _check_grid(eps_grid, "eps_grid", lambda e: check_eps(e, "eps_grid value", norm=norm, x=x))
    if any(b <= a for a, b in zip(eps_grid, eps_grid[1:])):
        raise ValueError(f"eps_grid must be strictly increasing, got {eps_grid}")
    chosen = (check_steps(chosen_steps or max(steps_grid)), _restarts(chosen_restarts or min(restarts_grid)))
    single_steps = check_steps(single_steps or chosen[0])
    if not (0 <= tol < 1):
        raise ValueError(f"tol is an accuracy difference in [0, 1), got {tol!r}")
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise TypeError("surrogate must be an nn.Module returning logits (another model of the task)")
    x, y = x.detach(), y.detach().to(device=x.device, dtype=torch.int64)
    tol = max(float(tol), 1.0 / x.shape[0]) if x.shape[0] else float(tol)
    with frozen_eval(model):
        with torch.no_grad():
            resolve_labels(model(x[:1]).expand(x.shape[0], -1), y, False, None)
        acc = _Accuracy(model, x, y, batch_size, seed)
        checks = [_convergence(acc, eps, norm, steps_grid, restarts_grid, chosen, tol, seed)]
        ce = checks[0].numbers["chosen"]
        margin = acc(apgd, eps=eps, norm=norm, steps=chosen[0], restarts=chosen[1], loss="margin", seed=seed)
        checks.append(_loss_check(ce, margin, tol))
        curves = _curves(acc, eps_grid, norm, single_steps, seed)
        if surrogate is not None:
            with frozen_eval(surrogate):
                transfer = acc.transfer(surrogate, eps, norm, single_steps)
            white = min(ce, margin, *(acc(pgd, eps=eps, norm=norm, steps=single_steps, seed=seed),))
            checks.append(Check("whitebox_vs_transfer", transfer >= white - tol,
                                f"transfer PGD from the surrogate leaves {transfer:.3f}, the strongest "
                                f"white-box attack {white:.3f} (tol {tol:.3g})",
                                {"transfer": transfer, "whitebox": white}))
        checks.extend(_eps_checks(curves, eps_grid, tol))
    return MaskingDiagnostics(eps=eps, norm=norm, tol=float(tol), checks=tuple(checks))


def _curves(acc, eps_grid, norm, steps, seed) -> dict:
    """Accuracy of each single attack at each budget, each budget attacked afresh."""
    curves = {"fgsm": [], "pgd": [], "apgd_ce": [], "apgd_margin": []}
    for e in eps_grid:
        if norm == "linf":
            curves["fgsm"].append(acc(fgsm, eps=e))
        else:  # one normalised-gradient step of size eps: the L2 single-step attack
            curves["fgsm"].append(acc(pgd, eps=e, norm="l2", steps=1, step_size=e,
                                      random_start=False, early_stop=False))
        curves["pgd"].append(acc(pgd, eps=e, norm=norm, steps=steps, seed=seed))
        curves["apgd_ce"].append(acc(apgd, eps=e, norm=norm, steps=steps, loss="ce", seed=seed))
        curves["apgd_margin"].append(acc(apgd, eps=e, norm=norm, steps=steps, loss="margin", seed=seed))
    return curves
