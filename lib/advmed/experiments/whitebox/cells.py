"""Chapter 2's cells (:mod:`advmed.experiments.cells`): one model against the white-box attacks.

Each cell calls the functions chapter 2 calls (:mod:`.run`) on a one-model (or one-task) zoo,
with the profile's settings, so the memo keys are the chapter's: the model's checkpoint key,
the digest of the task's test images and the settings. The chapter executed afterwards
reloads every result.

- ``whitebox/sweep/<task>/<arch:init>``: the sweep (every attack at every eps) and the
  studies' own settings (AdversarialMed on pneumonia_cxr, Finlayson et al. on binary tasks).
- ``whitebox/robust/<task>/<arch:init>``: robust accuracy, the ensemble's worst case.
- ``whitebox/diagnostics/<task>``: the gradient-masking diagnostics of the task's models
  (each model's transfer check uses the task's next model, so the task is the unit).
"""
from __future__ import annotations

from ...attacks import get_attack
from ..cells import Cell
from ..estimate import forward_gmac, n_images
from ..profiles import Profile
from ..zoo import configs_for_profile, trained_models
from ..kernel import ATTACKS, study_steps
from ..kernel.cells import robust_cell, robust_cells
from . import run


def sweep_cell(profile: Profile, task: str, model: str) -> str:
    """The sweep and the studies' settings for one model (memoised as chapter 2 does)."""
    zoo = trained_models(profile, tasks=[task], models=[model], progress=False)
    sweep = run.whitebox_results(profile, zoo, progress=False)
    run.adversarialmed_results(profile, zoo, progress=False)
    run.finlayson_results(profile, zoo, progress=False)
    return f"{task}/{model}: {len(sweep)} sweep rows"


def diagnostics_cell(profile: Profile, task: str) -> str:
    """The masking diagnostics of every model of one task (:func:`.run.diagnostics_results`)."""
    zoo = trained_models(profile, tasks=[task], progress=False)
    res = run.diagnostics_results(profile, zoo, progress=False)
    return f"{task}: {len(res)} diagnostic rows"


def _sweep_forwards(profile: Profile, task: str) -> float:
    s = profile.whitebox
    per_eps = sum(3 * get_attack(a).steps_taken(s.steps) * max(1, s.restarts) + 1 for a in ATTACKS)
    n_eps = len([e for e in s.eps_255 if float(e) > 0])
    forwards = 1 + n_eps * per_eps
    study = study_steps(20, profile)  # AdversarialMed's 10 and Finlayson's 20 iterations, at most
    forwards += 3 * study * (len(ATTACKS) + 1)
    return forwards * n_images(task, "test", s.n_images)


def _diag_forwards(profile: Profile, task: str) -> float:
    s = profile.whitebox
    grads = sum(s.diag_steps) * max(s.diag_restarts) + len(s.diag_eps_grid_255) * s.robust_steps
    return 3 * grads * n_images(task, "test", s.diag_images)


def cells(profile: Profile) -> list[Cell]:
    """Every white-box cell of ``profile`` (stage 1: after the models are trained)."""
    out: list[Cell] = []
    diag: dict[str, float] = {}
    for c in configs_for_profile(profile):
        label = f"{c.arch}:{c.init}"
        gmac = forward_gmac(c.arch, c.net_size or c.size)
        args = {"profile": profile, "task": c.task, "model": label}
        out.append(Cell("whitebox", f"whitebox/sweep/{c.task}/{label}", sweep_cell, args,
                        cost_gmac=_sweep_forwards(profile, c.task) * gmac))
        diag[c.task] = diag.get(c.task, 0.0) + 2 * _diag_forwards(profile, c.task) * gmac  # model + surrogate
    out += robust_cells(profile)
    out += [Cell("whitebox", f"whitebox/diagnostics/{task}", diagnostics_cell, {"profile": profile, "task": task},
                 cost_gmac=g) for task, g in diag.items()]
    return out


__all__ = ["cells", "diagnostics_cell", "robust_cell", "sweep_cell"]
