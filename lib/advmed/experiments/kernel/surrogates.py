"""The attacker's own models: surrogates trained independently of the target (chapters 5, 6).

A black-box attacker has no access to the target's weights; a *transfer* attacker trains a
surrogate and attacks that instead (Papernot et al. 2017; Finlayson et al. 2019, whose
black-box attacks were crafted on a separately trained model). Two surrogates are trained
here for each task's target (``profile.blackbox.model``), through
:func:`advmed.train.get_trained_model` (so they live in the checkpoint cache like every
model of the book):

- ``seed``: the target's architecture and recipe with another seed (initialisation, batch
  order, augmentation and its own random training subset), ``surrogate_train`` applied;
- ``disjoint``: the same, trained on training images the target never saw: the target's
  ``max_train`` subset, and every image of its patients / lesions, are left out
  (``TrainConfig.exclude_train``, :func:`advmed.data.splits.disjoint_subset`). Where the
  target used the whole training split there is no such data, and the surrogate is absent
  with that reason (never faked with overlapping data).

The other architectures of the profile (the zoo's other models of the task) are surrogates
too: they were trained independently of each other, on the same training subset.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from ...data import load_task
from ...data.splits import disjoint_subset
from ...train import TrainConfig, get_trained_model
from ..profiles import ModelSpec, Profile
from ..zoo import ModelKey

#: The surrogate kinds trained here, in the order of the tables.
KINDS = ("seed", "disjoint")
KIND_LABELS = {"zoo": "another model of the profile", "seed": "same architecture, another seed",
               "disjoint": "same architecture, disjoint training data"}


class Surrogate(NamedTuple):
    """One surrogate of a task: ``kind`` (zoo, seed, disjoint), ``label`` (how tables name
    it), ``model`` (a ``TrainedModel``; None when it could not be trained) and ``note`` (how
    it was trained, or why it is missing)."""

    kind: str
    label: str
    model: Any
    note: str

    @property
    def available(self) -> bool:
        return self.model is not None


@dataclass
class SurrogateSet:
    """The surrogates trained for one task's target."""

    task: str
    target: ModelKey
    seed: Surrogate
    disjoint: Surrogate

    def trained(self) -> list[Surrogate]:
        """The surrogates that exist (the disjoint one may not)."""
        return [s for s in (self.seed, self.disjoint) if s.available]


def primary_key(profile: Profile, zoo: Mapping[tuple, Any], task: str, model: str) -> ModelKey:
    """The zoo entry ``model`` (``"arch:init"``) of ``task``, or the task's first model."""
    spec = ModelSpec.parse(model)
    keys = [ModelKey(*k) for k in zoo if k[0] == task]
    if not keys:
        raise KeyError(f"no model of task {task!r} in the zoo; its tasks: {sorted({k[0] for k in zoo})}")
    wanted = ModelKey(task, spec.arch, spec.init)
    return wanted if wanted in keys else keys[0]


def train_split_counts(cfg: TrainConfig) -> tuple[Any, Any]:
    """Labels and groups of the whole training split of ``cfg``'s task (decoded-tensor cache)."""
    ds = load_task(cfg.task, "train", size=cfg.size, channels=cfg.channels, progress=False)
    return ds.labels.numpy(), ds.groups


class SurrogatePlan(NamedTuple):
    """The surrogates' configs for one target: ``disjoint`` is None (``why`` says why) where
    the target left no training data unseen; ``eligible`` / ``split`` count the images left."""

    seed: TrainConfig
    disjoint: TrainConfig | None
    why: str
    eligible: int | None
    split: int | None


def seed_config(profile: Profile, target: TrainConfig) -> TrainConfig:
    """The seed surrogate's TrainConfig (the disjoint one is it with ``exclude_train``); no
    image is read, so a build can list the surrogates before any model exists."""
    s = profile.blackbox
    return dataclasses.replace(target, seed=int(profile.seed) + int(s.surrogate_seed_offset),
                               **dict(s.surrogate_train))


def surrogate_configs(profile: Profile, target: TrainConfig) -> SurrogatePlan:
    """The TrainConfig of each surrogate of ``target`` (``profile.blackbox`` settings)."""
    base = seed_config(profile, target)
    if target.max_train is None:
        return SurrogatePlan(base, None, "the target trained on the whole training split: no disjoint data is left",
                             None, None)
    labels, groups = train_split_counts(target)
    try:
        left = disjoint_subset(labels, groups, exclude_limit=int(target.max_train), exclude_seed=int(target.seed),
                               limit=None, seed=0)
    except ValueError as exc:
        return SurrogatePlan(base, None, f"no disjoint data ({exc})", 0, len(labels))
    disjoint = dataclasses.replace(base, exclude_train=(int(target.max_train), int(target.seed)))
    return SurrogatePlan(base, disjoint, "", len(left), len(labels))


def _describe(cfg: TrainConfig, tm: Any, plan: SurrogatePlan) -> str:
    text = (f"seed {cfg.seed}, {tm.meta.get('n_train')} training images, {len(tm.history)} epochs, "
            f"{tm.train_seconds:.0f} s to train")
    if cfg.exclude_train is not None:
        text += (f"; drawn from the {plan.eligible} of {plan.split} training images that are neither among the "
                 f"target's {cfg.exclude_train[0]} nor of their patients / lesions")
    return text


def trained_surrogates(profile: Profile, zoo: Mapping[tuple, Any], *, tasks: Any = None, device: Any = None,
                       progress: bool = False) -> dict[str, SurrogateSet]:
    """The seed and disjoint surrogates of every task's target (``tasks``: default all of
    ``zoo``'s), from the checkpoint cache or trained now."""
    names = list(dict.fromkeys(k[0] for k in zoo)) if tasks is None else list(tasks)
    out: dict[str, SurrogateSet] = {}
    for task in names:
        key = primary_key(profile, zoo, task, profile.blackbox.model)
        plan = surrogate_configs(profile, zoo[key].config)
        made = {}
        for kind, cfg in (("seed", plan.seed), ("disjoint", plan.disjoint)):
            label = f"{key.arch} ({key.init}), {'another seed' if kind == 'seed' else 'disjoint data'}"
            if cfg is None:
                made[kind] = Surrogate(kind, label, None, plan.why)
                continue
            tm = get_trained_model(cfg, device=device, progress=progress)
            made[kind] = Surrogate(kind, label, tm, _describe(cfg, tm, plan))
        out[task] = SurrogateSet(task=task, target=key, seed=made["seed"], disjoint=made["disjoint"])
    return out


__all__ = ["KINDS", "KIND_LABELS", "Surrogate", "SurrogatePlan", "SurrogateSet", "primary_key", "seed_config",
           "surrogate_configs", "train_split_counts", "trained_surrogates"]
