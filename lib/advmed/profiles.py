"""Experiment sizes, all in one place.

A single parameter, ``profile``, sizes every chapter:

- ``smoke``: tiny subsets and a small CNN; the whole book executes in a few minutes.
  Used by the tests. Its numbers mean nothing about medicine.
- ``cpu``: the default without a GPU. Reduced resolution, subsets of the test sets and
  small or pretrained-mobile networks, so that the whole book builds cold on a 2-core
  machine within its time budget.
- ``paper``: the default with CUDA. 224 px (299 for Inception), every architecture,
  full test sets, the studies' training settings.

Chapters read a profile with :func:`get_profile` and show it with :func:`profile_table`;
a reader overrides single entries through the chapter's parameters cell.
"""
from __future__ import annotations

import copy
from typing import Any

PROFILE_NAMES = ("smoke", "cpu", "paper")

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "description": "tiny subsets and a small CNN; executes the whole book in minutes (tests)",
        "tasks": {"pneumonia_cxr": {"size": 32}, "pneumoniamnist": {"size": 28}},
        "models": [
            {"arch": "small_cnn", "init": "scratch"},
            {"arch": "mobilenet_v1_075", "init": "imagenet"},
        ],
        "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4,
                  "max_train": 512, "max_val": 128, "patience": 2},
        "eval": {"max_test": 128, "n_boot": 200},
        "attacks": {"n_images": 32, "eps_255": [0, 1, 4, 8], "steps": 5, "restarts": 1,
                    "report_eps_255": 4, "gallery_images": 2,
                    "explorer": {"pairs": 1, "n_images": 2, "attacks": ["fgsm", "pgd"], "eps_255": [0, 4]}},
        "uap": {"n_build": 64, "n_eval": 64, "max_passes": 2, "zetas": [0.04],
                "norms": ["linf"], "natural_images": 64, "method": "batched", "batch_size": 16,
                "step_fraction": 0.25},
        "seeds": [0],
    },
    "cpu": {
        "description": "2-core CPU: reduced resolution, test subsets, small/mobile networks",
        "tasks": {
            "pneumonia_cxr": {"size": 64},
            "melanoma_derm": {"size": 64},
            "referable_dr": {"size": 28},
            "pneumoniamnist": {"size": 28},
        },
        "models": [
            {"arch": "resnet18", "init": "scratch"},
            {"arch": "mobilenet_v1_075", "init": "imagenet"},
            {"arch": "mobilenet_v1_075", "init": "scratch"},
        ],
        "train": {"epochs": 4, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
                  "max_train": 1500, "max_val": 400, "patience": 2},
        "eval": {"max_test": None, "n_boot": 1000},
        "attacks": {"n_images": 32, "eps_255": [0, 1, 2, 4], "steps": 5, "restarts": 1,
                    "report_eps_255": 2, "gallery_images": 3,
                    "explorer": {"pairs": 1, "n_images": 3, "attacks": ["fgsm", "pgd"],
                                 "eps_255": [0, 1, 2, 4]}},
        # batched UAPs, targeted ones at the largest zeta only: sized for ~6 min on 2 cores
        "uap": {"n_build": 192, "n_eval": 300, "max_passes": 2, "zetas": [0.02, 0.04],
                "norms": ["l2", "linf"], "natural_images": 192, "method": "batched", "batch_size": 32,
                "step_fraction": 0.25, "targeted_zetas": [0.04]},
        "seeds": [0],
    },
    "paper": {
        "description": "GPU: 224 px (299 Inception), every architecture, full test sets",
        "tasks": {
            "pneumonia_cxr": {"size": 224},
            "melanoma_derm": {"size": 224},
            "skin7_derm": {"size": 224},
            "referable_dr": {"size": 224},
            "pneumoniamnist": {"size": 224},
            "retina5": {"size": 224},
        },
        "models": [
            {"arch": "resnet50", "init": "imagenet"},
            {"arch": "densenet121", "init": "imagenet"},
            {"arch": "vgg16_bn", "init": "imagenet"},
            {"arch": "inception_v3", "init": "imagenet"},
            {"arch": "resnet18", "init": "scratch"},
            {"arch": "mobilenet_v1_075", "init": "imagenet"},
            {"arch": "mobilenet_v1_075", "init": "scratch"},
        ],
        "train": {"epochs": 30, "batch_size": 32, "lr": 1e-4, "weight_decay": 1e-4,
                  "max_train": None, "max_val": None, "patience": 5},
        "eval": {"max_test": None, "n_boot": 2000},
        "attacks": {"n_images": None, "eps_255": [0, 0.5, 1, 2, 4, 8], "steps": 20, "restarts": 1,
                    "report_eps_255": 2, "gallery_images": 4,
                    "explorer": {"pairs": 2, "n_images": 3, "attacks": ["fgsm", "ifgsm", "pgd", "mifgsm"],
                                 "eps_255": [0, 1, 2, 4, 8]}},
        "uap": {"n_build": 2000, "n_eval": None, "max_passes": 15, "zetas": [0.02, 0.04],
                "norms": ["l2", "linf"], "natural_images": 1000, "method": "iterative", "batch_size": 32},
        "seeds": [0, 1, 2],
    },
}


