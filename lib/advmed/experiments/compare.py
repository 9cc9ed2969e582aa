"""Study figures beside ours: one row per comparison, with the settings that differ.

Every comparison row holds the study's figure, ours, the difference (ours - study) and
the setting of each side (data, resolution, model, initialisation), so a reader sees
at a glance what was compared with what.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from ..data import get_task
from ..plots import task_label
from .profiles import Profile
from .references import STUDIES, STUDY_SETTINGS


def compare_clean(ours: pd.DataFrame, references: Iterable[Mapping[str, Any]],
                  metrics: tuple[str, ...] = ("auc", "accuracy")) -> pd.DataFrame:
    """Match each published clean figure with our models of the same task.

    ``ours`` is :func:`advmed.experiments.zoo.clean_results` with ``numeric=True``. A study
    row is matched with every model of ours on its task (same architecture first);
    tasks we did not train are listed with our columns empty, so nothing is dropped
    silently.
    """
    rows = []
    for ref in references:
        mine = ours[ours["task"] == ref["task"]]
        if mine.empty:
            mine = pd.DataFrame([{}])
        else:  # the same architecture first, then the others
            mine = mine.assign(_same=(mine["arch"] == ref["arch"])).sort_values("_same", ascending=False)
        for _, row in mine.iterrows():
            ran = "arch" in row and pd.notna(row.get("arch"))
            out = {
                "study": ref["study"], "task": ref["task"],
                "study setting": f"{ref['arch']}, {ref['size']} px",
                "our setting": (f"{row['arch']} ({row['init_used']}), {int(row['size'])} px, n={int(row['n_test'])}"
                                if ran else "not run in this profile"),
                "our model": f"{row['arch']} ({row['init_used']}), {int(row['size'])} px" if ran else "",
            }
            for m in metrics:
                study_value = ref.get(m)
                our_value = row.get(m) if m in row else None
                out[f"{m} study"] = study_value
                out[f"{m} ours"] = our_value
                out[f"{m} ours - study"] = (None if study_value is None or our_value is None or pd.isna(our_value)
                                            else our_value - study_value)
            rows.append(out)
    return pd.DataFrame(rows)


def _recipes(profile: Profile) -> str:
    recipes: dict[str, list[str]] = {}  # initialisations that share a recipe are named once
    for init in dict.fromkeys(m.init for m in profile.models):
        f = profile.train_fields(init)
        text = (f"{f.get('optimizer', 'adamw')} lr {f.get('lr'):g} ({f.get('schedule', 'cosine')}), "
                f"<= {f.get('epochs')} epochs, early stop (patience {f.get('patience')})")
        recipes.setdefault(text, []).append(init)
    return "; ".join(f"{', '.join(inits)}: {text}" for text, inits in recipes.items())


def _our_attacks(profile: Profile, chapter: str) -> tuple[str, str]:
    w, u = profile.whitebox, profile.uap
    if chapter == "whitebox":
        return (f"single attacks {w.steps} (FGSM 1); ensemble APGD-CE, APGD-margin/T, PGD x{w.pgd_restarts}, "
                f"{w.robust_steps} each", f"{w.n_images or 'all'} test images per task")
    if chapter in ("universal", "natural"):
        passes = f"<= {u.max_passes} passes ({u.method})" + (f", until a pass gains < {u.min_gain:g}"
                                                             if u.min_gain is not None else "")
        source = (f"{u.natural_images} photos to build" if chapter == "natural" else f"{u.n_build} training images to build")
        return passes, f"{source}, {u.n_eval or 'all'} test images to evaluate"
    if chapter == "blackbox":
        b = profile.blackbox
        budgets = ", ".join(f"{t} {q:,}" for t, q in b.query_budgets.items())
        iters = ", ".join(f"{t} {i:,}" for t, i in b.usimba_iterations.items())
        return (f"transfer {b.steps} on the surrogate; queries per image: {budgets}; U-SimBA iterations: {iters}",
                f"{b.n_images or 'all'} test images per task (queries {b.query_images}; U-SimBA built on "
                f"{b.usimba_images})")
    if chapter == "patches":
        pa = profile.patch
        return (f"{pa.steps} Adam steps of {pa.batch_size} images per patch (EOT)",
                f"{pa.n_train} training images to train, {pa.n_eval or 'all'} test images to evaluate")
    return "no attack", f"{'all' if profile.eval.max_test is None else profile.eval.max_test} test images per task"


def settings_beside(profile: Profile, studies: Iterable[str], *, chapter: str = "models") -> pd.DataFrame:
    """Each study's setting and ours, one row each: data, resolution, architecture,
    initialisation, optimiser and epochs, attack iterations, images. ``chapter`` (models,
    whitebox, universal, natural, blackbox, patches) says which of our attack settings the row shows."""
    rows = [{"who": STUDIES[k]["cite"].split(",")[0], **STUDY_SETTINGS[k]} for k in studies]
    attacks, images = _our_attacks(profile, chapter)
    archs = dict.fromkeys(m.arch for m in profile.models)
    inits = dict.fromkeys(m.init for m in profile.models)
    rows.append({
        "who": f"ours ({profile.name} profile)",
        "data": "; ".join(get_task(t).title.split(", ")[-1] for t in profile.tasks),
        "resolution": ", ".join(f"{t} {s} px" for t, s in profile.tasks.items()),
        "architecture": ", ".join(archs), "initialisation": ", ".join(inits),
        "optimiser and epochs": _recipes(profile), "attack iterations": attacks, "images": images,
    })
    return pd.DataFrame(rows)


def settings_side_by_side(profile: Profile, studies: Iterable[str], *, chapter: str = "models") -> pd.DataFrame:
    """:func:`settings_beside` for a page: one row per setting (data, resolution, ...), one column
    per study and one for ours, so that a few columns of wrapped text fit the text column."""
    beside = settings_beside(profile, studies, chapter=chapter).set_index("who")
    out = beside.T.reset_index().rename(columns={"index": "setting"})
    out.columns.name = None
    return out


def clean_comparison_summary(comparison: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """The page's version of :func:`compare_clean`: for each published figure that a model of
    ours can be set beside, the closest of our models (the same architecture first, as
    :func:`compare_clean` orders them), the study's and our ``metric`` and the difference.
    Figures for tasks this profile did not run are left to the full comparison."""
    run = comparison[comparison[f"{metric} ours"].notna()]
    first = run.groupby(["study", "task", "study setting"], sort=False).head(1)
    return pd.DataFrame({
        "study": [STUDIES[s].get("short", s) for s in first["study"]],
        "task": first["task"].map(task_label).to_numpy(),
        "study setting": first["study setting"].to_numpy(),
        "our model": first["our model"].to_numpy(),
        f"{metric.upper() if metric == 'auc' else metric} study": first[f"{metric} study"].to_numpy(),
        f"{metric.upper() if metric == 'auc' else metric} ours": first[f"{metric} ours"].astype(float).to_numpy(),
        "ours − study": first[f"{metric} ours - study"].astype(float).to_numpy(),
    })
