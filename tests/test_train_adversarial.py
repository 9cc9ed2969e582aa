"""advmed.train.adversarial: objectives (AdversarialMed, PGD, fast FGSM, Gaussian noise), their
config in TrainConfig (clean keys unchanged), crafting in eval mode, costs, and robustness."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import advmed.train as T
import advmed.train.checkpoints as TC
import pytest
import torch
import torch.nn.functional as F
from advmed.attacks import ifgsm, pgd
from advmed.train.adversarial import (
    ADVERSARIALMED_EPS,
    ADVERSARIALMED_STEP,
    AdversarialConfig,
    AdversarialObjective,
    make_objective,
)
from defense_models import held_out_images, trained_model
from torch import nn

torch.set_num_threads(1)


CFG = T.TrainConfig(task="toy", arch="tiny", size=12, epochs=2, batch_size=16, lr=1e-2, patience=5)


def _images(n, seed, size=12):
    """Class 1 has a bright 4x4 square at a random place; class 0 only noise (as tests/test_train.py)."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randint(0, 90, (n, 3, size, size), generator=g, dtype=torch.uint8)
    for i in range(n):
        if y[i]:
            r, c = torch.randint(0, size - 4, (2,), generator=g).tolist()
            x[i, :, r:r + 4, c:c + 4] = 230
    return SimpleNamespace(images=x, labels=y.long(), classes=("normal", "abnormal"))


@pytest.fixture
def synthetic(monkeypatch):
    """Route train_model's data and model construction to synthetic stand-ins."""
    monkeypatch.setattr(TC, "load_split", lambda cfg, split, limit, progress=True: _images(
        64 if split == "train" else 32, seed=0 if split == "train" else 1, size=cfg.size))
    monkeypatch.setattr(TC, "build_from_config", lambda cfg, k, init=None: nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(8, k)))


# ------------------------------------------------------------------------------------ config and keys

