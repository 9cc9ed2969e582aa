"""Figures of chapters 3 and 4: the perturbations, images before / after, confusion matrices
under a UAP, transfer heatmaps, rate-vs-control bar charts, and the UAP explorer.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (see
:mod:`advmed.plots`), in the book's style. Inputs are the :class:`~.run.UAPExperiment` of
:func:`~.run.uap_experiment` / :func:`~.run.natural_uap_experiment` and the tables built
from them. Pixels are in [0, 1].
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ... import widgets
from ...cache import tensor_digest
from ...data import get_task
from ...plots import PALETTE, confusion_matrix, new_figure, show_image, show_perturbation, styled
from ..profiles import Profile, UAPExplorerSettings
from ..zoo import ModelKey
from .run import RunKey, UAPExperiment, UAPRun, random_delta, rates, run_for


def _run_title(key: RunKey, classes: Sequence[str] | None = None) -> str:
    att = "non-targeted" if key.target is None else f"-> {classes[key.target] if classes else key.target}"
    return f"{key.arch} ({key.init})\n{key.norm}, zeta {key.zeta:g}, {att}"


@styled
def uap_gallery(exp: UAPExperiment, keys: Sequence[RunKey] | None = None, *, gain: float | None = None,
                ncols: int = 4, cell_inches: float = 2.0, title: str | None = None) -> Figure:
    """The perturbations themselves, amplified (gain per panel in its title, or one common
    ``gain``). ``keys`` are run keys of ``exp.runs`` (default: the non-targeted UAPs)."""
    keys = list(keys) if keys is not None else exp.keys(targeted=False)
    n = max(len(keys), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure(nrows, ncols, figsize=(cell_inches * ncols + 0.4, (cell_inches + 0.55) * nrows + 0.4))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, key in zip(axes.flat, keys):
        g = show_perturbation(ax, exp.runs[key].delta, gain)
        classes = exp.trained[key.model].classes
        ax.set_title(f"{key.task}\n{_run_title(key, classes)}\ngain x{g:.0f}", fontsize="x-small")
    fig.suptitle(title or "UAPs shown as 0.5 + gain x delta (gain per panel)",
                 fontsize="small" if ncols < 3 else "medium", wrap=True)
    return fig


@styled
def before_after(exp: UAPExperiment, key: RunKey, *, n: int = 4, seed: int | None = None,
                 gain: float | None = None, cell_inches: float = 1.9) -> Figure:
    """Held-out images before (top row) and after (bottom row) adding one UAP, with the
    model's predictions; the first column shows the amplified UAP. ``seed`` (default the
    experiment's) draws the images, fooled ones first."""
    run = exp.runs[key]
    ds = exp.sets[key.task]
    classes = exp.trained[key.model].classes
    clean, adv = np.asarray(run.clean), np.asarray(run.adv)
    seed = exp.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    fooled = np.flatnonzero(clean != adv)
    # show fooled images first (what the UAP does), then others, always the same draw per seed
    pool = np.concatenate([rng.permutation(fooled), rng.permutation(np.flatnonzero(clean == adv))])
    pick = pool[:n]
    x = ds.float()[torch.as_tensor(pick, dtype=torch.long)]
    xa = (x + run.delta).clamp(0, 1)
    fig, axes = new_figure(2, n + 1, figsize=(cell_inches * (n + 1), cell_inches * 2 + 0.8))
    for ax in axes.flat:
        ax.set_axis_off()
    for j, i in enumerate(pick):
        for r, (img, pred) in enumerate(((x[j], clean[i]), (xa[j], adv[i]))):
            ax = axes[r, j + 1]
            show_image(ax, img)
            colour = "black" if r == 0 or adv[i] == clean[i] else "crimson"
            ax.set_title(f"{'clean' if r == 0 else 'with UAP'}: {classes[pred]}", fontsize="x-small", color=colour)
    g = show_perturbation(axes[0, 0], run.delta, gain)
    axes[0, 0].set_title(f"UAP x{g:.0f}", fontsize="x-small")
    axes[1, 0].text(0.5, 0.5, "true classes:\n" + "\n".join(classes[int(ds.labels[i])] for i in pick),
                    ha="center", va="center", fontsize="x-small", transform=axes[1, 0].transAxes)
    fig.suptitle(f"{key.task} / {_run_title(key, classes).replace(chr(10), ', ')}")
    return fig


