"""Figures of chapter 7: clean against robust AUC per defense (oblivious and adaptive markers),
robust accuracy against eps per defense, the certified-accuracy curve of randomized smoothing,
and the defense explorer (:func:`explorer`).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from ... import widgets
from ...attacks.escalate import NOT_CONVERGED
from ...cache import tensor_digest
from ...data import get_task
from ...metrics import Estimate
from ...models import predict_proba
from ...plots import PALETTE, model_label, new_figure, styled, task_label
from ..kernel import ensemble_settings
from ..kernel.surrogates import primary_key
from ..profiles import Profile
from ..zoo import trained_models
from . import run
from .evaluate import AUC_SOURCE, ENSEMBLE_SOURCE, OBLIVIOUS_SOURCE
from .regularisation import ADVERSARIAL, STANDARD
from .registry import adaptive_sources, defense_label
from .run import CertifiedRun, DefenseResults

MARKERS = {"oblivious": "o", "adaptive": "X"}


@styled
def clean_vs_robust(results: DefenseResults, eps_255: float, *, metric: str = "auc",
                    cell: tuple[float, float] = (4.2, 3.6)) -> Figure:
    """Per task, each defense's clean ``metric`` (x) against its ``metric`` under attack at ``eps_255``
    (y): a hollow circle for the oblivious attacker, a cross for the adaptive one, joined by a line
    (the drop an attacker who knows the defense adds). The diagonal is "no loss under attack"."""
    tasks = results.tasks
    fig, axes = new_figure(1, max(1, len(tasks)), figsize=(cell[0] * max(1, len(tasks)) + 1.8, cell[1]))
    labels = list(dict.fromkeys(r.label for r in results.runs))
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels))))
    for ax, task in zip(axes[0], tasks):
        seen = []
        for r in (r for r in results.runs if r.task == task):
            x = float(r.clean[metric].iloc[0])
            ys = {a: r.robust(a, eps_255, metric) for a in MARKERS}
            seen += [x, *ys.values()]
            ax.plot([x, x], [ys["oblivious"], ys["adaptive"]], color=colours[r.label], lw=1, alpha=0.6)
            ax.scatter([x], [ys["oblivious"]], marker="o", facecolors="none", edgecolors=[colours[r.label]], s=46)
            ax.scatter([x], [ys["adaptive"]], marker="X", color=colours[r.label], s=46,
                       label=r.label + (" (upper bound)" if r.evaluation == NOT_CONVERGED else
                                        " (escalated)" if r.flagged else ""))
        # zoom on the points (defenses differ by hundredths), the diagonal kept in view
        lo = max(0.0, min(v for v in seen if v == v) - 0.05) if seen else 0.0
        ax.plot([lo, 1], [lo, 1], ls=":", color="0.5", lw=1)
        ax.set_xlim(lo - 0.01, 1.01)
        ax.set_ylim(lo - 0.01, 1.01)
        ax.set_xlabel(f"clean {metric.upper() if metric == 'auc' else metric}")
        ax.set_ylabel(f"{metric.upper() if metric == 'auc' else metric} at eps {eps_255:g}/255")
        ax.set_title(task, fontsize="medium")
    handles, names = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="x-small",
               title="o oblivious, x adaptive", title_fontsize="x-small")
    return fig


@styled
def robust_curves(results: DefenseResults, *, cell: tuple[float, float] = (3.6, 3.0)) -> Figure:
    """Robust accuracy against eps, one panel per (task, attacker), one line per defense (solid: the
    adversarial images as found; dotted: rounded to 8 bits); shaded: budgets below one grey level."""
    curves = results.curves()
    tasks = results.tasks
    fig, axes = new_figure(max(1, len(tasks)), 2, figsize=(2 * cell[0] + 1.8, cell[1] * max(1, len(tasks))))
    labels = list(dict.fromkeys(curves.label))
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels))))
    for i, task in enumerate(tasks):
        for j, attacker in enumerate(("oblivious", "adaptive")):
            ax = axes[i, j]
            sub = curves[(curves.task == task) & (curves.attacker == attacker)]
            for label, g in sub.groupby("label", sort=False):
                g = g.sort_values("eps_255")
                ax.plot(g.eps_255, g.accuracy, marker=MARKERS[attacker], color=colours[label], label=label, ms=4)
                if "accuracy_8bit" in g and g.accuracy_8bit.notna().any():
                    rounded = g[g.eps_255 > 0]  # the clean point has no adversarial image to round
                    ax.plot(rounded.eps_255, rounded.accuracy_8bit, ls=":", color=colours[label], lw=1)
            if len(sub) and sub.eps_255[sub.eps_255 > 0].min() < 1:
                ax.axvspan(0, 1, color="0.9", zorder=0, lw=0)  # below one grey level: the float threat model only
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("eps (L-inf, /255)")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{task_label(task)}: {attacker}", fontsize="medium")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="x-small")
    return fig


@styled
def at_curves(results: DefenseResults, *, cell: tuple[float, float] = (3.6, 2.8)) -> Figure:
    """How each adversarially trained model was chosen: per epoch, robust balanced accuracy on the
    validation images under PGD-10 at the training eps (solid; it picks the kept epoch, ringed)
    and clean validation AUC (dashed); one panel per task, one colour per recipe."""
    runs = results.training_curves()
    tasks = list(dict.fromkeys(r.task for r in runs))
    fig, axes = new_figure(1, max(1, len(tasks)), figsize=(cell[0] * max(1, len(tasks)) + 1.8, cell[1]))
    labels = list(dict.fromkeys(r.label for r in runs))
    colours = dict(zip(labels, sns.color_palette(PALETTE, max(1, len(labels)))))
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in runs if r.task == task):
            h = r.history
            ax.plot(h.epoch, h.val_robust_bal_acc, marker="o", ms=3, color=colours[r.label], label=r.label)
            ax.plot(h.epoch, h.val_auc, ls="--", lw=1, color=colours[r.label])
            kept = h[h["best"].astype(bool)]
            ax.plot(kept.epoch, kept.val_robust_bal_acc, "o", ms=9, mfc="none", color=colours[r.label])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation score")
        ax.set_title(task_label(task), fontsize="medium")
    if runs:
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right center", fontsize="x-small")
    return fig


@styled
def certified_curve(cert: CertifiedRun, *, figsize: tuple[float, float] = (4.6, 3.4)) -> Figure:
    """Certified accuracy of the smoothed classifier against the L2 radius ([0, 1] pixels)."""
    fig, axes = new_figure(1, 1, figsize=figsize)
    ax = axes[0, 0]
    c = cert.curve
    ax.step(c.radius, c.certified_accuracy, where="post", color=sns.color_palette(PALETTE)[0])
    ax.plot(c.radius, c.certified_accuracy, "o", ms=4, color=sns.color_palette(PALETTE)[0])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("L2 radius ([0, 1] pixels)")
    ax.set_ylabel("certified accuracy")
    ax.set_title(f"{task_label(cert.task)}, sigma {cert.sigma:g}, n {cert.n:,}", fontsize="medium")
    return fig


@styled
def regularisation_curve(results: DefenseResults, *, figsize: tuple[float, float] = (5.2, 3.4)) -> Figure:
    """Clean test AUC against the share of training images, standard and adversarial training:
    each seed a small dot, the mean over seeds with its 95 % t-interval."""
    fig, axes = new_figure(1, 1, figsize=figsize)
    ax = axes[0, 0]
    r = results.regularisation
    summary = run.regularisation_summary(r)
    colours = sns.color_palette(PALETTE, 2)
    for (recipe, name), colour in zip(((STANDARD, "standard"), (ADVERSARIAL, "adversarial")), colours):
        seeds = r[r.recipe == recipe]
        ax.plot(seeds.fraction, seeds.clean_auc, ".", color=colour, alpha=0.4, ms=5)
        lo = (summary[f"{name}_auc"] - summary[f"{name}_lo"]).fillna(0)
        hi = (summary[f"{name}_hi"] - summary[f"{name}_auc"]).fillna(0)
        ax.errorbar(summary.fraction, summary[f"{name}_auc"], yerr=[lo, hi], marker="o", ms=4, capsize=3,
                    color=colour, label=f"{recipe} training")
    ax.set_xscale("log")
    ax.set_xticks(sorted(summary.fraction), [f"{f:.0%}" for f in sorted(summary.fraction)])
    ax.minorticks_off()
    ax.set_xlabel("share of the training images")
    ax.set_ylabel("clean test AUC")
    ax.legend(loc="lower right", fontsize="small")
    return fig




# --------------------------------------------------------------------------- the explorer
#: How a frame names the source of an adversarial image (short: it sits under a panel).
SOURCE_LABELS = {ENSEMBLE_SOURCE: "the ensemble on the defense", AUC_SOURCE: "APGD-margin on the defense",
                 **adaptive_sources(),
                 OBLIVIOUS_SOURCE: "PGD on the undefended model"}  # at most 28 characters: one line
ATTACKER_WORDS = {"oblivious": "oblivious attacker (PGD crafted on the undefended model)",
                  "adaptive": "adaptive attacker (attacks the defense itself)"}


def _explorer_grid(results: DefenseResults, profile: Profile) -> dict[str, list]:
    """The static page's values per control (the profile's ``defense_explorer`` subset of the
    results) and the live explorer's (everything the results hold, plus ``live_qualities``)."""
    s, d = profile.defense_explorer, profile.defense
    tasks_all = results.tasks
    tasks = tasks_all if s.tasks is None else tasks_all[: max(1, int(s.tasks))]
    defenses_all = list(dict.fromkeys(r.defense for r in results.runs))
    defenses = [x for x in defenses_all if s.defenses is None or x in s.defenses] or defenses_all
    q0 = int(d.jpeg_quality)
    # other qualities are other JPEG defenses, each one more evaluation: only where JPEG is shown
    qualities = sorted({q0, *(int(q) for q in s.qualities)}) if "jpeg" in defenses else [q0]
    eps_all = sorted(float(e) for e in d.eps_255)
    eps = [e for e in eps_all if s.eps_255 is None or any(np.isclose(e, float(w)) for w in s.eps_255)] or eps_all
    return {"tasks": tasks, "tasks_all": tasks_all, "defenses": defenses, "defenses_all": defenses_all,
            "qualities": qualities, "qualities_all": sorted({*qualities, q0, *(int(q) for q in s.live_qualities)}),
            "eps": eps, "eps_all": eps_all}


