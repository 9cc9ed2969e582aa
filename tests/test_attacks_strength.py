"""Attack strength on a quickly trained tiny CNN (PneumoniaMNIST, 28 px, 1 channel).

Stronger attacks fool more at the same eps (PGD <= I-FGSM <= FGSM in accuracy), a larger
eps fools more, and restarts (worst case kept per image) never raise accuracy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advmed.attacks import fgsm, ifgsm, mifgsm, pgd

torch.set_num_threads(1)

EPSILONS = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]


class Normalize(nn.Module):
    def forward(self, x):
        return (x - 0.5) / 0.25


@pytest.fixture(scope="module")
def trained(data_root: Path):
    path = data_root / "medmnist" / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.fail(f"missing {path}; set $ADVMED_DATA_ROOT to the data folder")
    data = np.load(path)

    def split(name, n):
        images = torch.from_numpy(data[f"{name}_images"][:n]).float().div_(255)[:, None]
        return images, torch.from_numpy(data[f"{name}_labels"][:n, 0]).long()

    x_train, y_train = split("train", 2048)
    x_test, y_test = split("test", 192)
    torch.manual_seed(0)
    model = nn.Sequential(
        Normalize(), nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(x_train), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval(), x_test, y_test


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_strength_ordering_and_monotone_in_eps(trained):
    model, x, y = trained
    clean = _accuracy(model, x, y)
    assert clean > 0.75, f"the tiny model did not train (accuracy {clean:.3f})"
    acc = {name: [] for name in ("fgsm", "ifgsm", "mifgsm", "pgd")}
    for eps in EPSILONS:
        acc["fgsm"].append(_accuracy(model, fgsm(model, x, y, eps=eps), y))
        acc["ifgsm"].append(_accuracy(model, ifgsm(model, x, y, eps=eps, steps=10), y))
        acc["mifgsm"].append(_accuracy(model, mifgsm(model, x, y, eps=eps, steps=10), y))
        acc["pgd"].append(_accuracy(model, pgd(model, x, y, eps=eps, steps=10, seed=0), y))
    for name, values in acc.items():
        assert values[0] == clean, name
        assert all(a >= b for a, b in zip(values, values[1:])), (name, values)
    # PGD starts from a random point of the ball and I-FGSM from x; one random start is
    # not guaranteed to end higher for every image, so PGD may trail by one image.
    one_image = 1 / len(y) + 1e-6
    for i in range(len(EPSILONS)):
        assert acc["ifgsm"][i] <= acc["fgsm"][i], (EPSILONS[i], acc)
        assert acc["pgd"][i] <= acc["ifgsm"][i] + one_image, (EPSILONS[i], acc)
        assert acc["pgd"][i] <= acc["fgsm"][i], (EPSILONS[i], acc)
    assert acc["pgd"][-1] < 0.5 * clean, acc  # 4/255 breaks an undefended model


def test_targeted_other_flips_predictions(trained):
    model, x, y = trained
    x_adv = pgd(model, x, y, eps=8 / 255, steps=10, targeted=True, target="other")
    with torch.no_grad():
        hit = (model(x_adv).argmax(1) == 1 - y).float().mean().item()
        before = (model(x).argmax(1) == 1 - y).float().mean().item()
    assert hit > max(0.5, before)


def test_margin_loss_at_least_as_strong_as_chance(trained):
    model, x, y = trained
    ce = _accuracy(model, pgd(model, x, y, eps=2 / 255, steps=10), y)
    mg = _accuracy(model, pgd(model, x, y, eps=2 / 255, steps=10, loss="margin"), y)
    assert mg < _accuracy(model, x, y) and abs(mg - ce) < 0.15


@pytest.mark.parametrize("norm, eps", [("linf", 1 / 255), ("l2", 0.15)])
def test_restarts_never_increase_accuracy(trained, norm, eps):
    model, x, y = trained
    one = pgd(model, x, y, eps=eps, steps=5, norm=norm, seed=1)
    three = pgd(model, x, y, eps=eps, steps=5, norm=norm, seed=1, restarts=3)
    with torch.no_grad():
        fooled_one = model(one).argmax(1) != y
        fooled_three = model(three).argmax(1) != y
    assert torch.all(fooled_three[fooled_one])  # the first restart is kept where it won
    assert torch.equal(three[fooled_one], one[fooled_one])
    assert fooled_three.sum() >= fooled_one.sum()
