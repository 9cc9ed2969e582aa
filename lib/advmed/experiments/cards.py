"""Dataset cards: what each task is built from, counted from the data itself.

A card gives, per task, the class counts of every split, the resolution the profile
uses, the source and licence from the registry, and how many patients / lesions two
splits share (computed from the file names or the metadata, not asserted).
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ..data import get_spec, get_task, load_task
from ..plots import task_label
from .profiles import Profile

SPLITS = ("train", "val", "test")


def _splits(task: str, size: int, progress: bool) -> dict[str, Any]:
    return {s: load_task(task, s, size=size, channels=3, progress=progress) for s in SPLITS}


def shared_groups(sets: dict[str, Any]) -> dict[str, int | None]:
    """Number of patient / lesion ids each pair of splits has in common (None: no ids)."""
    out: dict[str, int | None] = {}
    for a, b in combinations(SPLITS, 2):
        ga, gb = sets[a].groups, sets[b].groups
        out[f"{a}/{b}"] = None if ga is None or gb is None else len(np.intersect1d(ga, gb))
    return out


def dataset_cards(profile: Profile, *, progress: bool = False) -> pd.DataFrame:
    """One row per task of the profile: counts per split, resolution, source, leakage check."""
    rows = []
    for task, size in profile.tasks.items():
        t = get_task(task)
        ds = get_spec(t.dataset)
        sets = _splits(task, int(size), progress)
        counts = {s: "/".join(str(int((sets[s].labels == i).sum())) for i in range(len(sets[s].classes)))
                  for s in SPLITS}
        shared = shared_groups(sets)
        unit = ds.group_name or "group"
        leak = ("official split (no ids)" if all(v is None for v in shared.values()) else
                "; ".join(f"{k}: {v} {unit}s" for k, v in shared.items() if v is not None))
        rows.append({
            "task": task, "dataset": t.dataset, "view": t.view or "-",
            "classes": " / ".join(sets["train"].classes),
            "train": counts["train"], "val": counts["val"], "test": counts["test"],
            "size (px)": int(size), "split rule": ds.split_rule,
            "shared ids between splits": leak, "source": ds.source, "licence": ds.license,
        })
    return pd.DataFrame(rows).set_index("task")


def card_summary(cards: pd.DataFrame) -> pd.DataFrame:
    """The page's version of :func:`dataset_cards`: task, classes, images per split (counts per
    class, in the order of the classes) and resolution; the sources, licences, split rules and
    the leakage check stay in the full card (the chapter's appendix)."""
    df = cards.reset_index()
    return pd.DataFrame({"task": df["task"].map(task_label), "classes": df["classes"], "training": df["train"],
                         "validation": df["val"], "test": df["test"], "pixels": df["size (px)"]})
