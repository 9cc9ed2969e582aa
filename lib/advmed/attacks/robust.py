"""Robust accuracy that can be believed: the per-image worst case over an attack ensemble.

The field's standard since AutoAttack (Croce & Hein, ICML 2020): an image counts as
robust at a budget only if *no* attack of a diverse ensemble fools it, and every later
attack runs only on the images the earlier ones left classified correctly. Here the
budgets are nested too: an adversarial image found inside a smaller ball is inside
every larger one, so each larger ``eps`` attacks only the images that survived the
smaller ones, and the accuracy curve is monotone (non-increasing in ``eps``) by
construction, however the single attacks behave.

Default ensemble (:func:`default_ensemble`): APGD-CE; APGD-T (targeted DLR on the top
runner-up classes) on models with at least 4 classes, else APGD with the CW margin
loss (DLR is undefined below 3 classes); PGD with random restarts (Madry et al. 2018).

AUC under attack: computed from the scores of the adversarial images actually found
(for each image fooled at a budget, the image that fooled it; for each survivor, the
lowest-margin image any attack reached). The attacks stop an image at its first
successful iterate, just past the decision boundary, so a fooled image's scores sit
near the boundary rather than at the wrong extreme: this AUC is an *upper bound* on the
AUC an attacker aiming at the AUC (pushing every image as far as the budget allows)
would leave. Accuracy is exact in that respect; read the AUC with that caveat
(:data:`AUC_NOTE`, also carried by every :class:`RobustResult`).

Every budget is also judged in 8 bits (:mod:`.quantize`): the adversarial image each image
holds at that budget, rounded to the 256 grey levels an image file stores, evaluated again
(``accuracy_8bit``, ``auc_8bit``; images misclassified clean stay as given), nested over the
budgets by the lowest margin like the float worst case. It costs one forward pass per budget.

Several attackers (sources of adversarial images) combine the same way after the fact:
:func:`worst_case` / :func:`worst_case_choice` keep, per budget and image, the scores of the
source with the lowest true-class margin (:func:`~advmed.attacks.losses.true_margin`), nested
over the budgets.

Example:
    >>> import torch
    >>> from advmed.attacks.robust import default_ensemble, robust_accuracy
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 2, (16,))
    >>> res = robust_accuracy(model, x, y, eps_grid=[1 / 255, 4 / 255], n_boot=100,
    ...                       ensemble=default_ensemble(2, steps=10), progress=False)
    >>> all(a.value >= b.value for a, b in zip(res.accuracy, res.accuracy[1:]))
    True
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..device import work_batch
from ..metrics import Estimate, classification_metrics, mean_interval
from .checks import check_eps, check_images, check_labels, check_norm, frozen_eval
from .losses import resolve_labels, true_margin
from .quantize import deliverable, to_8bit
from .registry import get_attack
from .whitebox.apgd import check_apgd_loss, check_loss_classes

AUC_NOTE = ("AUC under attack is computed from the adversarial images the attacks found; they "
            "stop each image at its first successful iterate, just past the decision boundary, "
            "so this AUC is an upper bound on what an attacker aiming at the AUC would leave.")


@dataclass(frozen=True)
class EnsembleMember:
    """One attack of an ensemble: a display name, a registered attack, its options.

    Attributes:
        name: how tables show it (``"APGD-CE"``); unique within an ensemble.
        attack: a registry name (:func:`~advmed.attacks.get_attack`), e.g. ``"apgd"``.
        options: keyword arguments of the attack (``loss``, ``steps``, ``restarts``, ...);
            ``eps``, ``norm``, ``seed``, ``batch_size`` and ``progress`` are set by the
            evaluation.
    """

    name: str
    attack: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def check(self, num_classes: int) -> None:
        """Refuse, before any work, what the attack would refuse for this model."""
        spec = get_attack(self.attack)
        unknown = set(self.options) - spec.accepts()
        reserved = set(self.options) & {"eps", "norm", "seed", "batch_size", "progress", "x", "y"}
        if unknown or reserved:
            raise ValueError(f"ensemble member {self.name!r}: {spec.name} takes no option(s) "
                             f"{', '.join(sorted(unknown | reserved))} here")
        if spec.name == "apgd":
            check_loss_classes(check_apgd_loss(self.options.get("loss", "ce")), num_classes)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
            seed: int, batch_size: Optional[int]) -> torch.Tensor:
        spec = get_attack(self.attack)
        kw: dict[str, Any] = dict(self.options)
        if "norm" in spec.accepts():
            kw["norm"] = norm
        elif norm != "linf":
            raise ValueError(f"ensemble member {self.name!r} ({spec.name}) is L-inf only")
        for name, value in (("seed", seed), ("batch_size", batch_size), ("progress", False)):
            if name in spec.accepts():
                kw[name] = value
        return spec.fn(model, x, y, eps=eps, **kw)


def default_ensemble(num_classes: int, *, steps: int = 100, restarts: int = 1,
                     pgd_restarts: int = 5) -> list[EnsembleMember]:
    """APGD-CE, APGD-T (>= 4 classes) or APGD-margin (2-3 classes), and PGD with restarts.

    Args:
        num_classes: the model's number of logits (2 for a binary task).
        steps: iterations of every member (AutoAttack: 100).
        restarts: random restarts of the APGD members (AutoAttack standard: 1).
        pgd_restarts: random restarts of PGD (step ``2.5 eps / steps``, Madry et al.).
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    apgd = {"steps": steps, "restarts": restarts}
    second = (EnsembleMember("APGD-T", "apgd", {**apgd, "loss": "dlr-targeted",
                                                "n_target_classes": min(9, int(num_classes) - 1)})
              if num_classes >= 4 else EnsembleMember("APGD-margin", "apgd", {**apgd, "loss": "margin"}))
    return [EnsembleMember("APGD-CE", "apgd", {**apgd, "loss": "ce"}), second,
            EnsembleMember("PGD", "pgd", {"steps": steps, "restarts": pgd_restarts})]


