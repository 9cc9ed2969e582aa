"""The attack explorer of chapter 2: pick task, architecture, image, attack and eps.

A thin specialisation of :mod:`advmed.widgets.core` (controls, live and static worlds,
payload budget):

* **live** (``explorer(...)``): in Jupyter with a kernel. Every change of a control runs
  the real attack on the chosen image and redraws the figure (results are cached, so
  going back is instant); live, the eps slider may offer more budgets (``live_eps_255``).
* **static** (``explorer(..., precompute=True)`` or ``static_explorer(...)``): for the
  rendered HTML book, where there is no kernel. Every frame (task x architecture x
  image x attack x eps) is computed beforehand by calling the same attack (one batched
  attack per task, architecture, attack and eps), rendered to a small PNG and switched in
  the browser (:class:`advmed.widgets.core.StaticExplorer`); the eps = 0 frame is one
  widget shared by all attacks.

Every frame shows the clean image, the adversarial image, the perturbation (amplified;
the gain is written in the panel title, mid-grey = no change) and the class
probabilities before and after the attack.

Attacks follow the advmed contract ``attack(model, x, y, *, eps, ...) -> x_adv`` with
pixels in [0, 1] and models returning logits. eps controls are in /255 units; the
attack receives ``eps_255 / 255``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..attacks import AttackSpec
from ..attacks import attack_label as attack_label_of
from ..device import module_device
from ..models import as_module, as_rgb, gray_view
from ..plots import display_image
from . import core
from .core import Control, Unavailable, figure_png

__all__ = [
    "DEFAULT_ATTACKS",
    "DEFAULT_EPS_255",
    "Frame",
    "ExplorerData",
    "prepare",
    "compute_frame",
    "compute_frames",
    "render_frame",
    "controls",
    "explorer",
    "static_explorer",
]

DEFAULT_ATTACKS: tuple[str, ...] = ("fgsm", "ifgsm", "pgd", "mifgsm")
DEFAULT_EPS_255: tuple[float, ...] = (0, 0.5, 1, 2, 4, 8)

_CLEAN_COLOR = "#4c72b0"
_ADV_COLOR = "#c44e52"


# --------------------------------------------------------------------------- data
@dataclass
class ExplorerData:
    """What the explorer shows, normalised: tasks, architectures, images, attacks."""

    models: dict[tuple[str, str], torch.nn.Module]
    images: dict[str, tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]]  # task -> x, y, classes
    tasks: list[str]
    archs: list[str]
    attacks: dict[str, Callable]  # name -> attack function
    eps_255: list[float]
    n_images: int
    attack_kwargs: dict[str, dict]
    seed: int = 0

    def image_label(self, i: int) -> str:
        return f"image {i + 1}"

    def keys(self):
        """Every (task, arch, image, attack, eps_255) combination, in control order."""
        for t in self.tasks:
            for a in self.archs:
                for i in range(self.n_images):
                    for at in self.attacks:
                        for e in self.eps_255:
                            yield (t, a, i, at, e)


@dataclass
class Frame:
    """One computed example: a clean image, its adversarial version and both predictions."""

    task: str
    arch: str
    image_index: int
    attack: str
    eps_255: float
    x: np.ndarray  # (C, H, W) in [0, 1]
    x_adv: np.ndarray  # (C, H, W) in [0, 1]
    p_clean: np.ndarray  # (K,)
    p_adv: np.ndarray  # (K,)
    label: int
    classes: tuple[str, ...]
    extra: dict = field(default_factory=dict)

    @property
    def delta(self) -> np.ndarray:
        return self.x_adv - self.x

    @property
    def linf_255(self) -> float:
        return float(np.abs(self.delta).max()) * 255 if self.delta.size else 0.0


def _unwrap_images(v, task: str):
    """(x, y, classes) or an ImageSet-like object -> float x in [0,1], int64 y, classes."""
    if hasattr(v, "images") and hasattr(v, "labels"):
        x, y, classes = v.images, v.labels, getattr(v, "classes", None)
    else:
        try:
            x, y, classes = v
        except (TypeError, ValueError):
            raise TypeError(f"images[{task!r}] must be (x, y, classes) or an ImageSet") from None
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.float() / 255.0
    x = x.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"images[{task!r}] must have shape (N, C, H, W), got {tuple(x.shape)}")
    y = torch.as_tensor(y).long().reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"images[{task!r}]: {len(x)} images but {len(y)} labels")
    if classes is None:
        classes = [str(k) for k in range(int(y.max()) + 1)]
    return x, y, tuple(str(c) for c in classes)


def _resolve_attacks(attacks, attack_fn) -> dict[str, Callable]:
    if isinstance(attacks, Mapping):
        out = dict(attacks)
    else:
        if attack_fn is None:
            from ..attacks import get_attack as attack_fn  # the real attacks
        out = {name: attack_fn(name) for name in attacks}
    for name, fn in out.items():
        if not callable(fn):
            raise TypeError(f"attack {name!r} is not callable")
    if not out:
        raise ValueError("no attacks given")
    return out


def prepare(models, images, attacks=DEFAULT_ATTACKS, eps_255=DEFAULT_EPS_255, *,
            attack_fn=None, n_images=None, attack_kwargs=None, seed=0) -> ExplorerData:
    """Check and normalise the explorer's inputs (see :func:`explorer`)."""
    if not models:
        raise ValueError("models is empty: give {(task, arch): model}")
    models = {tuple(k): as_module(m) for k, m in models.items()}
    for k in models:
        if len(k) != 2:
            raise ValueError(f"models keys must be (task, arch) pairs, got {k!r}")
    tasks = list(dict.fromkeys(t for t, _ in models))
    archs = list(dict.fromkeys(a for _, a in models))
    missing = [t for t in tasks if t not in images]
    if missing:
        raise KeyError(f"no images for task(s) {missing}; images has {sorted(images)}")
    imgs = {t: _unwrap_images(images[t], t) for t in tasks}
    n_avail = min(len(v[0]) for v in imgs.values())
    if n_avail == 0:
        raise ValueError("a task has no images")
    n = n_avail if n_images is None else min(int(n_images), n_avail)
    imgs = {t: (x[:n], y[:n], c) for t, (x, y, c) in imgs.items()}
    eps_255 = [float(e) for e in eps_255]
    if not eps_255 or any(e < 0 for e in eps_255):
        raise ValueError(f"eps_255 must be a non-empty list of values >= 0, got {eps_255}")
    attack_map = _resolve_attacks(attacks, attack_fn)
    kw = {name: dict((attack_kwargs or {}).get(name, {})) for name in attack_map}
    return ExplorerData(models, imgs, tasks, archs, attack_map, eps_255, n, kw, seed)


