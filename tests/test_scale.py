"""Paper scale without a GPU: the dry-run profile, networks at their own side, cells, executors,
the up-front estimate and the refusal of ``auto`` -> ``paper``.

The heavy checks (the whole ``paper-dry`` book, cells on a 2-worker dask cluster) are in
``test_scale_dryrun.py`` and ``test_scale_executor.py`` (slow).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import torch

from advmed.book import dispatch, plan
from advmed.experiments import cells, estimate, profiles
from advmed.experiments.profiles import DRY_RUN, PROFILES, SECTIONS, dry_run, get_profile
from advmed.experiments.zoo import configs_for_profile
from advmed.models import build_model
from advmed.models.resize import ResizeInput
from advmed.train import TrainConfig


# --------------------------------------------------------------------------- the dry run
def test_paper_dry_keeps_every_task_model_init_seed_and_attack_of_paper():
    paper, dry = PROFILES["paper"], PROFILES["paper-dry"]
    assert list(dry.tasks) == list(paper.tasks) and {"skin7_derm", "retina5"} <= set(dry.tasks)
    assert dry.models == paper.models and dry.seeds == paper.seeds
    # the network-at-its-own-side path is kept (at the architecture's smallest side)
    assert dry.net_sizes.keys() == paper.net_sizes.keys() == {"inception_v3", "inception_resnet_v2"}
    assert all(side != dry.tasks[t] for side in dry.net_sizes.values() for t in dry.tasks)
    assert dry.explorer.attacks == paper.explorer.attacks and dry.explorer.pairs == paper.explorer.pairs
    for f in ("norms", "method", "targeted", "targeted_zetas", "natural_models", "natural_split", "random_kind",
              "min_gain", "step_fraction", "n_eval"):  # max_targets: 2 (the first and last class)
        assert getattr(dry.uap, f) == getattr(paper.uap, f), f
    assert dry.whitebox.report_eps_255 in dry.whitebox.eps_255
    assert dry.train["epochs"] == 1 and dry.whitebox.steps == 2 and dry.whitebox.study_steps == 2
    assert dry.uap.max_passes == 2


def test_paper_dry_covers_the_grid_every_model_somewhere_the_singled_out_ones_everywhere():
    """The dry run trains a cover of the task x model grid: the models chapters 4-7 single out
    on every task, every other model on one task; each task keeps two models or more (the
    transfer matrices), both networks that resize the images inside (Inception v3 and
    Inception-ResNet-v2) meet a gray task, a 7- and 5-class task keep models of their own."""
    paper, dry = PROFILES["paper"], PROFILES["paper-dry"]
    pairs = {(t, m.label) for t in dry.tasks for m in dry.models_for(t)}
    assert len(pairs) < len(paper.tasks) * len(paper.models)
    central = {"mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch"}
    assert {dry.blackbox.model, dry.patch.model, dry.defense.model, dry.ablation.model, *dry.uap.natural_models} \
        == central
    for m in paper.models:
        tasks = [t for t in dry.tasks if (t, m.label) in pairs]
        assert len(tasks) == (len(dry.tasks) if m.label in central else profiles.DRY_RUN_TASKS_PER_MODEL), m.label
    assert all(len(dry.models_for(t)) >= 2 for t in dry.tasks)
    for inception in ("inception_v3:imagenet", "inception_resnet_v2:imagenet"):
        assert {t for t, m in pairs if m == inception} & {"pneumonia_cxr", "pneumoniamnist"}, inception
    kept = list(dry.models_for("retina5"))
    dropped = next(m for m in kept if m.label not in central)
    assert list(profiles.dry_run(dataclasses.replace(paper, skip={"retina5": (dropped.label,)})).models_for(
        "retina5")) == [m for m in kept if m != dropped]  # the source's own skips stay


def test_paper_dry_sizes_are_at_most_papers():
    paper, dry = PROFILES["paper"], PROFILES["paper-dry"]
    for key in SECTIONS:
        for f in dataclasses.fields(getattr(dry, key)):
            a, b = getattr(dry, key).__dict__[f.name], getattr(paper, key).__dict__[f.name]
            if isinstance(a, int) and not isinstance(a, bool) and isinstance(b, int):
                assert a <= b, f"{key}.{f.name}: {a} > {b}"
            if isinstance(a, tuple) and a and all(isinstance(v, (int, float)) for v in a):
                assert len(a) <= len(b), f"{key}.{f.name}"


def test_every_profile_section_has_dry_run_sizes():
    # a new family's section must say how small its dry run is, or paper-dry stays at paper scale
    assert set(SECTIONS) | {"train"} <= set(DRY_RUN)


@pytest.mark.parametrize("m, k, expected", [(None, 7, list(range(7))), (2, 7, [0, 6]), (3, 7, [0, 3, 6]),
                                            (2, 2, [0, 1]), (5, 2, [0, 1]), (1, 7, [0])])
def test_target_classes_spread_over_the_classes(m, k, expected):
    s = dataclasses.replace(PROFILES["paper"].uap, max_targets=m)
    assert s.target_classes(k, 0.04) == expected
    assert dataclasses.replace(s, targeted=False).target_classes(k, 0.04) == []


def test_dry_run_shortens_recipes_too():
    src = get_profile("paper", recipes={"scratch": {"epochs": 60, "lr": 1e-3}})
    dry = dry_run(src)
    assert dry.train_fields("scratch")["epochs"] == 1 and dry.train_fields("scratch")["lr"] == 1e-3


def test_paper_dry_is_a_profile_the_book_accepts():
    from advmed.book.build import PROFILES as BOOK_PROFILES

    assert "paper-dry" in BOOK_PROFILES and profiles.resolve_profile_name("paper-dry") == "paper-dry"
    assert "net_sizes" in set(profiles.profile_table("paper-dry")["entry"])


# --------------------------------------------------------------------------- networks at their own side
def test_inception_network_runs_at_299_on_small_images():
    model = build_model("inception_v3", 7, input_size=32, net_size=299).eval()
    seen = []
    model.net.net.Conv2d_1a_3x3.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert seen == [(299, 299)] and x.grad.shape == x.shape and model.meta["net_size"] == 299


def test_resize_is_bilinear_and_keeps_the_pixel_range():
    x = torch.rand(3, 1, 9, 9)
    out = ResizeInput(torch.nn.Identity(), 20)(x)
    ref = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.equal(out, ref) and out.min() >= 0 and out.max() <= 1
    assert ResizeInput(torch.nn.Identity(), 9)(x) is x  # nothing to do at the right side


def test_net_size_below_the_architectures_minimum_is_refused():
    with pytest.raises(ValueError, match="net_size of at least 75"):
        build_model("inception_v3", 2, input_size=224, net_size=64)
    with pytest.raises(ValueError, match="at least 75 px"):
        build_model("inception_v3", 2, input_size=32)


def test_net_size_changes_the_checkpoint_key_only_when_set():
    base = TrainConfig(task="pneumoniamnist", arch="inception_v3", size=32)
    assert dataclasses.replace(base, net_size=None).key() == base.key()
    assert dataclasses.replace(base, net_size=299).key() != base.key()
    with pytest.raises(ValueError, match="net_size"):
        TrainConfig(task="pneumoniamnist", arch="resnet18", net_size=0)


def test_profile_net_sizes_reach_the_configs():
    cfgs = configs_for_profile(PROFILES["paper-dry"])
    inceptions = ("inception_v3", "inception_resnet_v2")
    inc = [c for c in cfgs if c.arch in inceptions]
    assert len(inc) == 2 * profiles.DRY_RUN_TASKS_PER_MODEL and all(c.net_size == 75 and c.size == 32 for c in inc)
    paper = [c for c in configs_for_profile(PROFILES["paper"]) if c.arch in inceptions]
    assert paper and all(c.net_size == 299 and c.size == 224 for c in paper)
    assert all(c.net_size is None for c in cfgs if c.arch not in inceptions)


def test_checkpoint_round_trip_keeps_the_resize(tmp_cache, data_root):
    from advmed.train import get_trained_model

    cfg = TrainConfig(task="pneumoniamnist", arch="small_cnn", size=28, net_size=32, epochs=1, max_train=32,
                      max_val=16, batch_size=16)
    a = get_trained_model(cfg, progress=False, device="cpu")
    b = get_trained_model(cfg, progress=False, device="cpu")
    assert b.meta.get("cached") and isinstance(b.model.net, ResizeInput)
    x = torch.rand(4, 3, 28, 28)
    assert torch.equal(a.model(x), b.model(x))


# --------------------------------------------------------------------------- cells
def test_smoke_cells_are_unique_picklable_and_staged():
    cs = cells.book_cells(get_profile("smoke"))
    names = [c.name for c in cs]
    assert len(names) == len(set(names))
    assert {c.family for c in cs} == {"zoo", "whitebox", "universal", "natural", "blackbox", "patches", "defenses"}
    assert [c.stage for c in cs] == sorted(c.stage for c in cs) and cs[0].family == "zoo"
    assert all(c.stage == 0 for c in cs if c.family == "zoo")
    assert pickle.loads(pickle.dumps(cs))[0].name == cs[0].name
    assert all(c.cost_gmac > 0 for c in cs)


def test_cells_follow_the_chapter_selection():
    prof = get_profile("smoke")
    assert {c.family for c in cells.book_cells(prof, ["01_models"])} == {"zoo"}
    assert {c.family for c in cells.book_cells(prof, ["03_uap"])} == {"zoo", "universal"}
    natural = cells.book_cells(prof, ["04_natural_uap"])
    assert {c.family for c in natural} == {"zoo", "natural", "universal"}  # its medical UAPs
    medical = [c for c in natural if c.family == "universal"]
    # the medical UAPs of chapter 4's models, non-targeted and targeted (its targeted table)
    assert {c.kwargs["model"] for c in medical} <= set(prof.uap.natural_models)
    assert {c.kwargs["target"] for c in medical} == {None, 0, 1}


def test_paper_grid_has_a_cell_per_model_and_per_uap():
    prof = PROFILES["paper-dry"]
    cs = cells.book_cells(prof)
    assert sum(c.family == "zoo" for c in cs) == sum(len(prof.models_for(t)) for t in prof.tasks)
    uaps = [c for c in cs if c.name.startswith("universal/uap/skin7_derm/vgg16_bn:imagenet/")]
    assert len(uaps) == len(prof.uap.norms) * (1 + 2)  # non-targeted + the first and last class
    assert {c.kwargs["target"] for c in uaps} == {None, 0, 6}
    paper = PROFILES["paper"]
    uaps = [c for c in cells.book_cells(paper, ["03_uap"]) if c.name.startswith("universal/uap/skin7_derm/resnet50:imagenet/")]
    assert len(uaps) == 2 * 2 * (1 + 7)  # two norms, two zetas, non-targeted + every class
    every_seed = [c for s in paper.seeds for c in cells.book_cells(dataclasses.replace(paper, seeds=(s,)), ["01"])]
    whole = len(paper.tasks) * len(paper.models) * len(paper.seeds)  # 6 tasks x 10 models x 3 seeds
    assert len(paper.models) == 10 and len({c.kwargs["config"].key() for c in every_seed}) == whole


def _boom() -> None:
    raise RuntimeError("no luck")


def test_run_cells_passes_the_cache_runs_stages_in_order_and_names_failures(tmp_path):
    order = []

    def note(k):
        order.append(k)
        return k

    cs = [cells.Cell("t", "late", note, {"k": "late"}, stage=1), cells.Cell("t", "early", note, {"k": "early"}, stage=0),
          cells.Cell("t", "env", os.getenv, {"key": "ADVMED_CACHE"}, stage=1)]
    out = dispatch.run_cells(cs, dispatch.SerialExecutor(), env={"ADVMED_CACHE": str(tmp_path)}, progress=False,
                             log=lambda m: None)
    assert order == ["early", "late"] and {o.name: o.summary for o in out}["env"] == str(tmp_path)
    assert os.environ.get("ADVMED_CACHE") != str(tmp_path)  # restored after the cell
    with pytest.raises(dispatch.CellError, match="bad: RuntimeError: no luck"):
        dispatch.run_cells([cells.Cell("t", "bad", _boom)], dispatch.SerialExecutor(), progress=False,
                           log=lambda m: None)


def test_submitit_executor_runs_cells_in_other_processes(tmp_path):
    pytest.importorskip("submitit")
    spec = dispatch.parse_executor("slurm", options=[f"folder={tmp_path}/%j", "cluster=local", "timeout_min=5"])
    with dispatch.open_executor(spec, log=lambda m: None) as pool:
        assert isinstance(pool, cf.Executor)
        # os.getenv: a function the job's process can import (a test module's could not be)
        out = dispatch.run_cells([cells.Cell("t", "env", os.getenv, {"key": "ADVMED_CACHE"})], pool,
                                 env={"ADVMED_CACHE": str(tmp_path)}, progress=False, log=lambda m: None)
    assert out[0].summary == str(tmp_path) and out[0].seconds >= 0


# --------------------------------------------------------------------------- executors
@pytest.mark.parametrize("text, kind, address", [
    (None, "serial", None), ("serial", "serial", None), ("dask", "dask", None),
    ("dask://scheduler:8786", "dask", "tcp://scheduler:8786"), ("slurm", "slurm", None)])
def test_executor_values(text, kind, address):
    spec = dispatch.parse_executor(text)
    assert (spec.kind, spec.address) == (kind, address)


@pytest.mark.parametrize("text, message", [
    ("ray", "valid executors: serial, dask, dask://HOST:PORT, slurm"),
    ("dask://scheduler", "dask://HOST:PORT"), ("dask://:8786", "dask://HOST:PORT"),
    ("dask://host:99999", "dask://HOST:PORT")])
def test_bad_executor_values_list_the_valid_ones(text, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("/", "/")):
        dispatch.parse_executor(text)


def test_executor_options_belong_to_their_executor():
    with pytest.raises(ValueError, match="slurm only"):
        dispatch.parse_executor("dask", options=["slurm_partition=gpu"])
    with pytest.raises(ValueError, match="local dask cluster"):
        dispatch.parse_executor("slurm", workers=2)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        dispatch.parse_executor("slurm", options=["partition"])
    assert dispatch.parse_options(["timeout_min=60", "slurm_partition=gpu"]) == {"timeout_min": 60,
                                                                                 "slurm_partition": "gpu"}


def test_cli_refuses_a_bad_executor_before_anything_runs(tmp_path, capsys):
    from advmed.book import main

    assert main(["build", "--profile", "smoke", "--executor", "spark", "--build-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown executor 'spark'" in err and "dask://HOST:PORT" in err
    assert not (tmp_path / "stage").exists()


# --------------------------------------------------------------------------- estimate and the prompt
@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that looks like it has one GPU (nothing here touches CUDA for real)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("ADVMED_GMACS", raising=False)


def test_auto_with_a_gpu_asks_for_paper_by_name(fake_cuda):
    lines = []
    with pytest.raises(plan.ConfirmProfile, match=r"make book PROFILE=paper"):
        plan.check_scale("auto", log=lines.append)
    text = "\n".join(lines)
    paper = PROFILES["paper"]
    zoo = sum(len(paper.models_for(t)) for t in paper.tasks)
    assert "profile paper (auto: a GPU is visible)" in text and f"{zoo} zoo" in text and "estimated time" in text


def test_paper_by_name_says_what_it_runs_and_starts(fake_cuda):
    lines = []
    assert plan.check_scale("paper", log=lines.append).profile == "paper"
    assert any("assumed (unmeasured" in line for line in lines)


def test_auto_starts_when_the_estimate_is_short(fake_cuda, monkeypatch):
    monkeypatch.setenv("ADVMED_GMACS", "1e12")  # a (fake) GPU fast enough for paper in seconds
    assert plan.check_scale("auto", log=lambda m: None).profile == "paper"


def test_auto_without_a_gpu_is_cpu_and_never_asks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plan.check_scale("auto", log=lambda m: None).profile == "cpu"


def test_build_stops_before_any_chapter_when_auto_means_hours(fake_cuda, tmp_path):
    from advmed.book import build_book

    with pytest.raises(plan.ConfirmProfile):
        build_book(root=os.path.dirname(os.path.dirname(__file__)), profile="auto", build_dir=tmp_path,
                   log=lambda m: None)
    assert not list(tmp_path.rglob("*.ipynb"))


def _sweep_gmac(n: int) -> float:
    prof = get_profile("smoke", eval={"max_test": n}, whitebox={"n_images": n})
    return sum(c.cost_gmac for c in cells.book_cells(prof, ["02_whitebox"]) if c.name.startswith("whitebox/sweep"))


def test_estimate_scales_with_the_work():
    assert _sweep_gmac(64) == pytest.approx(2 * _sweep_gmac(32), rel=1e-9)
    paper, dry = cells.plan(PROFILES["paper"]), cells.plan(PROFILES["paper-dry"])
    assert dry.total_gmac < paper.total_gmac / 1000
    assert paper.seconds("cuda", workers=8) == pytest.approx(paper.seconds("cuda") / 8)


def test_chapter_estimates_add_up_to_the_build_and_charge_training_to_the_first_chapter():
    chapters = ["01_models.py", "02_whitebox.py", "08_claims.py"]
    p = cells.plan(PROFILES["smoke"], chapters)
    per = p.chapter_seconds("cpu")
    assert list(per) == ["01_models", "02_whitebox", "08_claims"]
    assert sum(per.values()) == pytest.approx(p.seconds("cpu"))
    assert p.home["zoo"] == "01_models" and p.home["whitebox"] == "02_whitebox"
    assert per["08_claims"] == estimate.CHAPTER_OVERHEAD_S
    without_ch1 = cells.plan(PROFILES["smoke"], ["02_whitebox.py"])
    assert without_ch1.home["zoo"] == "02_whitebox"


def test_build_progress_names_the_chapter_elapsed_and_the_estimate_left():
    from advmed.book.build import Progress

    prog = Progress({"01_models": 60.0, "02_whitebox": 600.0}, log=print)
    first = prog.starting("01_models")
    assert "[1/2] 01_models" in first and "estimated 60 s for it" in first and "11 min left in all" in first
    assert "(estimated 60 s)" in prog.finished("01_models", 58.0)
    assert "[2/2] 02_whitebox" in prog.starting("02_whitebox") and "10 min left" in prog.starting("02_whitebox")
    assert "estimated" not in Progress({}, log=print).starting("01_models")


def _calibrated(monkeypatch, tmp_path, table, shares=None):
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"seconds_per_forward": table, "work_share": shares or {}}))
    monkeypatch.setattr(estimate, "CALIBRATION_FILE", path)
    monkeypatch.delenv("ADVMED_CALIBRATION", raising=False)


def test_a_measured_work_share_scales_its_family_on_the_cpu_only(monkeypatch, tmp_path):
    _calibrated(monkeypatch, tmp_path, {}, {"smoke": {"whitebox": 0.5}})
    p = estimate.Plan("smoke", 1, 1, cells={"whitebox": 2, "zoo": 1}, gmac={"whitebox": 930.0, "zoo": 93.0})
    assert p.family_seconds("whitebox", "cpu") == pytest.approx(0.5 * (10 + 2 * estimate.CELL_OVERHEAD_S))
    assert p.family_seconds("zoo", "cpu") == pytest.approx(1 + estimate.CELL_OVERHEAD_S)  # no share: the count
    assert p.family_seconds("whitebox", "cuda") == p.counted_seconds("whitebox", "cuda")
    assert estimate.work_share("cpu", "whitebox") == 1.0


def test_measured_costs_interpolate_between_sides_and_leave_large_sides_to_arithmetic(monkeypatch, tmp_path):
    _calibrated(monkeypatch, tmp_path, {"resnet18@32": 1e-3, "resnet18@128": 4e-3})
    assert estimate.measured_forward_seconds("resnet18", 32) == pytest.approx(1e-3)
    assert estimate.measured_forward_seconds("resnet18", 64) == pytest.approx(2e-3)  # log-log midpoint
    assert estimate.measured_forward_seconds("resnet18", 16) == pytest.approx(1e-3)  # overhead floor
    assert estimate.measured_forward_seconds("resnet18", 224) is None
    assert estimate.forward_gmac("resnet18", 32) == pytest.approx(1e-3 * estimate.CPU_GMACS)
    assert estimate.forward_gmac("resnet18", 224) == pytest.approx(estimate.FORWARD_GMAC["resnet18"][0])
    assert estimate.forward_gmac("resnet50", 32) == pytest.approx(4.09 * (32 / 224) ** 2)
    monkeypatch.setenv("ADVMED_CALIBRATION", "0")
    assert estimate.measured_forward_seconds("resnet18", 32) is None


def test_adversarial_training_costs_its_attack_steps_and_robust_selection():
    clean = TrainConfig(task="pneumoniamnist", arch="small_cnn", size=28, epochs=2, max_train=100, max_val=50)
    adv = dataclasses.replace(clean, adversarial="adversarialmed")
    g = estimate.forward_gmac("small_cnn", 28)
    n_val = estimate.n_images("pneumoniamnist", "val", 50)
    robust = 3 * 10 * min(n_val, 128)
    assert estimate.train_cost(adv) == pytest.approx(2 * (3 * 100 * 11 + n_val + robust) * g)
    assert estimate.train_cost(adv) > 5 * estimate.train_cost(clean)


# --------------------------------------------------------------------------- precision policy and data placement
def test_amp_policy_reaches_attacks_called_through_the_registry(monkeypatch):
    from advmed.attacks.registry import AttackSpec

    seen = {}

    def fake(model, x, y, *, eps, amp=False):
        seen["amp"] = amp
        return x

    spec = AttackSpec("fake", "Fake", fake, step_rule="eps")
    x = torch.rand(2, 3, 4, 4)
    spec.call(None, x, torch.zeros(2), eps=0.01)
    assert seen["amp"] is False
    monkeypatch.setenv("ADVMED_AMP", "1")
    spec.call(None, x, torch.zeros(2), eps=0.01)
    assert seen["amp"] is True
    spec.call(None, x, torch.zeros(2), eps=0.01, amp=False)  # an explicit choice wins
    assert seen["amp"] is False


def test_results_under_autocast_are_memoised_apart(tmp_cache, monkeypatch):
    from advmed.cache import memo

    assert memo("t", {"a": 1}, lambda: "fp32") == "fp32"
    monkeypatch.setenv("ADVMED_AMP", "1")
    assert memo("t", {"a": 1}, lambda: "amp") == "amp"
    monkeypatch.delenv("ADVMED_AMP")
    assert memo("t", {"a": 1}, lambda: "recomputed") == "fp32"


def test_resident_leaves_cpu_tensors_alone():
    from advmed.device import maybe_compile, resident

    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert resident(x, "cpu") is x
    m = torch.nn.Linear(2, 2)
    assert maybe_compile(m, enabled=True) is m  # compile is for CUDA only


def test_predict_proba_takes_uint8_images_as_they_are():
    from advmed.models import predict_proba

    model = build_model("small_cnn", 2, input_size=28, seed=0)
    x8 = torch.randint(0, 256, (5, 3, 28, 28), dtype=torch.uint8)
    p8, pf = predict_proba(model, x8), predict_proba(model, x8.float() / 255)
    assert p8.shape == (5, 2) and (abs(p8 - pf).max() == 0)
    with pytest.raises(TypeError, match="uint8 or float"):
        predict_proba(model, x8.long())


@pytest.mark.parametrize("arch, size, net_size", [("small_cnn", 28, None), ("mobilenet_v1_075", 32, None),
                                                  ("densenet121", 32, None), ("inception_v3", 32, 75)])
def test_checkpoints_restore_exactly_without_drawing_weights(tmp_cache, arch, size, net_size):
    import pandas as pd

    from advmed.train import TrainedModel, load_checkpoint
    from advmed.train.checkpoints import save_checkpoint

    cfg = TrainConfig(task="skin7_derm", arch=arch, size=size, net_size=net_size)
    model = build_model(arch, 7, input_size=size, net_size=net_size, seed=3).eval()
    with torch.no_grad():  # non-default buffers, so that a restore from defaults would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    save_checkpoint(TrainedModel(model, cfg, pd.DataFrame([{"epoch": 1}]), "scratch", 0.5, 1.0, tuple("abcdefg")))
    back = load_checkpoint(cfg, device="cpu").model
    assert not any(t.is_meta for t in list(back.parameters()) + list(back.buffers()))
    assert all(p.requires_grad for p in back.parameters())
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))


def test_restored_checkpoints_keep_the_channels_last_layout(tmp_cache):
    import pandas as pd

    from advmed.train import TrainedModel, load_checkpoint
    from advmed.train.checkpoints import save_checkpoint

    cfg = TrainConfig(task="pneumoniamnist", arch="mobilenet_v1_075", size=32)
    model = build_model("mobilenet_v1_075", 2, input_size=32, seed=1).eval()
    model.use_channels_last(False)  # saved in the plain layout, as older checkpoints were
    save_checkpoint(TrainedModel(model, cfg, pd.DataFrame([{"epoch": 1}]), "scratch", 0.5, 1.0, ("a", "b")))
    back = load_checkpoint(cfg, device="cpu").model
    assert back.channels_last
    conv = next(m for m in back.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_attacks_chunk_large_images_only_and_keep_their_keys_elsewhere():
    from advmed.experiments.kernel.selection import batching

    cpu = get_profile("cpu")
    assert batching(cpu, torch.zeros(300, 1, 128, 128)) == {"batch_size": 32}
    assert batching(cpu, torch.zeros(300, 1, 28, 28)) == {}  # the whole set fits: key unchanged
    assert batching(cpu, torch.zeros(16, 1, 128, 128)) == {}
    assert batching(cpu) == {} and batching(get_profile("smoke"), torch.zeros(300, 1, 128, 128)) == {}
    fixed = get_profile("cpu", whitebox={"batch_size": 8})
    assert batching(fixed, torch.zeros(300, 1, 28, 28)) == {"batch_size": 8}
    with pytest.raises(ValueError, match="chunk_pixels must be an integer >= 1"):
        get_profile("cpu", whitebox={"chunk_pixels": 0})


def test_chunked_pgd_gives_the_images_of_one_batch():
    from advmed.attacks import pgd

    torch.manual_seed(0)
    model = build_model("small_cnn", 2, init="scratch").eval()
    x, y = torch.rand(10, 3, 28, 28), torch.randint(0, 2, (10,))
    kw = dict(eps=4 / 255, steps=3, random_start=False, early_stop=False, progress=False)
    assert torch.allclose(pgd(model, x, y, **kw), pgd(model, x, y, batch_size=3, **kw), atol=1e-6)


def test_cpu_inference_batches_stay_cache_sized_and_give_the_same_probabilities():
    from advmed.device import CPU_BATCH_PIXELS, inference_batch
    from advmed.models.inference import predict_proba

    assert inference_batch(256, torch.zeros(300, 3, 128, 128)) == CPU_BATCH_PIXELS // 128 ** 2
    assert inference_batch(256, torch.zeros(300, 3, 28, 28)) == 256
    assert inference_batch(256, torch.zeros(1, 3, 4096, 4096)) == 1
    torch.manual_seed(0)
    model = build_model("small_cnn", 2, init="scratch").eval()
    x = torch.rand(9, 3, 28, 28)
    assert np.allclose(predict_proba(model, x, batch_size=2), predict_proba(model, x, batch_size=256), atol=1e-6)
