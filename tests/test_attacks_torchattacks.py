"""Agreement with torchattacks 3.5.1 (test-only reference) on the same model and inputs.

torchattacks takes inputs in [0, 1] and a model returning logits, like advmed; its
targeted mode ``set_mode_targeted_by_label`` takes the target classes as labels.
The iterative attacks run with ``early_stop=False`` here (torchattacks returns the last
iterate of every image). Differences allowed: float32 rounding (torchattacks differentiates the batch *mean*
cross-entropy, advmed the per-image sum; the steps are the same).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

torchattacks = pytest.importorskip("torchattacks")

from advmed.attacks import fgsm, ifgsm, mifgsm, pgd  # noqa: E402

torch.set_num_threads(1)

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 5
L2_EPS, L2_ALPHA = 0.5, 0.1


def _model(channels: int, classes: int) -> nn.Module:
    torch.manual_seed(channels * 10 + classes)
    model = nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes))
    with torch.no_grad():  # non-trivial batch-norm statistics
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


CASES = {
    "fgsm": (lambda m: torchattacks.FGSM(m, eps=EPS),  # one step: no early stopping
             lambda m, x, y, early_stop, **kw: fgsm(m, x, y, eps=EPS, **kw)),
    "bim": (lambda m: torchattacks.BIM(m, eps=EPS, alpha=ALPHA, steps=STEPS),
            lambda m, x, y, **kw: ifgsm(m, x, y, eps=EPS, step_size=ALPHA, steps=STEPS, **kw)),
    "pgd": (lambda m: torchattacks.PGD(m, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False),
            lambda m, x, y, **kw: pgd(m, x, y, eps=EPS, step_size=ALPHA, steps=STEPS,
                                      random_start=False, **kw)),
    "mifgsm": (lambda m: torchattacks.MIFGSM(m, eps=EPS, alpha=ALPHA, steps=STEPS, decay=1.0),
               lambda m, x, y, **kw: mifgsm(m, x, y, eps=EPS, step_size=ALPHA, steps=STEPS,
                                            decay=1.0, **kw)),
    "pgdl2": (lambda m: torchattacks.PGDL2(m, eps=L2_EPS, alpha=L2_ALPHA, steps=STEPS,
                                           random_start=False),
              lambda m, x, y, **kw: pgd(m, x, y, eps=L2_EPS, step_size=L2_ALPHA, steps=STEPS,
                                        norm="l2", random_start=False, **kw)),
}


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("channels, classes", [(1, 2), (3, 3)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torchattacks(name, channels, classes, targeted):
    model = _model(channels, classes)
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(8, channels, 12, 12, generator=gen)
    y = torch.randint(0, classes, (8,), generator=gen)
    make_ref, ours = CASES[name]
    ref = make_ref(model)
    if targeted:
        t = (y + 1) % classes
        ref.set_mode_targeted_by_label(quiet=True)
        expected = ref(x, t)
        got = ours(model, x, y, targeted=True, target=t, early_stop=False)
    else:
        expected = ref(x, y)
        got = ours(model, x, y, early_stop=False)
    assert (got - x).abs().max() > 0  # the attack moved the images
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
