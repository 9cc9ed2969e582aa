"""Study figures beside ours: one row per comparison, with the settings that differ.

Every comparison row holds the study's figure, ours, the difference (ours - study) and
the setting of each side (data, resolution, model, initialisation), so a reader sees
at a glance what was compared with what.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from .references import STUDIES


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


def study_citations(keys: Iterable[str]) -> pd.DataFrame:
    """The studies' full citations and settings for a table footnote."""
    return pd.DataFrame([{"study": k, **STUDIES[k]} for k in keys]).set_index("study")


def clean_comparison_summary(comparison: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """The page's version of :func:`compare_clean`: for each published figure that a model of
    ours can be set beside, the closest of our models (the same architecture first, as
    :func:`compare_clean` orders them), the study's and our ``metric`` and the difference.
    Figures for tasks this profile did not run are left to the full comparison."""
    from ..plots import task_label

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
