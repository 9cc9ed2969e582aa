"""Every benchmark of ``benchmarks/`` runs to its end on smoke-size inputs, so none can rot
(a renamed argument, a model the profile no longer trains). What they measure is read in
``benchmarks/README.md``; here only that they run and print their ratios."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

#: (script, arguments at the smallest sizes each accepts)
RUNS = [
    ("bench_pgd", ["--batch", "4", "--size", "32", "--repeats", "1", "--threads", "1"]),
    ("bench_query", ["--batch", "4", "--queries", "20", "--repeats", "1", "--threads", "1"]),
    ("bench_defenses", ["--batch", "4", "--repeats", "1", "--eot", "2", "--threads", "1"]),
    ("bench_patch", ["--images", "16", "--batch", "8", "--steps", "2", "--repeats", "1", "--skip-art"]),
    ("bench_uap", ["--n", "32", "--train-steps", "5", "--max-passes", "1", "--target-rate", "0.1",
                   "--skip-art", "--threads", "1"]),
    ("bench_chunk", ["--pairs", "small_cnn@28", "--images", "8", "--steps", "1", "--repeats", "1",
                     "--chunk-pixels", "3136", "--threads", "1"]),
    ("bench_robust", ["--profile", "smoke", "--task", "pneumoniamnist", "--images", "8", "--steps", "2",
                      "--pgd-restarts", "1", "--eps", "1", "4", "--pgd-batch", "4", "--repeats", "1"]),
]


@pytest.fixture
def bench_path(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("ADVMED_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_benchmark_is_listed():
    assert {p.stem for p in BENCH.glob("bench_*.py")} == {name for name, _ in RUNS}


@pytest.mark.parametrize("name, argv", RUNS, ids=[n for n, _ in RUNS])
def test_benchmark_runs_on_smoke_inputs(name, argv, bench_path, capsys):
    module = importlib.import_module(name)
    try:
        module.main(argv)
    finally:
        sys.modules.pop(name, None)
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"


def test_cpu_calibration_writes_a_table_the_estimate_reads(bench_path, tmp_path, monkeypatch):
    from advmed.experiments import estimate

    module = importlib.import_module("calibrate_cpu")
    out = tmp_path / "cpu.json"
    try:
        module.main(["--out", str(out), "--batch", "2", "--repeats", "1", "--threads", "1",
                     "--pairs", "small_cnn@28", "small_cnn@64"])
    finally:
        sys.modules.pop("calibrate_cpu", None)
    monkeypatch.setattr(estimate, "CALIBRATION_FILE", out)
    monkeypatch.delenv("ADVMED_CALIBRATION", raising=False)
    assert set(estimate.calibration()["small_cnn"]) == {28, 64}
    assert estimate.measured_forward_seconds("small_cnn", 40) > 0


def test_build_profile_sorts_samples_into_network_work_and_overhead(bench_path, tmp_path, capsys):
    module = importlib.import_module("profile_build")
    cell = "InteractiveShell.run_code (IPython/core/interactiveshell.py:3823);<module> (1.py:1)"
    exp = "run_uap (advmed/experiments/universal/run.py:40)"
    raw = "\n".join([
        f"{cell};{exp};pgd (advmed/attacks/pgd.py:9);_engine_run_backward (torch/autograd/graph.py:1) 6",
        f"{cell};{exp};Module._call_impl (torch/nn/modules/module.py:1794) 3",
        f"{cell};load_task (advmed/data/load.py:113) 1",
        f"{cell};memo (advmed/cache.py:175);ssim (advmed/metrics.py:453) 2",
        "Thread._bootstrap (threading.py:1002);EpollSelector.select (selectors.py:468) 50",
    ])
    (tmp_path / "spy").mkdir()
    (tmp_path / "spy" / "02_03_uap.txt").write_text(raw + "\n")
    (tmp_path / "timings.json").write_text('{"chapters": {"book/03_uap": {"seconds": 100.0}}}')
    try:
        [prof] = module.summarise(tmp_path / "spy", top=3, build=tmp_path)
        assert module.floor([prof], tmp_path) == pytest.approx(75.0)  # 9 of 12 samples in the network
    finally:
        sys.modules.pop("profile_build", None)
    assert prof.chapter == "03_uap"
    # kernel threads left out; a metric inside a memoised cell is metrics, not cache I/O
    assert dict(prof.categories) == {"backward": 6, "forward": 3, "data": 1, "metrics": 2}
    assert prof.network == 9
    assert prof.experiments["universal.run.run_uap"] == {"total": 9, "network": 9}
    assert "**75.0%**" in capsys.readouterr().out


def test_build_profile_says_how_to_install_py_spy_before_starting_a_build(bench_path, tmp_path, monkeypatch):
    module = importlib.import_module("profile_build")
    try:
        monkeypatch.setattr(module.shutil, "which", lambda name: None)
        with pytest.raises(SystemExit, match="pip install py-spy"):
            module.main(["record", "--out", str(tmp_path / "spy"), "--", "--profile", "smoke"])
    finally:
        sys.modules.pop("profile_build", None)
    assert not (tmp_path / "spy").exists()


def test_chapter_timed_alone_calibrates_only_its_own_families(bench_path, tmp_path):
    """Chapter 7 timed with its models prebuilt must not give the zoo (chapter 1's family) a share."""
    import json

    module = importlib.import_module("calibrate_cpu")
    try:
        build = tmp_path / "build"
        build.mkdir()
        (build / "timings.json").write_text(json.dumps(
            {"profile": "smoke", "chapters": {"book/07_defenses": {"seconds": 100.0, "ok": True}}}))
        _, shares = module.work_shares(build, ["07_defenses"])
    finally:
        sys.modules.pop("calibrate_cpu", None)
    assert set(shares) == {"defenses"}
    assert shares["defenses"]["chapter"] == "07_defenses"