def _key_without_the_field(cfg: T.TrainConfig) -> str:
    """TrainConfig.key() as it was before ``adversarial`` existed."""
    # Older fields at their pre-existing defaults were already left out of the key then.
    from advmed.train.config import KEY_DEFAULTS

    older = {k: v for k, v in KEY_DEFAULTS.items() if k != "adversarial"}
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name != "adversarial" and not (f.name in older and getattr(cfg, f.name) == older[f.name])}
    blob = json.dumps({"code_version": T.CODE_VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@pytest.mark.parametrize("cfg", [T.TrainConfig("pneumoniamnist", "small_cnn", size=28),
                                 T.TrainConfig("pneumonia_cxr", "resnet18", init="imagenet", size=224, max_train=500),
                                 CFG])
def test_clean_config_key_is_the_key_without_the_new_field(cfg):
    assert cfg.adversarial is None
    assert cfg.key() == _key_without_the_field(cfg)


@pytest.mark.skipif(T.CODE_VERSION != 2, reason="keys pinned for CODE_VERSION 2 (main before the field existed)")
def test_clean_config_keys_equal_those_computed_on_main():
    """Computed with /work/main's advmed (no ``adversarial`` field) at CODE_VERSION 2."""
    assert T.TrainConfig("pneumoniamnist", "small_cnn", size=28).key() == "6eb86c24af35e200"
    assert T.TrainConfig("pneumonia_cxr", "resnet18", init="imagenet", size=224,
                         max_train=500).key() == "e47be2db1fb96dea"


def test_adversarial_config_enters_the_key_label_and_round_trips():
    clean = T.TrainConfig("pneumoniamnist", "small_cnn", size=28)
    adv = dataclasses.replace(clean, adversarial=AdversarialConfig("adversarialmed"))
    assert adv.key() != clean.key()
    assert dataclasses.replace(clean, adversarial="adversarialmed") == adv  # a method name is converted
    assert T.TrainConfig(**adv.to_dict()) == adv  # to_dict() -> TrainConfig (side-car JSON) is lossless
    assert T.TrainConfig(**adv.to_dict()).key() == adv.key()
    assert "adversarialmed" in adv.label()
    other = dataclasses.replace(clean, adversarial=AdversarialConfig("pgd", eps=4 / 255))
    assert len({clean.key(), adv.key(), other.key()}) == 3
    with pytest.raises(TypeError, match="adversarial"):
        T.TrainConfig("pneumoniamnist", "small_cnn", adversarial=3)


def test_method_defaults_are_the_published_settings():
    a = AdversarialConfig("adversarialmed")
    assert a.eps == pytest.approx(0.02 * 0.226) == ADVERSARIALMED_EPS and a.eps == pytest.approx(1.1526 / 255, abs=1e-5)
    assert a.step_size == pytest.approx(0.005 * 0.226) == ADVERSARIALMED_STEP
    assert (a.steps, a.clean_weight, a.random_start) == (10, 0.7, False)
    p = AdversarialConfig("pgd", eps=8 / 255)
    assert (p.steps, p.random_start, p.clean_weight) == (10, True, 0.0)
    assert p.step_size == pytest.approx(2.5 * (8 / 255) / 10)
    assert AdversarialConfig("pgd", eps=8 / 255, steps=5).step_size == pytest.approx(2.5 * (8 / 255) / 5)
    f = AdversarialConfig("fast_fgsm", eps=8 / 255)
    assert (f.steps, f.random_start) == (1, True) and f.step_size == pytest.approx(1.25 * 8 / 255)
    assert AdversarialConfig("gaussian").sigma == 0.25


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="trades"), "adversarialmed, adversarialmed_fgsm, pgd, fast_fgsm, gaussian"),
    (dict(method="pgd", eps=8), "did you mean 8/255"),
    (dict(method="pgd", eps=0.0), "eps must be > 0"),
    (dict(method="pgd", eps=float("nan")), "finite"),
    (dict(method="adversarialmed", clean_weight=1.0), "clean_weight"),
    (dict(method="pgd", steps=0), "steps"),
    (dict(method="pgd", sigma=0.1), "sigma belongs"),
    (dict(method="gaussian", sigma=-1.0), "sigma"),
    (dict(method="gaussian", eps=0.1), "sigma only"),
    (dict(method="pgd", robust_val_images=-1), "robust_val_images"),
    (dict(method="gaussian", robust_val_images=64), "robust_val_images"),
])
def test_bad_adversarial_config_refused(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AdversarialConfig(**kwargs)


# ------------------------------------------------------------------------------------ objectives

class BNNet(nn.Module):
    """Conv + batch norm + dropout: the layers whose train-mode behaviour crafting must avoid."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.3),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 2))
        self.modes_seen: list[bool] = []
        self.body[1].register_forward_hook(lambda m, i, o: self.modes_seen.append(m.training))

    def forward(self, x):
        return self.body(x)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 12, 12, generator=g), torch.arange(n) % 2


@pytest.mark.parametrize("method", ["adversarialmed", "pgd", "fast_fgsm"])
def test_crafting_runs_in_eval_mode_and_leaves_train_mode_and_bn_statistics(method):
    net = BNNet().train()
    x, y = _batch()
    net(x)  # some batch-norm history
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    flags = [p.requires_grad for p in net.parameters()]
    net.modes_seen.clear()
    obj = AdversarialObjective(AdversarialConfig(method, **({} if method == "adversarialmed" else {"eps": 4 / 255})))
    x_adv = obj.craft(net, x, y)
    assert net.modes_seen and not any(net.modes_seen)  # every crafting forward in eval mode
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    assert [p.requires_grad for p in net.parameters()] == flags and all(p.grad is None for p in net.parameters())
    eps = obj.config.eps
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad


def test_adversarialmed_objective_is_0p7_clean_plus_0p3_ifgsm_with_true_labels():
    """Reference: the same mix computed by hand with advmed.attacks.ifgsm (eval mode, true labels)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 2)).train()
    x, y = _batch()
    loss_fn = nn.CrossEntropyLoss()
    obj = make_objective(AdversarialConfig("adversarialmed"))
    loss, logits = obj(net, x, y, loss_fn)
    x_ref = ifgsm(net, x, y, eps=0.00452, step_size=0.00113, steps=10, progress=False, early_stop=False)
    ref = 0.7 * F.cross_entropy(net(x), y) + 0.3 * F.cross_entropy(net(x_ref), y)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(logits, net(x))  # running accuracy on the clean batch
    assert loss.requires_grad and net.training


