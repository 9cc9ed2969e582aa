"""advmed.train on a tiny synthetic task with a throwaway network (no data layer needed)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import advmed.experiments.zoo as E
import advmed.train as T
import advmed.train.checkpoints as TC
from advmed.models import predict_proba
from advmed.experiments.profiles import get_profile


def _images(n, seed, size=12):
    """Class 1 has a bright 4x4 square at a random place; class 0 only noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randint(0, 90, (n, 3, size, size), generator=g, dtype=torch.uint8)
    for i in range(n):
        if y[i]:
            r, c = torch.randint(0, size - 4, (2,), generator=g).tolist()
            x[i, :, r:r + 4, c:c + 4] = 230
    return SimpleNamespace(images=x, labels=y.long(), classes=("normal", "abnormal"))


class TinyNet(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                                  nn.Linear(8, num_classes))
        self.meta = {"arch": "tiny", "init": "scratch"}

    def forward(self, x):
        return self.body(x)


CFG = T.TrainConfig(task="toy", arch="tiny", size=12, epochs=3, batch_size=16, lr=1e-2, patience=5)


@pytest.fixture
def synthetic(monkeypatch):
    """Route train_model's data and model construction to the synthetic stand-ins."""
    calls = {"load": 0}

    def load(cfg, split, limit, progress=True):
        calls["load"] += 1
        return _images(80 if split == "train" else 40, seed=0 if split == "train" else 1, size=cfg.size)

    monkeypatch.setattr(TC, "load_split", load)
    monkeypatch.setattr(TC, "build_from_config", lambda cfg, k, init=None: TinyNet(k))
    return calls


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_learns_and_reports(synthetic):
    tm = T.train_model(CFG, device="cpu", progress=False)
    h = tm.history
    assert {"epoch", "train_loss", "val_loss", "val_auc", "lr", "best"} <= set(h.columns)
    assert 1 <= len(h) <= CFG.epochs and h["best"].sum() == 1
    assert tm.val_auc == pytest.approx(h.loc[h["best"], "val_auc"].item())
    assert tm.val_auc > 0.8  # the square is easy to see
    assert not tm.model.training and tm.init_used == "scratch" and tm.classes == ("normal", "abnormal")


def test_same_config_same_weights_on_cpu(synthetic):
    a = T.train_model(CFG, device="cpu", progress=False)
    b = T.train_model(CFG, device="cpu", progress=False)
    sa, sb = _state(a.model), _state(b.model)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = T.train_model(dataclasses.replace(CFG, seed=1), device="cpu", progress=False)
    assert not all(torch.equal(sa[k], v) for k, v in _state(c.model).items())


@pytest.mark.parametrize("balance", ["sampler", "none"])
def test_other_balance_modes_run(synthetic, balance):
    cfg = dataclasses.replace(CFG, balance=balance, epochs=1, augment=False)
    assert T.train_model(cfg, device="cpu", progress=False).history.shape[0] == 1


def test_early_stopping_keeps_best(synthetic):
    cfg = dataclasses.replace(CFG, epochs=6, patience=1, lr=0.5)  # a wild lr, so val AUC wobbles
    tm = T.train_model(cfg, device="cpu", progress=False)
    h = tm.history
    best = int(h.loc[h["best"], "epoch"].item())
    # stopped at most `patience` epochs after the best one
    assert len(h) <= min(cfg.epochs, best + cfg.patience)
    # the kept weights are the best epoch's: re-evaluating gives its validation AUC
    val = _images(40, seed=1)
    from advmed.metrics import roc_auc

    p = predict_proba(tm.model, val.images)
    assert roc_auc(val.labels.numpy(), p) == pytest.approx(h.loc[h["best"], "val_auc"].item())