# --------------------------------------------------------------------------- compute
@torch.no_grad()
def _proba(model, x) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        return torch.softmax(model(x).float(), dim=1)
    finally:
        model.train(was)


def _call_attack(fn, model, x, y, eps, kwargs, seed):
    if isinstance(fn, AttackSpec):  # the full attack: a frame shows what the budget allows
        return fn.call(model, x, y, eps=eps, seed=seed, **{"early_stop": False, **kwargs})
    kw = dict(kwargs)
    try:
        params = inspect.signature(fn).parameters
        if "seed" in params and "seed" not in kw:
            kw["seed"] = seed
        if "progress" in params and "progress" not in kw:
            kw["progress"] = False
    except (TypeError, ValueError):
        pass
    return fn(model, x, y, eps=eps, **kw)


def _attack_batch(data: ExplorerData, task, arch, attack, eps_255, idx) -> list[Frame]:
    model = data.models[(task, arch)]
    x_all, y_all, classes = data.images[task]
    dev = module_device(model)
    x = x_all[idx].to(dev)
    y = y_all[idx].to(dev)
    if eps_255 == 0:
        x_adv = x.clone()
    else:
        # gray images get a gray perturbation (attacked in one channel, replicated)
        m_att, x_att, _ = gray_view(model, x)
        x_adv = _call_attack(data.attacks[attack], m_att, x_att, y, eps_255 / 255.0,
                             data.attack_kwargs.get(attack, {}), data.seed)
        x_adv = as_rgb(x_adv.detach().to(dev).float(), x.shape[1])
    p0 = _proba(model, x).cpu().numpy()
    p1 = _proba(model, x_adv).cpu().numpy()
    xs, xa = x.cpu().numpy(), x_adv.cpu().numpy()
    return [Frame(task, arch, int(i), attack, float(eps_255), xs[j], xa[j], p0[j], p1[j],
                  int(y_all[i]), classes) for j, i in enumerate(idx)]