def confusion_under_uap(exp: UAPExperiment, key: RunKey) -> Figure:
    """Confusion matrix (true class vs prediction) of held-out images with the UAP added."""
    run = exp.runs[key]
    classes = exp.trained[key.model].classes
    return confusion_matrix(run.y, run.adv, classes,
                            title=f"{key.task} / {_run_title(key, classes).replace(chr(10), ', ')}")


@styled
def transfer_heatmap(matrix: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Heatmap of a :func:`~.run.transfer_matrix` (fooling rate, 0-1)."""
    k = len(matrix)
    fig, axes = new_figure(figsize=(2.2 + 1.5 * k, 1.4 + 1.1 * k))
    ax = axes[0, 0]
    sns.heatmap(matrix.astype(float), annot=True, fmt=".2f", cmap="Reds", vmin=0, vmax=1, square=True, ax=ax,
                cbar_kws={"label": "fooling rate"}, linewidths=0.5, linecolor="white")
    ax.set(xlabel=matrix.columns.name or "applied to", ylabel=matrix.index.name or "built on")
    ax.tick_params(axis="x", rotation=20)
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig


@styled
def rate_bars(table: pd.DataFrame, *, attack: str = "non-targeted", columns: Sequence[tuple[str, str]] = (
        ("rate", "UAP"), ("random", "random control")), threshold: float | None = None,
        title: str | None = None) -> Figure:
    """Bar chart: rate of each UAP beside its controls, one panel per task, bars per model x
    (norm, zeta). ``table`` is numeric (``uap_table(..., numeric=True)`` or a frame with the
    ``columns`` given); error bars from ``<col>_lo`` / ``<col>_hi`` when present."""
    t = table[table["attack"] == attack] if "attack" in table else table
    tasks = list(dict.fromkeys(t["task"]))
    fig, axes = new_figure(len(tasks), 1, figsize=(9.0, 2.9 * max(len(tasks), 1)))
    colors = sns.color_palette(PALETTE, len(columns))
    for ax, task in zip(axes[:, 0], tasks):
        g = t[t["task"] == task]
        labels = [f"{r.arch} ({r.init})\n{r.norm} {r.zeta:g}" for r in g.itertuples()]
        x = np.arange(len(g))
        w = 0.8 / len(columns)
        for i, ((col, name), c) in enumerate(zip(columns, colors)):
            vals = g[col].to_numpy(float)
            err = None
            if f"{col}_lo" in g and f"{col}_hi" in g:
                err = np.vstack([vals - g[f"{col}_lo"].to_numpy(float), g[f"{col}_hi"].to_numpy(float) - vals])
                err = np.clip(np.nan_to_num(err), 0, None)
            ax.bar(x + (i - (len(columns) - 1) / 2) * w, vals, w, yerr=err, color=c, label=name, capsize=2)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"study's claim ({threshold:.0%})")
        ax.set_xticks(x, labels, fontsize="x-small")
        ax.set(ylim=(0, 1.02), ylabel="rate", title=task)
        ax.legend(fontsize="x-small", loc="upper left", ncols=len(columns) + 1)
    if title:
        fig.suptitle(title)
    return fig


def natural_rate_bars(table: pd.DataFrame, *, title: str = "Fooling rate on held-out medical images") -> Figure:
    """Chapter 4's bars: per model and bound, the UAP from photos, the UAP from medical images and
    the random control (``table`` is :func:`~.tables.natural_vs_medical`)."""
    bars = table.assign(attack="non-targeted", rate=table["_natural"], medical=table["_medical"],
                        random=table["_random"])
    return rate_bars(bars, columns=(("rate", "UAP from photos"), ("medical", "UAP from medical images"),
                                    ("random", "random control")), title=title)


# --------------------------------------------------------------------------- the explorer
def explorer_images(labels: Any, n: int, seed: int = 0) -> list[int]:
    """``n`` held-out image indices cycling through the classes (seeded, each class's order
    drawn once): every frame of a task shows the same images, so a move of a control shows
    what that control changes."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)]
    out: list[int] = []
    while len(out) < min(n, len(y)):
        for p in pools:
            if p and len(out) < n:
                out.append(int(p.pop(0)))
    return out


def _first(items: Sequence[Any], k: int | None) -> list[Any]:
    return list(items) if k is None else list(items)[: max(1, int(k))]


def _target_label(k: int, class_lists: Sequence[Sequence[str]]) -> str:
    names = {str(c[k]) for c in class_lists if k < len(c)}
    return f"→ {names.pop()}" if len(names) == 1 else f"→ class {k}"


def _explorer_grid(primary: UAPExperiment, s: UAPExplorerSettings) -> dict[str, list]:
    """The static page's values per control (the profile's ``uap_explorer`` subset) and the
    live explorer's (everything the experiment has, plus ``live_zetas``)."""
    tasks_all = list(primary.sets)
    models_all = list(dict.fromkeys(f"{k.arch}:{k.init}" for k in primary.trained))
    tasks = _first(tasks_all, s.tasks)
    models = _first([m for m in models_all if any(ModelKey(t, *m.split(":")) in primary.trained for t in tasks)],
                    s.models)
    norms_all, zetas_all = list(primary.settings.norms), [float(z) for z in primary.settings.zetas]
    norms = [n for n in norms_all if s.norms is None or n in s.norms] or norms_all
    zetas = [z for z in zetas_all if s.zetas is None or any(abs(z - float(w)) < 1e-12 for w in s.zetas)] or zetas_all
    shown = [k for k in primary.runs if k.task in tasks and f"{k.arch}:{k.init}" in models]
    targets = [None] + (sorted({k.target for k in shown if k.target is not None}) if s.targets else [])
    n_classes = max(len(tm.classes) for tm in primary.trained.values())
    return {"tasks": tasks, "tasks_all": tasks_all, "models": models, "models_all": models_all, "norms": norms,
            "norms_all": norms_all, "zetas": zetas, "zetas_all": sorted(set(zetas_all) | set(map(float, s.live_zetas))),
            "targets": targets, "targets_all": [None] + list(range(n_classes))}


def _explorer_controls(primary: UAPExperiment, g: Mapping[str, list], sources: Sequence[str]) -> list:
    class_lists = [tm.classes for tm in primary.trained.values()]

    def task_pairs(ts: Sequence[str]) -> list[tuple[str, str]]:
        return [(get_task(t).title, t) for t in ts]

    def model_pairs(ms: Sequence[str]) -> list[tuple[str, str]]:
        return [(ModelKey("", *m.split(":")).label, m) for m in ms]

    def target_pairs(ts: Sequence[int | None]) -> list[tuple[str, int | None]]:
        return [("none (non-targeted)" if t is None else _target_label(t, class_lists), t) for t in ts]

    return widgets.uap_controls(
        tasks=task_pairs(g["tasks"]), models=model_pairs(g["models"]), norms=g["norms"], zetas=g["zetas"],
        targets=target_pairs(g["targets"]), sources=sources,
        live={"task": task_pairs(g["tasks_all"]), "model": model_pairs(g["models_all"]), "norm": g["norms_all"],
              "zeta": g["zetas_all"], "target": target_pairs(g["targets_all"])})


def _eps_text(norm: str, eps: float) -> str:
    return f"eps {eps * 255:.3g}/255" if norm == "linf" else f"eps {eps:.3g} in [0, 1] pixels"


def _view(run: UAPRun, st: widgets.UAPSetting, src: UAPExperiment, idx: list[int]) -> widgets.UAPView:
    """The plain data of one frame: the run's UAP (or its random control) on the shown images."""
    mk = ModelKey(st.task, *st.model.split(":"))
    tm, ds = src.trained[mk], src.sets[st.task]
    classes = tuple(str(c) for c in tm.classes)
    r = rates(run, st.target, n_boot=src.n_boot, seed=src.seed)
    kind = "fooling rate" if st.target is None else f"success → {_short(classes[st.target])}"
    sel = torch.as_tensor(idx, dtype=torch.long)
    is_random = st.source == "random"
    built = "natural photos" if src.source == "natural" else "medical images"
    attack = "non-targeted" if st.target is None else f"targeted → {classes[st.target]}"
    what = f"random control of the UAP from {built}" if is_random else f"UAP from {built}"
    setting = (f"{widgets.universal.NORM_LABELS[st.norm]}, zeta {100 * st.zeta:g} % "
               f"({_eps_text(st.norm, float(run.summary['eps']))}), {attack}\n{what}")
    return widgets.UAPView(
        title=f"{get_task(st.task).title} · {st.model.split(':')[0]} ({tm.init_used})", setting=setting,
        delta=random_delta(run, src.settings, src.seed) if is_random else run.delta,
        x=ds.float()[sel], y=ds.labels[sel].tolist(), clean=run.clean[sel].tolist(),
        adv=(run.random if is_random else run.adv)[sel].tolist(), classes=classes,
        rate=r.random if is_random else r.rate, rate_name=kind, n=r.n,
        other=r.rate if is_random else r.random, other_name="the UAP itself" if is_random else "random control",
        delta_name="random" if is_random else "UAP")


def _short(s: str, n: int = 12) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _viewer(exp: UAPExperiment, primary: UAPExperiment, profile: Profile, *, on_demand: bool,
            idx: Mapping[str, list[int]]) -> Callable[[widgets.UAPSetting], widgets.UAPView]:
    def view(st: widgets.UAPSetting) -> widgets.UAPView:
        src = exp if st.source == "medical" else primary
        mk = ModelKey(st.task, *st.model.split(":"))
        if mk not in src.trained or st.task not in src.sets:
            raise widgets.Unavailable(f"No {mk.label} model for {get_task(st.task).title} in this experiment.")
        n_classes = len(src.trained[mk].classes)
        if st.target is not None and st.target >= n_classes:
            raise widgets.Unavailable(f"{get_task(st.task).title} has {n_classes} classes: no target class "
                                      f"{st.target}.")
        key = RunKey(st.task, mk.arch, mk.init, st.norm, float(st.zeta), st.target)
        if key not in src.runs and not on_demand:
            tz = src.settings.targeted_zetas
            why = ("" if st.target is None or not src.settings.targeted or tz is None else
                   f" (targeted UAPs are built at zeta {', '.join(f'{100 * z:g} %' for z in tz)})")
            raise widgets.Unavailable(f"No UAP for {mk.label}, {widgets.universal.NORM_LABELS[st.norm]}, zeta "
                                      f"{100 * st.zeta:g} %, {'non-targeted' if st.target is None else 'targeted'} "
                                      f"in this build{why}; a live notebook builds it on demand.")
        return _view(run_for(src, key, profile), st, src, idx[st.task])

    return view


def _frames_key(exps: Mapping[str, UAPExperiment], idx: Mapping[str, list[int]]) -> dict[str, Any]:
    """What the static frames depend on: every UAP (digests of its perturbation and
    predictions), the shown images, the bootstrap and the UAP settings (the random-control
    draw, the notes on what was not built)."""
    out: dict[str, Any] = {}
    for name, e in exps.items():
        runs = {"|".join(map(str, k)): tensor_digest(r.delta, r.clean, r.adv, r.random) for k, r in e.runs.items()}
        out[name] = {"runs": runs, "n_boot": e.n_boot, "seed": e.seed, "settings": repr(e.settings),
                     "models": {str(k): tm.init_used for k, tm in e.trained.items()},
                     "images": {t: tensor_digest(ds.images[torch.as_tensor(idx[t], dtype=torch.long)])
                                for t, ds in e.sets.items() if t in idx}}
    return out


def explorer(exp: UAPExperiment, natural: UAPExperiment | None = None, *, profile: Profile,
             mode: str | None = None, progress: bool = False):
    """The UAP explorer of chapter 3 (``exp`` only: UAPs from medical images and their random
    controls) or chapter 4 (``natural`` given: UAPs from photos, from medical images, and the
    photo UAPs' random controls), for :func:`advmed.widgets.uap_explorer`.

    Controls: task, model, norm, zeta, target and source. Static (the HTML book): the frames
    of the profile's ``uap_explorer`` grid, memoised under the digests of the UAPs and images,
    with their payload stated against ``budget_mb``. Live (a notebook with a kernel): every
    run of the experiments, and any other setting (a zeta of ``live_zetas``, a targeted UAP
    the profile did not build, another task or model of the experiment) is built on demand
    with :func:`~.run.run_for` (memoised, so once per setting). ``mode``: see
    :func:`advmed.widgets.resolve_mode`.
    """
    s = profile.uap_explorer
    primary = natural if natural is not None else exp
    sources = ("natural", "medical", "random") if natural is not None else ("medical", "random")
    mode = widgets.resolve_mode(mode)
    g = _explorer_grid(primary, s)
    idx = {t: explorer_images(primary.sets[t].labels, s.n_images, profile.seed) for t in primary.sets}
    view = _viewer(exp, primary, profile, on_demand=mode == "live", idx=idx)
    exps = {"medical": exp} if natural is None else {"medical": exp, "natural": natural}
    return widgets.uap_explorer(view, _explorer_controls(primary, g, sources), mode=mode,
                                cache_key=_frames_key(exps, idx) if mode == "static" else None,
                                budget_mb=s.budget_mb, progress=progress)
