"""Chapter 5's cells (:mod:`advmed.experiments.cells`): surrogates, transfer, queries, U-SimBA.

Every cell calls :mod:`.run` and :mod:`.surrogates` the way chapter 5 does, on the task's
models, so the memo and checkpoint keys are the chapter's (the models' checkpoint keys, the
digest of the attacked images, the settings and the seed), and the chapter executed
afterwards reloads every result.

- ``blackbox/surrogate/<task>/<seed|disjoint>``: stage 0, one surrogate of the task's target
  (:func:`.surrogates.surrogate_configs`), trained from its config alone, beside the zoo's
  trainings (a disjoint surrogate that cannot exist says why and trains nothing).
- ``blackbox/transfer/<task>``: the task's transfer matrix (every source x attack, and the
  ensembles); ``blackbox/finlayson/<task>``: Finlayson et al.'s targeted black box (their
  binary tasks); ``blackbox/query/<task>``: Square and SimBA-DCT on the target;
  ``blackbox/usimba/<task>/<norm>/zeta<z>/<nt|tK>``: one U-SimBA perturbation.
- ``whitebox/robust/<task>/<arch:init>``: chapter 2's robust accuracy of the models the
  white-box check reads (the whitebox family's cells of the same names, listed once).
- ``blackbox/check/<task>``: stage 2, the check against the white-box worst case, which
  computes the masking diagnostics of the models it flags.
"""
from __future__ import annotations

from typing import Any

from ...train import get_trained_model
from .. import references
from ..cells import Cell, task_classes
from ..estimate import forward_gmac, n_images, train_cost
from ..profiles import Profile
from ..kernel import adversarialmed_eps, finlayson_eps, study_steps
from ..kernel.cells import robust_cells, surrogate_cell, surrogate_cells, target, target_zoo, task_configs
from ..zoo import ModelKey, configs_for_profile, trained_models
from . import run
from ..kernel.surrogates import trained_surrogates


# --------------------------------------------------------------------------- cell functions
def _task_inputs(profile: Profile, task: str) -> tuple[dict, dict]:
    zoo = trained_models(profile, tasks=[task], progress=False)
    return zoo, trained_surrogates(profile, zoo, tasks=[task])


def transfer_cell(profile: Profile, task: str) -> str:
    """The transfer matrix of one task (:func:`.run.transfer_results` on the task's models)."""
    zoo, sur = _task_inputs(profile, task)
    res = run.transfer_results(profile, zoo, sur, progress=False)
    return f"{task}: {len(res.rows)} transfer rows"


def finlayson_cell(profile: Profile, task: str) -> str:
    """Finlayson et al.'s black box on one task (:func:`.run.finlayson_blackbox`)."""
    zoo = target_zoo(profile, task, profile.blackbox.model)
    sur = trained_surrogates(profile, zoo, tasks=[task])
    res = run.finlayson_blackbox(profile, zoo, sur, progress=False)
    return f"{task}: {len(res)} Finlayson black-box rows"


def adversarialmed_cell(profile: Profile, task: str) -> str:
    """AdversarialMed's four attacks transferred from the surrogates (:func:`.run.adversarialmed_blackbox`)."""
    zoo = target_zoo(profile, task, profile.blackbox.model)
    sur = trained_surrogates(profile, zoo, tasks=[task])
    res = run.adversarialmed_blackbox(profile, zoo, sur, progress=False)
    return f"{task}: {len(res)} AdversarialMed black-box rows"


def query_cell(profile: Profile, task: str) -> str:
    """The query attacks on one task's target (:func:`.run.query_results`)."""
    res = run.query_results(profile, target_zoo(profile, task, profile.blackbox.model), progress=False)
    return f"{task}: {len(res)} query runs"


def usimba_cell(profile: Profile, task: str, norm: str, zeta: float, target_class: int | None) -> str:
    """One U-SimBA perturbation, memoised as :func:`.run.usimba_results` memoises it."""
    zoo = target_zoo(profile, task, profile.blackbox.model)
    (key, tm), = zoo.items()
    build, evalset = run.usimba_sets(task, profile)
    res = run.usimba_run(tm, build, evalset, norm=norm, zeta=float(zeta), target=target_class,
                         iterations=int(profile.blackbox.usimba_iterations[task]), seed=profile.seed)
    return f"{task}/{key.arch}:{key.init} U-SimBA {norm} zeta {zeta:g}: held-out rate {res.rate(target_class):.3f}"


def check_cell(profile: Profile, task: str) -> str:
    """The white-box check of one task (:func:`.run.whitebox_check`): reads the transfer and
    query results, computes the diagnostics of the models it flags."""
    zoo, sur = _task_inputs(profile, task)
    transfer = run.transfer_results(profile, zoo, sur, progress=False)
    queries = run.query_results(profile, zoo, progress=False)
    check = run.whitebox_check(profile, zoo, transfer, queries, progress=False)
    return f"{task}: {len(check.table)} checks, {len(check.flagged)} flagged"