def compute_frame(data: ExplorerData, task, arch, image_index, attack, eps_255) -> Frame:
    """Run the attack for one combination (the live explorer's callback)."""
    return _attack_batch(data, task, arch, attack, float(eps_255), [int(image_index)])[0]


def compute_frames(data: ExplorerData, *, progress=True) -> dict[tuple, Frame]:
    """Every combination, one batched attack per (task, arch, attack, eps).

    eps = 0 is computed once per (task, arch) and shared by all attacks.
    Combinations whose (task, arch) has no model are left out.
    """
    from tqdm.auto import tqdm

    idx = list(range(data.n_images))
    jobs = [(t, a, at, e) for t in data.tasks for a in data.archs if (t, a) in data.models
            for at in data.attacks for e in data.eps_255]
    frames: dict[tuple, Frame] = {}
    clean: dict[tuple, list[Frame]] = {}
    for t, a, at, e in tqdm(jobs, desc="explorer frames", disable=not progress):
        if e == 0:
            if (t, a) not in clean:
                clean[(t, a)] = _attack_batch(data, t, a, at, 0.0, idx)
            batch = clean[(t, a)]
            for f in batch:
                frames[(t, a, f.image_index, at, e)] = f
        else:
            for f in _attack_batch(data, t, a, at, e, idx):
                frames[(t, a, f.image_index, at, e)] = f
    return frames


# --------------------------------------------------------------------------- render
def _fmt_eps(e: float) -> str:
    return "0" if e == 0 else f"{e:g}/255"


def _short(s: str, n: int = 16) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _probability_panel(ax, f: Frame, order: list[int], ylabels: list[str]) -> None:
    """Class probabilities before (clean) and after (adversarial) as paired bars."""
    ypos = np.arange(len(order))
    h = 0.38
    ax.barh(ypos - h / 2, f.p_clean[order], height=h, color=_CLEAN_COLOR, label="clean")
    ax.barh(ypos + h / 2, f.p_adv[order], height=h, color=_ADV_COLOR, label="adversarial")
    ax.set_yticks(ypos)
    ax.set_yticklabels(ylabels, fontsize=8)
    ax.invert_yaxis()
    ax.yaxis.tick_right()
    ax.set_xlim(0, 1)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("class probability (* = true class)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", frameon=False, bbox_to_anchor=(-0.02, -0.1),
              ncol=2, borderaxespad=0, handlelength=1.0, columnspacing=1.0)
    ax.spines[["top", "left"]].set_visible(False)



