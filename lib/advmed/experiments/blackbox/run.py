"""Black-box attacks at the scale of an experiment (chapter 5).

Three attackers who never see the target's weights, each on every task the profile gives it:

- **Transfer** (:func:`transfer_results`): adversarial images crafted with a white-box
  attack on a *surrogate* (:mod:`.surrogates`: the profile's other models, the same
  architecture with another seed, the same architecture on training data the target never
  saw, and an ensemble of all surrogates but the target, logits averaged: Liu et al., ICLR
  2017) and fed to the target. The attacks run their full iterations (no early stopping:
  an image stopped just past the surrogate's boundary transfers badly).
  :func:`finlayson_blackbox` repeats Finlayson et al.'s black-box setting (targeted PGD to
  the other class at their eps and steps, on the separately trained same-architecture model);
  :func:`adversarialmed_blackbox` transfers AdversarialMed's four attacks at their eps, step
  and iterations from the two trained surrogates, beside the same attacks in white box.
- **Score-based and label-only queries** (:func:`query_results`): the Square Attack
  (Andriushchenko et al., ECCV 2020; L-inf at the transfer budget), SimBA-DCT (Guo et al., ICML
  2019) and, from predicted labels alone, HopSkipJump (Chen et al., S&P 2020; success once its
  boundary point is within the L-inf budget), through
  :class:`advmed.attacks.blackbox.ScoreOracle` (probabilities only, every forward pass
  counted). Each image stops at its first success, so one run at the largest budget gives
  the whole success-against-queries curve.
- **A universal perturbation from queries alone** (:func:`usimba_results`): U-SimBA (Koga &
  Takemoto, Algorithms 2022) at chapter 3's zeta bounds, non-targeted and targeted, built on
  training images, evaluated on held-out ones beside a random control of the same norm.

:func:`whitebox_check` holds every L-inf black-box result against chapter 2's white-box
worst case on the same images (:func:`advmed.experiments.whitebox.run.robust_results`):
black-box attacks are weaker by construction, so a black-box success where the white-box
ensemble failed is a red flag of gradient masking (Carlini et al. 2019), and the flagged
models' masking diagnostics (chapter 2) are returned beside it.

Gray tasks (three equal channels) are attacked in one channel (:func:`advmed.models.gray_view`).
Every result is memoised (:func:`advmed.cache.memo`) under the checkpoint keys of the models
involved, a digest of the images and the settings; seconds are those of the first computation.
Every eps is in [0, 1] pixel units (``eps_255`` = eps x 255).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ...attacks import get_attack
from ...attacks.blackbox import hopskipjump, simba, square, usimba
from ...attacks.universal import predict, random_control
from ...cache import memo
from ...data import load_task
from ...data.splits import stratified_subset
from ...device import module_device
from ...metrics import attack_success, classification_metrics
from ...models import as_rgb, gray_view, predict_proba
from .. import references
from ..kernel import (
    ATTACKS,
    RunKey,
    adversarialmed_eps,
    adversarialmed_results,
    diagnostics_results,
    disease_ids,
    finlayson_eps,
    finlayson_results,
    images_key,
    metric_row,
    robust_results,
    selection_key,
    study_steps,
    subset,
    test_images,
)
from ..kernel.surrogates import SurrogateSet, primary_key
from ..profiles import Profile
from ..zoo import ModelKey, test_set

#: Bump when a change here changes what a memoised result holds.
BLACKBOX_VERSION = 1
#: The query attacks bounded by the chapter's L-inf budget (SimBA-DCT takes L2 steps, unbounded).
LINF_QUERY_ATTACKS = ("square", "hopskipjump")
#: Metrics of a transfer cell (each with ``_lo`` / ``_hi`` bootstrap bounds).
METRICS = ("accuracy", "auc")
#: The label of the ensemble source in the transfer tables.
ENSEMBLE = "ensemble of the others"


# --------------------------------------------------------------------------- images
class AttackImages(NamedTuple):
    """Test images a black-box attack runs on, and their rows in chapter 2's test images
    (:func:`~advmed.experiments.whitebox.run.test_images`), where their white-box worst case is."""

    images: Any
    positions: np.ndarray


def attack_images(task: str, profile: Profile, n: int | None = None) -> AttackImages:
    """A stratified subset (profile seed) of ``n`` (default ``blackbox.n_images``) of chapter
    2's test images of ``task``."""
    base = test_images(task, profile)
    sub = subset(base, profile.blackbox.n_images if n is None else n, profile.seed)
    return AttackImages(sub.images, sub.positions)