def test_checkpoint_round_trip(synthetic, tmp_cache, monkeypatch):
    first = T.get_trained_model(CFG, device="cpu", progress=False)
    pt, side = T.checkpoint_paths(CFG)
    assert pt.is_file() and side.is_file() and pt.parent == tmp_cache / "checkpoints"
    assert first.meta["cached"] is False

    def boom(*a, **k):
        raise AssertionError("train_model called although the checkpoint exists")

    monkeypatch.setattr(TC, "train_model", boom)
    second = T.get_trained_model(CFG, device="cpu", progress=False)
    assert second.meta["cached"] is True and not second.model.training
    s1, s2 = _state(first.model), _state(second.model)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert second.val_auc == pytest.approx(first.val_auc)
    assert second.init_used == first.init_used and second.classes == first.classes
    assert second.train_seconds == pytest.approx(first.train_seconds)
    assert list(second.history["epoch"]) == list(first.history["epoch"])
    x = _images(10, 5).images
    assert np.allclose(first.predict_proba(x), second.predict_proba(x))
    with pytest.raises(AssertionError, match="train_model called"):
        T.get_trained_model(CFG, retrain=True, device="cpu", progress=False)


def test_crash_during_save_leaves_no_partial_file(synthetic, tmp_cache, monkeypatch):
    tm = T.train_model(CFG, device="cpu", progress=False)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")  # advmed.cache.save_torch hands torch an open file
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        T.save_checkpoint(tm)
    pt, side = T.checkpoint_paths(CFG)
    assert not pt.exists() and not side.exists()
    assert list(pt.parent.iterdir()) == []  # no temporary file left behind
    monkeypatch.setattr(torch, "save", real_save)
    T.save_checkpoint(tm)
    # weights without a side-car (a crash between the two writes) count as absent
    side.unlink()
    calls = synthetic["load"]
    T.get_trained_model(CFG, device="cpu", progress=False)
    assert synthetic["load"] > calls and side.is_file()


def test_predict_proba_restores_mode_and_sums_to_one():
    torch.manual_seed(0)
    net = TinyNet().train()
    x = _images(7, 3).images
    p = predict_proba(net, x, batch_size=3)
    assert p.shape == (7, 2) and net.training
    assert np.allclose(p.sum(1), 1.0, atol=1e-12)
    assert np.allclose(p, predict_proba(net.eval(), x.float() / 255))
    assert not net.training
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="N, C, H, W"):
        predict_proba(net, x[0])


def test_config_key_and_profile_configs():
    prof = get_profile("smoke", models=["small_cnn"])
    cfgs = E.configs_for_profile(prof)
    assert len(cfgs) == len(prof.tasks) * len(prof.models)
    assert all(c.channels == 3 and c.seed == prof.seeds[0] for c in cfgs)
    assert {(c.task, c.size) for c in cfgs} == set(prof.tasks.items())
    keys = {c.key() for c in cfgs}
    assert len(keys) == len(cfgs) and all(len(k) == 16 for k in keys)
    c = cfgs[0]
    assert c.key() == T.TrainConfig(**c.to_dict()).key()  # stable
    assert dataclasses.replace(c, lr=c.lr * 2).key() != c.key()
    # no flips on chest X-rays, flips on dermoscopy
    assert T.TrainConfig("pneumonia_cxr", "x").hflip is False
    assert T.TrainConfig("melanoma_derm", "x").hflip is True
    with pytest.raises(ValueError, match="balance"):
        T.TrainConfig("pneumonia_cxr", "x", balance="oversample")
    with pytest.raises(KeyError, match="unknown train settings.*epochz.*valid: "):
        get_profile("smoke", train={"epochz": 1})


def test_profile_sizes_checked_against_architecture_minimum():
    pytest.importorskip("advmed.models")
    prof = get_profile("smoke", models=["inception_v3:imagenet"])  # min 75 px; pneumoniamnist is 28
    with pytest.raises(ValueError, match="pneumoniamnist at 28 px for inception_v3"):
        E.configs_for_profile(prof)


def test_augment_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 16, 16)
    assert torch.equal(T.augment_batch(x, g, translate=0.0, hflip=False), x)
    y = T.augment_batch(x, g, translate=0.125, hflip=False)
    assert y.shape == x.shape
    # a translation moves pixels, it does not invent values
    for i in range(5):
        assert set(y[i].unique().tolist()) <= set(x[i].unique().tolist())
    a = T.augment_batch(x, torch.Generator().manual_seed(1), translate=0.125, hflip=True)
    b = T.augment_batch(x, torch.Generator().manual_seed(1), translate=0.125, hflip=True)
    assert torch.equal(a, b)