def render_frame(frame: Frame, *, attack_label: str | None = None, dpi: int = 90,
                 figsize=(9.0, 2.5), top_k: int = 7, quantize: bool = True) -> bytes:
    """Draw one frame (clean | adversarial | perturbation | probabilities) as PNG bytes.

    The perturbation is shown as ``0.5 + gain * delta`` with ``gain = 0.5 / eps`` (so
    +-eps spans black to white, mid-grey = no change); the gain is in the panel title.
    With more than ``top_k`` classes only the ``top_k`` most probable (before or after)
    plus the true class are drawn. ``quantize`` stores the PNG with a 256-colour palette
    (about 3x smaller; fast-octree palette, no dithering).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    f = frame
    label = attack_label or attack_label_of(f.attack)
    k_clean, k_adv = int(np.argmax(f.p_clean)), int(np.argmax(f.p_adv))
    # classes drawn in the probability panel
    K = len(f.p_clean)
    if K > top_k:
        order = np.argsort(-np.maximum(f.p_clean, f.p_adv))[:top_k].tolist()
        if f.label not in order:
            order[-1] = f.label
    else:
        order = list(range(K))
    ylabels = [("* " if c == f.label else "") + _short(f.classes[c], 16) for c in order]
    right = 0.99 - 0.0075 * max(len(s) for s in ylabels) * 10.0 / figsize[0]

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 1.6], left=0.01, right=right,
                          top=0.86, bottom=0.2, wspace=0.08)
    axes = [fig.add_subplot(gs[0, i]) for i in range(4)]
    cls = f.classes

    img, cmap = display_image(f.x)
    axes[0].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title(f"clean: {_short(cls[k_clean], 14)} ({f.p_clean[k_clean]:.2f})",
                      fontsize=9, color="black")
    img, cmap = display_image(f.x_adv)
    axes[1].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    flipped = k_adv != k_clean
    axes[1].set_title(f"adversarial: {_short(cls[k_adv], 14)} ({f.p_adv[k_adv]:.2f})",
                      fontsize=9, color=_ADV_COLOR if flipped else "black")
    harm = core.harm_label(f.task, f.classes, f.label, k_clean, k_adv)
    axes[1].set_xlabel((f"{label}, eps {_fmt_eps(f.eps_255)}" + (f": {harm}" if harm else "")) if f.eps_255 > 0
                       else "eps 0: no attack", fontsize=8, color=_ADV_COLOR if harm else "black")
    if f.eps_255 > 0:
        gain = 0.5 / (f.eps_255 / 255.0)
        img, cmap = display_image(0.5 + gain * f.delta)
        axes[2].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[2].set_title(f"perturbation x{gain:.0f}", fontsize=9)
        axes[2].set_xlabel(f"max |δ| = {f.linf_255:.3g}/255; grey = 0", fontsize=8)
    else:
        axes[2].imshow(np.full(f.x.shape[1:], 0.5), cmap="gray", vmin=0, vmax=1)
        axes[2].set_title("perturbation: none", fontsize=9)
        axes[2].set_xlabel("eps = 0", fontsize=8)
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_xlabel(f"true: {_short(cls[f.label], 18)}", fontsize=8)

    _probability_panel(axes[3], f, order, ylabels)

    return figure_png(fig, dpi=dpi, quantize=quantize)


# --------------------------------------------------------------------------- widgets
NOTE = ("Perturbation panel: 0.5 + gain × (adversarial − clean), gain = 0.5 / eps, so "
        "±eps spans black to white and mid-grey means no change. eps is in [0, 1] pixel "
        "units times 255.")
ROWS = (("task", "arch", "image"), ("attack", "eps"))


def controls(data: ExplorerData, live_eps_255: Sequence[float] = ()) -> list[Control]:
    """The explorer's controls: task, architecture, image (dropdowns), attack (buttons), eps
    (a slider starting in the middle of the grid; live, it also offers ``live_eps_255``)."""
    eps = data.eps_255
    live = sorted(set(eps) | {float(e) for e in live_eps_255})
    return [
        Control.of("task", "task", data.tasks),
        Control.of("arch", "architecture", data.archs),
        Control.of("image", "image", list(range(data.n_images)), data.image_label),
        Control.of("attack", "attack", list(data.attacks), attack_label_of, kind="toggle"),
        Control.of("eps", "eps (pixels)", eps, _fmt_eps, kind="slider", live_values=live,
                   default=eps[min(len(eps) - 1, max(1, len(eps) // 2))]),
    ]


def _compute(data: ExplorerData):
    def compute(key: tuple) -> Frame:
        t, a = key[:2]
        if (t, a) not in data.models:
            raise Unavailable(f"No model for task {t} with architecture {a}.")
        return compute_frame(data, *key)

    return compute


def _batched(data: ExplorerData, progress: bool):
    return lambda: compute_frames(data, progress=progress)


def explorer(models: Mapping, images: Mapping, attacks: Sequence[str] | Mapping[str, Callable]
             = DEFAULT_ATTACKS, eps_255: Sequence[float] = DEFAULT_EPS_255,
             attack_fn: Callable[[str], Callable] | None = None, *, precompute: bool = False,
             mode: str | None = None, n_images: int | None = None,
             attack_kwargs: Mapping[str, dict] | None = None, seed: int = 0, render_kwargs: dict | None = None,
             progress: bool = True, cache_key: Any = None, live_eps_255: Sequence[float] = (),
             budget_mb: float = core.DEFAULT_BUDGET_MB):
    """The attack explorer widget.

    Parameters
    ----------
    models
        ``{(task, arch): model}``; a model is an ``nn.Module`` returning logits (or an
        object with such a ``.model``). Missing (task, arch) pairs show a note.
    images
        ``{task: (x, y, classes)}`` with ``x`` (N, C, H, W) float in [0, 1] or uint8,
        ``y`` int labels and the class names; an ``advmed.data.ImageSet`` works too.
    attacks
        attack names, resolved by ``attack_fn`` (default ``advmed.attacks.get_attack``),
        or ``{name: function}`` with ``function(model, x, y, *, eps, ...) -> x_adv``.
    eps_255
        the eps choices in /255 pixel units (0 = no attack).
    precompute, mode
        ``mode`` ``"static"`` / ``"live"`` / ``"auto"`` (:func:`advmed.widgets.resolve_mode`);
        without it, ``precompute=True`` is static and False live. Static: every frame is
        computed now and the widget works without a kernel (the HTML book). Live: attacks
        run on every change (needs a kernel).
    n_images
        how many images per task (default: all in live mode, 3 when precomputing).
    attack_kwargs
        ``{name: {kwarg: value}}`` passed to that attack (e.g. ``{"pgd": {"steps": 10}}``).
        ``seed`` is passed to attacks that take one.
    render_kwargs
        passed to :func:`render_frame` (``dpi``, ``figsize``, ``top_k``, ``quantize``).
    cache_key
        static: something that identifies the models and images (e.g. the checkpoint keys
        and :func:`advmed.cache.tensor_digest` of the images); the rendered frames are then
        stored with :func:`advmed.cache.memo` and a second build reloads them.
    live_eps_255
        live only: more eps choices than ``eps_255``.
    budget_mb
        static: the page's payload budget (stated under the widget; over it, a warning).
    """
    static = core.resolve_mode(mode) == "static" if mode is not None else bool(precompute)
    if static and n_images is None:
        n_images = 3
    data = prepare(models, images, attacks, eps_255, attack_fn=attack_fn, n_images=n_images,
                   attack_kwargs=attack_kwargs, seed=seed)
    ctl = controls(data, live_eps_255)
    render_kwargs = dict(render_kwargs or {})

    def render(frame: Frame) -> bytes:
        return render_frame(frame, **render_kwargs)

    key = None
    if cache_key is not None:
        key = {"models_and_images": cache_key, "attacks": list(data.attacks), "n_images": data.n_images,
               "attack_kwargs": attack_kwargs, "seed": seed, "render": render_kwargs}
    return core.explorer(ctl, _compute(data), render, mode="static" if static else "live",
                         computed=_batched(data, progress), cache_key=key, note=NOTE, rows=ROWS,
                         budget_mb=budget_mb, data=data, progress=progress, busy="running the attack…")


def static_explorer(models, images, attacks=DEFAULT_ATTACKS, eps_255=DEFAULT_EPS_255,
                    attack_fn=None, **kwargs):
    """``explorer(..., mode="static")``: the kernel-free explorer for the HTML book."""
    kwargs["mode"] = "static"
    return explorer(models, images, attacks, eps_255, attack_fn, **kwargs)
