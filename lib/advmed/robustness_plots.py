"""Figures of the white-box chapter: robustness curves and an adversarial-example gallery.

Like :mod:`advmed.plots`, every function returns a ``matplotlib.figure.Figure`` built
without pyplot, in the book's seaborn style (``advmed.plots.style``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from .models import as_pixels
from .plots import PALETTE, _display_image, _figure, _styled
from .robustness import ATTACK_LABELS, ATTACKS, _unwrap


def _study_marks() -> list[tuple[float, str]]:
    """(eps in /255, label) of the studies' budgets, converted to pixels."""
    from .robustness_studies import adversarialmed_eps, finlayson_eps

    a, f = adversarialmed_eps(), finlayson_eps()
    return [(a["eps_255"], f"AdversarialMed\n{a['eps_study']:g} normalised"),
            (f["eps_255"], f"Finlayson\n{f['eps_study']:g} in [-1, 1]")]


@_styled
def robustness_curves(results: pd.DataFrame, task: str, *, metrics: Sequence[str] = ("accuracy", "auc"),
                      title: str | None = None, band: bool = True,
                      cell: tuple[float, float] = (3.3, 2.6)) -> Figure:
    """Accuracy and AUC against eps for every model of one task, one line per attack.

    Args:
        results: :func:`advmed.robustness.whitebox_results`.
        task: which task's rows to draw; one column of panels per (arch, init).
        band: shade the bootstrap 95 % interval.

    The x axis is eps in 8-bit levels (eps_255; [0, 1] pixels = eps_255 / 255) on a
    symmetric-log scale so that 0 (clean) and the small budgets stay readable; dotted
    lines mark the studies' budgets converted to pixels; AUC 0.5 (chance) is dashed.
    """
    sub = results[results["task"] == task]
    if sub.empty:
        raise ValueError(f"no rows for task {task!r}; tasks: {sorted(results['task'].unique())}")
    models = list(dict.fromkeys(zip(sub["arch"], sub["init"])))
    fig, axes = _figure(len(metrics), len(models), figsize=(cell[0] * len(models) + 0.6,
                                                            cell[1] * len(metrics) + 0.6))
    attacks = [a for a in ATTACKS if a in set(sub["attack"])] + \
        sorted(set(sub["attack"]) - set(ATTACKS) - {"clean"})
    colors = dict(zip(attacks, sns.color_palette(PALETTE, max(len(attacks), 1))))
    eps_all = sorted(sub["eps_255"].unique())
    positive = [e for e in eps_all if e > 0]
    linthresh = min(positive) if positive else 1.0
    marks = _study_marks()
    for j, (arch, init) in enumerate(models):
        g = sub[(sub["arch"] == arch) & (sub["init"] == init)]
        clean = g[g["attack"] == "clean"]
        used = g["init_used"].iloc[0] if "init_used" in g else init
        for i, m in enumerate(metrics):
            ax = axes[i, j]
            for a in attacks:
                d = pd.concat([clean, g[g["attack"] == a]]).sort_values("eps_255")
                ax.plot(d["eps_255"], d[m], "o-", ms=3, lw=1.6, color=colors[a],
                        label=ATTACK_LABELS.get(a, a))
                if band and f"{m}_lo" in d:
                    ax.fill_between(d["eps_255"], d[f"{m}_lo"], d[f"{m}_hi"], color=colors[a],
                                    alpha=0.12, lw=0)
            for e, _ in marks:
                ax.axvline(e, color="0.45", ls=":", lw=1)
            if m == "auc":
                ax.axhline(0.5, color="0.6", ls="--", lw=0.8)
            ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
            ax.set_xticks(eps_all)
            ax.set_xticklabels([f"{e:g}" for e in eps_all])
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel(m.replace("_", " ") if j == 0 else "")
            if i == len(metrics) - 1:
                ax.set_xlabel("eps (/255 pixel levels)")
            if i == 0:
                ax.set_title(f"{arch} ({used})", fontsize="medium")
    axes[0, 0].legend(fontsize="small", loc="lower left", frameon=True)
    note = "dotted: " + "; ".join(f"{label.replace(chr(10), ' ')} = {e:.2f}/255" for e, label in marks)
    fig.suptitle(f"{title or task}\n{note}", fontsize="medium")
    return fig