@dataclass(frozen=True)
class MemberRun:
    """What one member spent at one budget, on the images still standing."""

    member: str
    eps: float
    attacked: int      # images it attacked (those still classified correctly)
    broken: int        # of those, images it fooled
    queries: int       # images passed through the model (forward passes x batch size)
    gradients: int     # of those, forward passes with an input gradient (one backward each)
    seconds: float


@dataclass(frozen=True)
class RobustResult:
    """Robust accuracy per budget, per image, per attack.

    Attributes:
        eps_grid: the budgets, ascending, in [0, 1] pixel units; ``norm`` their norm.
        members: the ensemble's member names, in the order they ran.
        clean_accuracy, clean_auc: on the unattacked images.
        accuracy, auc: per budget, with bootstrap 95 % intervals (:mod:`advmed.metrics`);
            ``auc`` is an upper bound (see ``auc_note``).
        success: ``(len(eps_grid), N)`` bool, image fooled (or misclassified clean) at that
            budget; non-decreasing along the budgets by construction.
        first_eps: ``(N,)`` the smallest budget of the grid at which each image falls
            (0 for images misclassified clean, ``inf`` for images never fooled).
        broken_by: ``(N,)`` the member that fooled each image first (``"clean"``:
            misclassified without attack; ``""``: never fooled).
        proba: ``(len(eps_grid), N, K)`` softmax scores of the adversarial images found.
        accuracy_8bit, auc_8bit, success_8bit, proba_8bit: the same after rounding each
            budget's adversarial image to 8 bits (:func:`~advmed.attacks.quantize.to_8bit`),
            nested over the budgets (an image rounded at a smaller budget also lies in every
            larger ball, widened by the half grey level of the rounding).
        x_adv: ``(N, C, H, W)`` each fooled image's adversarial image (found at
            ``first_eps``), each survivor's lowest-margin image at the largest budget.
        runs: what each member spent at each budget.
        auc_note: how to read ``auc``.
    """

    eps_grid: tuple[float, ...]
    norm: str
    members: tuple[str, ...]
    clean_accuracy: Estimate
    clean_auc: Estimate
    accuracy: tuple[Estimate, ...]
    auc: tuple[Estimate, ...]
    success: np.ndarray = field(repr=False)
    first_eps: np.ndarray = field(repr=False)
    broken_by: np.ndarray = field(repr=False)
    proba: np.ndarray = field(repr=False)
    x_adv: torch.Tensor = field(repr=False)
    runs: tuple[MemberRun, ...] = field(repr=False)
    accuracy_8bit: tuple[Estimate, ...] = ()
    auc_8bit: tuple[Estimate, ...] = ()
    success_8bit: np.ndarray = field(repr=False, default=None)
    proba_8bit: np.ndarray = field(repr=False, default=None)
    auc_note: str = AUC_NOTE

    def to_frame(self) -> pd.DataFrame:
        """One row per budget: eps (and in 8-bit levels for L-inf), accuracy, AUC, intervals, the
        same after rounding to 8 bits, and whether an 8-bit file can carry the budget
        (``deliverable``: at least one grey level)."""
        rows = []
        for i, (eps, acc, auc) in enumerate(zip(self.eps_grid, self.accuracy, self.auc)):
            row = {"eps": eps, "eps_255": eps * 255 if self.norm == "linf" else math.nan,
                   "accuracy": acc.value, "accuracy_lo": acc.lo, "accuracy_hi": acc.hi,
                   "auc": auc.value, "auc_lo": auc.lo, "auc_hi": auc.hi}
            if self.accuracy_8bit:
                a8, u8 = self.accuracy_8bit[i], self.auc_8bit[i]
                row.update({"accuracy_8bit": a8.value, "accuracy_8bit_lo": a8.lo, "accuracy_8bit_hi": a8.hi,
                            "auc_8bit": u8.value, "auc_8bit_lo": u8.lo, "auc_8bit_hi": u8.hi,
                            "deliverable": deliverable(eps, self.norm)})
            rows.append(row)
        return pd.DataFrame(rows)

    def cost_frame(self) -> pd.DataFrame:
        """Queries, gradient evaluations, seconds and images broken per member (all budgets)."""
        frame = pd.DataFrame([r.__dict__ for r in self.runs])
        return frame.groupby("member", sort=False)[["attacked", "broken", "queries", "gradients",
                                                   "seconds"]].sum()


