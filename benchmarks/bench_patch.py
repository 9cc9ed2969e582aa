"""Time per training step of an adversarial patch: advmed vs IBM ART vs the bare loop.

One run, same model, same images, same batch size:

- ``bare``: the model's forward and backward pass w.r.t. a batch of images (what any patch
  step must pay at least);
- ``advmed``: :func:`advmed.attacks.patch.train_patch` (kornia warp + analytic mask per image,
  Adam step, clip), per step;
- ``art``: ``art.attacks.evasion.AdversarialPatchPyTorch`` (torchvision resize / pad / affine
  per image in a Python loop), per step (``max_iter`` passes x images / batch).

Prints milliseconds per step and the ratios to ``bare`` and to ART.

    .venv/bin/python benchmarks/bench_patch.py                      # CPU, small_cnn 28 px, ~1 min
    .venv/bin/python benchmarks/bench_patch.py --arch resnet18 --size 224 --device cuda
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from advmed.attacks.patch import BASE, train_patch
from advmed.models import build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, x, steps: int, batch: int) -> float:
    target = torch.zeros(batch, dtype=torch.long, device=x.device)
    _sync(x.device)
    t0 = time.perf_counter()
    for s in range(steps):
        xb = x[(s * batch) % (len(x) - batch + 1):][:batch].clone().requires_grad_(True)
        loss = F.cross_entropy(model(xb), target)
        torch.autograd.grad(loss, xb)
    _sync(x.device)
    return (time.perf_counter() - t0) / steps


def ours(model, x, steps: int, batch: int, size: int) -> float:
    r = train_patch(model, x, target=0, size=size, steps=steps, batch_size=batch, channels=3, lr=0.01,
                    progress=False)
    return r.seconds / steps


def art(model, x, steps: int, batch: int, size: int) -> float:
    from art.attacks.evasion import AdversarialPatchPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=2, clip_values=(0.0, 1.0), device_type=x.device.type)
    passes = max(1, steps * batch // len(x))
    atk = AdversarialPatchPyTorch(clf, rotation_max=22.5, scale_min=0.3 * BASE, scale_max=1.5 * BASE,
                                  learning_rate=0.01, max_iter=passes, batch_size=batch,
                                  patch_shape=(3, size, size), patch_type="circle", optimizer="Adam",
                                  targeted=True, verbose=False)
    y = np.zeros((len(x), 2), np.float32)
    y[:, 0] = 1
    xs = x.cpu().numpy()
    _sync(x.device)
    t0 = time.perf_counter()
    atk.generate(xs, y)
    _sync(x.device)
    return (time.perf_counter() - t0) / (passes * (len(x) // batch + (len(x) % batch > 0)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="small_cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-art", action="store_true")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = build_model(a.arch, 2, input_size=a.size).to(dev).eval()
    x = torch.rand(a.images, 3, a.size, a.size, device=dev)
    size = int(np.ceil(1.5 * BASE * a.size))
    bare_loop(model, x, 3, a.batch)  # warm-up
    ours(model, x, 3, a.batch, size)
    # interleaved repeats, best of each: the machine is shared, the minimum is the least disturbed
    t_bare, t_ours = (min(v) for v in zip(*[(bare_loop(model, x, a.steps, a.batch),
                                              ours(model, x, a.steps, a.batch, size)) for _ in range(a.repeats)]))
    print(f"{a.arch} {a.size} px, batch {a.batch}, {dev}: bare {t_bare * 1e3:.1f} ms/step, "
          f"advmed {t_ours * 1e3:.1f} ms/step ({t_ours / t_bare:.2f} x bare)")
    if not a.skip_art:
        t_art = min(art(model, x, a.steps, a.batch, size) for _ in range(a.repeats))
        print(f"ART {t_art * 1e3:.1f} ms/step ({t_art / t_bare:.2f} x bare); advmed is {t_art / t_ours:.2f} x "
              "faster than ART")


if __name__ == "__main__":
    main()
