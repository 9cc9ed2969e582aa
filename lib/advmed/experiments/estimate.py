"""How long a book build will take: the cells' work in multiply-accumulates, over a throughput.

Every :class:`~advmed.experiments.cells.Cell` carries an estimate of its work, ``cost_gmac``,
in GMAC (10^9 multiply-accumulates): the forward passes it needs (a backward pass counts as
two forwards, so a training step or an input gradient is three) times the architecture's
forward cost at the side its network runs at. :func:`plan` adds them up per family and
:func:`describe` says, before anything runs, what the profile will run and about how long
it takes on this machine. The estimate counts every epoch (early stopping ends sooner) and
every attack iteration (early-stopped attacks end sooner), and adds a fixed cost per cell
(loading, small calls, figures) that matters at small sizes only: rough, on the high side
for large runs.

Costs on the project's CPU are *measured*, not derived from arithmetic: small networks at
28 px spend their time in per-call overhead (the smoke build's adversarial training took
20-100x its GMAC at the arithmetic rate), so ``benchmarks/calibrate_cpu.py`` times one attack
step of every (architecture, side) the smoke, cpu and paper-dry profiles run and stores the
seconds per forward-equivalent in ``calibration/cpu.json``; :func:`forward_gmac` returns those
seconds times :data:`CPU_GMACS` where measured, so every family's count becomes CPU seconds.
Above the largest measured side (the paper's 224-299 px) the arithmetic GMAC stands.

Throughputs (GMAC per second, forward-equivalent):

- CPU: measured on the project's 2-core machine (Inception v3 at 299 px, forward and input
  gradient, batch 4, 2 threads: 184 ms per image, i.e. 3 x 5.71 / 0.184 = 93 GMAC/s).
- CUDA: **assumed, not measured** (no GPU was available when this was written): 15,000
  GMAC/s, about what published ResNet-50 training throughputs on A100/H100-class GPUs
  (1,000-1,500 images/s in TF32, 3 x 4.1 GMAC each) give. The first ``benchmarks/gpu_check.sh``
  run (one H200, 2026-12-04) found no single figure: 48,000 for PGD on ResNet-18, but
  1,100-3,100 for the MobileNet cells of ``paper`` (README, "Paper scale"), so the assumption
  stays and ``ADVMED_GMACS`` overrides it.

Example:
    >>> from advmed.experiments.cells import plan
    >>> from advmed.experiments.profiles import get_profile
    >>> p = plan(get_profile("smoke"), chapters=["01_models"])
    >>> p.cells["zoo"], p.home["zoo"], p.seconds("cpu") > 0
    (4, '01_models', True)
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import get_spec, get_task
from ..data.registry import get_view
from ..data.sources import build_index
from ..train.config import BN_RECALIBRATION_IMAGES, ROBUST_VAL_STEPS

#: Forward cost in GMAC at the architecture's native side (torchvision's model docs, the
#: MobileNet paper, Table 6 for width 0.75): ``(GMAC, side in px)``.
FORWARD_GMAC: dict[str, tuple[float, int]] = {
    "resnet18": (1.81, 224), "resnet50": (4.09, 224), "densenet121": (2.83, 224), "vgg16_bn": (15.47, 224),
    "inception_v3": (5.71, 299), "mobilenet_v1_075": (0.325, 224), "small_cnn": (0.002, 28),
    "densenet169": (3.36, 224), "vgg19_bn": (19.63, 224), "inception_resnet_v2": (13.18, 299),  # torchvision, timm
}
#: Measured CPU throughput (module doc), GMAC/s.
CPU_GMACS = 93.0
#: Assumed CUDA throughput (module doc: unmeasured), GMAC/s; ``ADVMED_GMACS`` overrides.
CUDA_GMACS_ASSUMED = 15000.0
#: Images assumed for a split whose size cannot be read (the data is not there yet).
NOMINAL_SPLIT = 5000
#: Fixed seconds per cell on top of its GMAC (loading models and data, small calls that do
#: not fill the device, figures): what dominates tiny runs. Calibrated on the CPU dry run
#: (module doc).
CELL_OVERHEAD_S = 1.0
#: Fixed seconds per chapter executed: kernel start, imports, the page's figures and tables
#: (the chapters without cells took 4.6-6.9 s in the smoke and paper-dry builds).
CHAPTER_OVERHEAD_S = 5.0
#: The one threshold: above it, ``auto`` does not start ``paper`` by itself (seconds).
CONFIRM_ABOVE_S = 3600.0


#: Measured seconds per forward-equivalent per image on the project's CPU, by architecture and
#: side (``benchmarks/calibrate_cpu.py`` writes it; ``ADVMED_CALIBRATION=0`` ignores it).
CALIBRATION_FILE = Path(__file__).with_name("calibration") / "cpu.json"


@functools.lru_cache(maxsize=None)
def _read_calibration(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _calibration_data() -> dict:
    """:data:`CALIBRATION_FILE`'s contents, read once ({} when absent or ``ADVMED_CALIBRATION=0``)."""
    if os.environ.get("ADVMED_CALIBRATION", "").strip() == "0":
        return {}
    return _read_calibration(str(CALIBRATION_FILE))


