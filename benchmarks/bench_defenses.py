"""What an adaptive attack step costs through each defense, as a ratio to the bare step.

One attack step = forward, cross-entropy, gradient w.r.t. the input, on the same model and
batch, with the model in eval mode and parameters frozen (the floor for any gradient attack).
Measured through: JPEG "bpda" (Pillow codec forward on the CPU, identity backward), JPEG
"differentiable" (kornia), the VAE denoiser (mean), and EOT over the sampled VAE (k samples).
Runs are interleaved and the median is reported, with process CPU time on CPU.

    python benchmarks/bench_defenses.py --threads 1                 # CPU, 28 px small_cnn
    python benchmarks/bench_defenses.py --device cuda --size 224 --arch resnet18
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from advmed.attacks import frozen_eval
from advmed.defenses import ConvVAE, eot, jpeg_defense, vae_defense
from advmed.models import build_model


def _step(model, x, y):
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
    return g


def _time(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    w, c = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="small_cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eot", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    model = build_model(a.arch, 2, input_size=a.size).to(dev).eval()
    vae = ConvVAE(3, latent_channels=4, width=16, levels=1 if a.size <= 32 else 2).to(dev).eval()
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    y = torch.randint(0, 2, (a.batch,), device=dev)
    targets = {"bare": model, "jpeg-bpda": jpeg_defense(model, mode="bpda"),
               "jpeg-differentiable": jpeg_defense(model, mode="differentiable"),
               "vae": vae_defense(model, vae), f"vae-eot{a.eot}": eot(vae_defense(model, vae, sample=True), a.eot)}
    times = {k: [] for k in targets}
    names = list(targets)
    for r in range(a.repeats + 1):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            with frozen_eval(targets[k]):
                t = _time(lambda: _step(targets[k], x, y), dev)
            if r:  # the first round warms up
                times[k].append(t)
    bare_w = statistics.median(t[0] for t in times["bare"])
    bare_c = statistics.median(t[1] for t in times["bare"])
    print(f"{a.arch}, {a.size} px, batch {a.batch}, {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| target | ms / step (wall) | ratio to bare (wall) | ratio to bare (CPU) |\n|---|---|---|---|")
    for k in names:
        w = statistics.median(t[0] for t in times[k])
        c = statistics.median(t[1] for t in times[k])
        print(f"| {k} | {1000 * w:.1f} | {w / bare_w:.2f} | {c / bare_c:.2f} |")


if __name__ == "__main__":
    main()
