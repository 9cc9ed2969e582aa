"""8-bit delivery of adversarial images (advmed.attacks.quantize) and its place in the worst case
(robust_accuracy's accuracy_8bit)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advmed.attacks import default_ensemble, robust_accuracy
from advmed.attacks.quantize import GREY_LEVEL, deliverable, to_8bit
from robust_models import synthetic, trained

torch.set_num_threads(1)


def test_to_8bit_lands_on_the_grid_within_half_a_level_and_is_idempotent():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    q = to_8bit(x)
    levels = q * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert float((q - x).abs().max()) <= 0.5 / 255 + 1e-7
    assert torch.equal(to_8bit(q), q) and q.dtype == x.dtype and q.shape == x.shape


def test_to_8bit_refuses_integer_images_and_pixels_outside_the_box():
    with pytest.raises(TypeError, match="float tensor"):
        to_8bit(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        to_8bit(torch.full((1, 1, 2, 2), 1.5))


def test_budgets_below_one_grey_level_are_not_deliverable():
    assert not deliverable(0.25 / 255) and not deliverable(0.5 / 255)
    assert deliverable(GREY_LEVEL) and deliverable(1.15 / 255) and deliverable(8 / 255)
    with pytest.raises(ValueError, match="norm"):
        deliverable(1 / 255, norm="l1")


class _MeanThreshold(nn.Module):
    """Two classes split by the mean pixel at ``t``, steep enough that a sub-grey shift of the
    mean flips the images next to the threshold."""

    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def forward(self, x):
        d = 4000.0 * (x.flatten(1).mean(1) - self.t)
        return torch.stack([-d, d], dim=1)


def test_a_sub_grey_perturbation_of_8bit_images_vanishes_in_the_rounding():
    g = torch.Generator().manual_seed(1)
    x = to_8bit(torch.rand(64, 1, 4, 4, generator=g))  # clean images on the 8-bit grid
    model = _MeanThreshold(float(x.flatten(1).mean(1).median()) + 0.01 / 255)
    with torch.no_grad():
        y = model(x).argmax(1)  # labelled with the clean prediction: clean accuracy 1
    res = robust_accuracy(model, x, y, eps_grid=[0.3 / 255, 2 / 255], ensemble=default_ensemble(2, steps=10),
                          n_boot=0, progress=False)
    assert res.accuracy[0].value < 1  # the float attack flips the images next to the threshold
    assert res.accuracy_8bit[0].value == 1  # and every pixel rounds back to the clean one
    assert res.accuracy_8bit[1].value < 1  # two grey levels survive the export
    frame = res.to_frame()
    assert frame["deliverable"].tolist() == [False, True]
    assert frame["accuracy_8bit"].tolist() == [a.value for a in res.accuracy_8bit]


def test_8bit_accuracy_is_monotone_in_eps_and_misclassified_clean_images_stay_fooled():
    model = trained(4)
    x, y = synthetic(48, 4, seed=3)
    with torch.no_grad():  # some clean images misclassified by construction, whatever the training gave
        y[:6] = (model(x[:6]).argmax(1) + 1) % 4
    grid = [0.5 / 255, 2 / 255, 4 / 255, 8 / 255]
    res = robust_accuracy(model, x, y, eps_grid=grid, ensemble=default_ensemble(4, steps=10), n_boot=0,
                          progress=False)
    assert np.all(res.success_8bit[1:] >= res.success_8bit[:-1])
    acc8 = [a.value for a in res.accuracy_8bit]
    assert all(a >= b for a, b in zip(acc8, acc8[1:]))
    with torch.no_grad():
        wrong = (model(x).argmax(1) != y).numpy()
    assert wrong.any() and np.all(res.success_8bit[:, wrong])
    assert res.proba_8bit.shape == res.proba.shape