def test_pgd_objective_is_the_adversarial_loss_with_a_new_random_start_per_batch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 2)).train()
    x, y = _batch()
    # steps small enough that the start matters (the default 2.5 eps in all saturates a linear model)
    cfg = AdversarialConfig("pgd", eps=4 / 255, steps=3, step_size=1 / 255)
    obj = AdversarialObjective(cfg, seed=5)
    a = obj.craft(net, x, y)
    b = obj.craft(net, x, y)
    assert not torch.equal(a, b)  # random start differs per call (seeded by batch counter)
    assert torch.equal(AdversarialObjective(cfg, seed=5).craft(net, x, y), a)  # and is reproducible
    ref = pgd(net, x, y, eps=4 / 255, steps=3, step_size=1 / 255, random_start=True,
              seed=5 * 1_000_003 + 2, progress=False, early_stop=False)  # the third crafted batch
    loss, logits = obj(net, x, y, nn.CrossEntropyLoss())
    assert loss.item() == pytest.approx(F.cross_entropy(net(ref), y).item(), rel=1e-6)


def test_fast_fgsm_is_one_step_of_1p25_eps_from_a_random_start():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 2))
    x, y = _batch()
    eps = 8 / 255
    obj = AdversarialObjective(AdversarialConfig("fast_fgsm", eps=eps), seed=0)
    x_adv = obj.craft(net, x, y)
    ref = pgd(net, x, y, eps=eps, steps=1, step_size=1.25 * eps, random_start=True, seed=0, progress=False,
              early_stop=False)
    assert torch.equal(x_adv, ref)
    assert obj.cost.crafting_passes == 1


def test_gaussian_training_puts_the_noise_in_front_of_the_model_and_returns_the_base(synthetic):
    """The noise reaches the training forward, the batch-norm recalibration and validation (a
    NoisyInput layer), and the saved model is the base classifier without it."""
    cfg = dataclasses.replace(CFG, adversarial=AdversarialConfig("gaussian", sigma=0.1))
    tm = T.train_model(cfg, device="cpu", progress=False)
    assert not isinstance(tm.model, T.adversarial.NoisyInput) and isinstance(tm.model, nn.Sequential)
    assert tm.meta["training_cost"]["crafting_passes"] == 0 and tm.meta["training_cost"]["training_passes"] > 0
    x = torch.rand(4, 3, 12, 12)
    noisy = T.adversarial.NoisyInput(nn.Identity(), 0.1)
    assert (noisy.eval()(x) - x).std().item() == pytest.approx(0.1, rel=0.2)  # noise in eval mode too
    with pytest.raises(TypeError, match="NoisyInput"):
        AdversarialObjective(AdversarialConfig("gaussian")).craft(nn.Identity(), x, torch.zeros(4).long())


def test_costs_count_crafting_and_training_passes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 2))
    x, y = _batch(6)
    for method, steps, passes in (("adversarialmed", 10, 2), ("pgd", 4, 1)):
        kw = {} if method == "adversarialmed" else {"eps": 2 / 255, "steps": steps}
        obj = make_objective(AdversarialConfig(method, **kw))
        for _ in range(3):
            obj(net, x, y, nn.CrossEntropyLoss())
        c = obj.cost
        assert (c.batches, c.images, c.crafting_passes, c.crafting_gradients, c.training_passes) == \
            (3, 18, 3 * steps, 3 * steps * 6, 3 * passes)
        assert c.gradient_evaluations == 3 * (steps + passes)
        assert 0 < c.crafting_seconds <= c.objective_seconds
        assert c.to_dict()["gradient_evaluations"] == c.gradient_evaluations