def test_class_weights_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    assert np.allclose(T.class_weights(y, 3).numpy(), expected)
    # an absent class gets weight 0; the others are balanced over the classes present
    w = T.class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / 6, 2.0, 0.0]))


def test_recalibrate_bn_uses_exact_statistics():
    bn = nn.BatchNorm2d(3)
    net = nn.Sequential(bn, nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    bn.running_mean.fill_(5.0)  # stale statistics, as after a few training steps
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    T.recalibrate_bn(net, x, torch.device("cpu"), batch_size=64)
    xf = x.float() / 255
    assert torch.allclose(bn.running_mean, xf.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(bn.running_var, xf.transpose(0, 1).reshape(3, -1).var(1), atol=1e-6)
    assert not net.training and bn.momentum == 0.1


def test_cached_fallback_init_is_flagged(synthetic, tmp_cache):
    """A model trained from scratch because ImageNet weights were missing says so on reload."""
    cfg = dataclasses.replace(CFG, init="imagenet", epochs=1)
    first = T.get_trained_model(cfg, device="cpu", progress=False)
    assert first.init_used == "scratch"  # TinyNet's meta: the fallback happened
    with pytest.warns(UserWarning, match="retrain=True"):
        again = T.get_trained_model(cfg, device="cpu", progress=False)
    assert again.init_used == "scratch"


def test_new_config_fields_at_their_old_value_keep_every_checkpoint_key():
    import hashlib
    import json

    from advmed.train.config import CODE_VERSION, KEY_DEFAULTS

    cfg = T.TrainConfig("pneumonia_cxr", "resnet18", size=64)
    legacy = {k: v for k, v in cfg.to_dict().items() if k not in KEY_DEFAULTS}
    blob = json.dumps({"code_version": CODE_VERSION, **legacy}, sort_keys=True)
    assert cfg.key() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert dataclasses.replace(cfg, optimizer="adam").key() != cfg.key()
    assert dataclasses.replace(cfg, schedule="constant").key() != cfg.key()
    with pytest.raises(ValueError, match="valid: adamw, adam, sgd"):
        T.TrainConfig("pneumonia_cxr", "x", optimizer="rmsprop")


def test_profile_recipes_set_the_fine_tuning_optimizer():
    prof = get_profile("smoke", recipes={"imagenet": {"optimizer": "adam", "lr": 1e-4}})
    by_init = {c.init: c for c in E.configs_for_profile(prof)}
    assert by_init["imagenet"].optimizer == "adam" and by_init["imagenet"].lr == 1e-4
    assert by_init["scratch"].optimizer == prof.train.get("optimizer", "adamw")
    with pytest.raises(KeyError, match="unknown train settings"):
        get_profile("smoke", recipes={"imagenet": {"lrr": 1}})


def test_the_train_package_imports_in_one_direction():
    """config -> adversarial (objectives) -> loop -> checkpoints: no sibling imported inside a
    function (a lazy import hides a cycle), and the sibling graph is acyclic."""
    import ast
    from pathlib import Path

    pkg = Path(T.__file__).parent
    names = {p.stem for p in pkg.glob("*.py")} - {"__init__"}
    graph, lazy = {}, []
    for name in names:
        tree = ast.parse((pkg / f"{name}.py").read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in names:
                deps.add(node.module)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy += [f"{name}.{fn.name}" for n in ast.walk(fn)
                         if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module in names]
        graph[name] = deps
    assert not lazy, f"sibling imports inside functions: {lazy}"
    done, active = set(), set()

    def visit(n):
        assert n not in active, f"import cycle through {n}"
        if n in done:
            return
        active.add(n)
        for d in graph[n]:
            visit(d)
        active.discard(n)
        done.add(n)

    for n in graph:
        visit(n)
