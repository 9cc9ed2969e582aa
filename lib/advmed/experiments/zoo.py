"""The model zoo: the profile's trained models, its test images, clean results.

A chapter writes::

    prof = get_profile(profile)
    zoo = trained_models(prof)                     # trains what the cache lacks
    test = test_set("pneumonia_cxr", prof)         # ImageSet at the profile's size
    table = clean_results(prof, trained=zoo)       # accuracy / AUC / sens / spec [95 % CI]

Keys of the zoo are :class:`ModelKey` ``(task, arch, init)`` with the *requested* init
(a plain tuple compares equal); the init actually used (ImageNet weights can be
missing) is ``TrainedModel.init_used`` and a column of :func:`clean_results`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..cache import memo, tensor_digest
from ..data import load_task
from ..metrics import METRICS, Estimate, classification_metrics, fmt_interval
from ..models import get_arch, predict_proba
from ..plots import model_label, task_label
from ..train import TrainConfig, TrainedModel, get_trained_model
from .profiles import PROFILES, Profile


class ModelKey(NamedTuple):
    """A zoo entry: task, architecture and the initialisation asked for."""

    task: str
    arch: str
    init: str

    @property
    def label(self) -> str:
        """``"arch (init)"``, how tables and menus name the model."""
        return f"{self.arch} ({self.init})"


class Predictions(NamedTuple):
    """A model's class probabilities on its task's test set."""

    y: np.ndarray
    proba: np.ndarray
    classes: list[str]


def labelled(entries: Mapping[tuple, Any], *, task: str | None = None) -> dict[str, Any]:
    """``entries`` keyed by model keys, re-keyed by how figures name them: ``"task / arch
    (init)"``, or, with ``task`` given, ``"arch (init)"`` for that task's entries only."""
    keys = [ModelKey(*k) for k in entries]
    if task is None:
        return {f"{k.task} / {k.label}": v for k, v in zip(keys, entries.values())}
    return {k.label: v for k, v in zip(keys, entries.values()) if k.task == task}


def panels(entries: Mapping[tuple, Any]) -> dict[tuple[str, str], Any]:
    """``entries`` keyed by model keys, re-keyed ``(task, "arch:init")``: how the small-multiple
    figures of :mod:`advmed.plots` (one panel per task, one colour per model) take them."""
    keys = [ModelKey(*k) for k in entries]
    return {(k.task, f"{k.arch}:{k.init}"): v for k, v in zip(keys, entries.values())}


def _net_size(profile: Profile, arch: str, size: int) -> int | None:
    side = profile.net_sizes.get(arch)
    return None if side is None or int(side) == size else int(side)


def configs_for_profile(profile: Profile) -> list[TrainConfig]:
    """One :class:`~advmed.train.TrainConfig` per (task, model) of a profile.

    Every model takes 3 channels, grayscale images included (replicated), so that one
    perturbation tensor fits every architecture and attacks transfer across them
    without a channel conversion; ImageNet-pretrained stems expect 3 channels anyway.
    An architecture of ``profile.net_sizes`` runs its network at that side, resizing the
    task's images inside the model (``TrainConfig.net_size``).
    The seed is the profile's first; further seeds are for repeated runs. Sizes below an
    architecture's minimum fail here, before any training: upsampling for one model only
    would break the rule that one perturbation fits every model of a task.
    """
    configs = [TrainConfig(task=task, arch=m.arch, init=m.init, size=int(size), channels=3, seed=profile.seed,
                           net_size=_net_size(profile, m.arch, int(size)), **profile.train_fields(m.init))
               for task, size in profile.tasks.items() for m in profile.models_for(task)]
    bad = [f"{c.task} at {c.net_size or c.size} px for {c.arch} (needs >= {get_arch(c.arch).min_size} px)"
           for c in configs if (c.net_size or c.size) < get_arch(c.arch).min_size]
    if bad:
        raise ValueError("profile sizes below an architecture's minimum: " + "; ".join(bad)
                         + ". Raise the task's size in the profile or drop the model for that task.")
    return configs