# ------------------------------------------------------------------------------------ wiring

def test_train_model_uses_the_configured_objective_and_caches_it(synthetic, tmp_cache):
    cfg = dataclasses.replace(CFG, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=2))
    tm = T.get_trained_model(cfg, device="cpu", progress=False)
    cost = tm.meta["training_cost"]
    assert cost["crafting_passes"] == 2 * cost["batches"] > 0 and cost["crafting_seconds"] > 0
    pt, side = TC.checkpoint_paths(cfg)
    assert pt.name == f"{cfg.key()}.pt" and pt.is_file()
    back = T.get_trained_model(cfg, device="cpu", progress=False)
    assert back.meta["cached"] and back.config == cfg
    assert back.meta["training_cost"] == cost  # the cost lives in the side-car
    record = json.loads(side.read_text())
    assert T.TrainConfig(**record["config"]) == cfg
    plain = T.train_model(CFG, device="cpu", progress=False)
    assert "training_cost" not in plain.meta


# ------------------------------------------------------------------------------------ robustness

@pytest.fixture(scope="module")
def robustness_models(data_root):
    """Narrow small_cnn on 2000 PneumoniaMNIST training images (28 px), 4 epochs: plain and with
    each adversarial objective (about 1 min of CPU in all; memoised in the test cache)."""
    specs = {"plain": None, "adversarialmed": AdversarialConfig("adversarialmed"),
             "fast_fgsm": AdversarialConfig("fast_fgsm", eps=2 / 255), "pgd": AdversarialConfig("pgd", eps=2 / 255)}
    return {k: trained_model(v, epochs=4, n_train=2000) for k, v in specs.items()}


def _clean_and_robust(model, x, y, eps):
    x_adv = pgd(model, x, y, eps=eps, steps=20, restarts=2, seed=0)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean()), float((model(x_adv).argmax(1) == y).float().mean())


@pytest.mark.slow
@pytest.mark.parametrize("method, eps, gain", [("pgd", 2 / 255, 0.2), ("fast_fgsm", 2 / 255, 0.2),
                                               ("adversarialmed", ADVERSARIALMED_EPS, 0.05)])
def test_adversarially_trained_model_is_more_robust_to_pgd(robustness_models, method, eps, gain):
    """Robust accuracy under PGD-20 with 2 restarts at the training eps, 300 test images.

    Measured (same setting): plain 0.423 at 2/255 and 0.680 at 1.15/255; PGD-trained 0.783,
    fast-FGSM-trained 0.780, AdversarialMed-trained 0.793 at 1.15/255. Criteria: a gain of at least
    0.2 (PGD, fast FGSM) or 0.05 (AdversarialMed, whose eps is half as large) and clean accuracy
    within 0.05 of the plain model's (it rose by about 0.01 for all three).
    """
    x, y = held_out_images(300)
    plain, _ = robustness_models["plain"]
    robust, cost = robustness_models[method]
    p, r = _clean_and_robust(plain, x, y, eps), _clean_and_robust(robust, x, y, eps)
    print(f"{method} at eps {eps * 255:.2f}/255: plain (clean, robust) {p}, trained {r}; cost {cost}")
    assert r[1] >= p[1] + gain
    assert r[0] >= p[0] - 0.05
    steps = AdversarialConfig(method, eps=None if method == "adversarialmed" else eps).steps
    assert cost["crafting_passes"] == steps * cost["batches"]


