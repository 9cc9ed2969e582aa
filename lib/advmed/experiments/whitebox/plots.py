"""Figures of the white-box chapter: robustness curves and an adversarial-example gallery.

Like :mod:`advmed.plots`, every function returns a ``matplotlib.figure.Figure`` built
without pyplot, in the book's seaborn style (``advmed.plots.style``); drawing primitives
(images, amplified perturbations) come from :mod:`advmed.plots`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ... import widgets
from ...attacks import attack_label, get_attack
from ...cache import tensor_digest
from ...models import as_module, as_pixels, as_rgb, gray_view, model_device, predict_proba
from ...plots import (
    PAGE_WIDTH,
    BookFigure,
    attack_color,
    legend_outside,
    model_color,
    model_label,
    new_figure,
    show_image,
    show_perturbation,
    styled,
    task_label,
)
from ..kernel import ATTACKS, adversarialmed_eps, finlayson_eps, test_images
from ..profiles import Profile


def _study_marks() -> list[tuple[float, str]]:
    """(eps in /255, label) of the studies' budgets, converted to pixels."""
    a, f = adversarialmed_eps(), finlayson_eps()
    return [(a["eps_255"], f"AdversarialMed\n{a['eps_study']:g} normalised"),
            (f["eps_255"], f"Finlayson\n{f['eps_study']:g} in [-1, 1]")]


@styled
def robustness_grid(results: pd.DataFrame, *, metric: str = "accuracy", attacks: Sequence[str] | None = None,
                    band: bool = True) -> Figure:
    """``metric`` against eps as small multiples: one row per task, one column per attack, one
    line per model in the model's colour (:func:`advmed.plots.model_color`), with its bootstrap
    95 % band; dotted: the studies' budgets in pixels; dashed (AUC): chance. One legend under
    the panels. The x axis is eps in /255 levels on a symmetric-log scale (0 is the clean row).
    """
    tasks = list(dict.fromkeys(results["task"]))
    attacks = list(attacks or [a for a in ATTACKS if a in set(results["attack"])])
    side = (PAGE_WIDTH - 0.7) / len(attacks)
    fig = BookFigure(figsize=(PAGE_WIDTH, 0.82 * side * len(tasks) + 1.0), layout="constrained")
    axes = fig.subplots(len(tasks), len(attacks), squeeze=False, sharex=True, sharey=True)
    eps_all = sorted(results["eps_255"].unique())
    positive = [e for e in eps_all if e > 0]
    linthresh = min(positive) if positive else 1.0
    marks = _study_marks()
    for i, task in enumerate(tasks):
        sub = results[results["task"] == task]
        for j, attack in enumerate(attacks):
            ax = axes[i, j]
            for (arch, init, used), g in sub.groupby(["arch", "init", "init_used"], sort=False):
                d = pd.concat([g[g["attack"] == "clean"], g[g["attack"] == attack]]).sort_values("eps_255")
                color = model_color(arch, init)
                ax.plot(d["eps_255"], d[metric], "o-", ms=2.5, lw=1.4, color=color, label=model_label(arch, used))
                if band and f"{metric}_lo" in d:
                    ax.fill_between(d["eps_255"], d[f"{metric}_lo"], d[f"{metric}_hi"], color=color, alpha=0.12,
                                    lw=0)
            for e, _ in marks:
                ax.axvline(e, color="0.45", ls=":", lw=1)
            if metric == "auc":
                ax.axhline(0.5, color="0.6", ls="--", lw=0.8)
            ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
            ax.set_xticks(eps_all, [f"{e:g}" for e in eps_all])
            ax.set_ylim(-0.03, 1.03)
            ax.tick_params(labelsize="x-small")
            if i == 0:
                ax.set_title(attack_label(attack), fontsize="small")
            if j == 0:
                ax.set_ylabel(f"{task_label(task)}\n{metric.replace('_', ' ')}", fontsize="small")
            if i == len(tasks) - 1:
                ax.set_xlabel("eps (/255)", fontsize="small")
    handles = [Line2D([], [], color=model_color(a, i), lw=1.4, marker="o", ms=2.5, label=model_label(a, u))
               for (a, i, u), _ in results.groupby(["arch", "init", "init_used"], sort=False)]
    handles.append(Line2D([], [], color="0.45", ls=":", lw=1, label="the studies' budgets"))
    legend_outside(fig, handles, [h.get_label() for h in handles])
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


