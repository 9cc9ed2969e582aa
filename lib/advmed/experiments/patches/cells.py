"""Chapter 6's cells (:mod:`advmed.experiments.cells`): each task's patches.

A cell calls :func:`.run.patch_experiment`, the function chapter 6 calls, on the task's models
(the target is ``patch.model`` but the surrogate is chapter 5's, of ``blackbox.model``: both
are picked from the task's zoo as from the whole one), so the memo keys are the chapter's: the checkpoint keys of the model a patch is trained on and of the target,
the digests of the training and evaluation images, the settings and the seed.

- ``blackbox/surrogate/<task>/seed``: stage 0, the surrogate the black-box patch is trained on
  (chapter 5's cell of the same name, listed once);
- ``patches/<task>``: the white-box, black-box and natural patches of the task's target and
  their evaluations at every scale.
"""
from __future__ import annotations

from ..kernel.cells import surrogate_cells, target
from ..cells import Cell, task_classes
from ..estimate import forward_gmac, n_images
from ..profiles import Profile
from ..zoo import trained_models
from . import run


def patch_cell(profile: Profile, task: str) -> str:
    """The patches of one task (:func:`.run.patch_experiment` on its target)."""
    exp = run.patch_experiment(profile, trained_models(profile, tasks=[task], progress=False), progress=False)
    return f"{task}: {len(exp.runs)} patches"


def patch_tasks(profile: Profile) -> list[str]:
    """The binary tasks :func:`.run.patch_tasks` patches, from the data registry (no model needed)."""
    wanted = profile.patch.tasks or tuple(profile.tasks)
    return [t for t in wanted if t in profile.tasks and len(task_classes(t)) == 2]


def cells(profile: Profile) -> list[Cell]:
    """The seed surrogates of the patched tasks (stage 0) and each task's patches (stage 1)."""
    s = profile.patch
    tasks = patch_tasks(profile)
    out = surrogate_cells(profile, tasks, kinds=("seed",))
    scales = len({float(v) for v in s.eval_scales} | {float(s.eval_scale)})
    for task in tasks:
        _, cfg = target(profile, task, s.model)
        train = 2 * int(s.steps) * int(s.batch_size) * 3  # two patches (white box, black box), a gradient a step
        evals = 3 * scales * int(s.n_placements) * n_images(task, "test", s.n_eval)  # three patches
        out.append(Cell("patches", f"patches/{task}", patch_cell, {"profile": profile, "task": task},
                        cost_gmac=(train + evals) * forward_gmac(cfg.arch, cfg.net_size or cfg.size)))
    return out


__all__ = ["cells", "patch_cell", "patch_tasks"]