def resolve_profile_name(name: str | None = "auto") -> str:
    """``auto`` (or None) is ``paper`` when CUDA is visible, else ``cpu``."""
    if name in (None, "", "auto"):
        import torch

        return "paper" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; valid profiles: auto, {', '.join(PROFILE_NAMES)}")
    return name


def get_profile(name: str | None = "auto", **overrides: Any) -> dict[str, Any]:
    """A deep copy of a profile with top-level entries replaced by ``overrides``.

    ``None`` overrides are ignored, so a chapter's parameters cell can pass
    ``tasks=None`` to mean "the profile's tasks".
    """
    resolved = resolve_profile_name(name)
    prof = copy.deepcopy(PROFILES[resolved])
    prof["name"] = resolved
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in prof:
            raise KeyError(f"unknown profile entry {key!r}; valid entries: {', '.join(sorted(prof))}")
        if key == "tasks" and isinstance(value, (list, tuple)):
            value = {t: prof["tasks"].get(t, {"size": _default_size(resolved, t)}) for t in value}
        if key == "models" and isinstance(value, (list, tuple)):
            value = [_as_model(m) for m in value]
        if isinstance(prof[key], dict) and isinstance(value, dict) and key != "tasks":
            prof[key].update(value)
        else:
            prof[key] = value
    return prof


def _default_size(profile: str, task: str) -> int:
    from .data import get_task

    get_task(task)  # validates the name
    sizes = [spec["size"] for spec in PROFILES[profile]["tasks"].values()]
    return max(sizes) if sizes else 224


def _as_model(m: Any) -> dict[str, str]:
    """Accept ``"resnet18"``, ``"resnet18:imagenet"`` or ``{"arch":..., "init":...}``."""
    if isinstance(m, dict):
        return {"arch": m["arch"], "init": m.get("init", "scratch")}
    arch, _, init = str(m).partition(":")
    return {"arch": arch, "init": init or "scratch"}


def profile_table(profile: str | dict[str, Any] | None = "auto"):
    """A profile (a name, or a dict from :func:`get_profile` with its overrides) as a
    two-column pandas table (entry, value) for the book."""
    import pandas as pd

    prof = profile if isinstance(profile, dict) else get_profile(profile)
    rows = []
    for key, value in prof.items():
        if key == "tasks":
            value = ", ".join(f"{t} ({v['size']} px)" for t, v in value.items())
        elif key == "models":
            value = ", ".join(f"{m['arch']} ({m['init']})" for m in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}={v}" for k, v in value.items())
        rows.append({"entry": key, "value": value})
    return pd.DataFrame(rows).set_index("entry")
