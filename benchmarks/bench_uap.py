"""Time to reach a fooling rate: advmed iterative / batched UAP vs IBM ART's UniversalPerturbation.

Same model, same images, same bound (L-inf, zeta 4 % of the mean image L-inf norm), one run:

- ``ours-iterative``: Moosavi-Dezfooli et al. (2017) with an FGSM inner step (the study's
  algorithm, Hirano, Minagi & Takemoto 2021), mini-batched (``--batch-iterative``);
- ``ours-batched``: Shafahi et al. (2020) mini-batch sign-gradient ascent (``--batch``);
- ``art``: ``art.attacks.evasion.UniversalPerturbation(attacker="fgsm")``, one image at a time,
  with ``delta = 1 - target_rate`` so that it stops at the same rate.

Each stops after the first pass whose fooling rate on the build images reaches
``--target-rate`` (or after ``--max-passes``). Prints seconds, passes, fooling rates on the
build images and on held-out images, and speed-ups vs ART. A method that does not reach the
rate is marked; its ratio is then not a like-for-like comparison.

Model: ``--arch cnn`` (default) a two-conv CNN trained for ``--train-steps`` Adam steps on
RetinaMNIST (5 classes, 28 px, RGB) from ``$ADVMED_DATA_ROOT/medmnist/retinamnist.npz``
(default ``../shared/data``); ``--arch resnet18`` a torchvision ResNet-18 (random init,
trained the same way) on the images resized to ``--size`` px (use a GPU).

    .venv/bin/python benchmarks/bench_uap.py               # CPU, ~1-2 minutes
    .venv/bin/python benchmarks/bench_uap.py --arch resnet18 --size 64 --device cuda
    .venv/bin/python benchmarks/bench_uap.py --arch resnet18 --size 224 --data kermany --device cuda --amp --skip-art
"""
from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advmed.attacks import universal as U


class SmallCNN(nn.Module):
    def __init__(self, channels: int, classes: int, size: int):
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x):
        return self.net((x - self.mean) / 0.25)


class Normalised(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - 0.5) / 0.25)


def load(size: int):
    root = Path(os.environ.get("ADVMED_DATA_ROOT",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))
    d = np.load(root / "medmnist" / "retinamnist.npz")

    def conv(a):
        t = torch.from_numpy(a).float().permute(0, 3, 1, 2).contiguous() / 255
        if size != t.shape[-1]:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        return t.clamp(0, 1)

    return (conv(d["train_images"]), torch.from_numpy(d["train_labels"][:, 0]).long(),
            conv(d["test_images"]))


def load_kermany(size: int):
    """pneumonia_cxr through advmed.data (the GPU check's bundle has no MedMNIST)."""
    from advmed.data import load_task

    tr = load_task("pneumonia_cxr", "train", size=size, limit=2048, seed=0, progress=False)
    te = load_task("pneumonia_cxr", "test", size=size, progress=False)
    return tr.float(), tr.labels, te.float()


