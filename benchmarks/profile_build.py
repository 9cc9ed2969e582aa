"""Where a build's time goes: network forward/backward passes vs everything else, by chapter.

The first step of any speed-up (issue 25): sample every chapter kernel of a build with
py-spy and sort each sample by what the kernel's main thread was doing,

- ``backward``: inside autograd (``torch.autograd``, the engine): the gradient half of an
  attack step or a training step;
- ``forward``: inside an ``nn.Module`` call (the classifiers, the VAE, the surrogates);
- ``optimiser``: ``torch.optim`` steps;
- ``data``: decoding, resizing and augmenting images (``advmed.data``, PIL, augmentation);
- ``cache I/O``: hashing, saving and loading results and checkpoints;
- ``metrics``: SSIM, PSNR, AUC, bootstrap intervals and tests (scikit-image, scipy, ...);
- ``figures and pages``: matplotlib, seaborn, tables, widgets;
- ``other``: the rest (attack bookkeeping in Python, projections, pandas).

The first two are the *network work*: the bare forward/backward floor the book cannot go
below without doing less of it (fewer images, steps or epochs). The rest is what a speed-up
that keeps the studies' settings can remove. Each sample is also credited to the innermost
``advmed.experiments`` function on its stack (the experiment it serves).

    pip install py-spy          # not a dependency of the book; only this tool needs it
    python benchmarks/profile_build.py record --out spy -- --profile cpu --build-dir _build
    python benchmarks/profile_build.py summarise spy --build _build [--top 12]

``record`` runs ``python -m advmed.book build`` with the arguments after ``--`` and samples
each chapter's kernel (``py-spy record --nonblocking --rate R --format raw``: the kernel is not
paused, so the build's own times stay those of an unsampled build within the noise);
``summarise`` reads the raw files ``<NN>_<chapter>.txt`` it left.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: (category, patterns): the network categories win when a pattern occurs anywhere on the stack
#: (a forward pass is under the attack, the memo, the cell); the others are decided by the
#: innermost ``advmed`` frame (``advmed_modules``) or a library frame anywhere (``libraries``),
#: so a metric computed inside a memoised cell counts as metrics, not as cache I/O.
NETWORK_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backward", ("_engine_run_backward", "torch/autograd/__init__.py", "torch/autograd/graph.py")),
    ("forward", ("Module._call_impl",)),
    ("optimiser", ("torch/optim/",)),
)
#: (category, advmed_modules, libraries)
OVERHEAD_PATTERNS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("data", ("advmed/data/", "augment_batch"), ("PIL/",)),
    ("cache I/O", ("advmed/cache.py", "advmed/train/checkpoints.py"), ("torch/serialization.py",)),
    ("metrics", ("advmed/metrics.py", "advmed/experiments/kernel/rows.py"),
     ("skimage/", "scipy/", "sklearn/", "statsmodels/", "torchmetrics/")),
    ("figures and pages", ("advmed/plots", "advmed/pages", "advmed/widgets"),
     ("matplotlib/", "seaborn/", "itables/", "IPython/core/display")),
)
NETWORK = ("backward", "forward")
ORDER = tuple(c for c, _ in NETWORK_PATTERNS) + tuple(c for c, _, _ in OVERHEAD_PATTERNS) + ("other",)
#: The frame a notebook cell's code runs under; samples without it are the kernel's own threads.
CELL_FRAME = "InteractiveShell.run_code"
_EXPERIMENT = re.compile(r"^(?P<func>[\w.<>]+) \((?P<file>advmed/experiments/[\w/]+)\.py:\d+\)$")


@dataclass
class ChapterProfile:
    """One chapter's samples: per category, and per experiment function (network, total)."""
    chapter: str
    categories: Counter = field(default_factory=Counter)
    experiments: dict[str, Counter] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(self.categories.values())

    @property
    def network(self) -> int:
        return sum(self.categories[c] for c in NETWORK)

    @property
    def network_share(self) -> float:
        return self.network / max(self.samples, 1)


def categorise(frames: list[str]) -> str:
    """The category of one sample's stack (outermost frame first)."""
    for name, patterns in NETWORK_PATTERNS:
        if any(p in f for f in frames for p in patterns):
            return name
    ours = [f for f in frames if "advmed/" in f]
    innermost = ours[-1] if ours else ""
    for name, modules, libraries in OVERHEAD_PATTERNS:
        if any(m in innermost for m in modules) or any(lib in f for f in frames for lib in libraries):
            return name
    return "other"


def experiment_of(frames: list[str]) -> str:
    """The innermost ``advmed.experiments`` function on the stack, ``module.function``, or
    ``"(notebook)"`` for a cell's own code."""
    for f in reversed(frames):
        m = _EXPERIMENT.match(f)
        if m:
            module = m.group("file").removeprefix("advmed/experiments/").replace("/", ".")
            return f"{module}.{m.group('func')}"
    return "(notebook)"


def read_raw(path: Path, chapter: str | None = None) -> ChapterProfile:
    """A py-spy ``--format raw`` file (one ``frame;frame;... count`` line per distinct stack)."""
    prof = ChapterProfile(chapter or path.stem)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(CELL_FRAME in f for f in frames):
            continue
        n = int(count)
        cat = categorise(frames)
        prof.categories[cat] += n
        exp = prof.experiments.setdefault(experiment_of(frames), Counter())
        exp["total"] += n
        exp["network"] += n * (cat in NETWORK)
    return prof