# --------------------------------------------------------------------------- the list
def _craft_forwards(steps: int, n: int) -> float:
    return (3 * steps + 1) * n  # an input gradient per step, one scoring pass


def transfer_tasks(profile: Profile) -> list[str]:
    """The tasks with transfer matrices (``blackbox.transfer_tasks`` that the profile has)."""
    return [t for t in (profile.blackbox.transfer_tasks or profile.tasks) if t in profile.tasks]


def query_tasks(profile: Profile) -> list[str]:
    """The tasks attacked by queries."""
    return [t for t in profile.blackbox.query_budgets if t in profile.tasks]


def usimba_jobs(profile: Profile) -> list[tuple[str, str, float, int | None]]:
    """``(task, norm, zeta, target)`` of every U-SimBA perturbation (:func:`.run.usimba_results`'s jobs)."""
    s, u = profile.blackbox, profile.uap
    return [(task, norm, float(zeta), t) for task in s.usimba_iterations if task in profile.tasks
            for norm in s.usimba_norms for zeta in u.zetas
            for t in [None] + (list(range(len(task_classes(task)))) if u.targets_at(float(zeta)) else [])]


def cells(profile: Profile) -> list[Cell]:
    """Chapter 5: surrogates (stage 0), attacks (stage 1), the white-box check (stage 2)."""
    s = profile.blackbox
    out = surrogate_cells(profile, list(profile.tasks))
    fe_steps = int(finlayson_eps()["steps"])
    theirs = {r["task"] for r in references.FINLAYSON_PGD["rows"]}
    for task in profile.tasks:
        configs = task_configs(profile, task)
        gmacs = [forward_gmac(c.arch, c.net_size or c.size) for c in configs.values()]
        mean, n = sum(gmacs) / len(gmacs), n_images(task, "test", s.n_images)
        _, cfg = target(profile, task, s.model)
        g_target = forward_gmac(cfg.arch, cfg.net_size or cfg.size)
        args = {"profile": profile, "task": task}
        if task in transfer_tasks(profile):
            n_src = len(configs) + 2
            craft = (n_src * len(s.attacks) + len(configs) * (n_src - 1)) * _craft_forwards(s.steps, n) * mean
            out.append(Cell("blackbox", f"blackbox/transfer/{task}", transfer_cell, args,
                            cost_gmac=craft + n_src * len(s.attacks) * len(configs) * n * mean))
        if task in theirs and len(task_classes(task)) == 2:
            out.append(Cell("blackbox", f"blackbox/finlayson/{task}", finlayson_cell, args,
                            cost_gmac=2 * _craft_forwards(fe_steps, n) * g_target))
        if task == references.ADVERSARIALMED_ATTACKS["task"]:
            am_steps = study_steps(int(adversarialmed_eps()["steps"]), profile)
            crafts = 2 * (_craft_forwards(1, n) + 3 * _craft_forwards(am_steps, n))  # two surrogates
            out.append(Cell("blackbox", f"blackbox/adversarialmed/{task}", adversarialmed_cell, args,
                            cost_gmac=crafts * g_target))
        if task in query_tasks(profile):
            q = len(s.query_attacks) * int(s.query_budgets[task]) * int(s.query_images)
            out.append(Cell("blackbox", f"blackbox/query/{task}", query_cell, args, cost_gmac=q * g_target))
        out.append(Cell("blackbox", f"blackbox/check/{task}", check_cell, args, stage=2,
                        cost_gmac=len(configs) * n * mean))
    for task, norm, zeta, t in usimba_jobs(profile):
        _, cfg = target(profile, task, s.model)
        forwards = (2 * int(s.usimba_iterations[task]) + 2) * n_images(task, "train", s.usimba_images)
        forwards += 3 * n_images(task, "test", s.usimba_eval)
        out.append(Cell("blackbox", f"blackbox/usimba/{task}/{norm}/zeta{zeta:g}/{'nt' if t is None else f't{t}'}",
                        usimba_cell, {"profile": profile, "task": task, "norm": norm, "zeta": zeta,
                                      "target_class": t},
                        cost_gmac=forwards * forward_gmac(cfg.arch, cfg.net_size or cfg.size)))
    checked = set(transfer_tasks(profile)) | (set(query_tasks(profile)) if set(run.LINF_QUERY_ATTACKS) & set(s.query_attacks) else set())
    out += robust_cells(profile, checked)
    return out


__all__ = ["adversarialmed_cell", "cells", "check_cell", "finlayson_cell", "query_cell", "query_tasks", "surrogate_cell", "surrogate_cells",
           "target", "target_zoo", "task_configs", "transfer_cell", "transfer_tasks", "usimba_cell", "usimba_jobs"]