def query_images(task: str, profile: Profile) -> AttackImages:
    """``blackbox.query_images`` of the transfer images (stratified, profile seed)."""
    ai = attack_images(task, profile)
    sub = stratified_subset(ai.images.labels.numpy(), int(profile.blackbox.query_images), profile.seed)
    return AttackImages(ai.images.subset(sub), ai.positions[sub])


def _pixels(images: Any, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    dev = module_device(model)
    return images.float().to(dev), torch.as_tensor(images.labels).long().to(dev)


# --------------------------------------------------------------------------- crafting
class LogitEnsemble(nn.Module):
    """The mean of the members' logits: one model to attack for an ensemble of surrogates
    (Liu, Chen, Liu & Song, ICLR 2017; Dong et al., CVPR 2018, fuse logits the same way)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def craft(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, attack: str, eps: float, steps: int,
          seed: int, step_size: float | None = None, targeted: bool = False,
          target: Any = None) -> tuple[torch.Tensor, float]:
    """Adversarial images crafted on one surrogate or the logit ensemble of several (gray
    images in one channel), full iterations; returns ``(x_adv, seconds)``."""
    model = members[0] if len(members) == 1 else LogitEnsemble(members)
    m_att, x_att, _ = gray_view(model, x)
    t0 = time.perf_counter()
    x_adv = get_attack(attack).call(m_att, x_att, y, eps=eps, steps=steps, step_size=step_size, seed=seed,
                                    targeted=targeted, target=target, early_stop=False).detach()
    return as_rgb(x_adv, x.shape[1]), time.perf_counter() - t0


def _cell(y: np.ndarray, proba: np.ndarray, clean: np.ndarray, *, n_boot: int, seed: int, tm: Any,
          target: np.ndarray | None = None) -> dict[str, float]:
    """The kernel's metric row (:func:`~advmed.experiments.kernel.metric_row`) with accuracy
    and AUC: the flip rate among the target's clean-correct images, the missed-diagnosis and
    false-alarm rates of the target model ``tm``'s task and, for a targeted attack,
    ``target_rate``, the share of all images classified as the target."""
    return metric_row(y, proba, clean, n_boot=n_boot, seed=seed, target=target, metrics=METRICS,
                      disease=disease_ids(tm))


# --------------------------------------------------------------------------- transfer
class Source(NamedTuple):
    """Where adversarial images come from: a label, its kind and the models attacked."""

    label: str
    kind: str  # zoo, seed, disjoint, ensemble
    models: tuple[Any, ...]  # TrainedModels

    @property
    def keys(self) -> list[str]:
        return [tm.config.key() for tm in self.models]


@dataclass
class TransferResults:
    """The transfer experiment of every task.

    Attributes:
        rows: one row per (task, source, attack, target): ``source``, ``source_kind``,
            ``attack``, ``target`` (model label), ``white_box`` (source is the target),
            accuracy / auc with ``_lo`` / ``_hi``, ``clean_accuracy``, ``clean_auc``,
            ``flip_rate``, ``seconds`` (crafting), ``n``, ``eps``, ``eps_255``, ``steps``.
        success: per (task, source, attack, target) row index, each image's misclassification
            (0/1) by the target, in the order of ``images[task]``.
        images: the attacked images of each task.
        surrogates: the trained surrogates of each task.
    """

    rows: pd.DataFrame
    success: dict[int, np.ndarray]
    images: dict[str, AttackImages]
    surrogates: dict[str, SurrogateSet]


def task_sources(zoo: Mapping[tuple, Any], sur: SurrogateSet, task: str) -> list[Source]:
    """The single surrogates of a task: its zoo models (each a surrogate of the others) and
    the trained surrogates."""
    out = [Source(ModelKey(*k).label, "zoo", (tm,)) for k, tm in zoo.items() if k[0] == task]
    out += [Source(s.label, s.kind, (s.model,)) for s in sur.trained()]
    return out


def _transfer_memo(source: Source, targets: Mapping[str, Any], images: Any, *, attack: str,
                   eps: float, steps: int, seed: int, targeted: bool = False,
                   step: float | None = None) -> dict[str, Any]:
    """Craft once on ``source`` (untargeted, or targeted to the other class with ``step``),
    score every target (memoised): the crafting seconds and probabilities per target."""
    key = {"v": BLACKBOX_VERSION, "sources": source.keys, "targets": {k: tm.config.key() for k, tm in targets.items()},
           "images": images_key(images.images, images.labels), "attack": attack, "eps": float(eps),
           "steps": int(steps), "seed": int(seed)}
    if targeted:
        key.update(targeted="other", step=float(step))
    elif step is not None:  # a study's step (None: the attack's default, as the earlier entries)
        key.update(step=float(step))

    def compute() -> dict[str, Any]:
        x, y = _pixels(images, source.models[0].model)
        x_adv, seconds = craft([tm.model for tm in source.models], x, y, attack=attack, eps=eps, steps=steps,
                               seed=seed, step_size=step, targeted=targeted, target="other" if targeted else None)
        return {"seconds": seconds, "proba": {k: predict_proba(tm.model, x_adv) for k, tm in targets.items()}}

    return memo("blackbox_transfer", key, compute)

def _clean(targets: Mapping[str, Any], images: Any) -> dict[str, np.ndarray]:
    return {k: predict_proba(tm.model, images.images) for k, tm in targets.items()}


def transfer_results(profile: Profile, zoo: Mapping[tuple, Any], surrogates: Mapping[str, SurrogateSet], *,
                     progress: bool = True) -> TransferResults:
    """Transfer matrices of every task of ``blackbox.transfer_tasks`` (default all): each
    single source x attack crafted once and scored on every target model of the task, plus,
    per target, the ensemble of every other source (``ensemble_attack``)."""
    s = profile.blackbox
    eps = float(s.eps_255) / 255
    tasks = [t for t in (s.transfer_tasks or profile.tasks) if t in surrogates]
    rows, success, sets = [], {}, {}
    for task in tqdm(tasks, desc="transfer", unit="task", disable=not progress):
        ai = sets[task] = attack_images(task, profile)
        y = ai.images.labels.numpy()
        keys = {ModelKey(*k).label: ModelKey(*k) for k in zoo if k[0] == task}
        targets = {label: zoo[k] for label, k in keys.items()}
        clean = _clean(targets, ai.images)
        sources = task_sources(zoo, surrogates[task], task)
        jobs = [(src, a, targets) for src in sources for a in s.attacks]
        for t, tm in targets.items():
            members = tuple(m for o in sources if o.label != t for m in o.models)
            if members:
                jobs.append((Source(ENSEMBLE, "ensemble", members), s.ensemble_attack, {t: tm}))
        for src, attack, tgts in jobs:
            out = _transfer_memo(src, tgts, ai.images, attack=attack, eps=eps, steps=s.steps, seed=profile.seed)
            for t, proba in out["proba"].items():
                c = clean[t]
                cm = classification_metrics(y, c, n_boot=0)
                row = {"task": task, "source": src.label, "source_kind": src.kind, "attack": attack, "target": t,
                       "target_arch": keys[t].arch, "target_init": keys[t].init,
                       "white_box": src.label == t, "n": len(y), "eps": eps, "eps_255": float(s.eps_255),
                       "steps": int(s.steps), "seconds": float(out["seconds"]),
                       "clean_accuracy": cm["accuracy"].value, "clean_auc": cm["auc"].value,
                       **_cell(y, proba, c.argmax(1), n_boot=profile.eval.n_boot, seed=profile.seed,
                               tm=targets[t])}
                success[len(rows)] = (proba.argmax(1) != y).astype(np.float64)
                rows.append(row)
    return TransferResults(pd.DataFrame(rows), success, sets, dict(surrogates))


# --------------------------------------------------------------------------- Finlayson's black box
def finlayson_blackbox(profile: Profile, zoo: Mapping[tuple, Any], surrogates: Mapping[str, SurrogateSet], *,
                       progress: bool = True) -> pd.DataFrame:
    """Targeted PGD to the other class at Finlayson et al.'s eps, step and iterations
    (:func:`~advmed.experiments.whitebox.run.finlayson_eps`), for each of their tasks the profile
    has: crafted on the target's seed surrogate (the same architecture trained separately) and
    on its disjoint-data surrogate, scored on the target; beside the same attack in white box (chapter 2's
    :func:`~advmed.experiments.whitebox.run.finlayson_results`, its test images)."""
    fe = finlayson_eps()
    theirs = {r["task"] for r in references.FINLAYSON_PGD["rows"]}
    rows = []
    for task, sur in tqdm(list(surrogates.items()), desc="Finlayson black box", disable=not progress):
        tm = zoo[sur.target]
        if task not in theirs or len(tm.classes) != 2:
            continue
        ai = attack_images(task, profile)
        y = ai.images.labels.numpy()
        clean = predict_proba(tm.model, ai.images.images)
        white = finlayson_results(profile, {sur.target: tm}, progress=False)
        white = white[white["attack"] == "pgd"].iloc[0]
        for src in sur.trained():
            out = _transfer_memo(Source(src.label, src.kind, (src.model,)), {"target": tm}, ai.images, attack="pgd",
                                 eps=fe["eps"], steps=fe["steps"], seed=profile.seed, **_targeted(fe))
            rows.append({"task": task, "target": sur.target.label, "surrogate": src.label, "surrogate_kind": src.kind,
                         "eps_study": fe["eps_study"], "eps": fe["eps"], "eps_255": fe["eps_255"],
                         "steps": fe["steps"], "n": len(y), "seconds": float(out["seconds"]),
                         "clean_accuracy": float((clean.argmax(1) == y).mean()),
                         "white_accuracy": float(white["accuracy"]), "white_auc": float(white["auc"]),
                         "white_target_rate": float(white["target_rate"]), "white_n": int(white["n"]),
                         **_cell(y, out["proba"]["target"], clean.argmax(1), n_boot=profile.eval.n_boot,
                                 seed=profile.seed, tm=tm, target=1 - y)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- AdversarialMed's black box
def adversarialmed_blackbox(profile: Profile, zoo: Mapping[tuple, Any], surrogates: Mapping[str, SurrogateSet], *,
                            progress: bool = True) -> pd.DataFrame:
    """AdversarialMed's four attacks (FGSM, I-FGSM, PGD, MI-FGSM; untargeted) at their eps,
    step and iterations (:func:`~advmed.experiments.kernel.adversarialmed_eps`) crafted on each
    trained surrogate of their task's target (the same architecture with another seed, and on
    training images the target never saw) and scored on the target, beside the same attack on
    the target itself (chapter 2's :func:`~advmed.experiments.kernel.adversarialmed_results`,
    its test images). Their text studies "both white- and black-box" attacks but reports
    white-box figures only. One row per (surrogate, attack); empty when the profile lacks the
    task."""
    task = references.ADVERSARIALMED_ATTACKS["task"]
    sur = surrogates.get(task)
    if sur is None:
        return pd.DataFrame()
    st = adversarialmed_eps()
    tm = zoo[sur.target]
    ai = attack_images(task, profile)
    y = ai.images.labels.numpy()
    clean = predict_proba(tm.model, ai.images.images)
    white = adversarialmed_results(profile, {sur.target: tm}, progress=False).set_index("attack")
    rows = []
    jobs = [(src, a) for src in sur.trained() for a in ATTACKS]
    for src, attack in tqdm(jobs, desc="AdversarialMed black box", disable=not progress):
        steps = 1 if attack == "fgsm" else study_steps(st["steps"], profile)
        step = st["eps"] if attack == "fgsm" else st["step"]
        out = _transfer_memo(Source(src.label, src.kind, (src.model,)), {"target": tm}, ai.images, attack=attack,
                             eps=st["eps"], steps=steps, seed=profile.seed, step=step)
        w = white.loc[attack]
        rows.append({"task": task, "target": sur.target.label, "surrogate": src.label, "surrogate_kind": src.kind,
                     "attack": attack, "eps": st["eps"], "eps_255": st["eps_255"], "steps": steps, "step": step,
                     "n": len(y), "seconds": float(out["seconds"]),
                     "clean_accuracy": float((clean.argmax(1) == y).mean()),
                     "white_accuracy": float(w["accuracy"]), "white_auc": float(w["auc"]), "white_n": int(w["n"]),
                     **_cell(y, out["proba"]["target"], clean.argmax(1), n_boot=profile.eval.n_boot,
                             seed=profile.seed, tm=tm)})
    return pd.DataFrame(rows)


def _targeted(fe: Mapping[str, Any]) -> dict[str, Any]:
    return {"targeted": True, "step": float(fe["step"])}


# --------------------------------------------------------------------------- score-based queries
@dataclass
class QueryRun:
    """One query attack on one task's target, per image (in the order of ``positions``).

    ``queries``: forward passes spent (the clean one included); ``success``: misclassified at
    the end; ``clean_success``: already misclassified at the clean query (never attacked);
    ``l2`` / ``linf``: perturbation sizes ([0, 1] pixel units, over the attacked channels);
    ``budget``: the per-image query budget; ``eps``: Square's L-inf bound or SimBA's step.
    """

    task: str
    model: ModelKey
    attack: str
    norm: str
    eps: float
    budget: int
    queries: np.ndarray
    success: np.ndarray
    clean_success: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    seconds: float
    positions: np.ndarray
    y: np.ndarray

    @property
    def attacked(self) -> np.ndarray:
        """Images the attack worked on (correctly classified at the clean query)."""
        return ~self.clean_success

    def success_at(self, queries: int) -> float:
        """Share of the attacked images fooled within ``queries`` forward passes."""
        a = self.attacked
        return float((self.success[a] & (self.queries[a] <= queries)).mean()) if a.any() else float("nan")

    def median_queries(self) -> float:
        """Median queries of the attacked images that were fooled (NaN if none)."""
        hit = self.attacked & self.success
        return float(np.median(self.queries[hit])) if hit.any() else float("nan")


def _query_attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, budget: int,
                  seed: int):
    if name == "square":
        return square(model, x, y, eps=eps, norm="linf", queries=budget, seed=seed, progress=False)
    if name == "hopskipjump":
        return hopskipjump(model, x, y, eps=eps, norm="linf", queries=budget, seed=seed, progress=False)
    return simba(model, x, y, eps=eps, max_queries=budget, seed=seed, progress=False)


def query_run(task: str, key: ModelKey, tm: Any, ai: AttackImages, *, attack: str, eps: float, budget: int,
              seed: int) -> QueryRun:
    """One Square / SimBA-DCT / HopSkipJump run on ``ai``'s images against ``tm`` (memoised)."""
    mkey = {"v": BLACKBOX_VERSION, "model": tm.config.key(), "images": images_key(ai.images.images, ai.images.labels),
            "attack": attack, "eps": float(eps), "budget": int(budget), "seed": int(seed)}

    def compute() -> dict[str, Any]:
        x, y = _pixels(ai.images, tm.model)
        m_att, x_att, _ = gray_view(tm.model, x)
        r = _query_attack(attack, m_att, x_att, y, eps=eps, budget=budget, seed=seed)
        return {"queries": r.queries.cpu().numpy(), "success": r.success.cpu().numpy(),
                "clean_success": r.clean_success.cpu().numpy(), "l2": r.l2.cpu().numpy(),
                "linf": r.linf.cpu().numpy(), "seconds": float(r.seconds), "norm": r.norm}

    out = memo("blackbox_query", mkey, compute)
    return QueryRun(task=task, model=key, attack=attack, norm=out["norm"], eps=float(eps), budget=int(budget),
                    queries=np.asarray(out["queries"]), success=np.asarray(out["success"], dtype=bool),
                    clean_success=np.asarray(out["clean_success"], dtype=bool), l2=np.asarray(out["l2"]),
                    linf=np.asarray(out["linf"]), seconds=float(out["seconds"]), positions=ai.positions,
                    y=ai.images.labels.numpy())