class _Counting(nn.Module):
    """Counts what passes through the model: images, and images with an input gradient."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.queries = self.gradients = 0
        self.train(False)  # so that an attack's frozen_eval restores eval mode, not train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += x.shape[0]
        if torch.is_grad_enabled() and x.requires_grad:
            self.gradients += x.shape[0]
        return self.model(x)


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: Optional[int]) -> torch.Tensor:
    bs = work_batch(batch_size, x)
    return torch.cat([model(x[s:s + bs]).float() for s in range(0, x.shape[0], bs)])


def _check_grid(eps_grid: Sequence[float], norm: str, x: torch.Tensor) -> tuple[float, ...]:
    if isinstance(eps_grid, (int, float)) or len(eps_grid) == 0:
        raise ValueError("eps_grid must be a non-empty sequence of budgets in [0, 1] pixel units, "
                         "e.g. [1/255, 2/255, 4/255]")
    grid = tuple(check_eps(e, "eps_grid value", norm=norm, x=x) for e in eps_grid)
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"eps_grid must be strictly increasing (the balls are nested), got {grid}")
    return grid


def _check_ensemble(ensemble: Sequence[EnsembleMember], num_classes: int) -> tuple[EnsembleMember, ...]:
    ensemble = tuple(ensemble)
    if not ensemble or not all(isinstance(m, EnsembleMember) for m in ensemble):
        raise TypeError("ensemble must be a non-empty sequence of EnsembleMember "
                        "(see default_ensemble)")
    names = [m.name for m in ensemble]
    if len(set(names)) != len(names) or "clean" in names or "" in names:
        raise ValueError(f"ensemble member names must be unique and not 'clean' or '', got {names}")
    for m in ensemble:
        m.check(num_classes)
    return ensemble


class _Tally:
    """Per-image state across budgets and members: who fell where, and the worst images."""

    def __init__(self, x, y, logits0, grid):
        n = x.shape[0]
        self.x, self.y, self.grid = x, y, grid  # every budget's ball is around the clean x
        self.fallen = (logits0.argmax(1) != y).cpu()
        self.first_eps = np.where(self.fallen.numpy(), 0.0, math.inf)
        self.broken_by = np.where(self.fallen.numpy(), "clean", "").astype(object)
        self.x_adv, self.logits = x.clone(), logits0.clone()
        self.margin = true_margin(logits0, y)
        self.success, self.proba, self.proba_8bit = [], [], []
        self.clean_wrong = self.fallen.clone()  # stay as given in 8 bits: no attack ran on them
        self.n = n

    def alive(self) -> torch.Tensor:
        return (~self.fallen).nonzero().squeeze(1)

    def update(self, idx, x_adv, logits, eps, member) -> int:
        """Record one member's images ``x_adv`` of the survivors ``idx``; returns how many fell."""
        idx = idx.to(logits.device)  # the survivors are listed on the CPU, the images may be on CUDA
        m = true_margin(logits, self.y[idx])
        fooled = logits.argmax(1) != self.y[idx]  # the attacks' own definition of success
        worse = fooled | (m < self.margin[idx])  # a fooled image, or a lower margin
        sel = idx[worse]
        self.x_adv[sel], self.logits[sel], self.margin[sel] = x_adv[worse], logits[worse], m[worse]
        newly = idx[fooled].cpu()
        self.fallen[newly] = True
        self.first_eps[newly.numpy()] = eps
        self.broken_by[newly.numpy()] = member
        return int(fooled.sum())

    def close_budget(self, model: nn.Module, batch_size: Optional[int]) -> None:
        self.success.append(self.fallen.numpy().copy())
        self.proba.append(torch.softmax(self.logits, dim=1).cpu().numpy())
        x8 = to_8bit(self.x_adv)
        keep = self.clean_wrong.to(x8.device)
        x8[keep] = self.x_adv[keep]
        self.proba_8bit.append(torch.softmax(_logits(model, x8, batch_size), dim=1).cpu().numpy())