def pick_examples(y: np.ndarray, pred: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """``n`` image indices the model classifies correctly, cycling through the classes
    (seeded); falls back to any image when too few are correct."""
    rng = np.random.default_rng(seed)
    y, pred = np.asarray(y), np.asarray(pred)
    pools = [list(rng.permutation(np.flatnonzero((y == c) & (pred == c)))) for c in np.unique(y)]
    out: list[int] = []
    while len(out) < n and any(pools):
        for p in pools:
            if p and len(out) < n:
                out.append(int(p.pop(0)))
    rest = [i for i in rng.permutation(len(y)) if i not in out]
    return out + [int(i) for i in rest[: n - len(out)]]


@_styled
def gallery(trained_or_model: Any, x: Any, y: Any, classes: Sequence[str], *, attack: str = "pgd",
            eps_255: float = 2.0, steps: int = 10, n_images: int = 3, seed: int = 0,
            attack_kwargs: Mapping[str, Any] | None = None, title: str | None = None,
            cell: float = 1.9) -> Figure:
    """Adversarial examples of one model: per image, the clean image, the perturbation
    amplified, the adversarial image and the class probabilities before and after.

    The perturbation panel shows ``0.5 + gain * (x_adv - x)`` with ``gain = 0.5 / eps``
    (so -eps is black, +eps white and mid-grey no change); the gain is in its title.
    Images: ``n_images`` test images the model gets right, alternating classes (seeded).
    """
    from .attacks import get_attack
    from .models import predict_proba

    model = _unwrap(trained_or_model)
    dev = next(model.parameters()).device
    xf = as_pixels(x)
    yt = torch.as_tensor(np.asarray(y)).long().reshape(-1)
    p0_all = predict_proba(model, xf)
    idx = pick_examples(yt.numpy(), p0_all.argmax(1), n_images, seed)
    xs, ys = xf[idx].to(dev), yt[idx].to(dev)
    eps = eps_255 / 255.0
    kw: dict[str, Any] = {"eps": eps, "progress": False, **(attack_kwargs or {})}
    if attack != "fgsm":
        kw.setdefault("steps", steps)
    if attack == "pgd":
        kw.setdefault("seed", seed)
    x_adv = get_attack(attack)(model, xs, ys, **kw).detach()
    p0, p1 = p0_all[idx], predict_proba(model, x_adv)
    gain = 0.5 / eps
    fig, axes = _figure(len(idx), 4, figsize=(cell * 4 + 1.6, cell * len(idx) + 0.5))
    label = ATTACK_LABELS.get(attack, attack)
    for r, i in enumerate(idx):
        a0, a1, a2, a3 = axes[r]
        img, cmap = _display_image(xs[r].cpu().numpy())
        a0.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        delta = (x_adv[r] - xs[r]).cpu().numpy()
        img, cmap = _display_image(np.clip(0.5 + gain * delta, 0, 1))
        a1.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        img, cmap = _display_image(x_adv[r].cpu().numpy())
        a2.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        k0, k1 = int(p0[r].argmax()), int(p1[r].argmax())
        a0.set_title(f"clean: {classes[k0]} ({p0[r, k0]:.2f})", fontsize="small")
        a1.set_title(f"perturbation × {gain:.0f}", fontsize="small")
        a2.set_title(f"{label}: {classes[k1]} ({p1[r, k1]:.2f})", fontsize="small",
                     color="#c44e52" if k1 != k0 else "black")
        a0.set_ylabel(f"true: {classes[int(ys[r])]}", fontsize="small")
        for ax in (a0, a1, a2):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        pos = np.arange(len(classes))
        a3.barh(pos - 0.2, p0[r], height=0.38, color="#4c72b0", label="clean")
        a3.barh(pos + 0.2, p1[r], height=0.38, color="#c44e52", label="adversarial")
        a3.set_yticks(pos)
        a3.set_yticklabels(list(classes), fontsize="small")
        a3.invert_yaxis()
        a3.set_xlim(0, 1)
        if r == 0:  # the legend is the panel's title: class probability, clean vs adversarial
            a3.legend(title="class probability", title_fontsize="small", fontsize="x-small",
                      loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=2, frameon=False,
                      borderaxespad=0)
    fig.suptitle(title or f"{label}, eps {eps_255:g}/255 = {eps:.4f} (pixels); "
                 f"max |perturbation| {float((x_adv - xs).abs().max()) * 255:.2f}/255")
    return fig


def explorer_inputs(profile: Mapping[str, Any], zoo: Mapping[tuple, Any], *, pairs: int = 1,
                    n_images: int = 3, seed: int = 0) -> tuple[dict, dict]:
    """Models and images for :func:`advmed.widgets.static_explorer`.

    The first ``pairs`` models of the first task of ``zoo`` (the explorer's architecture
    menu names them ``arch:init``), and ``n_images`` of that task's attack test images
    that the first of them classifies correctly, alternating classes (seeded), so that
    every frame starts from a correct prediction.
    """
    from .models import predict_proba
    from .robustness import test_images

    if not zoo:
        raise ValueError("zoo is empty")
    task = next(iter(zoo))[0]
    chosen = [(k, tm) for k, tm in zoo.items() if k[0] == task][: max(1, int(pairs))]
    images = test_images(task, profile)
    x = as_pixels(images.images)
    y = torch.as_tensor(images.labels).long()
    pred = predict_proba(_unwrap(chosen[0][1]), x).argmax(1)
    idx = pick_examples(y.numpy(), pred, n_images, seed)
    models = {(task, f"{arch}:{init}"): tm.model for (_, arch, init), tm in chosen}
    return models, {task: (x[idx], y[idx], tuple(images.classes))}
