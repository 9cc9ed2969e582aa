"""Chapter 7's cells (:mod:`advmed.experiments.cells`): the defended models and their evaluations.

Every cell calls :mod:`.run` the way chapter 7 does, on the task's defended model
(``defense.model``, from the zoo), so the checkpoint, VAE and memo keys are the chapter's,
and the chapter executed afterwards reloads every result. The defenses and what they cost
come from the registry (:mod:`.registry`).

- stage 0, the defenses' own trainings (:attr:`~.registry.DefenseSpec.train`), from the zoo
  model's config alone (beside the zoo's trainings): ``defenses/at/<task>/<method>`` (an
  adversarially trained model), ``defenses/vae/<task>`` (the VAE denoiser); and
  ``defenses/smoothing_model/<task>`` (the noise-trained base classifier of randomized smoothing);
- stage 1: ``defenses/eval/<task>/<defense>``, one defense under oblivious and adaptive attack
  with its diagnostics (:func:`.run.task_defenses` with ``only=[defense]``: the memo key of
  the full call); ``defenses/smoothing/<task>``, the certification;
- stage 0 too, ``defenses/regularisation/<task>``: AdversarialMed's regularisation experiment
  (its trainings need the zoo model's recipe only).
"""
from __future__ import annotations

from ...train import get_trained_model
from ..cells import Cell, task_classes
from ..estimate import forward_gmac, n_images, train_cost
from ..kernel import study_steps
from ..kernel.cells import target
from ..profiles import Profile
from ..zoo import trained_models
from . import run
from .registry import defense_names, get_defense
from .regularisation import regularisation_configs, regularisation_results, regularisation_task


def _defended(profile: Profile, task: str):
    """The task's defended model from the checkpoint cache, picked as :func:`.run.defense_results` picks it."""
    zoo = trained_models(profile, tasks=[task], models=[profile.defense.model], progress=False)
    key, _ = target(profile, task, profile.defense.model, models=[profile.defense.model])
    return key, zoo[key]


def _config(profile: Profile, task: str):
    return target(profile, task, profile.defense.model, models=[profile.defense.model])[1]


def train_cell(profile: Profile, task: str, defense: str) -> str:
    """A defense's own training (:attr:`~.registry.DefenseSpec.train`: an adversarially trained
    model, the VAE), from the zoo model's recipe."""
    return get_defense(defense).train.fn(profile, task, _config(profile, task))


def smoothing_model_cell(profile: Profile, task: str) -> str:
    """The noise-trained base classifier of randomized smoothing (:func:`.run.smoothing_config`)."""
    tm = get_trained_model(run.smoothing_config(_config(profile, task), profile), progress=False)
    return f"{task}: smoothing base classifier, val AUC {tm.val_auc:.3f}"


def defense_cell(profile: Profile, task: str, defense: str) -> str:
    """One defense of one task (:func:`.run.task_defenses`, ``only=[defense]``)."""
    key, tm = _defended(profile, task)
    (r,) = run.task_defenses(task, key, tm, profile, only=[defense])
    return f"{task}/{defense}: clean accuracy {float(r.clean['accuracy'].iloc[0]):.3f}"


def smoothing_cell(profile: Profile, task: str) -> str:
    """Randomized smoothing's certification (:func:`.run.smoothing_results`)."""
    zoo = trained_models(profile, tasks=[task], models=[profile.defense.model], progress=False)
    res = run.smoothing_results(profile, zoo)
    return f"{task}: certified on {res.n_images} images" if res is not None else f"{task}: no smoothing"


def regularisation_cell(profile: Profile, task: str) -> str:
    """AdversarialMed's regularisation experiment (:func:`.regularisation.regularisation_results`),
    from the zoo model's recipe alone."""
    res = regularisation_results(profile, _config(profile, task))
    return f"{task}: regularisation experiment, {len(res)} trainings"


def _defense_forwards(profile: Profile, task: str, defense: str) -> float:
    """Forward-equivalents of one defense's evaluation: oblivious PGD and the robust ensemble per
    budget, the studies' four attacks twice, the diagnostics (none for the reference), and
    what the defense adds itself (:attr:`~.registry.DefenseSpec.cost`)."""
    s, w = profile.defense, profile.whitebox
    spec = get_defense(defense)
    n, k = n_images(task, "test", s.n_images), len(task_classes(task))
    members = w.robust_restarts * (1 + (min(9, k - 1) if k >= 4 else 1)) + w.pgd_restarts
    per_eps = 3 * int(s.steps) + 3 * int(w.robust_steps) * members
    studies = 2 * len(run.STUDY_ATTACKS) * 3 * study_steps(10, profile)
    diag = 0.0 if spec.reference else 3 * (sum(w.diag_steps) * max(w.diag_restarts)
                                           + len(w.diag_eps_grid_255) * w.robust_steps)
    own = spec.cost(profile, task, _config(profile, task))
    return n * (len(s.eps_255) * per_eps + studies) + diag * n_images(task, "test", s.diag_images) + own


def cells(profile: Profile) -> list[Cell]:
    """Chapter 7: the defenses' trainings (stage 0), their evaluations (stage 1)."""
    s = profile.defense
    out: list[Cell] = []
    for task in run.defense_tasks(profile):
        cfg = _config(profile, task)
        gmac = forward_gmac(cfg.arch, cfg.net_size or cfg.size)
        args = {"profile": profile, "task": task}
        names = defense_names(profile)
        for defense in names:
            train = get_defense(defense).train
            if train is not None:
                out.append(Cell("defenses", f"defenses/{train.cell.format(task=task)}", train_cell,
                                {**args, "defense": defense}, stage=0, cost_gmac=train.gmac(profile, cfg)))
        for defense in names:
            out.append(Cell("defenses", f"defenses/eval/{task}/{defense}", defense_cell, {**args, "defense": defense},
                            cost_gmac=_defense_forwards(profile, task, defense) * gmac))
    task = regularisation_task(profile)
    if task is not None:
        cfg = _config(profile, task)
        out.append(Cell("defenses", f"defenses/regularisation/{task}", regularisation_cell,
                        {"profile": profile, "task": task}, stage=0,
                        cost_gmac=sum(train_cost(c) for _, _, c in regularisation_configs(profile, cfg))))
    task = s.smoothing_task
    if task is not None and task in profile.tasks:
        cfg = _config(profile, task)
        args = {"profile": profile, "task": task}
        out.append(Cell("defenses", f"defenses/smoothing_model/{task}", smoothing_model_cell, args, stage=0,
                        cost_gmac=train_cost(run.smoothing_config(cfg, profile))))
        out.append(Cell("defenses", f"defenses/smoothing/{task}", smoothing_cell, args,
                        cost_gmac=(s.smoothing_n0 + s.smoothing_n) * s.smoothing_images
                        * forward_gmac(cfg.arch, cfg.net_size or cfg.size)))
    return out


__all__ = ["cells", "defense_cell", "regularisation_cell", "smoothing_cell", "smoothing_model_cell", "train_cell"]