@pytest.mark.parametrize("method", ["pgd", "adversarialmed", "fast_fgsm"])
def test_training_examples_run_every_step(method):
    """Crafted examples maximise the loss with every step (no early stop at the boundary): the
    objective's batch is the attack run with ``early_stop=False``, which is not the early-stopped
    one on this batch (some images flip before the last step)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                          nn.Linear(8, 2)).eval()
    data = _images(32, seed=3)
    xb, yb = data.images.float() / 255, data.labels
    cfg = AdversarialConfig(method, eps=8 / 255) if method != "adversarialmed" else AdversarialConfig(method)
    obj = AdversarialObjective(cfg, seed=5)
    crafted = obj.craft(model, xb, yb)
    common = dict(eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size, progress=False)
    if cfg.random_start:
        full = pgd(model, xb, yb, random_start=True, seed=5 * 1_000_003, early_stop=False, **common)
        stopped = pgd(model, xb, yb, random_start=True, seed=5 * 1_000_003, early_stop=True, **common)
    else:
        full = ifgsm(model, xb, yb, early_stop=False, **common)
        stopped = ifgsm(model, xb, yb, early_stop=True, **common)
    assert torch.equal(crafted, full)
    assert not torch.equal(full, stopped), "the batch must contain images that flip before the last step"
    ce = lambda x: F.cross_entropy(model(x), yb).item()  # noqa: E731
    assert ce(crafted) >= ce(stopped) - 1e-6


def test_adversarial_code_version_changes_adversarial_keys_only(monkeypatch):
    import advmed.train.config as C

    clean, at = T.TrainConfig("pneumoniamnist", "small_cnn", size=28), \
        T.TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial="pgd")
    noise = T.TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial="gaussian")
    before = clean.key(), at.key(), noise.key()
    monkeypatch.setattr(C, "ADVERSARIAL_CODE_VERSION", C.ADVERSARIAL_CODE_VERSION + 1)
    assert clean.key() == before[0] and noise.key() == before[2] and at.key() != before[1]


# ------------------------------------------------------------------------------------ batch norm and selection

@pytest.mark.skipif(T.CODE_VERSION != 4, reason="keys pinned for CODE_VERSION 4")
def test_clean_and_noise_keys_do_not_move_with_the_selection_field():
    """Pinned before adversarial training got robust selection (commit acf8bbb): clean and noise
    configs keep their checkpoints; adversarial configs hash robust_val_images (their keys move)."""
    assert T.TrainConfig("pneumoniamnist", "small_cnn", size=28).key() == "c08b4845c8c160d8"
    assert T.TrainConfig("pneumonia_cxr", "resnet18", init="imagenet", size=64, epochs=5,
                         max_train=1200).key() == "e28f427330b08a47"
    assert T.TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial="gaussian").key() == "0a8961e6e3d26430"
    assert T.TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial="pgd").key() != "f4ddfa8a2448b41c"


def test_robust_val_images_is_an_adversarial_field_in_the_key():
    pgd_cfg = AdversarialConfig("pgd")
    assert pgd_cfg.robust_val_images == 128 and AdversarialConfig("gaussian").robust_val_images is None
    assert "robust_val_images" not in AdversarialConfig("gaussian").key_dict()
    base = T.TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial=pgd_cfg)
    other = dataclasses.replace(base, adversarial=AdversarialConfig("pgd", robust_val_images=64))
    assert other.key() != base.key()
    assert T.TrainConfig(**other.to_dict()) == other and T.TrainConfig(**other.to_dict()).key() == other.key()


def _fit(cfg, monkeypatch=None, scores=None):
    """fit_robust on the synthetic task (64 train, 32 val images) with the BN stand-in network;
    ``scores``: scripted robust balanced accuracies, one per epoch, instead of the PGD pass."""
    from advmed.train import loop

    if scores is not None:
        it = iter(scores)

        def scripted(model, rv):
            v = next(it)
            return {"val_robust_accuracy": v, "val_robust_bal_acc": v}

        monkeypatch.setattr(loop, "_robust_val_scores", scripted)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                        nn.Flatten(), nn.Linear(8, 2))
    return T.fit_robust(net, _images(64, seed=0), _images(32, seed=1), cfg, device="cpu", progress=False)


AT = dataclasses.replace(CFG, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=2))


def test_adversarial_training_records_robust_accuracy_and_keeps_its_best_epoch():
    fitted = _fit(dataclasses.replace(AT, epochs=3))
    h = fitted.history
    assert {"val_robust_accuracy", "val_robust_bal_acc"} <= set(h.columns) and len(h) == 3
    assert h[["val_robust_accuracy", "val_robust_bal_acc"]].apply(lambda c: c.between(0, 1)).all().all()
    order = sorted(h.itertuples(), key=lambda r: (r.val_robust_bal_acc, r.val_auc), reverse=True)
    assert fitted.best_epoch == order[0].epoch and h.loc[h["best"], "epoch"].item() == fitted.best_epoch
    for cfg in (CFG, dataclasses.replace(CFG, adversarial=AdversarialConfig("gaussian", sigma=0.1))):
        assert not {"val_robust_accuracy", "val_robust_bal_acc"} & set(_fit(cfg).history.columns)


def test_robust_validation_is_pgd10_with_every_step_on_a_fixed_stratified_subset(monkeypatch):
    from advmed.train import loop

    calls = []

    def spy(model, x, y, **kw):
        calls.append((x.clone(), y.clone(), kw))
        return pgd(model, x, y, **kw)

    monkeypatch.setattr(loop, "pgd", spy)
    cfg = dataclasses.replace(AT, epochs=2, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=2,
                                                                          robust_val_images=10))
    _fit(cfg)
    assert len(calls) == 2  # once per epoch, on the same images with the same random start
    (x0, y0, kw), (x1, y1, kw1) = calls
    assert torch.equal(x0, x1) and torch.equal(y0, y1) and kw == kw1
    assert len(y0) == 10 and torch.bincount(y0).tolist() == [5, 5]  # stratified (the val split is 50/50)
    assert kw["steps"] == 10 and kw["step_size"] == pytest.approx(2.5 * (4 / 255) / 10)
    assert kw["eps"] == pytest.approx(4 / 255) and kw["random_start"] and kw["early_stop"] is False
    assert kw["seed"] == cfg.seed


def test_adversarial_training_keeps_the_batch_norm_statistics_of_its_batches(monkeypatch):
    """No recalibration on clean images for an adversarial method; clean and noise training keep it."""
    from advmed.train import loop

    counted = []
    real = loop.recalibrate_bn
    monkeypatch.setattr(loop, "recalibrate_bn", lambda *a, **k: (counted.append(1), real(*a, **k)))
    for cfg, expected in ((dataclasses.replace(AT, epochs=2), 0), (CFG, 2),
                          (dataclasses.replace(CFG, adversarial=AdversarialConfig("gaussian", sigma=0.1)), 2)):
        counted.clear()
        fitted = _fit(cfg)
        assert len(counted) == expected, cfg.label()
        assert not fitted.model.training
    bn = _fit(dataclasses.replace(AT, epochs=1)).model[1]
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 4  # 64 images / 16: the training batches


@pytest.mark.parametrize("method, scores, rows, best", [
    ("fast_fgsm", [0.5, 0.8, 0.55, 0.9, 0.9, 0.9], 3, 2),  # drop of 0.25 > 0.2: catastrophic overfitting
    ("fast_fgsm", [0.5, 0.8, 0.65, 0.9, 0.9, 0.9], 6, 4),  # drop of 0.15: training goes on
    ("pgd", [0.5, 0.8, 0.55, 0.9, 0.6, 0.6], 6, 4),  # no guard for PGD
])
def test_fast_fgsm_stops_on_catastrophic_overfitting(monkeypatch, method, scores, rows, best):
    cfg = dataclasses.replace(CFG, epochs=6, patience=5, adversarial=AdversarialConfig(method, eps=4 / 255,
                                                                                        steps=1 if method == "pgd" else None))
    fitted = _fit(cfg, monkeypatch, scores)
    assert len(fitted.history) == rows and fitted.best_epoch == best
    assert fitted.history["val_robust_bal_acc"].tolist() == scores[:rows]


def test_patience_counts_epochs_without_better_robust_accuracy(monkeypatch):
    cfg = dataclasses.replace(AT, epochs=6, patience=2)
    fitted = _fit(cfg, monkeypatch, [0.8, 0.7, 0.7, 0.9, 0.9, 0.9])
    assert len(fitted.history) == 3 and fitted.best_epoch == 1


# ------------------------------------------------------------------------------------ warm start

def test_warm_start_enters_the_key_by_the_source_key_and_round_trips():
    adv = dataclasses.replace(CFG, adversarial=AdversarialConfig("adversarialmed"))
    warm = dataclasses.replace(adv, warm_start=CFG)
    assert warm.key() != adv.key() and "fine-tuned" in warm.label()
    assert T.TrainConfig(**warm.to_dict()) == warm  # the side-car's nested dict is converted
    assert T.TrainConfig(**warm.to_dict()).key() == warm.key()
    other_source = dataclasses.replace(warm, warm_start=dataclasses.replace(CFG, seed=1))
    assert other_source.key() != warm.key()  # the key follows the source's weights


@pytest.mark.parametrize("field, value", [("size", 16), ("arch", "small_cnn"), ("task", "pneumoniamnist")])
def test_warm_start_must_be_the_same_network_on_the_same_task(field, value):
    with pytest.raises(ValueError, match=f"differs in {field}"):
        dataclasses.replace(CFG, warm_start=dataclasses.replace(CFG, **{field: value}))
    with pytest.raises(TypeError, match="warm_start"):
        dataclasses.replace(CFG, warm_start="abc")


def test_warm_start_fine_tunes_the_source_weights_trained_through_the_cache(synthetic, tmp_cache):
    adv = dataclasses.replace(CFG, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=1), warm_start=CFG,
                              epochs=1, lr=1e-12)
    tm = T.get_trained_model(adv, device="cpu", progress=False)
    assert TC.checkpoint_paths(CFG)[0].is_file()  # the source was trained and cached first
    source = T.get_trained_model(CFG, device="cpu", progress=False)
    assert source.meta["cached"] and tm.meta["model_meta"]["warm_start"] == CFG.key()
    for (name, p), q in zip(tm.model.named_parameters(), source.model.parameters()):
        assert torch.allclose(p, q, atol=1e-8), name  # lr ~ 0: the weights are the source's
    fresh = T.train_model(dataclasses.replace(adv, warm_start=None), device="cpu", progress=False)
    assert not all(torch.allclose(p, q, atol=1e-4) for p, q in zip(fresh.model.parameters(), source.model.parameters()))


def test_robust_val_images_0_selects_on_clean_auc_and_keeps_the_trained_batch_norm(synthetic, monkeypatch):
    """The regularisation experiment's adversarial arm: selected like clean training (no robust
    columns, the best clean AUC kept), its batch norm still that of the batches it trained on."""
    from advmed.train import loop

    calls = []
    monkeypatch.setattr(loop, "recalibrate_bn", lambda *a, **k: calls.append(1))
    cfg = dataclasses.replace(CFG, epochs=3, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=1,
                                                                          robust_val_images=0))
    tm = T.train_model(cfg, device="cpu", progress=False)
    assert "val_robust_bal_acc" not in tm.history.columns and not calls
    assert tm.best_epoch == int(tm.history["val_auc"].values.argmax()) + 1
    assert cfg.key() != dataclasses.replace(cfg, adversarial=AdversarialConfig("pgd", eps=4 / 255, steps=1)).key()
    with pytest.raises(ValueError, match="robust_val_images"):
        AdversarialConfig("pgd", robust_val_images=-1)