def query_results(profile: Profile, zoo: Mapping[tuple, Any], *, progress: bool = True) -> list[QueryRun]:
    """Every query attack of ``blackbox.query_attacks`` on the target of every task of
    ``blackbox.query_budgets`` (with its budget), on ``blackbox.query_images`` images."""
    s = profile.blackbox
    jobs = [(t, a) for t in s.query_budgets if t in profile.tasks and any(k[0] == t for k in zoo)
            for a in s.query_attacks]
    out = []
    for task, attack in tqdm(jobs, desc="query attacks", unit="run", disable=not progress):
        key = primary_key(profile, zoo, task, s.model)
        eps = float(s.eps_255) / 255 if attack in LINF_QUERY_ATTACKS else float(s.simba_step)
        out.append(query_run(task, key, zoo[key], query_images(task, profile), attack=attack, eps=eps,
                             budget=int(s.query_budgets[task]), seed=profile.seed))
    return out


# --------------------------------------------------------------------------- U-SimBA
#: One U-SimBA perturbation: model, bound and target (None: non-targeted); the kernel's run key.
USimBAKey = RunKey


@dataclass
class USimBARun:
    """One U-SimBA perturbation and its predictions.

    ``delta``: (1, C, H, W) in [0, 1] pixel units (C = 1 for a gray task); ``summary``: the
    attack's :meth:`~advmed.attacks.blackbox.USimBAResult.summary` (queries, seconds,
    iterations in ``passes``); ``build_clean`` / ``build_adv``: predictions on the images it
    was built from (Koga & Takemoto's rate); ``clean`` / ``adv`` / ``random``: on held-out
    images, without it, with it, with a random perturbation of the same norm; ``y``: their labels.
    """

    delta: torch.Tensor
    summary: dict[str, Any]
    build_clean: np.ndarray
    build_adv: np.ndarray
    clean: np.ndarray
    adv: np.ndarray
    random: np.ndarray
    y: np.ndarray

    def rate(self, target: int | None, *, on: str = "eval", control: bool = False) -> float:
        """Fooling rate (``target`` None) or the kernel's targeted success rate (share of all
        images classified as the target), on the held-out (``"eval"``) or the ``"build"`` images."""
        clean, adv = (self.build_clean, self.build_adv) if on == "build" else (
            self.clean, self.random if control else self.adv)
        hit = attack_success(clean, adv, target=target, among="all")
        return float(hit.mean()) if hit.size else float("nan")


