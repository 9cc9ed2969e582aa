"""Adversarial patches at the scale of an experiment (chapter 6).

Finlayson et al. (2019) pasted a universal, targeted patch (Brown et al. 2017) on medical
images: trained on the target itself (white box), trained on a separately trained model
(black box), and, as a control, a "natural" patch of the same size cut from a real image of
the target class. This module does the same for every task of ``profile.patch``:

- white box: :func:`advmed.attacks.patch.train_patch` on the task's target
  (``patch.model``) with expectation over transformations (random scale in
  ``scale_range``, rotation up to ``max_rotation``, location), one patch per class
  (``target="other"``: the image of class c gets the patch that targets 1 - c);
- black box: the same, trained on chapter 5's surrogate of the target trained with another
  seed (:mod:`advmed.experiments.kernel.surrogates`), and pasted on the target;
- natural: :func:`advmed.attacks.patch.natural_patch`, a crop of a training image of each
  class at the adversarial patch's size.

Each patch is evaluated on held-out test images at fixed scales
(:func:`advmed.attacks.patch.evaluate_patch`: accuracy, AUC, targeted success, covered area).
Scale: the patch side is ``scale x 0.4`` of the image side, so scale 1.0 is Finlayson et
al.'s evaluation size ("0.4" in their code). Patches and evaluations are memoised under the
checkpoint keys of the model trained on and the model evaluated, image digests and settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import pandas as pd
import torch
from tqdm.auto import tqdm

from ...attacks.patch import apply_patch, evaluate_patch, natural_patch, patch_area, train_patch
from ...cache import memo, tensor_digest
from ...data import load_task
from ...device import module_device
from ...metrics import perturbation_stats
from ..kernel import selection_key, subset
from ..kernel.surrogates import SurrogateSet, primary_key, trained_surrogates
from ..profiles import PatchSettings, Profile
from ..zoo import ModelKey, test_set

#: Bump when a change here changes what a memoised patch or evaluation holds.
PATCH_VERSION = 1
#: The three patches of every task, in the order of Finlayson et al.'s table.
KINDS = ("white-box", "black-box", "natural")
#: The columns of an evaluation row (from :meth:`advmed.attacks.patch.PatchEvaluation.summary`).
EVAL_COLUMNS = ("scale", "side_fraction", "area", "n_images", "n_placements", "clean_accuracy", "clean_auc",
                "accuracy", "accuracy_lo", "accuracy_hi", "auc", "auc_lo", "auc_hi", "success_rate",
                "success_rate_lo", "success_rate_hi")


class PatchKey(NamedTuple):
    """One patch of the experiment: the task's target model and the patch's kind."""

    task: str
    arch: str
    init: str
    kind: str

    @property
    def model(self) -> ModelKey:
        return ModelKey(self.task, self.arch, self.init)


@dataclass
class PatchRun:
    """One patch and its evaluation on the target.

    Attributes:
        patch: ``(2, C, s, s)`` pixels in [0, 1]; row t targets class t (a gray task's patch
            has C equal channels).
        source: what made it (the model trained on, or the image it was cut from).
        summary: how it was trained (:meth:`advmed.attacks.patch.PatchResult.summary`; natural:
            the crop's settings) with ``seconds``.
        evals: one row per scale (:data:`EVAL_COLUMNS`).
    """

    patch: torch.Tensor
    source: str
    summary: dict[str, Any]
    evals: pd.DataFrame

    def at(self, scale: float) -> pd.Series:
        """The evaluation row at ``scale``."""
        hit = self.evals[(self.evals["scale"] - float(scale)).abs() < 1e-9]
        if hit.empty:
            raise KeyError(f"no evaluation at scale {scale}; scales: {list(self.evals['scale'])}")
        return hit.iloc[0]


@dataclass
class PatchExperiment:
    """Every patch of chapter 6, the images, the models and the settings."""

    settings: PatchSettings
    seed: int
    runs: dict[PatchKey, PatchRun]
    train_sets: dict[str, Any]
    eval_sets: dict[str, Any]
    trained: dict[ModelKey, Any]
    surrogates: dict[str, SurrogateSet]
    targets: dict[str, ModelKey]

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(k.task for k in self.runs))


# --------------------------------------------------------------------------- images
def train_set(task: str, profile: Profile):
    """The training images patches are trained on (natural patches cut from): a seeded
    stratified subset of ``patch.n_train`` images of the train split."""
    return load_task(task, "train", size=profile.task_size(task), channels=3, limit=profile.patch.n_train,
                     seed=profile.seed, progress=False)


def eval_set(task: str, profile: Profile):
    """Held-out test images patches are evaluated on (``patch.n_eval``, stratified, seeded)."""
    return subset(test_set(task, profile, progress=False), profile.patch.n_eval, profile.seed).images


# --------------------------------------------------------------------------- one patch
def _train_settings(s: PatchSettings, seed: int) -> dict[str, Any]:
    return {"steps": int(s.steps), "lr": float(s.lr), "batch_size": int(s.batch_size),
            "scale_range": [float(v) for v in s.scale_range], "max_rotation": float(s.max_rotation),
            "shape": s.shape, "seed": int(seed)}


def adversarial_patch(trainer: Any, images: Any, settings: PatchSettings, seed: int) -> dict[str, Any]:
    """Train the two patches (``target="other"``) on ``trainer`` (memoised)."""
    kw = _train_settings(settings, seed)
    key = {"v": PATCH_VERSION, "model": trainer.config.key(), "images": selection_key(images), **kw}

    def compute() -> dict[str, Any]:
        x = images.float().to(module_device(trainer.model))
        res = train_patch(trainer.model, x, target="other", steps=kw["steps"], lr=kw["lr"],
                          batch_size=min(kw["batch_size"], len(x)), scale_range=tuple(kw["scale_range"]),
                          max_rotation=kw["max_rotation"], shape=kw["shape"], seed=seed, progress=False)
        summary = res.summary()
        summary.update(targets=list(res.targets), scale_range=list(res.scale_range))
        return {"patch": res.patch.cpu(), "summary": summary}

    return memo("patch_train", key, compute)


def evaluate(target: Any, patch: torch.Tensor, images: Any, settings: PatchSettings, *, n_boot: int,
             seed: int) -> pd.DataFrame:
    """The patch on ``target`` at every scale of ``eval_scales`` (and ``eval_scale``), memoised."""
    scales = sorted({float(v) for v in settings.eval_scales} | {float(settings.eval_scale)})
    key = {"v": PATCH_VERSION, "model": target.config.key(), "patch": tensor_digest(patch),
           "images": selection_key(images), "scales": scales, "shape": settings.shape,
           "max_rotation": float(settings.max_rotation), "n_placements": int(settings.n_placements),
           "n_boot": int(n_boot), "seed": int(seed)}

    def compute() -> pd.DataFrame:
        dev = module_device(target.model)
        x, y = images.float().to(dev), torch.as_tensor(images.labels).long().to(dev)
        rows = []
        for scale in scales:
            ev = evaluate_patch(target.model, x, y, patch.to(dev), scale=scale, target="other", shape=settings.shape,
                                max_rotation=settings.max_rotation, n_placements=settings.n_placements, seed=seed,
                                n_boot=n_boot)
            rows.append({c: ev.summary()[c] for c in EVAL_COLUMNS})
        return pd.DataFrame(rows)

    return memo("patch_eval", key, compute)


def _natural(images: Any, size: int, settings: PatchSettings, seed: int) -> dict[str, Any]:
    crop = natural_patch(images.float(), images.labels, "other", size=size, seed=seed,
                         location=settings.natural_location)
    return {"patch": crop, "summary": {"size": size, "location": settings.natural_location, "seed": seed,
                                       "targets": [0, 1], "seconds": 0.0}}


# --------------------------------------------------------------------------- the experiment
def patch_tasks(profile: Profile, zoo: Mapping[tuple, Any]) -> list[str]:
    """The binary tasks of ``patch.tasks`` (default all) that the profile and the zoo have."""
    wanted = profile.patch.tasks or tuple(profile.tasks)
    return [t for t in wanted if t in profile.tasks and any(k[0] == t and len(tm.classes) == 2
                                                            for k, tm in zoo.items())]


def patch_experiment(profile: Profile, zoo: Mapping[tuple, Any], *, surrogates: Mapping[str, SurrogateSet] | None = None,
                     progress: bool = True) -> PatchExperiment:
    """White-box, black-box and natural patches for the target of every task of
    :func:`patch_tasks`, each evaluated on held-out images at every scale."""
    s = profile.patch
    tasks = patch_tasks(profile, zoo)
    if surrogates is None:
        surrogates = trained_surrogates(profile, zoo, tasks=tasks, progress=False)
    runs: dict[PatchKey, PatchRun] = {}
    trains, evals, targets = {}, {}, {}
    for task in tqdm(tasks, desc="patches", unit="task", disable=not progress):
        trains[task], evals[task] = train_set(task, profile), eval_set(task, profile)
        key = targets[task] = primary_key(profile, zoo, task, s.model)
        target = zoo[key]
        sur = surrogates[task].seed
        made = {"white-box": (adversarial_patch(target, trains[task], s, profile.seed), f"{key.label} (the target)")}
        if sur.available:
            made["black-box"] = (adversarial_patch(sur.model, trains[task], s, profile.seed), sur.label)
        size = int(made["white-box"][0]["patch"].shape[-1])
        made["natural"] = (_natural(trains[task], size, s, profile.seed), "a training image of each class")
        for kind, (out, source) in made.items():
            ev = evaluate(target, out["patch"], evals[task], s, n_boot=profile.eval.n_boot, seed=profile.seed)
            runs[PatchKey(*key, kind)] = PatchRun(patch=out["patch"], source=source, summary=out["summary"], evals=ev)
    return PatchExperiment(settings=s, seed=profile.seed, runs=runs, train_sets=trains, eval_sets=evals,
                           trained={ModelKey(*k): tm for k, tm in zoo.items()}, surrogates=dict(surrogates),
                           targets=targets)


# --------------------------------------------------------------------------- what the page draws
#: Held-out images each patch's perceptibility is measured on (as chapter 3's UAPs).
PERCEPTIBILITY_IMAGES = 64


def perceptibility(exp: PatchExperiment, *, n_images: int = PERCEPTIBILITY_IMAGES) -> pd.DataFrame:
    """How visible each patch is, with chapter 2's one measure
    (:func:`advmed.metrics.perturbation_stats`): the patch pasted at the evaluation scale, at a
    seeded random location, unrotated, on the first ``n_images`` held-out images of its task
    (the image of class c gets the patch that targets the other class, as evaluated). One row per
    patch (``task, arch, init, kind``): the share of the image it covers, the largest pixel
    change in grey levels (x 255), and the median PSNR (dB) and SSIM of the patched against the
    clean image. Memoised per patch and images.
    """
    s = exp.settings
    rows = []
    for key, run in exp.runs.items():
        images = exp.eval_sets[key.task]
        shown = images.subset(list(range(min(int(n_images), len(images.labels)))))
        mkey = {"v": PATCH_VERSION, "patch": tensor_digest(run.patch.float()), "images": selection_key(shown),
                "scale": float(s.eval_scale), "shape": s.shape, "seed": int(exp.seed)}

        def compute(run=run, shown=shown) -> dict[str, float]:
            x = shown.float()
            y = torch.as_tensor(shown.labels).long()
            patched = apply_patch(x, run.patch.float()[1 - y], scale=float(s.eval_scale), location="random",
                                  shape=s.shape, seed=exp.seed)
            stats = perturbation_stats(x, patched)
            return {"area": patch_area(x, scale=float(s.eval_scale), shape=s.shape),
                    "linf_255": float(stats["linf"].max()) * 255,
                    "psnr_db": float(stats["psnr_db"].median()), "ssim": float(stats["ssim"].median())}

        rows.append({"task": key.task, "arch": key.arch, "init": key.init, "kind": key.kind,
                     "scale": float(s.eval_scale), "n_images": len(shown.labels),
                     **memo("patch_perceptibility", mkey, compute)})
    return pd.DataFrame(rows)


__all__ = ["EVAL_COLUMNS", "KINDS", "PATCH_VERSION", "PatchExperiment", "PatchKey", "PatchRun", "adversarial_patch",
           "eval_set", "evaluate", "patch_experiment", "patch_tasks", "perceptibility", "train_set"]