def trained_models(profile: Profile, *, tasks: Iterable[str] | str | None = None,
                   models: Iterable[Any] | str | None = None, progress: bool = True,
                   retrain: bool = False, device: Any = None) -> dict[ModelKey, TrainedModel]:
    """The profile's models, one per (task, model), from the checkpoint cache or trained now.

    Args:
        profile: :func:`~advmed.experiments.profiles.get_profile`.
        tasks, models: restrict to some of the profile's tasks / models (``"resnet18"``,
            ``"mobilenet_v1_075:imagenet"``); default all.
        retrain: train again even when a checkpoint exists.

    Returns:
        ``{ModelKey(task, arch, requested init): TrainedModel}`` in profile order.
    """
    configs = configs_for_profile(profile.select(tasks, models))
    out: dict[ModelKey, TrainedModel] = {}
    for cfg in tqdm(configs, desc="models", unit="model", disable=not progress or len(configs) < 2):
        out[ModelKey(cfg.task, cfg.arch, cfg.init)] = get_trained_model(cfg, retrain=retrain, device=device,
                                                                        progress=progress)
    return out


def select(zoo: Mapping[tuple, TrainedModel], profile: Profile, *, tasks: Any = None,
           models: Any = None) -> dict[ModelKey, TrainedModel]:
    """The entries of ``zoo`` whose task and model are in ``profile.select(tasks, models)``."""
    sub = profile.select(tasks, models)
    keep = {t: {(m.arch, m.init) for m in sub.models_for(t)} for t in sub.tasks}
    return {ModelKey(*k): tm for k, tm in zoo.items() if k[0] in keep and (k[1], k[2]) in keep[k[0]]}


def test_set(task: str, profile: Profile, *, limit: int | str | None = None, progress: bool = True):
    """A task's test split at the profile's size, 3 channels (``advmed.data.ImageSet``).

    ``limit`` defaults to ``profile.eval.max_test``: a stratified subset drawn with the
    profile's first seed (None there: the whole test split); ``limit="all"`` forces the
    whole split.
    """
    args = test_split_args(task, profile)
    if limit == "all":
        args["limit"] = None
    elif limit is not None:
        args["limit"] = limit
    return load_task(task, "test", channels=3, progress=progress, **args)


def test_split_args(task: str, profile: Profile) -> dict[str, Any]:
    """The ``load_task`` arguments of :func:`test_set`'s default split: the profile's size,
    ``eval.max_test`` and first seed (what a training cell predicts on ahead of the chapters)."""
    return {"size": profile.task_size(task), "limit": profile.eval.max_test, "seed": profile.seed}


test_split_args.__test__ = False  # type: ignore[attr-defined]


# a function named test_* confuses pytest when a test module imports it
test_set.__test__ = False  # type: ignore[attr-defined]


def clean_predictions(profile: Profile, *, trained: Mapping[ModelKey, TrainedModel] | None = None,
                      tasks: Any = None, models: Any = None, progress: bool = True,
                      device: Any = None) -> dict[ModelKey, Predictions]:
    """Each model's probabilities on its task's test set.

    ``trained`` defaults to :func:`trained_models` for the same selection; the result
    feeds :func:`clean_results` and :func:`advmed.plots.roc_curves`.
    """
    if trained is None:
        trained = trained_models(profile, tasks=tasks, models=models, progress=progress, device=device)
    sets: dict[str, Any] = {}
    out: dict[ModelKey, Predictions] = {}
    for key, tm in tqdm(trained.items(), desc="clean predictions", disable=not progress or len(trained) < 2):
        key = ModelKey(*key)
        if key.task not in sets:
            sets[key.task] = test_set(key.task, profile, progress=progress)
        test = sets[key.task]
        out[key] = Predictions(test.labels.numpy(), _test_proba(tm, test, device), list(test.classes))
    return out


def _test_proba(tm: TrainedModel, test: Any, device: Any) -> np.ndarray:
    """``predict_proba`` on a test set, memoised when the model came through the checkpoint
    cache (its key then fixes the weights): chapters 1 and 8 both need every model's test
    predictions, 10 s of a warm cpu build each time. Models from elsewhere are not memoised."""
    def compute() -> np.ndarray:
        return predict_proba(tm.model, test.images, device=device)

    meta = tm.meta if isinstance(getattr(tm, "meta", None), dict) else {}
    if not meta.get("checkpoint"):
        return compute()
    key = {"model": tm.config.key(), "images": tensor_digest(test.images), "labels": tensor_digest(test.labels)}
    return memo("clean_predictions", key, compute)


