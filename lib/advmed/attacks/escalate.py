"""Escalation: attack the images a worst case still gets right with stronger attacks, until the
worst case stops moving or the list of stronger attacks is spent.

A robust accuracy is an upper bound that only stronger attacks can tighten. When an evaluation
is suspect (its masking diagnostics fire), labelling it "unevaluated" leaves the reader with no
number; the remedy the field recommends is to attack harder and report what the strongest attack
found (Carlini et al. 2019, "On evaluating adversarial robustness", sec. 4-5; Tramer et al. 2020,
"On adaptive attacks to adversarial example defenses", sec. 3: more iterations and restarts, a
different loss, BPDA and EOT where the gradient is broken or random, transfer, and a
gradient-free attack). :func:`escalate` does this for one budget:

- it starts from the per-image worst case found so far (``proba``: the scores of the lowest-margin
  adversarial image of every earlier attack, e.g. chapter 2's robust ensemble);
- each :class:`Stage` (an attack of the registry, its options, and the model it differentiates or
  queries) attacks only the images that worst case still classifies correctly (the survivors;
  AutoAttack's logic, Croce & Hein 2020), and the per-image worst case is updated with the scores
  of the **scored** model on the stage's images (:func:`advmed.attacks.worst_case`): an attack may
  run through a stand-in (BPDA, EOT, a transfer surrogate) but only the deployed model decides;
- the result records the path (per stage its name, the accuracy after it, the images it newly
  broke, what it cost) and, per image, which stage found its worst case (``found_by``).

Convergence rule (stated once, here). Every stage of the list runs (the list is the cap); the
evaluation has **converged** when none of the last ``window`` (2) stages broke at least one more
image (one image is 1/n of the accuracy: nothing smaller can move it), or when no image is left
to break (accuracy 0 cannot fall further). Otherwise the final accuracy is an **upper bound, not
converged**: the strongest number found, which an even stronger attack may still lower. The
stages are ordered from the cheapest to the most different (:func:`default_stages` ends with
transfer and Square, the checks against masked gradients), so the last two are the ones whose
silence means most.

Every eps is in [0, 1] pixel units (L-inf). Costs: only the survivors are attacked, and the
remaining stages are skipped (recorded with nothing attacked) once no survivor is left.

Example:
    >>> import numpy as np, torch
    >>> from advmed.attacks import default_stages, escalate
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(8, 3, 8, 8), torch.tensor([0, 1] * 4)
    >>> proba = torch.softmax(model(x), 1).detach().numpy()   # the worst case so far: clean
    >>> res = escalate(model, x, y, eps=4 / 255, proba=proba, seed=0, progress=False,
    ...                stages=default_stages(2, steps=5, square_queries=20))
    >>> res.accuracy <= float((proba.argmax(1) == y.numpy()).mean())
    True
    >>> res.status in ("converged", "upper bound, not converged"), len(res.path) == 5
    (True, True)
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..device import work_batch
from .checks import check_eps, check_images, check_labels, frozen_eval
from .robust import EnsembleMember, worst_case_choice

#: The escalation's multiplier of the evaluation's iterations (Tramer et al. 2020 sec. 3 "attack
#: with more iterations"; 4x is the margin by which AutoAttack's 100 steps exceed the 20-40
#: that flagged evaluations typically used).
ESCALATION_FACTOR = 4
#: Square's queries per escalated iteration: AutoAttack gives Square 5000 queries beside APGD's
#: 100 iterations (50x); 10x a 4x-escalated count is 4000 queries at 100 base steps, close to it,
#: and a forward costs about a third of a gradient step.
SQUARE_QUERIES_PER_STEP = 10
#: Square's initial window fraction against defended models (AutoAttack's; the paper's 0.05 is
#: for undefended ones): large windows first, which a short budget needs.
SQUARE_P_INIT = 0.8
#: Stages that must break nothing for the evaluation to have converged.
CONVERGENCE_WINDOW = 2
#: What :attr:`Escalation.status` says.
CONVERGED, NOT_CONVERGED = "converged", "upper bound, not converged"
STATUSES = (CONVERGED, NOT_CONVERGED)
#: ``found_by`` of an image whose worst case is the one :func:`escalate` started from.
PRIOR = "worst case so far"


@dataclass(frozen=True)
class Stage:
    """One stronger attack of an escalation.

    Attributes:
        name: how the path and tables show it (``"APGD-margin 400x2"``); unique within a list.
        attack: a registry name (:func:`~advmed.attacks.get_attack`), e.g. ``"apgd"``, ``"square"``.
        kwargs: the attack's options (``steps``, ``restarts``, ``loss``, ``queries``, ...);
            ``eps``, ``seed``, ``batch_size`` and ``progress`` are set by :func:`escalate`.
        source: the name, in ``escalate(..., sources=)``, of the model the attack differentiates or
            queries (a BPDA view, an EOT model, a transfer surrogate); None: the scored model.
    """

    name: str
    attack: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    source: Optional[str] = None

    def member(self) -> EnsembleMember:
        """The same attack as an ensemble member (one way to check and run an attack)."""
        return EnsembleMember(self.name, self.attack, dict(self.kwargs))


@dataclass(frozen=True)
class StageRun:
    """What one stage did: the survivors it attacked, those it newly broke, the accuracy after it
    (over all ``n`` images) and its seconds (attack and scoring)."""

    name: str
    attack: str
    source: str
    attacked: int
    broken: int
    accuracy: float
    seconds: float


@dataclass(frozen=True)
class Escalation:
    """The worst case after escalation at one budget.

    Attributes:
        eps: the budget, [0, 1] pixel units (L-inf).
        accuracy_before: the accuracy of the worst case it started from.
        proba: ``(N, K)`` float64 softmax scores of the scored model on each image's worst case.
        found_by: ``(N,)`` the stage that found each image's worst case (lowest true-class
            margin), or :data:`PRIOR` where the starting worst case still stands.
        x_adv: ``(N, C, H, W)`` the stage's image where a stage found the worst case, ``x`` where
            the starting worst case stands (its images were not given).
        path: one :class:`StageRun` per stage, in order (skipped stages: nothing attacked).
        converged: the convergence rule of the module docstring; ``window`` its number of stages.
    """

    eps: float
    accuracy_before: float
    proba: np.ndarray = field(repr=False)
    found_by: np.ndarray = field(repr=False)
    x_adv: torch.Tensor = field(repr=False)
    path: tuple[StageRun, ...]
    converged: bool
    window: int = CONVERGENCE_WINDOW

    @property
    def accuracy(self) -> float:
        """The final accuracy (the last stage's; the starting one when no stage ran)."""
        return self.path[-1].accuracy if self.path else self.accuracy_before

    @property
    def newly_broken(self) -> int:
        return sum(r.broken for r in self.path)

    @property
    def status(self) -> str:
        """:data:`CONVERGED` or :data:`NOT_CONVERGED` (an upper bound, the tightest found)."""
        return CONVERGED if self.converged else NOT_CONVERGED

    def to_frame(self, start: str = PRIOR) -> pd.DataFrame:
        """The path: a first row ``start`` (the worst case it started from), then one per stage:
        ``eps, eps_255, stage, attack, source, attacked, newly_broken, accuracy, seconds,
        converged`` (the budget's verdict on every row)."""
        rows = [{"stage": start, "attack": "", "source": "", "attacked": 0, "newly_broken": 0,
                 "accuracy": self.accuracy_before, "seconds": 0.0}]
        rows += [{"stage": r.name, "attack": r.attack, "source": r.source, "attacked": r.attacked,
                  "newly_broken": r.broken, "accuracy": r.accuracy, "seconds": r.seconds} for r in self.path]
        frame = pd.DataFrame(rows)
        frame.insert(0, "eps_255", self.eps * 255)
        frame.insert(0, "eps", self.eps)
        return frame.assign(converged=self.converged)


# --------------------------------------------------------------------------- the stages
def _positive(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def default_stages(num_classes: int, *, steps: int, restarts: int = 2, pgd_restarts: Optional[int] = None,
                   factor: int = ESCALATION_FACTOR, square_queries: Optional[int] = None,
                   gradient_source: Optional[str] = None, transfer_sources: Sequence[str] = ()) -> tuple[Stage, ...]:
    """The escalation of an evaluation that ran ``steps`` iterations (Tramer et al. 2020 sec. 3;
    Croce & Hein 2020), ordered from the cheapest to the most different:

    1. FGSM (one step: the diagnostics' single-step check, which beats iterative attacks on
       some masked models, Carlini et al. 2019 sec. 5);
    2. PGD-CE, ``factor x steps`` iterations, ``pgd_restarts`` random restarts (Madry et al. 2018);
    3. APGD-CE, ``factor x steps`` iterations, ``restarts`` restarts (Croce & Hein 2020);
    4. APGD with the CW margin loss, the same budget (a saturated softmax zeroes the CE
       gradient, not the margin's); with >= 4 classes also APGD-T (targeted DLR, AutoAttack's
       second member);
    5. per ``transfer_sources`` name, PGD-CE crafted on that model without early stopping (an
       image stopped just past the source's boundary transfers poorly): the undefended model,
       a differentiable stand-in, EOT with more draws;
    6. Square (Andriushchenko et al. 2020), gradient-free, on the scored model itself:
       ``square_queries`` queries (default :data:`SQUARE_QUERIES_PER_STEP` x the escalated
       iterations), AutoAttack's ``p_init`` 0.8.

    Args:
        num_classes: the model's number of logits.
        steps: the iterations of the evaluation being escalated (>= 1).
        restarts: random restarts of the APGD stages (>= 1; "several": 2 by default).
        pgd_restarts: PGD's (None: ``restarts``).
        factor: the multiplier of ``steps`` (>= 1).
        gradient_source: the ``sources`` name of the model the gradient stages differentiate
            (a BPDA view; None: the scored model).
        transfer_sources: ``sources`` names of models to transfer PGD from.
    """
    _positive(num_classes, "num_classes", 2)
    n_steps = _positive(factor, "factor") * _positive(steps, "steps")
    r = _positive(restarts, "restarts")
    pr = r if pgd_restarts is None else _positive(pgd_restarts, "pgd_restarts")
    queries = (SQUARE_QUERIES_PER_STEP * n_steps if square_queries is None
               else _positive(square_queries, "square_queries", 2))
    g = gradient_source
    stages = [Stage("FGSM", "fgsm", {}, g),
              Stage(f"PGD-CE {n_steps}x{pr}", "pgd", {"steps": n_steps, "restarts": pr}, g),
              Stage(f"APGD-CE {n_steps}x{r}", "apgd", {"steps": n_steps, "restarts": r, "loss": "ce"}, g),
              Stage(f"APGD-margin {n_steps}x{r}", "apgd", {"steps": n_steps, "restarts": r, "loss": "margin"}, g)]
    if num_classes >= 4:
        stages.append(Stage(f"APGD-T {n_steps}x{r}", "apgd",
                            {"steps": n_steps, "restarts": r, "loss": "dlr-targeted",
                             "n_target_classes": min(9, int(num_classes) - 1)}, g))
    stages += [Stage(f"transfer PGD from {s}", "pgd", {"steps": n_steps, "restarts": 1, "early_stop": False}, s)
               for s in transfer_sources]
    stages.append(Stage(f"Square {queries}q", "square", {"queries": queries, "p_init": SQUARE_P_INIT}))
    return tuple(stages)


# --------------------------------------------------------------------------- checks
def _check_stages(stages: Sequence[Stage], sources: Mapping[str, nn.Module], prior: str) -> tuple[Stage, ...]:
    stages = tuple(stages) if not isinstance(stages, Stage) else (stages,)
    if not stages or not all(isinstance(s, Stage) for s in stages):
        raise ValueError("stages must be a non-empty sequence of Stage (see default_stages): escalation "
                         "with no stronger attack would report the starting worst case as converged")
    names = [s.name for s in stages]
    if len(set(names)) != len(names) or prior in names or "" in names:
        raise ValueError(f"stage names must be unique, non-empty and not {prior!r}, got {names}")
    unknown = sorted({s.source for s in stages if s.source is not None} - set(sources))
    if unknown:
        raise ValueError(f"stage source(s) {', '.join(unknown)} not in sources; valid: "
                         f"{', '.join(sources) or '(none given)'} (None: the scored model)")
    return stages


def _check_proba(proba: Any, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"proba must be the (N, K) scores of the worst case so far, one row per image of x "
                         f"(N={n}), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("proba has NaN or infinite scores")
    return p.copy()


def _check_arguments(model, x, y, eps, proba, stages, sources, seed, window, prior):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module returning logits, got {type(model).__name__}")
    check_images(x)
    check_labels(y, x)
    if x.shape[0] == 0:
        raise ValueError("x holds no images; escalation needs at least one")
    eps = check_eps(eps)
    if eps == 0:
        raise ValueError("eps must be > 0 in [0, 1] pixel units (e.g. 2/255): at eps 0 there is nothing to escalate")
    sources = dict(sources or {})
    bad = [k for k, m in sources.items() if not isinstance(m, nn.Module)]
    if bad:
        raise TypeError(f"sources must map names to nn.Modules returning logits; not modules: {', '.join(bad)}")
    stages = _check_stages(stages, sources, prior)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (the stages' random starts), got {seed!r}")
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"window must be an integer >= 1 (stages that must break nothing), got {window!r}")
    return eps, _check_proba(proba, x.shape[0]), stages, sources


# --------------------------------------------------------------------------- the run
@torch.no_grad()
def _scores(model: nn.Module, x: torch.Tensor, batch_size: Optional[int]) -> np.ndarray:
    """float64 softmax scores (the precision of :func:`advmed.models.predict_proba`)."""
    bs = work_batch(batch_size, x)
    return torch.cat([torch.softmax(model(x[s:s + bs]).double(), 1).cpu() for s in range(0, x.shape[0], bs)]).numpy()


def converged(path: Sequence[StageRun], survivors: int, window: int = CONVERGENCE_WINDOW) -> bool:
    """The convergence rule: no survivor left, or none of the last ``window`` stages broke an image."""
    return survivors == 0 or all(r.broken == 0 for r in list(path)[-int(window):])


def _run_stage(stage, attacker, model, x, y, eps, seed, batch_size):
    """The stage's images of the survivors ``x``, kept inside the eps-ball and [0, 1] whatever the
    stage does (the worst case is a claim about that ball), and the scored model's scores."""
    x_adv = stage.member().run(attacker, x, y, eps=eps, norm="linf", seed=seed, batch_size=batch_size).detach()
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)
    return x_adv, _scores(model, x_adv, batch_size)


def escalate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, proba: Any,
             stages: Sequence[Stage], seed: int = 0, sources: Optional[Mapping[str, nn.Module]] = None,
             window: int = CONVERGENCE_WINDOW, batch_size: Optional[int] = None, prior: str = PRIOR,
             progress: bool = True) -> Escalation:
    """Attack the survivors of a worst case with stronger and stronger stages (module docstring).

    Args:
        model: the scored model (the defense as deployed), returning logits; every decision and
            every score is its own. Run in eval mode, parameter gradients off, left as found.
        x: float images ``(N, C, H, W)`` in [0, 1], on the models' device; ``y``: labels ``(N,)``.
        eps: the L-inf budget, [0, 1] pixel units (> 0).
        proba: ``(N, K)`` softmax scores of the worst case found so far at ``eps`` (per image, the
            lowest-margin adversarial image of every earlier attack; the clean scores if none).
        stages: the stronger attacks, in order (:func:`default_stages`); the list is the cap.
        seed: random starts; stage ``i`` gets ``seed + 1 + i``, so no stage repeats the random
            starts an earlier evaluation drew with ``seed``.
        sources: name -> model a stage attacks instead of ``model`` (``Stage.source``): a BPDA
            view, an EOT model, a transfer surrogate. Their modes are restored too.
        window: stages that must break nothing for :attr:`Escalation.converged`.
        batch_size: chunk size of the attacks and the scoring (None: all at once, on a CPU cache-sized chunks).
        prior: ``found_by`` of images whose starting worst case stands.
        progress: a tqdm bar over the stages.

    Returns:
        An :class:`Escalation`: ``proba``, ``found_by``, ``x_adv``, ``path``, ``converged``, ``status``.

    Raises:
        ValueError, TypeError: bad input (eps <= 0 or above 1, a ``proba`` of the wrong shape or
            number of classes, no stages, duplicate names, an unknown source), before any attack.
    """
    eps, current, stages, sources = _check_arguments(model, x, y, eps, proba, stages, sources, seed, window, prior)
    x, y = x.detach(), y.detach().to(device=x.device, dtype=torch.int64)
    y_np = y.cpu().numpy()
    with contextlib.ExitStack() as stack:
        for m in (model, *sources.values()):
            stack.enter_context(frozen_eval(m))
        with torch.no_grad():
            k = int(model(x[:1]).shape[1])
        if current.shape[1] != k:
            raise ValueError(f"proba has {current.shape[1]} classes, the model {k}")
        for s in stages:
            s.member().check(k)
        n = x.shape[0]
        found_by = np.full(n, prior, dtype=object)
        x_adv = x.clone()
        before = float((current.argmax(1) == y_np).mean())
        path: list[StageRun] = []
        from tqdm.auto import tqdm

        for i, stage in enumerate(tqdm(stages, desc=f"escalate eps {eps * 255:g}/255", unit="stage",
                                       disable=not progress)):
            path.append(_stage_step(stage, i, model, sources, x, y, y_np, current, found_by, x_adv, eps, seed,
                                    batch_size))
    survivors = int((current.argmax(1) == y_np).sum())
    return Escalation(eps=eps, accuracy_before=before, proba=current, found_by=found_by, x_adv=x_adv,
                      path=tuple(path), converged=converged(path, survivors, window), window=int(window))


def _stage_step(stage, i, model, sources, x, y, y_np, current, found_by, x_adv, eps, seed, batch_size) -> StageRun:
    """Run one stage on the survivors and fold its images into the worst case (in place)."""
    alive = current.argmax(1) == y_np
    idx = np.flatnonzero(alive)
    source = "scored model" if stage.source is None else stage.source
    if idx.size == 0:  # nothing left to break: skipped, recorded as such (the accuracy is 0)
        return StageRun(stage.name, stage.attack, source, 0, 0, float(alive.mean()), 0.0)
    t0 = time.perf_counter()
    attacker = model if stage.source is None else sources[stage.source]
    sel = torch.as_tensor(idx, device=x.device)
    adv, scores = _run_stage(stage, attacker, model, x[sel], y[sel], eps, seed + 1 + i, batch_size)
    candidate = current.copy()
    candidate[idx] = scores
    choice, _ = worst_case_choice([current[None], candidate[None]], y_np)  # the lower margin, per image
    take = choice[0] == 1
    current[take] = candidate[take]
    found_by[take] = stage.name
    taken = torch.as_tensor(take[idx], device=x.device)
    x_adv[sel[taken]] = adv[taken]
    broken = int((alive & (current.argmax(1) != y_np)).sum())
    return StageRun(stage.name, stage.attack, source, int(idx.size), broken,
                    float((current.argmax(1) == y_np).mean()), time.perf_counter() - t0)


__all__ = ["CONVERGED", "CONVERGENCE_WINDOW", "ESCALATION_FACTOR", "NOT_CONVERGED", "PRIOR", "SQUARE_P_INIT",
           "SQUARE_QUERIES_PER_STEP", "STATUSES", "Escalation", "Stage", "StageRun", "converged", "default_stages",
           "escalate"]
