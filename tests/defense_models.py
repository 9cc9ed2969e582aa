"""Small trained models shared by tests/test_defenses.py and tests/test_train_adversarial.py.

A narrow ``small_cnn`` (width 8: 9 k parameters, the library's SmallCNN with its 0.5 / 0.5
normalisation) trained with :func:`advmed.train.fit_robust` (``fit`` with the
configured objective) on 1000 PneumoniaMNIST training images
at 28 px for 3 epochs (a few seconds on one CPU thread; test accuracy about 0.85). Weights are
memoised in the test cache (``advmed.cache.memo``), so a second run loads them.
"""
from __future__ import annotations

import torch
from advmed.cache import memo
from advmed.data import load_task
from advmed.models.normalize import ImageClassifier, Normalize
from advmed.models.small_cnn import SmallCNN
from advmed.train import TrainConfig
from advmed.train import fit_robust

SIZE = 28
N_TRAIN, N_VAL = 1000, 300
VERSION = 2  # bump to retrain the memoised test models


def narrow_cnn(seed: int = 0, width: int = 8) -> ImageClassifier:
    torch.manual_seed(seed)
    return ImageClassifier(SmallCNN(2, 3, width=width), Normalize((0.5,) * 3, (0.5,) * 3),
                           {"arch": "small_cnn", "init": "scratch", "in_channels": 3, "num_classes": 2})


def splits(n_train: int = N_TRAIN):
    tr = load_task("pneumoniamnist", "train", size=SIZE, limit=n_train, progress=False)
    va = load_task("pneumoniamnist", "val", size=SIZE, limit=N_VAL, progress=False)
    return tr, va


def held_out_images(n: int = 200):
    te = load_task("pneumoniamnist", "test", size=SIZE, limit=n, progress=False)
    return te.float(), te.labels


def config(epochs: int = 3, adversarial=None) -> TrainConfig:
    return TrainConfig("pneumoniamnist", "small_cnn", size=SIZE, epochs=epochs, batch_size=64, lr=3e-3,
                       patience=epochs, adversarial=adversarial)


def trained_model(adversarial=None, epochs: int = 3, n_train: int = N_TRAIN) -> tuple[ImageClassifier, dict]:
    """The narrow CNN trained as ``config(epochs, adversarial)`` says on ``n_train`` images;
    ``(model, training cost)``."""
    cfg = config(epochs, adversarial)

    def compute():
        tr, va = splits(n_train)
        fitted = fit_robust(narrow_cnn(), tr, va, cfg, device="cpu", progress=False)
        model, cost = fitted.model, fitted.cost
        return {"state": {k: v.clone() for k, v in model.state_dict().items()},
                "cost": {} if cost is None else cost.to_dict()}

    blob = memo("test_defense_models", {"v": VERSION, "cfg": cfg.key(), "n": [n_train, N_VAL]}, compute)
    model = narrow_cnn()
    model.load_state_dict(blob["state"])
    return model.eval(), blob["cost"]