@styled
def _example_row(row: Any, x: torch.Tensor, x_adv: torch.Tensor, p0: np.ndarray, p1: np.ndarray,
                 classes: Sequence[str], *, label: str, gain: float, ylabel: str, size: str, flip: str,
                 colors: tuple[str, str], names: tuple[str, str], ticks: Sequence[str]) -> Any:
    """One example's row: clean image, amplified perturbation, adversarial image (titled with
    each prediction; ``flip`` colours a changed one) and the two probability bars. Returns the
    bar panel."""
    a0, a1, a2, a3 = row
    show_image(a0, x)
    show_perturbation(a1, x_adv - x, gain)
    show_image(a2, x_adv)
    k0, k1 = int(p0.argmax()), int(p1.argmax())
    a0.set_title(f"clean: {classes[k0]} ({p0[k0]:.2f})", fontsize=size)
    a1.set_title(f"perturbation × {gain:.0f}", fontsize=size)
    a2.set_title(f"{label}: {classes[k1]} ({p1[k1]:.2f})", fontsize=size, color=flip if k1 != k0 else "black")
    a0.set_ylabel(ylabel, fontsize=size)
    pos = np.arange(len(classes))
    a3.barh(pos - 0.2, p0, height=0.38, color=colors[0], label=names[0])
    a3.barh(pos + 0.2, p1, height=0.38, color=colors[1], label=names[1])
    a3.set_yticks(pos, list(ticks), fontsize=size)
    a3.invert_yaxis()
    a3.set_xlim(0, 1)
    return a3


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
    model = as_module(trained_or_model)
    dev = model_device(model)
    xf = as_pixels(x)
    yt = torch.as_tensor(np.asarray(y)).long().reshape(-1)
    p0_all = predict_proba(model, xf)
    idx = pick_examples(yt.numpy(), p0_all.argmax(1), n_images, seed)
    xs, ys = xf[idx].to(dev), yt[idx].to(dev)
    eps = eps_255 / 255.0
    # the full attack (no early stop): the panel shows what the budget allows; gray images
    # get a gray perturbation
    m_att, x_att, _ = gray_view(model, xs)
    x_adv = as_rgb(get_attack(attack).call(m_att, x_att, ys, eps=eps, steps=steps, seed=seed, early_stop=False,
                                           **(attack_kwargs or {})).detach(), xs.shape[1])
    p0, p1 = p0_all[idx], predict_proba(model, x_adv)
    gain = 0.5 / eps
    fig, axes = new_figure(len(idx), 4, figsize=(cell * 4 + 1.6, cell * len(idx) + 0.5))
    label = attack_label(attack)
    for r, i in enumerate(idx):
        a3 = _example_row(axes[r], xs[r], x_adv[r], p0[r], p1[r], classes, label=label, gain=gain,
                          ylabel=f"true: {classes[int(ys[r])]}", size="small", flip="#c44e52",
                          colors=("#4c72b0", "#c44e52"), names=("clean", "adversarial"), ticks=list(classes))
        if r == 0:  # the legend is the panel's title: class probability, clean vs adversarial
            a3.legend(title="class probability", title_fontsize="small", fontsize="x-small",
                      loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=2, frameon=False,
                      borderaxespad=0)
    fig.suptitle(title or f"{label}, eps {eps_255:g}/255 = {eps:.4f} (pixels); "
                 f"max |perturbation| {float((x_adv - xs).abs().max()) * 255:.2f}/255")
    return fig


