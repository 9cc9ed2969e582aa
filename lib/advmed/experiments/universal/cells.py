"""Chapters 3 and 4's cells (:mod:`advmed.experiments.cells`): one UAP, one model's natural UAPs.

Every cell calls :mod:`.run` the way the chapters do, so the memo keys are theirs (the model's
checkpoint key, digests of the build and held-out images, the bound, the target, the UAP
settings and the seed), and the chapters executed afterwards reload every result.

- ``universal/uap/<task>/<arch:init>/<norm>/zeta<z>/<nt|tK>``: one UAP of chapter 3
  (non-targeted, or targeted to class K) with its random control and its predictions.
- ``universal/transfer/<task>``: stage 2, the task's transfer matrix (every UAP of the task
  applied to every other model of the task).
- ``natural/<task>/<arch:init>``: chapter 4's UAPs built from photos for one model
  (non-targeted and targeted from every photo, non-targeted from each of two disjoint photo
  sources); chapter 4 also reads the medical UAPs of its models, which are the chapter-3
  cells of the same names (a build lists each once).
"""
from __future__ import annotations

from ..cells import Cell, task_classes
from ..estimate import forward_gmac, n_images
from ..profiles import Profile
from ..zoo import configs_for_profile, trained_models
from . import run


def uap_cell(profile: Profile, task: str, model: str, norm: str, zeta: float, target: int | None) -> str:
    """One UAP and its control, memoised as :func:`.run.uap_experiment` memoises it."""
    zoo = trained_models(profile, tasks=[task], models=[model], progress=False)
    tm = next(iter(zoo.values()))
    build = run.build_set(task, profile, progress=False)
    evalset = run.eval_set(task, profile, progress=False)
    res = run.uap_run(tm, build, evalset, norm=norm, zeta=float(zeta), target=target, settings=profile.uap,
                      seed=profile.seed, progress=False)
    return f"{task}/{model} {norm} zeta {zeta:g} {run.attack_name(target, tm.classes)}: fooling {res.fooling_rate:.3f}"


def transfer_cell(profile: Profile, task: str) -> str:
    """The transfer matrix of one task (reads the task's UAPs, memoises the cross predictions)."""
    zoo = trained_models(profile, tasks=[task], progress=False)
    exp = run.uap_experiment(profile, trained=zoo, tasks=[task], progress=False)
    mat = run.transfer_matrix(exp, task, progress=False)
    return f"{task}: {mat.shape[0]} x {mat.shape[1]} transfer matrix"


def natural_cell(profile: Profile, task: str, model: str) -> str:
    """Chapter 4's UAPs from photos of one model (``zeta_reference="medical"``, its default): the
    non-targeted and the targeted ones from every photo, and the non-targeted ones from each of
    the two disjoint photo sources (:func:`.run.source_comparison`)."""
    zoo = trained_models(profile, tasks=[task], models=[model], progress=False)
    exp = run.natural_uap_experiment(profile, trained=zoo, progress=False)
    targeted = run.natural_uap_experiment(profile, trained=zoo, targeted=True, progress=False)
    sources = run.source_comparison(profile, trained=zoo, progress=False)
    return (f"{task}/{model}: {len(exp.runs)} + {len(targeted.runs)} targeted natural-image UAPs, "
            f"{2 * len(sources)} from the two photo sources")


def _uap_forwards(profile: Profile, task: str, n_build: int) -> float:
    s = profile.uap
    n_eval = n_images(task, "test", profile.eval.max_test if s.n_eval is None else
                      min(s.n_eval, profile.eval.max_test or s.n_eval))
    # per pass: the build images' predictions, at most one input gradient each, the pass's rate
    return s.max_passes * n_images(task, "train", n_build) * 5 + 3 * n_eval


def _uap_cells(profile: Profile, targeted: bool, models: list[str] | None = None) -> list[Cell]:
    s = profile.uap
    out = []
    for c in configs_for_profile(profile):
        label = f"{c.arch}:{c.init}"
        if models is not None and label not in models:
            continue
        k = len(task_classes(c.task))
        gmac = forward_gmac(c.arch, c.net_size or c.size) * _uap_forwards(profile, c.task, s.n_build)
        for norm in s.norms:
            for zeta in s.zetas:
                targets = [None] + (s.target_classes(k, float(zeta)) if targeted else [])
                for t in targets:
                    name = f"universal/uap/{c.task}/{label}/{norm}/zeta{float(zeta):g}/{'nt' if t is None else f't{t}'}"
                    out.append(Cell("universal", name, uap_cell, {"profile": profile, "task": c.task, "model": label,
                                                                  "norm": norm, "zeta": float(zeta), "target": t},
                                    cost_gmac=gmac))
    return out


def cells(profile: Profile) -> list[Cell]:
    """Chapter 3: every UAP of the profile (stage 1), then each task's transfer matrix (stage 2)."""
    out = _uap_cells(profile, targeted=profile.uap.targeted)
    n_models = len(profile.models)
    for task in profile.tasks:
        gmac = sum(forward_gmac(c.arch, c.net_size or c.size) for c in configs_for_profile(profile.select(tasks=[task])))
        out.append(Cell("universal", f"universal/transfer/{task}", transfer_cell, {"profile": profile, "task": task},
                        stage=2, cost_gmac=gmac * n_models * n_images(task, "test", profile.eval.max_test)))
    return out


def natural_cells(profile: Profile) -> list[Cell]:
    """Chapter 4: per task and natural-image model, its UAPs from photos, and the medical UAPs
    they are compared with, non-targeted and targeted (the chapter-3 cells of the same name)."""
    s = profile.uap
    models = run.available_models(profile, s.natural_models)
    out = []
    for c in configs_for_profile(profile.select(models=models)):
        label = f"{c.arch}:{c.init}"
        k = len(task_classes(c.task))
        flops = forward_gmac(c.arch, c.net_size or c.size)
        uaps = len(s.zetas) + sum(len(s.target_classes(k, float(z))) for z in s.zetas)
        # the two sources' UAPs: half the photos each at most, at the largest zeta
        gmac = flops * len(s.norms) * (uaps * _uap_forwards(profile, c.task, s.natural_images)
                                       + 2 * _uap_forwards(profile, c.task, s.natural_images // 2))
        out.append(Cell("natural", f"natural/{c.task}/{label}", natural_cell,
                        {"profile": profile, "task": c.task, "model": label}, cost_gmac=gmac))
    return out + _uap_cells(profile, targeted=profile.uap.targeted, models=models)


__all__ = ["cells", "natural_cell", "natural_cells", "transfer_cell", "uap_cell"]