def _estimates(successes, probas, y_np: np.ndarray, n_boot: int, seed: int):
    acc, auc = [], []
    for success, proba in zip(successes, probas):
        acc.append(mean_interval(~success, n_boot=n_boot, seed=seed))
        auc.append(classification_metrics(y_np, proba, n_boot=n_boot, seed=seed)["auc"])
    return tuple(acc), tuple(auc)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    eps_grid: Sequence[float], ensemble: Optional[Sequence[EnsembleMember]] = None,
                    norm: str = "linf", n_boot: int = 1000, seed: int = 0,
                    batch_size: Optional[int] = None, progress: bool = True) -> RobustResult:
    """Per image and budget, the worst case over an attack ensemble (AutoAttack's logic).

    Args:
        model: returns logits; evaluated in eval mode with parameter gradients off, and
            left in the mode it was found in.
        x: float images ``(N, C, H, W)`` in [0, 1], on the model's device.
        y: true labels ``(N,)``.
        eps_grid: strictly increasing budgets in [0, 1] pixel units (e.g.
            ``[0.5/255, 1/255, 2/255, 4/255, 8/255]``); nested balls, each larger budget
            attacks only the survivors of the smaller ones.
        ensemble: :class:`EnsembleMember` list, run in order, each on the images the
            earlier ones left standing; default :func:`default_ensemble` for the
            model's number of classes.
        norm: ``"linf"`` or ``"l2"`` (every member must take it).
        n_boot: bootstrap resamples of the intervals (0: none).
        seed: seeds every member's random starts and the bootstrap.
        batch_size: chunk size of the attacks and evaluations (None: all at once, on a CPU cache-sized chunks).
        progress: a tqdm bar over the (budget, member) runs.

    Returns:
        A :class:`RobustResult`; ``to_frame()`` gives the table per budget.
    """
    check_images(x)
    check_labels(y, x)
    norm = check_norm(norm)
    grid = _check_grid(eps_grid, norm, x)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if x.shape[0] == 0:
        raise ValueError("x holds no images; robust accuracy needs at least one")
    x, y = x.detach(), y.detach().to(device=x.device, dtype=torch.int64)
    with frozen_eval(model):
        logits0 = _logits(model, x, batch_size)
        resolve_labels(logits0, y, False, None)
        num_classes = logits0.shape[1]
        members = _check_ensemble(default_ensemble(num_classes) if ensemble is None else ensemble,
                                  num_classes)
        tally, runs = _Tally(x, y, logits0, grid), []
        counted = _Counting(model)
        jobs = [(eps, m) for eps in grid for m in members]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="robust accuracy", unit="attack")
        for eps in grid:
            for m in members:
                runs.append(_run_member(m, counted, model, tally, eps, norm, seed, batch_size))
                if bar is not None:
                    bar.update(1)
            tally.close_budget(model, batch_size)
        if bar is not None:
            bar.close()
    y_np = y.cpu().numpy()
    acc, auc = _estimates(tally.success, tally.proba, y_np, int(n_boot), seed)
    proba8 = worst_case([np.stack(tally.proba_8bit)], y_np)
    success8 = proba8.argmax(-1) != y_np[None, :]
    acc8, auc8 = _estimates(success8, proba8, y_np, int(n_boot), seed)
    clean = classification_metrics(y.cpu().numpy(), torch.softmax(logits0, 1).cpu().numpy(),
                                   n_boot=int(n_boot), seed=seed)
    return RobustResult(eps_grid=grid, norm=norm, members=tuple(m.name for m in members),
                        clean_accuracy=clean["accuracy"], clean_auc=clean["auc"], accuracy=acc,
                        auc=auc, success=np.stack(tally.success), first_eps=tally.first_eps,
                        broken_by=tally.broken_by, proba=np.stack(tally.proba), x_adv=tally.x_adv,
                        runs=tuple(runs), accuracy_8bit=acc8, auc_8bit=auc8, success_8bit=success8,
                        proba_8bit=proba8)


