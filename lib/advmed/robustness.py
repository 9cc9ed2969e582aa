"""White-box robustness: accuracy and AUC of a model under gradient attacks, over eps.

One model: :func:`attack_sweep` runs every attack at every eps on the *same* test images
and measures the adversarial images with :func:`advmed.metrics.classification_metrics`
(accuracy, AUC, ... with percentile-bootstrap 95 % intervals) and their size with
:func:`advmed.metrics.perturbation_stats` (L2, Linf, PSNR, SSIM; median, min, max).

A profile: :func:`whitebox_results` does the same for every task x model of a profile,
memoised per model with :func:`advmed.cache.memo` under a key made of the model's
checkpoint key (``TrainConfig.key()``), a hash of the test images and labels, the attack
settings and the seed, so that a warm book build reloads it instead of attacking again.

Attacks (``advmed.attacks``): FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015), I-FGSM
(Kurakin, Goodfellow & Bengio, ICLR 2017 workshop), PGD (Madry et al., ICLR 2018) and
MI-FGSM (Dong et al., CVPR 2018). Every eps is an L-inf budget in [0, 1] pixel units;
``eps_255`` is the same budget in 8-bit levels (eps = eps_255 / 255).

The studies' settings and the tables that compare with them are in
:mod:`advmed.robustness_studies`; the figures in :mod:`advmed.robustness_plots`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .attacks import get_attack
from .cache import memo, tensor_digest
from .metrics import classification_metrics, fmt_interval, perturbation_stats
from .models import as_pixels

#: The four white-box attacks of the chapter, in the order of the studies' tables.
ATTACKS: tuple[str, ...] = ("fgsm", "ifgsm", "pgd", "mifgsm")
ATTACK_LABELS = {"clean": "clean", "fgsm": "FGSM", "ifgsm": "I-FGSM", "bim": "I-FGSM",
                 "pgd": "PGD", "mifgsm": "MI-FGSM"}
#: Metrics reported per row, each with ``_lo`` / ``_hi`` bootstrap bounds.
SWEEP_METRICS = ("accuracy", "auc", "balanced_accuracy")
#: Perturbation statistics (``advmed.metrics.perturbation_stats``) summarised per row.
PERTURBATION_STATS = ("l2", "linf", "psnr_db", "ssim")
#: Bump when a change here changes the numbers a memoised sweep holds.
SWEEP_VERSION = 1



# --------------------------------------------------------------------------- helpers
def _unwrap(trained_or_model: Any) -> torch.nn.Module:
    """A ``TrainedModel`` (``.model``) or an ``nn.Module`` returning logits."""
    model = getattr(trained_or_model, "model", trained_or_model)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a TrainedModel or an nn.Module, got {type(trained_or_model).__name__}")
    return model


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def images_key(x: Any, y: Any) -> dict[str, Any]:
    """A short description of a test-image selection for memo keys: shape and a SHA-256
    of the pixels and labels (so a different subset can never reuse a stored result)."""
    xs = torch.as_tensor(x.images if hasattr(x, "images") else x)
    ys = torch.as_tensor(y).long()
    return {"shape": list(xs.shape), "dtype": str(xs.dtype), "sha256": tensor_digest(xs, ys)}


def _step_taken(name: str, eps: float, steps: int, step_size: float | None) -> tuple[int, float]:
    """(steps, step size in [0, 1] pixels) that the attack actually uses."""
    if name == "clean":
        return 0, 0.0
    spec = get_attack(name)
    return spec.steps_taken(steps), spec.step_size(eps, steps, step_size)


def _row(y: np.ndarray, proba: np.ndarray, clean_pred: np.ndarray, *, n_boot: int, seed: int,
         target: np.ndarray | None) -> dict[str, float]:
    m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
    row: dict[str, float] = {}
    for name in SWEEP_METRICS:
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
    pred = proba.argmax(1)
    correct = clean_pred == y
    # flip rate: of the images the model got right, the share the attack makes it get wrong
    row["flip_rate"] = float((pred[correct] != y[correct]).mean()) if correct.any() else float("nan")
    row["target_rate"] = float((pred == target).mean()) if target is not None else float("nan")
    return row


def _stat_summary(x: torch.Tensor, x_adv: torch.Tensor | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if x_adv is None:
        for s in PERTURBATION_STATS:
            out[f"{s}_median"] = out[f"{s}_min"] = out[f"{s}_max"] = float("nan")
        return out
    st = perturbation_stats(x, x_adv)
    for s in PERTURBATION_STATS:
        v = st[s].to_numpy(dtype=float)
        out[f"{s}_median"], out[f"{s}_min"], out[f"{s}_max"] = (float(np.median(v)), float(v.min()),
                                                                  float(v.max()))
    return out


# --------------------------------------------------------------------------- one model
def attack_sweep(trained_or_model: Any, x: Any, y: Any, *, attacks: Sequence[str] = ATTACKS,
                 eps_255: Sequence[float] = (0, 1, 2, 4, 8), steps: int = 10,
                 step_size: float | None = None, seed: int = 0, restarts: int = 1,
                 targeted: bool = False, target: Any = None, n_boot: int = 1000,
                 batch_size: int | None = None, attack_kwargs: Mapping[str, Mapping] | None = None,
                 perturbation: bool = True, device: Any = None, progress: bool = True) -> pd.DataFrame:
    """Accuracy and AUC of one model under each attack at each eps, on the same images.

    Args:
        trained_or_model: a ``TrainedModel`` or an ``nn.Module`` returning logits.
        x: test images ``(N, C, H, W)``, uint8 or float in [0, 1] (or an ``ImageSet``).
        y: their labels ``(N,)``.
        attacks: names for :func:`advmed.attacks.get_attack` (fgsm, ifgsm, pgd, mifgsm).
        eps_255: L-inf budgets in 8-bit levels (eps in [0, 1] pixels = eps_255 / 255);
            0 gives the clean row (one, shared by all attacks).
        steps: iterations of the iterative attacks (FGSM is always one step of eps).
        step_size: step of the iterative attacks in [0, 1] pixels; None: each attack's
            default (I-FGSM / PGD ``2.5 eps / steps``, Madry et al.; MI-FGSM
            ``eps / steps``, Dong et al.).
        seed: seeds PGD's random starts and the bootstrap.
        restarts: PGD random restarts (the worst case per image is kept).
        targeted, target: targeted attacks (``target="other"``: the other class of a
            binary task, Finlayson et al. 2019); ``target_rate`` is then the share of
            images classified as the target.
        n_boot: bootstrap resamples for the 95 % intervals.
        batch_size: attack in chunks of this many images (None: all at once).
        attack_kwargs: ``{attack: {kwarg: value}}`` passed on (e.g. ``{"pgd": {"loss": "margin"}}``).
        perturbation: also summarise L2, Linf, PSNR (dB) and SSIM of ``x_adv - x``.
        device: where to attack (default: the model's device).
        progress: a tqdm bar over the (attack, eps) pairs.

    Returns:
        One row per (attack, eps > 0) plus one ``attack="clean"`` row at eps 0, columns
        ``attack, eps_255, eps`` (pixels), ``steps, step_size`` (pixels), ``n``,
        ``accuracy, auc, balanced_accuracy`` each with ``_lo`` / ``_hi`` (bootstrap 95 %),
        ``flip_rate`` (share of clean-correct images the attack makes wrong),
        ``target_rate``, and ``{l2, linf, psnr_db, ssim}_{median, min, max}`` ([0, 1]
        pixel units; NaN on the clean row).
    """
    from .models import predict_proba

    model = _unwrap(trained_or_model)
    dev = torch.device(device) if device is not None else _device_of(model)
    home = _device_of(model)
    xf = as_pixels(x)
    yt = torch.as_tensor(np.asarray(y)).long().reshape(-1)
    if len(xf) != len(yt):
        raise ValueError(f"x has {len(xf)} images but y has {len(yt)} labels")
    y_np = yt.numpy()
    eps_list = sorted({float(e) for e in eps_255})
    if any(e < 0 for e in eps_list):
        raise ValueError(f"eps_255 must be >= 0, got {list(eps_255)}")
    fns = {name: get_attack(name) for name in attacks}  # fails early on an unknown name

    if dev != home:
        model.to(dev)
    try:
        p_clean = predict_proba(model, xf, device=dev)
        clean_pred = p_clean.argmax(1)
        n_cls = p_clean.shape[1]
        tgt = None
        if targeted:
            if isinstance(target, str) and target == "other":
                if n_cls != 2:
                    raise ValueError(f'target="other" needs a binary task, the model has {n_cls} classes')
                tgt = 1 - y_np
            elif target is not None:
                tgt = np.broadcast_to(np.asarray(torch.as_tensor(target).cpu()), y_np.shape).astype(int)
        rows = [{"attack": "clean", "eps_255": 0.0, "eps": 0.0, "steps": 0, "step_size": 0.0,
                 "n": len(y_np), **_row(y_np, p_clean, clean_pred, n_boot=n_boot, seed=seed, target=tgt),
                 **_stat_summary(xf, None)}]
        jobs = [(a, e) for a in attacks for e in eps_list if e > 0]
        x_dev, y_dev = xf.to(dev), yt.to(dev)
        for name, e in tqdm(jobs, desc="attacks", unit="run", disable=not progress):
            eps = e / 255.0
            extra = dict((attack_kwargs or {}).get(name) or {})
            alpha_given = extra.pop("step_size", step_size)
            x_adv = fns[name].call(model, x_dev, y_dev, eps=eps, steps=steps, step_size=alpha_given,
                                   seed=seed, restarts=restarts, targeted=targeted, target=target,
                                   batch_size=batch_size, **extra).detach()
            proba = predict_proba(model, x_adv, device=dev)
            n_steps, alpha = _step_taken(name, eps, steps, alpha_given)
            rows.append({"attack": name, "eps_255": e, "eps": eps, "steps": n_steps, "step_size": alpha,
                         "n": len(y_np),
                         **_row(y_np, proba, clean_pred, n_boot=n_boot, seed=seed, target=tgt),
                         **_stat_summary(xf, x_adv.cpu() if perturbation else None)})
    finally:
        if dev != home:
            model.to(home)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a profile
def attack_settings(profile: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """The profile's ``attacks`` entry with ``None``-free overrides applied."""
    s = dict(profile.get("attacks", {}))
    s.update({k: v for k, v in overrides.items() if v is not None})
    return s


def test_images(task: str, profile: Mapping[str, Any], n_images: int | None = None, *,
                progress: bool = False):
    """The held-out images every attack of a task uses: ``advmed.experiment.test_set``
    with ``n_images`` (default ``profile["attacks"]["n_images"]``) as its limit (a
    stratified subset drawn with the profile's first seed; None: the whole test split)."""
    from .experiment import test_set

    n = profile.get("attacks", {}).get("n_images") if n_images is None else n_images
    return test_set(task, dict(profile), limit="all" if n is None else int(n), progress=progress)


test_images.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _model_columns(key: tuple, tm: Any) -> dict[str, Any]:
    task, arch, init = key
    return {"task": task, "arch": arch, "init": init,
            "init_used": getattr(tm, "init_used", init),
            "size": getattr(getattr(tm, "config", None), "size", None)}


def memoised_sweep(namespace: str, tm: Any, images: Any, *, settings: Mapping[str, Any],
                   refresh: bool = False, progress: bool = False, **sweep_kwargs: Any) -> pd.DataFrame:
    """:func:`attack_sweep` of a ``TrainedModel`` on an ``ImageSet``, memoised by the
    model's checkpoint key, the images' hash and every setting (``settings`` plus
    ``sweep_kwargs``)."""
    key = {"model": tm.config.key(), "images": images_key(images.images, images.labels),
           "settings": dict(settings), "kwargs": sweep_kwargs, "version": SWEEP_VERSION}
    return memo(namespace, key, lambda: attack_sweep(tm, images.images, images.labels,
                                                     progress=progress, **sweep_kwargs),
                refresh=refresh)


def whitebox_results(profile: Mapping[str, Any], zoo: Mapping[tuple, Any], *,
                     attacks: Sequence[str] | None = None, eps_255: Sequence[float] | None = None,
                     steps: int | None = None, n_images: int | None = None, n_boot: int | None = None,
                     refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """:func:`attack_sweep` for every (task, arch, init) of ``zoo``, memoised per model.

    Args:
        profile: ``advmed.profiles.get_profile(...)``; its ``attacks`` entry gives the
            defaults (``n_images``, ``eps_255``, ``steps``, ``restarts``), its first seed
            the seed, ``eval.n_boot`` the bootstrap resamples.
        zoo: ``advmed.experiment.trained_models(profile)``.
        attacks, eps_255, steps, n_images, n_boot: overrides (None: the profile's).
        refresh: recompute even when a stored result exists.
        progress: a tqdm bar over the models.

    Returns:
        The sweeps stacked, with leading columns ``task, arch, init, init_used, size``.
    """
    s = attack_settings(profile, eps_255=eps_255, steps=steps, n_images=n_images)
    attacks = tuple(attacks or s.get("attacks") or ATTACKS)
    seed = int(profile.get("seeds", [0])[0])
    n_boot = int(profile.get("eval", {}).get("n_boot", 1000) if n_boot is None else n_boot)
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="white-box sweeps", unit="model", disable=not progress):
        task = key[0]
        if task not in sets:
            sets[task] = test_images(task, profile, s.get("n_images"))
        sweep = memoised_sweep(
            "whitebox", tm, sets[task], settings={"n_images": s.get("n_images")}, refresh=refresh,
            attacks=list(attacks), eps_255=[float(e) for e in s["eps_255"]], steps=int(s["steps"]),
            seed=seed, restarts=int(s.get("restarts", 1)), n_boot=n_boot)
        cols = _model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- tables
def sweep_table(results: pd.DataFrame, *, metrics: Iterable[str] = ("accuracy", "auc"),
                digits: int = 3) -> pd.DataFrame:
    """A readable sweep: one row per (model, attack, eps), ``"value [lo, hi]"`` strings.

    The eps column is written both ways: ``eps_255`` (8-bit levels) and ``eps`` ([0, 1]).
    """
    id_cols = [c for c in ("task", "arch", "init", "init_used", "size") if c in results]
    out = results[id_cols + ["attack", "eps_255", "eps", "steps"]].copy()
    out["attack"] = out["attack"].map(lambda a: ATTACK_LABELS.get(a, a))
    out["eps"] = out["eps"].round(5)
    for m in metrics:
        out[m] = [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                  zip(results[m], results[f"{m}_lo"], results[f"{m}_hi"])]
    out["flip_rate"] = results["flip_rate"].round(digits)
    return out.reset_index(drop=True)


def accuracy_grid(results: pd.DataFrame, *, metric: str = "accuracy") -> pd.DataFrame:
    """Wide view: rows (task, arch, init, attack), columns eps in /255, cells ``metric``.

    The clean value is repeated as the eps 0 column of every attack.
    """
    keys = [c for c in ("task", "arch", "init") if c in results]
    clean = results[results["attack"] == "clean"]
    adv = results[results["attack"] != "clean"]
    parts = [adv]
    for a in adv["attack"].unique():
        parts.append(clean.assign(attack=a))
    full = pd.concat(parts, ignore_index=True)
    full["attack"] = pd.Categorical(full["attack"], [a for a in ATTACKS if a in set(full["attack"])]
                                    + sorted(set(full["attack"]) - set(ATTACKS)), ordered=True)
    grid = full.pivot_table(index=keys + ["attack"], columns="eps_255", values=metric,
                            observed=True).round(3)
    grid.columns = [f"{c:g}/255" for c in grid.columns]
    return grid


def perceptibility_table(results: pd.DataFrame, eps_255: float | None = None, *,
                         digits: int = 3) -> pd.DataFrame:
    """How visible each attack's perturbation is at one eps: median [min, max] over images.

    Args:
        results: :func:`whitebox_results` (or one sweep).
        eps_255: the eps to report (default: the grid's value closest to 2/255).

    Columns: L2 ([0, 1] pixels, whole image), Linf (in /255 levels), PSNR (dB) and SSIM
    (Wang et al. 2004), each ``"median [min, max]"`` over the test images, and the image
    size, since L2 and PSNR depend on it.
    """
    adv = results[results["attack"] != "clean"]
    grid = np.array(sorted(adv["eps_255"].unique()))
    if len(grid) == 0:
        raise ValueError("no adversarial rows in results")
    chosen = float(grid[np.argmin(np.abs(grid - (2.0 if eps_255 is None else eps_255)))])
    sel = adv[np.isclose(adv["eps_255"], chosen)]
    id_cols = [c for c in ("task", "arch", "init", "size") if c in sel]
    out = sel[id_cols].copy()
    out["attack"] = sel["attack"].map(lambda a: ATTACK_LABELS.get(a, a))
    out["eps_255"] = chosen
    scale = {"l2": 1.0, "linf": 255.0, "psnr_db": 1.0, "ssim": 1.0}
    names = {"l2": "L2 (pixels)", "linf": "Linf (/255)", "psnr_db": "PSNR (dB)", "ssim": "SSIM"}
    for s in PERTURBATION_STATS:
        k = scale[s]
        d = 2 if s in ("linf", "psnr_db") else digits
        out[names[s]] = [f"{m * k:.{d}f} [{lo * k:.{d}f}, {hi * k:.{d}f}]" for m, lo, hi in
                         zip(sel[f"{s}_median"], sel[f"{s}_min"], sel[f"{s}_max"])]
    return out.reset_index(drop=True)


def model_table(zoo: Mapping[tuple, Any]) -> pd.DataFrame:
    """The models under attack: task, arch, init requested and used, size (px), validation
    AUC and checkpoint key (``TrainConfig.key()``)."""
    rows = []
    for key, tm in zoo.items():
        row = _model_columns(key, tm)
        row["val_auc"] = round(float(getattr(tm, "val_auc", float("nan"))), 3)
        row["checkpoint"] = tm.config.key()
        rows.append(row)
    return pd.DataFrame(rows)