def clean_results(profile: Profile, *, trained: Mapping[ModelKey, TrainedModel] | None = None,
                  predictions: Mapping[ModelKey, Predictions] | None = None, tasks: Any = None,
                  models: Any = None, n_boot: int | None = None, numeric: bool = False, digits: int = 3,
                  progress: bool = True, device: Any = None) -> pd.DataFrame:
    """Clean test performance of the profile's models, one row per (task, arch, init).

    Columns: task, arch, init (requested), init_used, size (px), n_test, val_auc, then
    accuracy, balanced_accuracy, auc, sensitivity, specificity as ``"value [lo, hi]"``
    (percentile bootstrap 95 % interval, ``profile.eval.n_boot`` resamples) or, with
    ``numeric=True``, as ``metric``, ``metric_lo``, ``metric_hi`` floats.
    """
    if trained is None:
        trained = trained_models(profile, tasks=tasks, models=models, progress=progress, device=device)
    if predictions is None:
        predictions = clean_predictions(profile, trained=trained, progress=progress, device=device)
    n_boot = int(profile.eval.n_boot if n_boot is None else n_boot)
    rows = []
    for key, tm in trained.items():
        key = ModelKey(*key)
        pred = predictions[key]
        m = classification_metrics(pred.y, pred.proba, n_boot=n_boot, seed=profile.seed)
        row: dict[str, Any] = {"task": key.task, "arch": key.arch, "init": key.init, "init_used": tm.init_used,
                               "size": tm.config.size, "n_test": len(pred.y), "val_auc": tm.val_auc}
        for name in METRICS:
            est: Estimate = m[name]
            if numeric:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = est
            else:
                row[name] = est.fmt(digits)
        rows.append(row)
    return pd.DataFrame(rows)


def test_sets(profile: Profile, *, limit: int | str | None = "all", progress: bool = False) -> dict[str, Any]:
    """Every task's test split (:func:`test_set`), by task name, in the profile's order."""
    return {task: test_set(task, profile, limit=limit, progress=progress) for task in profile.tasks}


test_sets.__test__ = False  # type: ignore[attr-defined]


def confusion_entries(predictions: Mapping[ModelKey, Predictions]) -> dict[tuple[str, str], tuple]:
    """``(task, "arch:init") -> (y, predicted class, classes)`` for :func:`advmed.plots.confusion_grid`."""
    return {k: (p.y, np.asarray(p.proba).argmax(1), p.classes) for k, p in panels(predictions).items()}