def _explorer_controls(g: Mapping[str, list], profile: Profile) -> list:
    def tasks(ts: list[str]) -> list[tuple[str, str]]:
        return [(get_task(t).title, t) for t in ts]

    def defenses(ds: list[str]) -> list[tuple[str, str]]:
        return [(defense_label(x), x) for x in ds]

    return widgets.defense_controls(
        tasks=tasks(g["tasks"]), defenses=defenses(g["defenses"]), qualities=g["qualities"], eps_255=g["eps"],
        default_defense="jpeg" if "jpeg" in g["defenses"] else None,  # the chapter's case: oblivious holds, adaptive breaks
        default_quality=int(profile.defense.jpeg_quality),
        live={"task": tasks(g["tasks_all"]), "defense": defenses(g["defenses_all"]), "quality": g["qualities_all"],
              "eps": g["eps_all"]})


def _shown_image(task: str, tm: Any, profile: Profile) -> int:
    """The test image a task's frames show: the first (in a seeded order) that the undefended
    model classifies correctly, so that a wrong attacked prediction is the attack's doing."""
    images = run.defense_images(task, profile)
    y = np.asarray(images.labels)
    right = predict_proba(tm.model, images.float()).argmax(1) == y
    order = np.random.default_rng(profile.seed).permutation(len(y))
    return int(next((i for i in order if right[i]), order[0]))


