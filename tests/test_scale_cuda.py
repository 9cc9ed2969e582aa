"""Attacks under autocast agree with full precision: CUDA only (autocast is a no-op on CPU).

Skipped without a GPU. ``benchmarks/gpu_check.sh`` runs it on one; its figures are in the
README's "Paper scale" section (first run on one H200, 2026-12-04).

Tolerances, and why: bf16 keeps 8 bits of mantissa (fp16 11), so logits move by about 0.5 %
relative; the sign of the input gradient then flips on the pixels whose gradient is near 0,
and images near the decision boundary may end on the other side. On 256 images we accept
per-image disagreement on success for at most 5 % of the images, robust accuracies within 3
points, and a UAP's held-out fooling rate within 5 points. The invariants (eps-ball, [0, 1]
box) hold exactly: the update is computed in float32 whatever the forward's precision.
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast is CUDA only")

EPS = 2 / 255


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    os.environ["ADVMED_CACHE"] = str(tmp_path_factory.mktemp("cuda-cache"))
    from advmed.data import load_task
    from advmed.train import TrainConfig, get_trained_model

    cfg = TrainConfig(task="pneumonia_cxr", arch="resnet18", size=64, epochs=3, max_train=1024, max_val=256)
    tm = get_trained_model(cfg, device="cuda", progress=False)
    test = load_task("pneumonia_cxr", "test", size=64, limit=256, seed=0, progress=False)
    return tm.model, test.float().cuda(), test.labels.cuda()


def _success(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_pgd_under_autocast_agrees_with_fp32(trained):
    from advmed.attacks import pgd

    model, x, y = trained
    a32 = pgd(model, x, y, eps=EPS, steps=10, seed=0, amp=False, progress=False)
    a16 = pgd(model, x, y, eps=EPS, steps=10, seed=0, amp=True, progress=False)
    s32, s16 = _success(model, a32, y), _success(model, a16, y)
    assert (s32 != s16).float().mean().item() <= 0.05
    assert abs(s32.float().mean().item() - s16.float().mean().item()) <= 0.03
    assert (a16 - x).abs().max().item() <= EPS + 1e-6 and a16.min() >= 0 and a16.max() <= 1


def test_uap_under_autocast_agrees_with_fp32(trained):
    from advmed.attacks.universal import fooling_rate, uap

    model, x, _ = trained
    build, held = x[:128], x[128:]
    r32 = uap(model, build, zeta=0.04, norm="linf", method="batched", max_passes=5, amp=False, progress=False)
    r16 = uap(model, build, zeta=0.04, norm="linf", method="batched", max_passes=5, amp=True, progress=False)
    f32, f16 = fooling_rate(model, held, r32.delta), fooling_rate(model, held, r16.delta)
    assert abs(f32 - f16) <= 0.05
    assert r16.delta.abs().max().item() <= r16.eps + 1e-6


def test_robust_accuracy_runs_on_cuda_and_agrees_with_cpu(trained):
    """The ensemble's bookkeeping (survivors listed on the CPU, images on the GPU) works on
    CUDA, and the worst case agrees with the same evaluation on the CPU up to the random
    starts (different generators on the two devices): within 5 points on 128 images."""
    import copy

    from advmed.attacks import default_ensemble, robust_accuracy

    model, x, y = trained
    x, y = x[:128], y[:128]
    ens = default_ensemble(2, steps=10, pgd_restarts=1)
    grid = [1 / 255, 2 / 255]
    on_gpu = robust_accuracy(model, x, y, eps_grid=grid, ensemble=ens, n_boot=0, progress=False)
    cpu_model = copy.deepcopy(model).cpu()
    on_cpu = robust_accuracy(cpu_model, x.cpu(), y.cpu(), eps_grid=grid, ensemble=ens, n_boot=0,
                             progress=False)
    for a, b in zip(on_gpu.accuracy, on_cpu.accuracy):
        assert abs(a.value - b.value) <= 0.05
    assert on_gpu.accuracy[1].value <= on_gpu.accuracy[0].value
    assert (on_gpu.x_adv - x).abs().max().item() <= grid[-1] + 1e-6