def clean_intervals(numeric: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """``clean_results(..., numeric=True)`` with every metric as ``"value [lo, hi]"`` (what
    ``numeric=False`` gives, without computing the bootstrap again)."""
    out = numeric.drop(columns=[c for c in numeric if c.endswith(("_lo", "_hi"))]).copy()
    for name in METRICS:
        if name in numeric:
            out[name] = [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                         zip(numeric[name], numeric[f"{name}_lo"], numeric[f"{name}_hi"])]
    out["val_auc"] = out["val_auc"].astype(float).round(digits)
    return out


class CleanHeadline(NamedTuple):
    """The numbers of chapter 1 that the book's abstract quotes (glued, never typed)."""

    models: int  # trained models (task x architecture x initialisation)
    tasks: int
    auc_median: float  # median clean test AUC over the models
    auc_min: float
    auc_max: float


def clean_headline(numeric: pd.DataFrame) -> CleanHeadline:
    """Count the models and summarise their clean AUC (``clean_results(..., numeric=True)``)."""
    auc = numeric["auc"].astype(float)
    return CleanHeadline(models=len(numeric), tasks=int(numeric["task"].nunique()), auc_median=float(auc.median()),
                         auc_min=float(auc.min()), auc_max=float(auc.max()))


def clean_summary(numeric: pd.DataFrame, *, metric: str = "auc", digits: int = 2) -> pd.DataFrame:
    """The page's clean-performance table: one row per model, one column per task, each cell
    ``metric`` with its 95 % interval (``"0.95 [0.93, 0.97]"``), from
    ``clean_results(..., numeric=True)``. Rows are models and columns tasks so that the table
    stays a few rows long and a few columns wide for every profile."""
    rows: dict[str, dict[str, str]] = {}
    for r in numeric.itertuples(index=False):
        label = model_label(r.arch, r.init_used)
        rows.setdefault(label, {"model": label})[task_label(r.task)] = fmt_interval(
            getattr(r, metric), getattr(r, f"{metric}_lo"), getattr(r, f"{metric}_hi"), digits)
    return pd.DataFrame(list(rows.values())).fillna("–")


def training_summary(trained: Mapping[ModelKey, TrainedModel]) -> pd.DataFrame:
    """One row per trained model: what was asked, what was used, how training went."""
    rows = []
    for key, tm in trained.items():
        key = ModelKey(*key)
        rows.append({
            "task": key.task, "arch": key.arch, "init": key.init, "init_used": tm.init_used,
            "size": tm.config.size, "n_train": tm.meta.get("n_train"), "n_val": tm.meta.get("n_val"),
            "epochs_run": len(tm.history), "best_epoch": tm.best_epoch, "stopped": stopping(tm),
            "val_auc": round(tm.val_auc, 4),
            "train_seconds": round(tm.train_seconds, 1), "from_cache": bool(tm.meta.get("cached")),
            "checkpoint": tm.config.key(),
        })
    return pd.DataFrame(rows)


def profile_descriptions() -> dict[str, str]:
    """Each profile's description by name, as :data:`~advmed.experiments.profiles.PROFILES` writes
    it: chapter 1 glues them (``profile-<name>``) for the front page's table of profiles, so that
    the front page never types a profile's sizes."""
    return {name: p.description for name, p in PROFILES.items()}


def stopping(tm: TrainedModel) -> str:
    """How a training run ended: ``"early"`` (validation AUC had not improved for ``patience``
    epochs), ``"cap, plateaued"`` (all epochs run, the best one ``patience`` or more before
    the last) or ``"cap, still improving"`` (the best epoch among the last ``patience``: more
    epochs might have helped)."""
    run, cap, patience = len(tm.history), int(tm.config.epochs), int(tm.config.patience)
    if run < cap:
        return "early"
    return "cap, plateaued" if tm.best_epoch <= cap - patience else "cap, still improving"


def stopping_sentence(trained: Mapping[ModelKey, TrainedModel]) -> str:
    """Chapter 1: how many models stopped early and how many were still improving at the cap."""
    how = [stopping(tm) for tm in trained.values()]
    if not how:
        return ""
    caps = sorted({int(tm.config.epochs) for tm in trained.values()})
    still = [f"{ModelKey(*k).task} {ModelKey(*k).arch}:{ModelKey(*k).init}" for k, tm in trained.items()
             if stopping(tm) == "cap, still improving"]
    text = (f"{how.count('early')} of {len(how)} models stopped early (no better validation AUC for "
            f"{', '.join(str(p) for p in sorted({int(tm.config.patience) for tm in trained.values()}))} epochs); "
            f"{how.count('cap, plateaued')} ran to the cap of {', '.join(map(str, caps))} epochs after their best")
    if still:
        text += (f"; {len(still)} had their best epoch among the last ones at the cap, so their validation AUC had "
                 f"not yet plateaued ({'; '.join(still)}): more epochs might have helped them")
    return text + " (the `stopped` column of the appendix)."


# --------------------------------------------------------------------------- cells
def train_cell(config: TrainConfig, test: Mapping[str, Any] | None = None) -> str:
    """Cell: train (or find in the checkpoint cache) the model of ``config``, on this worker's
    device (:func:`advmed.device.default_device`); the checkpoint goes to the shared cache.
    ``test``: the ``load_task`` arguments of the profile's test set (:func:`test_split_args`), whose
    predictions are then memoised too, so that the chapters only read them."""
    tm = get_trained_model(config, progress=False)
    if test is not None:
        _test_proba(tm, load_task(config.task, "test", channels=3, progress=False, **test), None)
    how = "cached" if tm.meta.get("cached") else f"trained in {tm.train_seconds:.0f} s"
    return f"{config.label()}: {how}, val AUC {tm.val_auc:.3f}"