def train(arch, xtr, ytr, steps, device, seed=0):
    torch.manual_seed(seed)
    if arch == "cnn":
        model = SmallCNN(3, int(ytr.max()) + 1, xtr.shape[-1])
    else:
        import torchvision

        model = Normalised(torchvision.models.resnet18(num_classes=int(ytr.max()) + 1))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xtr), (64,), generator=g)
        loss = F.cross_entropy(model(xtr[idx].to(device)), ytr[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def run_art(model, x, eps, step, max_passes, target_rate, seed):
    from art.attacks.evasion import UniversalPerturbation
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=5, clip_values=(0.0, 1.0),
                            device_type="gpu" if x.is_cuda else "cpu")
    random.seed(seed)
    np.random.seed(seed)
    attack = UniversalPerturbation(clf, attacker="fgsm", attacker_params={"eps": step},
                                   delta=1 - target_rate, max_iter=max_passes, eps=eps,
                                   norm=np.inf, verbose=False)
    xn = x.cpu().numpy()
    t0 = time.perf_counter()
    attack.generate(xn)
    seconds = time.perf_counter() - t0
    return torch.from_numpy(attack.noise).to(x.device), seconds


def one_rate(a, model, x, xh, eps, target_rate):
    print(f"\n== target fooling rate {target_rate} ==")
    rows = []
    common = dict(eps=eps, norm="linf", max_passes=a.max_passes, target_rate=target_rate,
                  seed=a.seed, progress=False, amp=a.amp)
    r = U.uap(model, x, method="iterative", step_size=a.step, batch_size=a.batch_iterative,
              **common)
    rows.append(("ours-iterative", r.delta, r.seconds, r.passes))
    r = U.uap(model, x, method="batched", batch_size=a.batch, **common)
    rows.append(("ours-batched", r.delta, r.seconds, r.passes))
    if not a.skip_art:
        d, s = run_art(model, x, eps, a.step, a.max_passes, target_rate, a.seed)
        rows.append(("art", d, s, None))

    art_s = rows[-1][2] if not a.skip_art else None
    print(f"{'method':<16}{'seconds':>9}{'passes':>8}{'FR build':>10}{'FR held-out':>13}"
          f"{'reached':>9}{'speed-up vs ART':>17}")
    for name, d, s, passes in rows:
        fb = U.fooling_rate(model, x, d)
        fh = U.fooling_rate(model, xh, d) if len(xh) else float("nan")
        assert float(d.abs().max()) <= eps * (1 + 1e-5)
        ok = "yes" if fb >= target_rate else "NO"
        sp = f"{art_s / s:.1f}x" if art_s else "-"
        print(f"{name:<16}{s:>9.2f}{passes if passes else '?':>8}{fb:>10.3f}{fh:>13.3f}"
              f"{ok:>9}{sp:>17}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["cnn", "resnet18"], default="cnn")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--n", type=int, default=256, help="build images (held-out: the next ones)")
    p.add_argument("--zeta", type=float, default=0.04)
    p.add_argument("--step", type=float, default=0.004,
                   help="FGSM step of both iterative methods, [0,1] pixel units")
    p.add_argument("--target-rate", type=float, nargs="+", default=[0.4, 0.6],
                   help="one run per rate")
    p.add_argument("--max-passes", type=int, default=15)
    p.add_argument("--batch", type=int, default=32, help="mini-batch of ours-batched")
    p.add_argument("--batch-iterative", type=int, default=8, help="mini-batch of ours-iterative")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-art", action="store_true")
    p.add_argument("--amp", action="store_true", help="our UAPs under autocast (CUDA only)")
    p.add_argument("--data", choices=["retinamnist", "kermany"], default="retinamnist",
                   help="retinamnist (5 classes, 28 px npz) or kermany (pneumonia_cxr, 224 px JPEGs)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    if a.amp and device.type != "cuda":
        p.error("--amp needs a CUDA device (autocast is CUDA only in advmed)")
    xtr, ytr, xte = load(a.size) if a.data == "retinamnist" else load_kermany(a.size)
    t0 = time.perf_counter()
    model = train(a.arch, xtr, ytr, a.train_steps, device)
    print(f"model {a.arch} trained in {time.perf_counter() - t0:.1f} s on {device}; "
          f"torch threads {torch.get_num_threads()}")
    x = xte[: a.n].to(device)
    xh = xte[a.n:].to(device)
    eps = U.eps_from_zeta(x, a.zeta, "linf")
    print(f"{a.n} build images, {len(xh)} held-out, {tuple(x.shape[1:])}, L-inf eps "
          f"{eps:.4f} (zeta {a.zeta}), target fooling rates {a.target_rate}, "
          f"max {a.max_passes} passes")

    # warm-up (kernels, allocator) so that the first timed method is not penalised
    U.uap(model, x[:16], eps=eps, method="batched", max_passes=1, batch_size=16, progress=False)

    for rate in a.target_rate:
        one_rate(a, model, x, xh, eps, rate)
    rand = U.random_control(x[:1].shape[1:], eps=eps, norm="linf", seed=a.seed).to(device)
    print(f"{'random control':<16}{'':>9}{'':>8}{U.fooling_rate(model, x, rand):>10.3f}"
          f"{U.fooling_rate(model, xh, rand) if len(xh) else float('nan'):>13.3f}")


if __name__ == "__main__":
    main()
