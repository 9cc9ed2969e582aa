"""Before a build: which profile ``auto`` means here, what it will run, and how long that takes.

On a machine with CUDA, ``auto`` means ``paper``: hours of work. A build therefore says up
front what the profile runs (tasks, models, cells per family) and an estimate of the time
(:mod:`advmed.experiments.estimate`), and when ``auto`` would start more than an hour of work
it stops and asks for the profile by name (``make book PROFILE=paper``), so nobody starts
the paper's grid by typing ``make book``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from ..experiments import cells, estimate
from ..experiments.profiles import get_profile, resolve_profile_name


class ConfirmProfile(ValueError):
    """``auto`` resolved to a profile whose estimated time is above the threshold."""


def device_kind() -> str:
    """``"cuda"`` when a GPU is visible (what ``auto`` looks at), else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ScaleCheck(NamedTuple):
    """What :func:`check_scale` found: the profile to build and the estimate of each chapter."""

    profile: str
    chapter_seconds: dict[str, float]  # stem -> estimated seconds of executing it, serially


def check_scale(profile: str, chapters: Sequence[str] | None = None, *, workers: int = 1,
                log: Callable[[str], None] = print,
                threshold_s: float = estimate.CONFIRM_ABOVE_S) -> ScaleCheck:
    """Resolve ``profile``, log what it runs and the estimated time; return the profile name
    and each chapter's estimated seconds (for the build's progress lines).

    Raises:
        ConfirmProfile: ``profile`` is ``auto``, a GPU is visible (so ``auto`` means ``paper``)
            and the estimate exceeds ``threshold_s`` (the message says how to ask for it by
            name). Without a GPU ``auto`` is ``cpu``, sized for a 2-core machine, and starts.
    """
    implicit = profile in (None, "", "auto")
    name = resolve_profile_name(profile)
    device = device_kind()
    p = cells.plan(get_profile(name), chapters)
    seconds = p.seconds(device, workers)
    how = f" (auto: {'a GPU is visible' if device == 'cuda' else 'no GPU'})" if implicit else ""
    log(f"advmed.book: profile {name}{how}")
    for line in estimate.describe(p, device, workers).splitlines():
        log(f"  {line}")
    if implicit and device == "cuda" and seconds > threshold_s:
        raise ConfirmProfile(
            f"profile auto is {name} here, estimated at about {estimate.fmt_seconds(seconds)} on {device} "
            f"(more than {estimate.fmt_seconds(threshold_s)}): ask for it by name to start it, "
            f"`make book PROFILE={name}` (or --profile {name}), or choose a smaller one: "
            f"PROFILE=paper-dry (every code path in minutes), cpu or smoke")
    return ScaleCheck(name, p.chapter_seconds(device))


__all__ = ["ConfirmProfile", "ScaleCheck", "check_scale", "device_kind"]