def _estimate(row: Any, name: str) -> Estimate:
    return Estimate(float(row[name]), float(row[f"{name}_lo"]), float(row[f"{name}_hi"]))


def _viewer(results: DefenseResults, profile: Profile, zoo: Callable[[], Mapping[tuple, Any]]) -> Callable:
    """``DefenseSetting -> DefenseView``: the chapter's run of the defense (another JPEG quality:
    its own run, through :func:`~.run.defense_run`, memoised), the shown image attacked by the
    setting's attacker (:func:`~.run.attacked_images`, memoised), the robust accuracy row."""
    q0 = int(profile.defense.jpeg_quality)
    views: dict[tuple, widgets.DefenseView] = {}
    shown: dict[str, int] = {}

    def view(st: widgets.DefenseSetting) -> widgets.DefenseView:
        # the quality is JPEG's alone: every other defense has one frame whatever the slider says
        st = st._replace(quality=int(st.quality) if st.defense == "jpeg" else q0, eps_255=float(st.eps_255))
        if st in views:
            return views[st]
        chapter = results.get(st.task, st.defense)
        if chapter is None:
            raise widgets.Unavailable(f"No {defense_label(st.defense)} results for "
                                      f"{get_task(st.task).title} in this build.")
        models = zoo()
        key = primary_key(profile, models, st.task, profile.defense.model)
        tm = models[key]
        measured = chapter if st.quality == q0 else run.defense_run(st.task, key, tm, "jpeg", profile,
                                                                    quality=st.quality)
        c = measured.curves
        row = c[(c.attacker == st.attacker) & np.isclose(c.eps_255, st.eps_255)]
        if not len(row):
            raise widgets.Unavailable(f"The defenses were not attacked at eps {st.eps_255:g}/255 in this build.")
        if st.task not in shown:
            shown[st.task] = _shown_image(st.task, tm, profile)
        imgs = run.attacked_images(st.task, tm, st.defense, profile, [shown[st.task]],
                                   quality=st.quality if st.defense == "jpeg" else None)
        e = int(np.flatnonzero(np.isclose(imgs.eps_255, st.eps_255))[0])
        images = run.defense_images(st.task, profile)
        jpeg = f" (quality {st.quality})" if st.defense == "jpeg" else ""
        views[st] = widgets.DefenseView(
            title=f"{task_label(st.task)} · {model_label(chapter.model)}",
            setting=f"{defense_label(st.defense)}{jpeg} · {ATTACKER_WORDS[st.attacker]}, "
                    f"eps {st.eps_255:g}/255",
            x=imgs.x[0], adv=imgs.adv[st.attacker][e, 0], y=int(imgs.y[0]),
            classes=tuple(str(k) for k in images.classes), clean_proba=imgs.clean[0],
            adv_proba=imgs.proba[st.attacker][e, 0],
            source=SOURCE_LABELS.get(imgs.source[st.attacker][e][0], imgs.source[st.attacker][e][0]),
            robust=_estimate(row.iloc[0], "accuracy"), robust_name=f"robust accuracy at {st.eps_255:g}/255",
            clean=_estimate(measured.clean.iloc[0], "accuracy"), n=int(measured.clean["n"].iloc[0]),
            warning=("flagged by the masking checks;\nescalated to its cap: an upper\nbound, not converged"
                     if measured.evaluation == NOT_CONVERGED else ""), task=st.task)
        return views[st]

    return view