def chapter_name(path: Path) -> str:
    """``03_02_whitebox.txt`` -> ``02_whitebox`` (the record step's ``<NN>_<chapter>`` names)."""
    return path.stem.split("_", 1)[1] if re.match(r"^\d+_", path.stem) else path.stem


def summarise(folder: Path, *, top: int = 12, rate: float = 10.0,
              build: Path | None = None) -> list[ChapterProfile]:
    """Print per chapter the seconds sampled in each category and the network share, then the
    experiment functions with the most samples; with ``build`` (its ``timings.json``) also the
    network floor (:func:`floor`); return the profiles."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise SystemExit(f"no py-spy raw files (*.txt) in {folder}: run `record` first")
    profiles = [read_raw(f, chapter_name(f)) for f in files]
    head = ["chapter", "sampled s"] + list(ORDER) + ["network share"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    everything = ChapterProfile("all")
    for p in profiles:
        everything.categories.update(p.categories)
    for p in [*profiles, everything]:
        row = [p.chapter, f"{p.samples / rate:,.0f}"]
        row += [f"{p.categories[c] / max(p.samples, 1):.1%}" for c in ORDER]
        print("| " + " | ".join(row + [f"**{p.network_share:.1%}**"]) + " |")

    if build is not None:
        floor(profiles, build)
    ranked = sorted(((p.chapter, exp, c) for p in profiles for exp, c in p.experiments.items()),
                    key=lambda t: -t[2]["total"])
    print(f"\nThe {top} experiment functions with the most samples:\n")
    print("| chapter | experiment function | sampled s | network share |\n|---|---|---|---|")
    for chapter, exp, c in ranked[:top]:
        print(f"| {chapter} | `{exp}` | {c['total'] / rate:,.0f} | {c['network'] / c['total']:.1%} |")
    return profiles


def floor(profiles: list[ChapterProfile], build: Path) -> float:
    """Each chapter's measured seconds (``build/timings.json``) split by its sampled network
    share: the seconds spent in forward/backward passes are the floor a build with the same
    work cannot go below (the passes themselves run within a few per cent of the bare loop:
    ``bench_pgd.py``, ``bench_chunk.py``); the rest is what a speed-up can remove. Prints the
    table and returns the floor in seconds."""
    timings = json.loads((build / "timings.json").read_text())["chapters"]
    seconds = {Path(k).name: float(v["seconds"]) for k, v in timings.items()}
    print("\n| chapter | measured s | network share | network s (floor) | the rest s |\n|---|---|---|---|---|")
    total = net = 0.0
    for p in profiles:
        if p.chapter not in seconds:
            print(f"| {p.chapter} | not in {build / 'timings.json'} | | | |")
            continue
        t, share = seconds[p.chapter], p.network_share
        total, net = total + t, net + t * share
        print(f"| {p.chapter} | {t:,.0f} | {share:.1%} | {t * share:,.0f} | {t * (1 - share):,.0f} |")
    print(f"| **sampled chapters** | **{total:,.0f}** | {net / max(total, 1e-9):.1%} | **{net:,.0f}** "
          f"| {total - net:,.0f} |")
    return net


def record(out: Path, build_args: list[str], *, rate: float = 10.0) -> int:
    """Run the build with ``build_args`` and sample each chapter kernel into ``out``."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: `pip install py-spy` (only this tool needs it)")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "advmed.book", "build", *build_args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    chapter = {"name": "unknown", "n": 0}
    executing = re.compile(r"\] (\S+): executing")

    def forward_output() -> None:
        for line in proc.stdout:
            sys.stdout.write(line)
            m = executing.search(line)
            if m:
                chapter["name"], chapter["n"] = m.group(1), chapter["n"] + 1

    reader = threading.Thread(target=forward_output, daemon=True)
    reader.start()
    seen: set[int] = set()
    samplers = []
    while proc.poll() is None:
        kernels = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "ipykernel_launcher"],
                                 capture_output=True, text=True).stdout.split()
        for pid in map(int, kernels):
            if pid not in seen:
                seen.add(pid)
                target = out / f"{chapter['n']:02d}_{chapter['name']}.txt"
                samplers.append(subprocess.Popen(
                    [spy, "record", "--nonblocking", "--rate", str(rate), "--format", "raw",
                     "-o", str(target), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
    for s in samplers:
        s.wait(timeout=60)
    reader.join(timeout=10)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run a build and sample its chapter kernels")
    rec.add_argument("--out", type=Path, required=True, help="folder for the raw samples")
    rec.add_argument("--rate", type=float, default=10.0, help="samples a second (default 10)")
    rec.add_argument("build_args", nargs=argparse.REMAINDER, help="-- then the build's arguments")
    summ = sub.add_parser("summarise", help="print the shares from a folder of raw samples")
    summ.add_argument("folder", type=Path)
    summ.add_argument("--top", type=int, default=12, help="experiment functions listed")
    summ.add_argument("--rate", type=float, default=10.0, help="the rate they were sampled at")
    summ.add_argument("--build", type=Path, help="the build folder (timings.json): the network floor")
    args = ap.parse_args(argv)
    if args.command == "record":
        return record(args.out, [a for a in args.build_args if a != "--"], rate=args.rate)
    summarise(args.folder, top=args.top, rate=args.rate, build=args.build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