@functools.lru_cache(maxsize=None)
def _forward_table(path: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for pair, seconds in _read_calibration(path).get("seconds_per_forward", {}).items():
        arch, _, side = pair.partition("@")
        out.setdefault(arch, {})[int(side)] = float(seconds)
    return out


def calibration() -> dict[str, dict[int, float]]:
    """``{arch: {side: seconds per forward-equivalent per image}}`` from :data:`CALIBRATION_FILE`
    ({} when absent or ``ADVMED_CALIBRATION=0``)."""
    return _forward_table(str(CALIBRATION_FILE)) if _calibration_data() else {}


def work_share(profile: str, family: str) -> float:
    """Measured seconds over counted seconds of ``family`` in a cold CPU build of ``profile``
    (``calibration/cpu.json``, written by ``benchmarks/calibrate_cpu.py --from-build``): how much
    of the counted work runs, early stopping and converged UAPs included. 1.0 where no build of
    the profile was measured (the count alone: an upper bound)."""
    return float(_calibration_data().get("work_share", {}).get(profile, {}).get(family, 1.0))


def measured_forward_seconds(arch: str, side: int) -> float | None:
    """Measured seconds of one forward-equivalent of ``arch`` on one ``side``-px image on the
    project's CPU: the calibration's figure, interpolated log-log between measured sides, the
    smallest side's below it (per-call overhead is a floor); None above the largest measured
    side (arithmetic dominates there: :func:`forward_gmac` uses GMAC) or for an unmeasured
    architecture."""
    sides = calibration().get(arch)
    if not sides:
        return None
    known = sorted(sides)
    if int(side) > known[-1]:
        return None
    # np.interp holds the smallest side's value below it
    return float(np.exp(np.interp(np.log(int(side)), np.log(known), np.log([sides[k] for k in known]))))


def forward_gmac(arch: str, side: int) -> float:
    """The estimate's cost of one forward pass of ``arch`` on one image of ``side`` px, in GMAC:
    where the CPU calibration measured the pair (:func:`measured_forward_seconds`), its
    measured seconds times :data:`CPU_GMACS` (what the pass costs on the project's CPU,
    overhead included: small networks at 28 px cost 10-100x their arithmetic), else the
    architecture's arithmetic GMAC at its native side scaled by area."""
    measured = measured_forward_seconds(arch, side)
    if measured is not None:
        return measured * CPU_GMACS
    gmac, native = FORWARD_GMAC.get(arch, (1.0, 224))
    return gmac * (float(side) / native) ** 2


@functools.lru_cache(maxsize=None)
def split_sizes(task: str) -> dict[str, int] | None:
    """Images per split of a task from the dataset's index (no decoding); None when the data
    is not available locally (it would be downloaded by the build)."""
    t = get_task(task)
    spec = get_spec(t.dataset)
    saved = os.environ.get("ADVMED_OFFLINE")
    os.environ["ADVMED_OFFLINE"] = "1"  # an estimate never downloads
    try:
        index = build_index(spec, progress=False)
    except Exception:  # no data root, no cached download: the estimate uses NOMINAL_SPLIT
        return None
    finally:
        if saved is None:
            os.environ.pop("ADVMED_OFFLINE", None)
        else:
            os.environ["ADVMED_OFFLINE"] = saved
    view = get_view(spec, t.view)
    keep = np.ones(len(index.labels), bool) if view is None else np.isin(index.labels, list(view.mapping))
    return {s: int(((np.asarray(index.splits) == s) & keep).sum()) for s in spec.splits}


def n_images(task: str, split: str, limit: int | None) -> int:
    """How many images a step takes from a split: ``limit`` capped at the split's size."""
    sizes = split_sizes(task)
    total = NOMINAL_SPLIT if sizes is None else sizes.get(split, NOMINAL_SPLIT)
    return int(total if limit is None else min(int(limit), total))


def train_cost(config) -> float:
    """GMAC of training one model (:class:`~advmed.train.TrainConfig`): every epoch of training
    steps (3 forward-equivalents per image), batch-norm recalibration and validation; for
    adversarial training also the crafting attack's steps (3 per step and image) and the
    robust model selection (:data:`~advmed.train.config.ROBUST_VAL_STEPS` PGD steps on
    ``robust_val_images`` validation images) every epoch."""
    n_train = n_images(config.task, "train", config.max_train)
    n_val = n_images(config.task, "val", config.max_val)
    adv = getattr(config, "adversarial", None)
    crafts = adv is not None and adv.crafts_examples
    steps = 3 * n_train * (1 + (int(adv.steps) if crafts else 0))
    recal = 0 if crafts else min(n_train, BN_RECALIBRATION_IMAGES)
    robust = 3 * ROBUST_VAL_STEPS * min(n_val, int(adv.robust_val_images or 0)) if crafts else 0
    per_epoch = steps + recal + n_val + robust
    return config.epochs * per_epoch * forward_gmac(config.arch, config.net_size or config.size)


def throughput(device: str) -> float:
    """GMAC/s of ``device`` (``"cpu"``, ``"cuda"``): ``ADVMED_GMACS``, else the module's figures."""
    given = os.environ.get("ADVMED_GMACS", "").strip()
    if given:
        return float(given)
    return CUDA_GMACS_ASSUMED if str(device).startswith("cuda") else CPU_GMACS


@dataclass
class Plan:
    """What a build of a profile runs: cells and work per family, and the time that takes."""

    profile: str
    tasks: int
    models: int
    cells: dict[str, int] = field(default_factory=dict)
    gmac: dict[str, float] = field(default_factory=dict)
    #: the chapters the build executes (stems, in order) and the chapter each family's cells
    #: are computed in (its first selected chapter: the zoo's is the first chapter)
    chapters: tuple[str, ...] = ()
    home: dict[str, str] = field(default_factory=dict)

    @property
    def total_gmac(self) -> float:
        return float(sum(self.gmac.values()))

    def counted_seconds(self, family: str, device: str) -> float:
        """One family's counted work on one ``device``: its GMAC over the throughput and
        :data:`CELL_OVERHEAD_S` per cell (every epoch and attack step, no early stopping)."""
        return self.gmac.get(family, 0.0) / throughput(device) + CELL_OVERHEAD_S * self.cells.get(family, 0)

    def family_seconds(self, family: str, device: str) -> float:
        """Estimated seconds of one family's cells on one ``device``: the counted work times the
        share of it a cold build of this profile measured on the CPU (:func:`work_share`)."""
        share = 1.0 if str(device).startswith("cuda") else work_share(self.profile, family)
        return share * self.counted_seconds(family, device)

    def chapter_seconds(self, device: str) -> dict[str, float]:
        """Estimated seconds of each chapter executed on one ``device``, in build order: its
        start (:data:`CHAPTER_OVERHEAD_S`) and the families computed in it."""
        out = {c: CHAPTER_OVERHEAD_S for c in self.chapters}
        for fam in self.cells:
            chapter = self.home.get(fam)
            if chapter in out:
                out[chapter] += self.family_seconds(fam, device)
        return out

    def seconds(self, device: str, workers: int = 1) -> float:
        """Estimated wall time on ``workers`` devices like ``device`` (the cells shared perfectly):
        the work over the throughput, :data:`CELL_OVERHEAD_S` per cell and
        :data:`CHAPTER_OVERHEAD_S` per chapter executed."""
        work = sum(self.family_seconds(f, device) for f in self.cells)
        return work / max(1, int(workers)) + CHAPTER_OVERHEAD_S * len(self.chapters)


def fmt_seconds(s: float) -> str:
    """``"42 s"``, ``"12 min"``, ``"3.4 h"``."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def describe(p: Plan, device: str, workers: int = 1) -> str:
    """A few lines saying what will run and how long it should take."""
    parts = ", ".join(f"{n} {fam}" for fam, n in p.cells.items())
    share = {fam: g / p.total_gmac for fam, g in p.gmac.items()} if p.total_gmac else {}
    work = ", ".join(f"{fam} {100 * s:.0f} %" for fam, s in share.items())
    kind = "measured" if not str(device).startswith("cuda") or os.environ.get("ADVMED_GMACS") else \
        "assumed (unmeasured; set ADVMED_GMACS from benchmarks/gpu_check.sh)"
    where = f"{workers} x {device}" if workers > 1 else str(device)
    pairs = p.cells.get("zoo", 0)
    grid = f"{p.tasks} tasks x {p.models} models" + (
        f" ({pairs} of the {p.tasks * p.models} pairs trained: the profile's skips)" if 0 < pairs < p.tasks * p.models
        else "")
    return (f"profile {p.profile}: {grid}; cells: {parts}\n"
            f"work: {p.total_gmac / 1e3:,.0f} TMAC ({work}); throughput {throughput(device):,.0f} GMAC/s "
            f"per device, {kind}\n"
            f"estimated time on {where}: about {fmt_seconds(p.seconds(device, workers))} "
            f"({_cost_basis(p, device)}; {CELL_OVERHEAD_S:g} s a cell and {CHAPTER_OVERHEAD_S:g} s a chapter)")


def _cost_basis(p: Plan, device: str) -> str:
    if str(device).startswith("cuda") or not calibration():
        return "every epoch and attack iteration counted, no early stopping: an upper bound"
    shares = [f for f in p.cells if work_share(p.profile, f) != 1.0]
    rest = "" if len(shares) == len(p.cells) else "; the others counted in full"
    scaled = (f"each family's count scaled by what a cold {p.profile} build measured ({len(shares)} of "
              f"{len(p.cells)} families{rest})" if shares
              else "every epoch and attack iteration counted, no early stopping: an upper bound")
    return f"CPU costs measured per network and side, {scaled}; {CALIBRATION_FILE.name}"


__all__ = ["CALIBRATION_FILE", "CELL_OVERHEAD_S", "CHAPTER_OVERHEAD_S", "CONFIRM_ABOVE_S", "CPU_GMACS",
           "CUDA_GMACS_ASSUMED", "FORWARD_GMAC", "NOMINAL_SPLIT", "Plan", "calibration", "describe", "fmt_seconds",
           "forward_gmac", "measured_forward_seconds", "n_images", "split_sizes", "throughput", "train_cost",
           "work_share"]