@styled
def example_grid(profile: Profile, zoo: Mapping[tuple, Any], *, attack: str = "pgd", seed: int | None = None) -> Figure:
    """One adversarial example per task, as small multiples: a row per task (its first model in
    ``zoo``), columns the clean image, the perturbation amplified so that -eps is black and +eps
    white, the adversarial image and the class probabilities before and after; the attack at
    the profile's reporting budget (the full attack, no early stop)."""
    s = profile.whitebox
    eps_255 = float(s.report_eps_255)
    eps = eps_255 / 255.0
    seed = profile.seed if seed is None else seed
    tasks = list(dict.fromkeys(k[0] for k in zoo))
    cell = (PAGE_WIDTH - 0.4) / 4.6
    fig = BookFigure(figsize=(PAGE_WIDTH, (cell + 0.45) * len(tasks) + 0.6), layout="constrained")
    axes = fig.subplots(len(tasks), 4, squeeze=False, width_ratios=[1, 1, 1, 1.6])
    label = attack_label(attack)
    for r, task in enumerate(tasks):
        key = next(k for k in zoo if k[0] == task)
        model = as_module(zoo[key])
        images = test_images(task, profile)
        x, y = as_pixels(images.images), torch.as_tensor(np.asarray(images.labels)).long().reshape(-1)
        classes = list(images.classes)
        p0_all = predict_proba(model, x)
        i = pick_examples(y.numpy(), p0_all.argmax(1), 1, seed)[0]
        dev = model_device(model)
        xs, ys = x[i:i + 1].to(dev), y[i:i + 1].to(dev)
        x_adv = get_attack(attack).call(model, xs, ys, eps=eps, steps=int(s.steps), seed=seed,
                                        early_stop=False).detach()
        p0, p1 = p0_all[i], predict_proba(model, x_adv)[0]
        a3 = _example_row(axes[r], xs[0], x_adv[0], p0, p1, classes, label=label, gain=0.5 / eps,
                          ylabel=f"{task_label(task)}\n{key[1]}\ntrue: {classes[int(ys[0])]}", size="x-small",
                          flip="#D55E00", colors=("#000000", attack_color(attack)), names=("clean", label),
                          ticks=[c[:12] for c in classes])
        a3.tick_params(axis="x", labelsize="x-small")
        if r == len(tasks) - 1:
            a3.set_xlabel("class probability", fontsize="x-small")
    legend_outside(fig, ncols=2)
    return fig


def explorer_inputs(profile: Profile, zoo: Mapping[tuple, Any], *, pairs: int | None = None,
                    n_images: int | None = None) -> tuple[dict, dict]:
    """Models and images for :func:`advmed.widgets.static_explorer`.

    The first ``pairs`` models of the first task of ``zoo`` (the explorer's architecture
    menu names them ``arch:init``), and ``n_images`` of that task's attack test images
    that the first of them classifies correctly, alternating classes (seeded), so that
    every frame starts from a correct prediction. ``pairs`` and ``n_images`` default to
    the profile's ``explorer`` section.
    """
    pairs = profile.explorer.pairs if pairs is None else pairs
    n_images = profile.explorer.n_images if n_images is None else n_images
    seed = profile.seed
    if not zoo:
        raise ValueError("zoo is empty")
    task = next(iter(zoo))[0]
    chosen = [(k, tm) for k, tm in zoo.items() if k[0] == task][: max(1, int(pairs))]
    images = test_images(task, profile)
    x = as_pixels(images.images)
    y = torch.as_tensor(images.labels).long()
    pred = predict_proba(as_module(chosen[0][1]), x).argmax(1)
    idx = pick_examples(y.numpy(), pred, n_images, seed)
    models = {(task, f"{arch}:{init}"): tm.model for (_, arch, init), tm in chosen}
    return models, {task: (x[idx], y[idx], tuple(images.classes))}


def explorer(profile: Profile, zoo: Mapping[tuple, Any], *, mode: str | None = None):
    """The chapter's explorer (:func:`advmed.widgets.explorer`) at the profile's ``explorer``
    settings. Static (the HTML book): every frame precomputed, stored by the models' checkpoint
    keys and a digest of the images, so a warm build reloads them instead of attacking and
    drawing again; the payload is stated against ``explorer.budget_mb``. Live (a notebook with
    a kernel, :func:`advmed.widgets.resolve_mode`): every change runs the attack, and the eps
    slider also offers the white-box sweep's budgets."""
    ex = profile.explorer
    mode = widgets.resolve_mode(mode)
    models, images = explorer_inputs(profile, zoo)
    iterative = {a: {"steps": int(profile.whitebox.steps)} for a in ex.attacks if get_attack(a).iterative}
    frames_key = {"checkpoints": sorted(tm.config.key() for tm in zoo.values()),
                  "images": {t: tensor_digest(x, y) for t, (x, y, _) in images.items()}}
    return widgets.explorer(models, images, attacks=list(ex.attacks), eps_255=list(ex.eps_255),
                            attack_kwargs=iterative, n_images=ex.n_images, seed=profile.seed, progress=False,
                            cache_key=frames_key, mode=mode, live_eps_255=list(profile.whitebox.eps_255),
                            budget_mb=ex.budget_mb)