def _frames_key(results: DefenseResults, profile: Profile, tasks: Sequence[str]) -> dict[str, Any]:
    """What the static frames depend on: every shown run's numbers and checkpoint key, the
    test images (their digest), the defense and attack settings and the versions of the
    family's computations."""
    runs = {f"{r.task}|{r.defense}": {"model": r.config_key, "clean": r.clean.to_json(), "curves": r.curves.to_json(),
                                      "evaluation": r.evaluation} for r in results.runs if r.task in tasks}
    images = {t: tensor_digest(ds.images, ds.labels) for t, ds in ((t, run.defense_images(t, profile)) for t in tasks)}
    return {"runs": runs, "images": images, "defense": repr(profile.defense),
            "explorer": repr(profile.defense_explorer), "ensemble": ensemble_settings(profile),
            "seed": profile.seed, "versions": [run.DEFENSE_VERSION, run.EXPLORER_VERSION]}


def explorer(results: DefenseResults, *, profile: Profile, zoo: Mapping[tuple, Any] | None = None,
             mode: str | None = None, progress: bool = False):
    """The defense explorer of chapter 7, for :func:`advmed.widgets.defense_explorer`.

    Controls: task, defense, JPEG quality (shown for JPEG only), attacker (oblivious /
    adaptive) and eps. Each frame: one test image, clean and attacked, through the defense, the
    defended model's probabilities on both, and the setting's robust accuracy from the results.
    Static (the HTML book): the frames of the profile's ``defense_explorer`` grid, memoised
    under the results' numbers, the images' digests and the settings, with their payload stated
    against ``budget_mb``. Live (a notebook with a kernel): every task, defense and budget of
    the results and the ``live_qualities`` too; a JPEG quality the chapter did not evaluate is
    evaluated on demand (:func:`~.run.defense_run`, memoised) and its image attacked.

    Args:
        results: :func:`~.run.defense_results`.
        profile: the chapter's profile (its ``defense`` and ``defense_explorer`` sections).
        zoo: the chapter's zoo (``advmed.experiments.zoo.trained_models``); None: loaded from
            the checkpoint cache when a frame is computed (a warm static build loads nothing).
        mode: see :func:`advmed.widgets.resolve_mode`; progress: a bar over the static frames.
    """
    s = profile.defense_explorer
    mode = widgets.resolve_mode(mode)
    g = _explorer_grid(results, profile)
    loaded: dict[str, Mapping[tuple, Any]] = {}

    def models() -> Mapping[tuple, Any]:
        if "zoo" not in loaded:
            loaded["zoo"] = zoo if zoo is not None else trained_models(
                profile, tasks=results.tasks, models=[profile.defense.model], progress=False)
        return loaded["zoo"]

    return widgets.defense_explorer(_viewer(results, profile, models), _explorer_controls(g, profile), mode=mode,
                                    cache_key=_frames_key(results, profile, g["tasks"]) if mode == "static" else None,
                                    budget_mb=s.budget_mb, progress=progress)


__all__ = ["ATTACKER_WORDS", "SOURCE_LABELS", "certified_curve", "clean_vs_robust", "explorer", "regularisation_curve",
           "robust_curves"]