def usimba_sets(task: str, profile: Profile) -> tuple[Any, Any]:
    """The training images a U-SimBA perturbation is built from and the held-out test
    images it is evaluated on (seeded stratified subsets)."""
    s = profile.blackbox
    build = load_task(task, "train", size=profile.task_size(task), channels=3, limit=s.usimba_images,
                      seed=profile.seed, progress=False)
    return build, subset(test_set(task, profile, progress=False), s.usimba_eval, profile.seed).images


def usimba_run(tm: Any, build: Any, evalset: Any, *, norm: str, zeta: float, target: int | None, iterations: int,
               seed: int) -> USimBARun:
    """One U-SimBA perturbation of ``tm`` built on ``build``, evaluated on ``evalset`` (memoised)."""
    mkey = {"v": BLACKBOX_VERSION, "model": tm.config.key(), "build": selection_key(build),
            "eval": selection_key(evalset), "norm": norm, "zeta": float(zeta), "target": target,
            "iterations": int(iterations), "seed": int(seed)}

    def compute() -> dict[str, Any]:
        xb, _ = _pixels(build, tm.model)
        xe, _ = _pixels(evalset, tm.model)
        m_att, xb1, gray = gray_view(tm.model, xb)
        xe1 = xe[:, :1].contiguous() if gray else xe
        res = usimba(m_att, xb1, zeta=zeta, norm=norm, targeted=target is not None, target=target,
                     iterations=iterations, seed=seed, progress=False)
        rnd = random_control(res, seed=seed + 1)
        return {"delta": res.delta.cpu(), "summary": res.summary(), "build_clean": predict(m_att, xb1).cpu(),
                "build_adv": predict(m_att, xb1, res.delta).cpu(), "clean": predict(m_att, xe1).cpu(),
                "adv": predict(m_att, xe1, res.delta).cpu(), "random": predict(m_att, xe1, rnd).cpu()}

    out = memo("blackbox_usimba", mkey, compute)
    arr = {k: np.asarray(out[k]) for k in ("build_clean", "build_adv", "clean", "adv", "random")}
    return USimBARun(delta=out["delta"], summary=out["summary"], y=evalset.labels.numpy(), **arr)


