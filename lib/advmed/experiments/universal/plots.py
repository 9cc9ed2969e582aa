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
from ...plots import (PAGE_WIDTH, BookFigure, attack_color, confusion_grid,
                      legend_outside, model_label, new_figure, show_image, show_perturbation, styled, task_label)
from ..profiles import Profile, UAPExplorerSettings
from ..zoo import ModelKey
from ..kernel.selection import explorer_images
from .run import NON_TARGETED, RunKey, UAPExperiment, UAPRun, attack_name, random_delta, rates, run_for


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


def natural_rate_bars(table: pd.DataFrame) -> Figure:
    """Chapter 4's bars (:func:`rate_panels`): per model and bound, the UAP from photos, the UAP
    from medical images and the random control (``table`` is :func:`~.tables.natural_vs_medical`)."""
    bars = table.assign(attack=NON_TARGETED, rate=table["_natural"], medical=table["_medical"],
                        random=table["_random"])
    return rate_panels(bars, columns=(("rate", "UAP from photos", "natural_uap"),
                                      ("medical", "UAP from medical images", "uap"),
                                      ("random", "random control", "random")))


# --------------------------------------------------------------------------- the page's figures
# Small multiples with a fixed number of columns, so that a figure grows by rows (tasks) and
# never by crowding: every label has room, every legend sits under the panels.
@styled
def rate_panels(table: pd.DataFrame, *, attack: str = NON_TARGETED, columns: Sequence[tuple[str, str, str]] = (
        ("rate", "UAP", "uap"), ("random", "random control", "random")), threshold: float | None = None) -> Figure:
    """Rates as horizontal bars, one panel per task (rows) and bound (columns: norm, zeta), one
    group of bars per model (its name on the y axis, so labels never collide), one bar per
    entry of ``columns`` = ``(column, legend label, colour role)`` (roles from
    :data:`advmed.plots.ATTACK_COLORS`); error bars from ``<column>_lo`` / ``<column>_hi`` where
    the table has them; dashed: ``threshold``. ``table`` is numeric (``uap_table(...,
    numeric=True)`` or a frame with those columns)."""
    t = table[table["attack"] == attack] if "attack" in table else table
    tasks = list(dict.fromkeys(t["task"]))
    settings = list(dict.fromkeys(zip(t["norm"], t["zeta"].astype(float))))
    models = list(dict.fromkeys(zip(t["arch"], t["init"])))
    height = 0.75 + 0.16 * len(models) * len(columns)
    fig = BookFigure(figsize=(PAGE_WIDTH, height * len(tasks) + 1.0), layout="constrained")
    axes = fig.subplots(len(tasks), len(settings), squeeze=False, sharex=True, sharey=True)
    w = 0.8 / len(columns)
    pos = np.arange(len(models))
    for i, task in enumerate(tasks):
        for j, (norm, zeta) in enumerate(settings):
            ax = axes[i, j]
            g = t[(t["task"] == task) & (t["norm"] == norm) & np.isclose(t["zeta"].astype(float), zeta)]
            g = g.set_index(["arch", "init"]).reindex(models)
            for c, (col, label, role) in enumerate(columns):
                vals = g[col].to_numpy(float)
                err = None
                if f"{col}_lo" in g and f"{col}_hi" in g:
                    err = np.clip(np.nan_to_num(np.vstack([vals - g[f"{col}_lo"].to_numpy(float),
                                                           g[f"{col}_hi"].to_numpy(float) - vals])), 0, None)
                ax.barh(pos + (c - (len(columns) - 1) / 2) * w, vals, w, xerr=err, color=attack_color(role),
                        label=label, error_kw={"lw": 0.8, "capsize": 1.5})
            for k in np.flatnonzero(g[columns[0][0]].isna().to_numpy()):  # an empty row is not a rate of 0
                ax.text(0.03, pos[k], "not trained", fontsize="x-small", color="0.45", va="center")
            if threshold is not None:
                ax.axvline(threshold, color="0.3", ls="--", lw=1, label=f"the study's claim ({threshold:.0%})")
            ax.set_xlim(0, 1.02)
            ax.set_yticks(pos, [model_label(a, i0) for a, i0 in models], fontsize="x-small")
            ax.tick_params(axis="x", labelsize="x-small")
            ax.grid(axis="y", visible=False)
            if i == 0 and j == 0:  # shared y axis: the first model on top, once
                ax.invert_yaxis()
            # every panel names its task and bound: a rotated row label would run into the next row
            ax.set_title(f"{task_label(task)}\n{norm.upper().replace('LINF', 'L∞')}, zeta {zeta:g}",
                         fontsize="small")
    # the axis is named once, as the legend's title: a figure-level x label and a legend
    # outside the panels both sit under them, and in the cpu build the legend ran over it
    legend_outside(fig, title="x axis: rate on held-out images")
    return fig


