"""What chapters call: the profile's trained models, its test images, clean results.

A chapter writes::

    prof = get_profile(profile)
    models = trained_models(prof)                  # trains what the cache lacks
    test = test_set("pneumonia_cxr", prof)         # ImageSet at the profile's size
    table = clean_results(prof, trained=models)    # accuracy / AUC / sens / spec [95 % CI]

Keys of the model dictionary are ``(task, arch, init)`` with the *requested* init; the
init actually used (ImageNet weights can be missing) is ``TrainedModel.init_used`` and a
column of :func:`clean_results`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import pandas as pd
from tqdm.auto import tqdm

from .metrics import METRICS, Estimate, classification_metrics
from .models import predict_proba
from .train import TrainConfig, TrainedModel, get_trained_model

ModelKey = tuple[str, str, str]  # (task, arch, requested init)


def configs_for_profile(profile: dict[str, Any]) -> list[TrainConfig]:
    """One :class:`TrainConfig` per (task, model) of a profile (``advmed.profiles``).

    Every model takes 3 channels, grayscale images included (replicated), so that one
    perturbation tensor fits every architecture and attacks transfer across them
    without a channel conversion; ImageNet-pretrained stems expect 3 channels anyway.
    The seed is the profile's first; further seeds are for repeated runs.
    """
    train = dict(profile.get("train", {}))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(train) - names
    if unknown:
        raise KeyError(f"unknown train entries {sorted(unknown)}; valid: {', '.join(sorted(names))}")
    seed = int(profile.get("seeds", [0])[0])
    configs = []
    for task, spec in profile["tasks"].items():
        for m in profile["models"]:
            configs.append(TrainConfig(task=task, arch=m["arch"], init=m.get("init", "scratch"),
                                       size=int(spec["size"]), channels=3, seed=seed, **train))
    _check_sizes(configs)
    return configs


def _check_sizes(configs: list[TrainConfig]) -> None:
    """Fail before any training when a task's size is below an architecture's minimum.

    Upsampling for one model only would break the rule that one perturbation fits every
    model of a task, so the profile must choose a size every model accepts.
    """
    try:
        from .models import get_arch
    except ImportError:  # models layer absent: build_model will complain later
        return
    bad = []
    for c in configs:
        try:
            min_size = get_arch(c.arch).min_size
        except KeyError:
            continue  # unknown architecture: build_model names the valid ones
        if c.size < min_size:
            bad.append(f"{c.task} at {c.size} px for {c.arch} (needs >= {min_size} px)")
    if bad:
        raise ValueError("profile sizes below an architecture's minimum: " + "; ".join(bad)
                         + ". Raise the task's size in the profile or drop the model for that task.")


def _select_tasks(profile: dict[str, Any], tasks: Iterable[str] | str | None) -> dict[str, Any]:
    if tasks is None:
        return dict(profile["tasks"])
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in profile["tasks"]]
    if unknown:
        raise KeyError(f"tasks {unknown} are not in profile {profile.get('name', '?')!r}; its tasks: "
                       f"{', '.join(profile['tasks'])} (add one with get_profile(..., tasks=[...]))")
    return {t: profile["tasks"][t] for t in tasks}


def _select_models(profile: dict[str, Any], models: Iterable[Any] | str | None) -> list[dict[str, str]]:
    """Filter the profile's models by ``"arch"``, ``"arch:init"`` or ``{"arch", "init"}``."""
    if models is None:
        return list(profile["models"])
    models = [models] if isinstance(models, (str, dict)) else list(models)
    chosen = []
    for m in models:
        arch, init = (m["arch"], m.get("init")) if isinstance(m, dict) else (str(m).partition(":")[0],
                                                                             str(m).partition(":")[2] or None)
        hits = [p for p in profile["models"] if p["arch"] == arch and (init is None or p["init"] == init)]
        if not hits:
            valid = ", ".join(f"{p['arch']}:{p['init']}" for p in profile["models"])
            raise KeyError(f"model {m!r} is not in profile {profile.get('name', '?')!r}; its models: {valid}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _subprofile(profile: dict[str, Any], tasks: Any, models: Any) -> dict[str, Any]:
    return {**profile, "tasks": _select_tasks(profile, tasks), "models": _select_models(profile, models)}


def trained_models(profile: dict[str, Any], *, tasks: Iterable[str] | str | None = None,
                   models: Iterable[Any] | str | None = None, progress: bool = True,
                   retrain: bool = False, device: Any = None) -> dict[ModelKey, TrainedModel]:
    """The profile's models, one per (task, model), from the checkpoint cache or trained now.

    Args:
        profile: ``advmed.profiles.get_profile(...)``.
        tasks, models: restrict to some of the profile's tasks / models (``"resnet18"``,
            ``"mobilenet_v1_075:imagenet"``); default all.
        retrain: train again even when a checkpoint exists.

    Returns:
        ``{(task, arch, requested init): TrainedModel}`` in profile order.
    """
    configs = configs_for_profile(_subprofile(profile, tasks, models))
    out: dict[ModelKey, TrainedModel] = {}
    for cfg in tqdm(configs, desc="models", unit="model", disable=not progress or len(configs) < 2):
        out[(cfg.task, cfg.arch, cfg.init)] = get_trained_model(cfg, retrain=retrain, device=device,
                                                                progress=progress)
    return out


def test_set(task: str, profile: dict[str, Any], *, limit: int | str | None = None, progress: bool = True):
    """A task's test split at the profile's size, 3 channels (``advmed.data.ImageSet``).

    ``limit`` defaults to ``profile["eval"]["max_test"]``: a stratified subset drawn with
    the profile's first seed (None there: the whole test split); ``limit="all"`` forces
    the whole split.
    """
    from .data import load_task

    spec = _select_tasks(profile, [task])[task]
    if limit is None:
        limit = profile.get("eval", {}).get("max_test")
    elif limit == "all":
        limit = None
    return load_task(task, "test", size=int(spec["size"]), channels=3, limit=limit,
                     seed=int(profile.get("seeds", [0])[0]), progress=progress)


# a function named test_* confuses pytest when a test module imports it
test_set.__test__ = False  # type: ignore[attr-defined]


def clean_predictions(profile: dict[str, Any], *, trained: dict[ModelKey, TrainedModel] | None = None,
                      tasks: Any = None, models: Any = None, progress: bool = True,
                      device: Any = None) -> dict[ModelKey, dict[str, Any]]:
    """Each model's probabilities on its task's test set: ``{key: {"y", "proba", "classes"}}``.

    ``trained`` defaults to :func:`trained_models` for the same selection; the result
    feeds :func:`clean_results` and :func:`advmed.plots.roc_curves`.
    """
    if trained is None:
        trained = trained_models(profile, tasks=tasks, models=models, progress=progress, device=device)
    sets: dict[str, Any] = {}
    out: dict[ModelKey, dict[str, Any]] = {}
    for key, tm in tqdm(trained.items(), desc="clean predictions", disable=not progress or len(trained) < 2):
        task = key[0]
        if task not in sets:
            sets[task] = test_set(task, profile, progress=progress)
        test = sets[task]
        out[key] = {"y": test.labels.numpy(), "proba": predict_proba(tm.model, test.images, device=device),
                    "classes": list(test.classes)}
    return out


def clean_results(profile: dict[str, Any], *, trained: dict[ModelKey, TrainedModel] | None = None,
                  predictions: dict[ModelKey, dict[str, Any]] | None = None, tasks: Any = None,
                  models: Any = None, n_boot: int | None = None, numeric: bool = False, digits: int = 3,
                  progress: bool = True, device: Any = None) -> pd.DataFrame:
    """Clean test performance of the profile's models, one row per (task, arch, init).

    Columns: task, arch, init (requested), init_used, size (px), n_test, val_auc, then
    accuracy, balanced_accuracy, auc, sensitivity, specificity as ``"value [lo, hi]"``
    (percentile bootstrap 95 % interval, ``profile["eval"]["n_boot"]`` resamples) or, with
    ``numeric=True``, as ``metric``, ``metric_lo``, ``metric_hi`` floats.
    """
    if trained is None:
        trained = trained_models(profile, tasks=tasks, models=models, progress=progress, device=device)
    if predictions is None:
        predictions = clean_predictions(profile, trained=trained, progress=progress, device=device)
    n_boot = int(profile.get("eval", {}).get("n_boot", 1000) if n_boot is None else n_boot)
    seed = int(profile.get("seeds", [0])[0])
    rows = []
    for key, tm in trained.items():
        pred = predictions[key]
        m = classification_metrics(pred["y"], pred["proba"], n_boot=n_boot, seed=seed)
        row: dict[str, Any] = {"task": key[0], "arch": key[1], "init": key[2], "init_used": tm.init_used,
                               "size": tm.config.size, "n_test": len(pred["y"]), "val_auc": tm.val_auc}
        for name in METRICS:
            est: Estimate = m[name]
            if numeric:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = est
            else:
                row[name] = est.fmt(digits)
        rows.append(row)
    return pd.DataFrame(rows)


def training_summary(trained: dict[ModelKey, TrainedModel]) -> pd.DataFrame:
    """One row per trained model: what was asked, what was used, how training went."""
    rows = []
    for (task, arch, init), tm in trained.items():
        rows.append({
            "task": task, "arch": arch, "init": init, "init_used": tm.init_used,
            "size": tm.config.size, "n_train": tm.meta.get("n_train"), "n_val": tm.meta.get("n_val"),
            "epochs_run": len(tm.history), "best_epoch": tm.best_epoch, "val_auc": round(tm.val_auc, 4),
            "train_seconds": round(tm.train_seconds, 1), "from_cache": bool(tm.meta.get("cached")),
            "checkpoint": tm.config.key(),
        })
    return pd.DataFrame(rows)