def _run_member(member, counted, model, tally, eps, norm, seed, batch_size) -> MemberRun:
    idx = tally.alive()
    if idx.numel() == 0:
        return MemberRun(member.name, eps, 0, 0, 0, 0, 0.0)
    counted.queries = counted.gradients = 0
    t0 = time.perf_counter()
    x_adv = member.run(counted, tally.x[idx], tally.y[idx], eps=eps, norm=norm, seed=seed,
                       batch_size=batch_size)
    seconds = time.perf_counter() - t0
    logits = _logits(model, x_adv, batch_size)
    broken = tally.update(idx, x_adv, logits, eps, member.name)
    return MemberRun(member.name, eps, int(idx.numel()), broken, counted.queries,
                     counted.gradients, seconds)


# --------------------------------------------------------------------------- several sources
def worst_case_choice(probas: Sequence[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per budget and image, where the worst case over several sources of adversarial images
    comes from: the source with the lowest true-class margin
    (:func:`~advmed.attacks.losses.true_margin` of the scores), nested over the budgets (an
    image found at a smaller budget lies in every larger ball).

    Args:
        probas: one ``(E, N, K)`` array of softmax scores per source, the budgets ascending.
        y: labels ``(N,)``.

    Returns:
        ``(source, budget)``, two ``(E, N)`` integer arrays: the index of the source and of the
        budget whose scores (and adversarial image) stand at each budget and image.

    Example:
        >>> import numpy as np
        >>> a = np.array([[[0.9, 0.1]], [[0.6, 0.4]]])  # one source: (E=2, N=1, K=2)
        >>> b = np.array([[[0.4, 0.6]], [[0.7, 0.3]]])  # b fools the image at the first budget
        >>> source, budget = worst_case_choice([a, b], np.array([0]))
        >>> source.tolist(), budget.tolist()  # and its image stands at the second budget too
        ([[1], [1]], [[0], [0]])
    """
    n_eps, n = probas[0].shape[:2]
    source = np.zeros((n_eps, n), dtype=int)
    budget = np.repeat(np.arange(n_eps)[:, None], n, axis=1)
    best = probas[0].copy()
    for i, p in enumerate(probas[1:], start=1):
        for e in range(n_eps):
            better = true_margin(p[e], y) < true_margin(best[e], y)
            best[e][better] = p[e][better]
            source[e][better] = i
    for e in range(1, n_eps):
        better = true_margin(best[e - 1], y) < true_margin(best[e], y)
        best[e][better] = best[e - 1][better]
        source[e][better], budget[e][better] = source[e - 1][better], budget[e - 1][better]
    return source, budget


def worst_case(probas: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Per budget and image, the scores ``(E, N, K)`` of the source with the lowest true-class
    margin, nested over the budgets (:func:`worst_case_choice`).

    Args:
        probas: one ``(E, N, K)`` array of softmax scores per source, the budgets ascending.
        y: labels ``(N,)``.
    """
    source, budget = worst_case_choice(probas, y)
    return np.stack(probas)[source, budget, np.arange(source.shape[1])[None, :]]