def usimba_results(profile: Profile, zoo: Mapping[tuple, Any], *,
                   progress: bool = True) -> dict[USimBAKey, USimBARun]:
    """U-SimBA on the target of every task of ``blackbox.usimba_iterations``: every norm of
    ``blackbox.usimba_norms`` x chapter 3's zetas, non-targeted and (where chapter 3 builds
    targeted UAPs) targeted to each class."""
    s, u = profile.blackbox, profile.uap
    jobs = []
    for task in s.usimba_iterations:
        if task not in profile.tasks or not any(k[0] == task for k in zoo):
            continue
        key = primary_key(profile, zoo, task, s.model)
        for norm in s.usimba_norms:
            for zeta in u.zetas:
                targets = [None] + (list(range(len(zoo[key].classes))) if u.targets_at(float(zeta)) else [])
                jobs += [USimBAKey(*key, norm, float(zeta), t) for t in targets]
    sets: dict[str, tuple[Any, Any]] = {}
    out = {}
    for k in tqdm(jobs, desc="U-SimBA", unit="uap", disable=not progress):
        if k.task not in sets:
            sets[k.task] = usimba_sets(k.task, profile)
        build, evalset = sets[k.task]
        out[k] = usimba_run(zoo[ModelKey(k.task, k.arch, k.init)], build, evalset, norm=k.norm, zeta=k.zeta,
                            target=k.target, iterations=int(s.usimba_iterations[k.task]), seed=profile.seed)
    return out