@styled
def uap_grid(exp: UAPExperiment, *, zeta: float | None = None, norm: str | None = None,
             gain: float | None = None) -> Figure:
    """The non-targeted UAPs at one bound as small multiples: one row per task, one column per
    model, each shown as 0.5 + gain x delta (the gain under each panel; mid-grey = no change).
    ``zeta`` defaults to the largest, ``norm`` to the settings' first."""
    zeta = float(zeta if zeta is not None else max(exp.settings.zetas))
    norm = norm or exp.settings.norms[0]
    keys = exp.keys(targeted=False, zeta=zeta, norm=norm)
    tasks = list(dict.fromkeys(k.task for k in keys))
    models = list(dict.fromkeys((k.arch, k.init) for k in keys))
    side = min(1.5, (PAGE_WIDTH - 1.0) / len(models))
    fig = BookFigure(figsize=(min(PAGE_WIDTH, side * len(models) + 1.0), (side + 0.35) * len(tasks) + 0.4),
                     layout="constrained")
    axes = fig.subplots(len(tasks), len(models), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k in keys:
        ax = axes[tasks.index(k.task), models.index((k.arch, k.init))]
        ax.set_axis_on()
        g = show_perturbation(ax, exp.runs[k].delta, gain)
        ax.set_xlabel(f"gain ×{g:.0f}", fontsize="x-small")
        if k.task == tasks[0]:
            ax.set_title(model_label(k.arch, k.init).replace(" (", "\n("), fontsize="x-small")
        if (k.arch, k.init) == models[0]:
            ax.set_ylabel(task_label(k.task), fontsize="small")
    return fig


@styled
def before_after_grid(exp: UAPExperiment, keys: Sequence[RunKey], *, n: int = 4, seed: int | None = None) -> Figure:
    """Held-out images before and after adding a UAP, one pair of rows per key (task): clean
    images above with the prediction, the same images with the UAP below (orange: the
    prediction changed), fooled images first; the first column shows the UAP amplified."""
    seed = exp.seed if seed is None else seed
    side = (PAGE_WIDTH - 0.8) / (n + 1)
    fig = BookFigure(figsize=(PAGE_WIDTH, (side + 0.3) * 2 * len(keys) + 0.3), layout="constrained")
    axes = fig.subplots(2 * len(keys), n + 1, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for r, key in enumerate(keys):
        run, ds = exp.runs[key], exp.sets[key.task]
        classes = exp.trained[key.model].classes
        clean, adv = np.asarray(run.clean), np.asarray(run.adv)
        rng = np.random.default_rng(seed)
        pool = np.concatenate([rng.permutation(np.flatnonzero(clean != adv)),
                               rng.permutation(np.flatnonzero(clean == adv))])
        pick = pool[:n]
        x = ds.float()[torch.as_tensor(pick, dtype=torch.long)]
        xa = (x + run.delta).clamp(0, 1)
        for j, i in enumerate(pick):
            for row, (img, pred) in enumerate(((x[j], clean[i]), (xa[j], adv[i]))):
                ax = axes[2 * r + row, j + 1]
                ax.set_axis_on()
                show_image(ax, img)
                changed = row == 1 and adv[i] != clean[i]
                ax.set_title(f"{'clean' if row == 0 else 'with UAP'}: {classes[pred]}", fontsize="x-small",
                             color="#D55E00" if changed else "black")
        head = axes[2 * r, 0]
        head.set_axis_on()
        g = show_perturbation(head, run.delta)
        head.set_title(f"UAP ×{g:.0f}", fontsize="x-small")
        head.set_ylabel(f"{task_label(key.task)}\n{model_label(key.arch, key.init)}", fontsize="x-small")
        axes[2 * r + 1, 0].text(0.5, 0.5, "true:\n" + "\n".join(classes[int(ds.labels[i])] for i in pick),
                                ha="center", va="center", fontsize="x-small", transform=axes[2 * r + 1, 0].transAxes)
    return fig


def confusion_uap_grid(exp: UAPExperiment, keys: Mapping[str, Sequence[RunKey]]) -> Figure:
    """Confusion matrices of held-out images with a UAP added: one row per task, one column per
    UAP of ``keys[task]`` (e.g. the strongest non-targeted one and its targeted twins); the
    column title names the attack."""
    entries, titles = {}, {}
    for task, ks in keys.items():
        for j, k in enumerate(ks):
            run = exp.runs[k]
            classes = exp.trained[k.model].classes
            entries[(task, j)] = (run.y, run.adv, classes)
            titles[(task, j)] = attack_name(k.target, classes).replace("targeted -> ", "→ ")
    return confusion_grid(entries, titles=titles)


@styled
def transfer_grid(matrices: Mapping[str, pd.DataFrame], *, ncols: int = 2) -> Figure:
    """Transfer of non-targeted UAPs between architectures as small multiples: one heatmap per
    task (rows: the model the UAP was built on; columns: the model it is applied to; cells:
    fooling rate); one shared colour bar."""
    items = list(matrices.items())
    k = max(len(m) for _, m in items)
    ncols = max(1, min(ncols, len(items)))
    nrows = int(np.ceil(len(items) / ncols))
    side = (PAGE_WIDTH - 1.2) / ncols
    fig = BookFigure(figsize=(PAGE_WIDTH, side * nrows + 0.4 * k), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax in axes.flat[len(items):]:
        ax.set_visible(False)
    for ax, (task, mat) in zip(axes.flat, items):
        image = ax.imshow(mat.to_numpy(float), cmap="Reds", vmin=0, vmax=1)
        for a in range(mat.shape[0]):
            for b in range(mat.shape[1]):
                v = float(mat.iat[a, b])
                ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                        color="white" if v > 0.6 else "black")
        names = [str(c).replace(" (", "\n(") for c in mat.columns]
        ax.set_xticks(range(mat.shape[1]), names, fontsize=6, rotation=0)
        ax.set_yticks(range(mat.shape[0]), [str(c).replace(" (", "\n(") for c in mat.index], fontsize=6)
        ax.grid(False)
        ax.set_title(task_label(task), fontsize="small")
        ax.set_xlabel("applied to", fontsize="x-small")
        ax.set_ylabel("built on", fontsize="x-small")
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6)
        bar.set_label("fooling rate", fontsize="x-small")
        bar.ax.tick_params(labelsize="x-small")
    return fig


# --------------------------------------------------------------------------- the explorer
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
        delta_name="random" if is_random else "UAP", task=st.task)


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
