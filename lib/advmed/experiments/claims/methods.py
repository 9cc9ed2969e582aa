"""The Methods chapter's tables and numbers: the studies' eps in every unit, the profiles side
by side, the evaluation protocol and the registry's margins (all computed; the chapter types
none of them)."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from .. import references
from ..profiles import PROFILES, Profile
from . import registry
from .statistics import LEVEL

#: Each study's eps convention (``references.eps_to_pixels``) and where its budget is given.
_BUDGETS = (
    ("adversarialmed", "ImageNet-normalised, (x - mean) / std", "imagenet_normalised",
     references.ADVERSARIALMED_ATTACKS["eps_normalised"], references.ADVERSARIALMED_ATTACKS["step_normalised"]),
    ("finlayson", "inputs in [-1, 1]", "minus1_1", references.FINLAYSON_PGD["eps_minus1_1"],
     references.FINLAYSON_PGD["step_minus1_1"]),
)


def eps_conversions() -> pd.DataFrame:
    """Each study's eps and step in its own units, in [0, 1] pixels and in grey levels (/255)."""
    rows = []
    for study, units, convention, eps, step in _BUDGETS:
        e, s = references.eps_to_pixels(eps, convention), references.eps_to_pixels(step, convention)
        rows.append({"study": references.STUDIES[study]["short"], "units": units, "eps (study)": eps,
                     "eps [0, 1]": round(e, 5), "eps (/255)": round(e * 255, 2), "step (study)": step,
                     "step [0, 1]": round(s, 5), "step (/255)": round(s * 255, 2)})
    hir = references.HIRANO_UAP
    rows.append({"study": references.STUDIES["hirano"]["short"], "units": "zeta: share of the mean image norm",
                 "eps (study)": ", ".join(f"{z:.0%}" for z in hir["zetas"]), "eps [0, 1]": "per task",
                 "eps (/255)": "per task", "step (study)": hir["step"], "step [0, 1]": round(hir["step"] / 2, 5),
                 "step (/255)": round(hir["step"] / 2 * 255, 2)})
    return pd.DataFrame(rows)


def profiles_overview() -> pd.DataFrame:
    """What each profile runs (the intro describes what each is for): tasks and sides, models, test images per task, the white-box
    ensemble's iterations and restarts, bootstrap resamples."""
    rows = []
    for name in ("smoke", "cpu", "paper"):
        p = PROFILES[name]
        rows.append({"profile": name, "tasks": ", ".join(f"{t} ({s} px)" for t, s in p.tasks.items()),
                     "models": ", ".join(f"{m.arch} ({m.init})" for m in p.models),
                     "test images per task": p.eval.max_test or "all",
                     "attacked images per task": p.whitebox.n_images or "all", "ensemble iterations": p.whitebox.robust_steps,
                     "PGD restarts": p.whitebox.pgd_restarts, "bootstrap resamples": p.eval.n_boot})
    return pd.DataFrame(rows)


class Protocol(NamedTuple):
    """The evaluation protocol's numbers for ``profile`` (glued into the Methods chapter)."""

    attacked_images: int | str
    n_boot: int
    level_pct: int
    robust_steps: int
    pgd_restarts: int
    diag_steps: int
    diag_restarts: int


def protocol(profile: Profile) -> Protocol:
    w = profile.whitebox
    return Protocol(profile.whitebox.n_images or "all", int(profile.eval.n_boot), round(LEVEL * 100), int(w.robust_steps),
                    int(w.pgd_restarts), max(w.diag_steps), max(w.diag_restarts))


class Margins(NamedTuple):
    """The registry's margins and readings (glued into the Methods and claims chapters)."""

    about: float
    figure_margin: float
    attack_margin: float
    effect: float
    few_cases: float
    architecture_spread: float
    fingerprint: str
    changes: int


def margins() -> Margins:
    return Margins(registry.ABOUT, registry.FIGURE_MARGIN, registry.ATTACK_MARGIN, registry.EFFECT,
                   round(registry.FEW_CASES, 3), registry.ARCHITECTURE_SPREAD, registry.fingerprint(),
                   len(registry.CHANGELOG))


def changelog_table() -> pd.DataFrame:
    """The registry's changelog: each accepted fingerprint with its date and reason."""
    return pd.DataFrame([c._asdict() for c in registry.CHANGELOG])


__all__ = ["Margins", "Protocol", "changelog_table", "eps_conversions", "margins", "profiles_overview", "protocol"]