# --------------------------------------------------------------------------- against the white box
@dataclass
class WhiteboxCheck:
    """Black-box results held against chapter 2's white-box worst case at the same budget.

    ``table``: one row per (task, target model, black-box attack) with the black-box accuracy,
    the white-box ensemble's robust accuracy on the same images at the smallest grid budget
    >= the black-box one (``wb_eps_255``), and ``beaten``: images the black-box attack fooled
    but the white-box ensemble did not (0 is what a sound evaluation gives); ``flagged``: the
    models with ``beaten > 0``; ``diagnostics``: chapter 2's masking diagnostics of those;
    ``costs``: the white-box ensemble's cost per model and member (chapter 2), over ``wb_images``
    test images in all (chapter 2's test images of every model involved).
    """

    table: pd.DataFrame
    flagged: list[ModelKey]
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    wb_images: int = 0


def _wb_broken(first_eps: np.ndarray, positions: np.ndarray, eps_255: float,
               grid: Sequence[float]) -> tuple[np.ndarray, float]:
    """Per image, broken by the white-box ensemble at the smallest grid budget >= eps_255."""
    above = [float(e) for e in sorted(grid) if float(e) >= eps_255 - 1e-9]
    if not above:
        return np.zeros(len(positions), dtype=bool), float("nan")
    wb_eps = above[0]
    return np.asarray(first_eps)[positions] <= wb_eps / 255 + 1e-12, wb_eps


def _check_rows(label: str, kind: str, key: ModelKey, fooled: np.ndarray, positions: np.ndarray, eps_255: float,
                first: np.ndarray, grid: Sequence[float]) -> dict[str, Any]:
    broken, wb_eps = _wb_broken(first, positions, eps_255, grid)
    return {"task": key.task, "arch": key.arch, "init": key.init, "model": key.label, "attack": label, "kind": kind,
            "eps_255": eps_255, "n": len(fooled), "blackbox_accuracy": float(1 - fooled.mean()), "wb_eps_255": wb_eps,
            "wb_robust_accuracy": float(1 - broken.mean()), "beaten": int((fooled.astype(bool) & ~broken).sum())}


def whitebox_check(profile: Profile, zoo: Mapping[tuple, Any], transfer: TransferResults,
                   queries: Sequence[QueryRun], *, progress: bool = True) -> WhiteboxCheck:
    """Every L-inf black-box attack (transfer from each source, Square) against chapter 2's
    white-box worst case on the same images; the flagged models' masking diagnostics."""
    grid = [float(e) for e in profile.whitebox.eps_255 if float(e) > 0]
    rows_t = transfer.rows
    involved = {ModelKey(t, a, i) for t, a, i in zip(rows_t.get("task", []), rows_t.get("target_arch", []),
                                                     rows_t.get("target_init", []))}
    involved |= {q.model for q in queries if q.norm == "linf"}
    robust = robust_results(profile, {k: tm for k, tm in zoo.items() if ModelKey(*k) in involved},
                               progress=progress)
    rows = []
    for i, r in rows_t.iterrows():
        if r["white_box"]:
            continue
        key = ModelKey(r["task"], r["target_arch"], r["target_init"])
        rows.append(_check_rows(f"{r['attack']} from {r['source']}", "transfer", key, transfer.success[i],
                                transfer.images[r["task"]].positions, float(r["eps_255"]), robust.first_eps[key],
                                grid))
    for q in queries:
        if q.norm == "linf":
            rows.append(_check_rows(q.attack, "query", q.model, q.success.astype(np.float64), q.positions,
                                    q.eps * 255, robust.first_eps[q.model], grid))
    table = pd.DataFrame(rows)
    flagged = sorted({ModelKey(r["task"], r["arch"], r["init"]) for r in rows if r["beaten"] > 0})
    diag = pd.DataFrame()
    if flagged:
        tasks = {k.task for k in flagged}
        diag = diagnostics_results(profile, {k: tm for k, tm in zoo.items() if k[0] in tasks}, progress=progress)
        diag = diag[[ModelKey(t, a, i) in flagged for t, a, i in zip(diag["task"], diag["arch"], diag["init"])]]
    return WhiteboxCheck(table=table, flagged=flagged, diagnostics=diag.reset_index(drop=True), costs=robust.costs,
                         wb_images=sum(len(f) for f in robust.first_eps.values()))


__all__ = ["AttackImages", "BLACKBOX_VERSION", "ENSEMBLE", "LogitEnsemble", "QueryRun", "Source", "TransferResults",
           "LINF_QUERY_ATTACKS", "USimBAKey", "USimBARun", "WhiteboxCheck", "adversarialmed_blackbox", "attack_images", "craft",
           "finlayson_blackbox", "query_images", "query_results", "query_run", "task_sources", "transfer_results", "usimba_results", "usimba_run",
           "usimba_sets", "whitebox_check"]
