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

The studies' own settings (AdversarialMed, Finlayson et al.) run here too
(:func:`adversarialmed_results`, :func:`finlayson_results`); the tables that compare
them with the published figures are in :mod:`.tables`, the figures in :mod:`.plots`,
the prose in :mod:`.report`.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...attacks import get_attack
from ...cache import memo, tensor_digest
from ...device import module_device
from ...metrics import attack_success, classification_metrics, perturbation_stats
from ...models import as_module, as_pixels, as_rgb, gray_view, predict_proba
from .. import references
from ..profiles import Profile
from ..zoo import test_set

#: The four white-box attacks of the chapter, in the order of the studies' tables.
ATTACKS: tuple[str, ...] = ("fgsm", "ifgsm", "pgd", "mifgsm")
#: Metrics reported per row, each with ``_lo`` / ``_hi`` bootstrap bounds.
SWEEP_METRICS = ("accuracy", "auc", "balanced_accuracy")
#: Perturbation statistics (``advmed.metrics.perturbation_stats``) summarised per row.
PERTURBATION_STATS = ("l2", "linf", "psnr_db", "ssim")
#: Bump when a change here changes the numbers a memoised sweep holds.
SWEEP_VERSION = 3  # 2: gray images attacked in one channel; 3: nested budgets when early-stopped



# --------------------------------------------------------------------------- helpers
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
    flips = attack_success(clean_pred[correct], pred[correct])
    row["flip_rate"] = float(flips.mean()) if flips.size else float("nan")
    row["target_rate"] = (float(attack_success(clean_pred, pred, target=target, among="all").mean())
                          if target is not None else float("nan"))
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
                 perturbation: bool = True, early_stop: bool = False, device: Any = None,
                 progress: bool = True) -> pd.DataFrame:
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
        early_stop: stop each image at its first success, on nested budgets (an image broken
            within a smaller eps keeps that adversarial image at every larger one, so each
            larger eps attacks only the survivors: robust accuracy per attack, monotone in eps
            and affordable). Off by default: a sweep then runs the
            studies' protocol (a fixed number of iterations; accuracy and AUC of the last
            iterate), whose AUC and perturbation sizes an early-stopped attack would
            understate. Robust accuracy (worst case, early-stopped) is
            :func:`advmed.attacks.robust_accuracy`.
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
    model = as_module(trained_or_model)
    home = module_device(model)
    dev = torch.device(device) if device is not None else home
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
        x_dev, y_dev = xf.to(dev), yt.to(dev)
        # gray images (three equal channels) are attacked in one channel, replicated: an
        # attacker cannot write colour into a grayscale file
        m_att, x_att, gray = gray_view(model, x_dev)
        channels = 1 if gray else int(xf.shape[1])
        rows = [{"attack": "clean", "eps_255": 0.0, "eps": 0.0, "steps": 0, "step_size": 0.0,
                 "n": len(y_np), **_row(y_np, p_clean, clean_pred, n_boot=n_boot, seed=seed, target=tgt),
                 **_stat_summary(xf, None), "channels": channels}]
        jobs = [(a, e) for a in attacks for e in eps_list if e > 0]
        y_t = torch.as_tensor(y_np)
        goal = None if tgt is None else torch.as_tensor(np.asarray(tgt)).long()
        best: dict[str, torch.Tensor] = {}
        done: dict[str, torch.Tensor] = {}
        for name, e in tqdm(jobs, desc="attacks", unit="run", disable=not progress):
            eps = e / 255.0
            extra = dict((attack_kwargs or {}).get(name) or {})
            alpha_given = extra.pop("step_size", step_size)
            kw = dict(eps=eps, steps=steps, step_size=alpha_given, seed=seed, restarts=restarts, targeted=targeted,
                      batch_size=batch_size, early_stop=early_stop, **extra)
            if not early_stop:
                x_adv = as_rgb(fns[name].call(m_att, x_att, y_dev, target=target, **kw).detach(), x_dev.shape[1])
            else:
                # nested budgets: an image broken within a smaller eps stays broken (its adversarial
                # image lies in every larger ball), so each larger eps attacks only the survivors
                if name not in best:
                    best[name] = x_dev.clone()
                    done[name] = torch.as_tensor(clean_pred != y_np if goal is None else clean_pred == goal.numpy())
                idx = (~done[name]).nonzero().squeeze(1)
                if idx.numel():
                    sub_target = goal[idx].to(dev) if goal is not None else None
                    sub = fns[name].call(m_att, x_att[idx.to(dev)], y_dev[idx.to(dev)], target=sub_target, **kw)
                    best[name][idx.to(dev)] = as_rgb(sub.detach(), x_dev.shape[1])
                    pred = predict_proba(model, best[name][idx.to(dev)], device=dev).argmax(1)
                    hit = pred != y_t[idx].numpy() if goal is None else pred == goal[idx].numpy()
                    done[name][idx[torch.as_tensor(hit)]] = True
                x_adv = best[name]
            proba = predict_proba(model, x_adv, device=dev)
            n_steps, alpha = _step_taken(name, eps, steps, alpha_given)
            seen = x_adv[:, :channels].cpu() if perturbation else None
            rows.append({"attack": name, "eps_255": e, "eps": eps, "steps": n_steps, "step_size": alpha,
                         "n": len(y_np), **_row(y_np, proba, clean_pred, n_boot=n_boot, seed=seed, target=tgt),
                         **_stat_summary(xf[:, :channels], seen), "channels": channels})
    finally:
        if dev != home:
            model.to(home)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a profile
def test_images(task: str, profile: Profile, n_images: int | None = None, *, progress: bool = False):
    """The held-out images every attack of a task uses: :func:`~advmed.experiments.zoo.test_set`
    with ``n_images`` (default ``profile.whitebox.n_images``) as its limit (a stratified
    subset drawn with the profile's first seed; None: the whole test split)."""
    n = profile.whitebox.n_images if n_images is None else n_images
    return test_set(task, profile, limit="all" if n is None else int(n), progress=progress)


test_images.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def model_columns(key: tuple, tm: Any) -> dict[str, Any]:
    """The columns that say which model a row is about: task, arch, init, init_used, size."""
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


def whitebox_results(profile: Profile, zoo: Mapping[tuple, Any], *, attacks: Sequence[str] | None = None,
                     refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """:func:`attack_sweep` for every (task, arch, init) of ``zoo``, memoised per model.

    The sweeps stop each image at its first success (robust accuracy of each attack, and
    affordable at 300 images); the studies' settings (:func:`adversarialmed_results`,
    :func:`finlayson_results`) run the full iterations as the studies did.

    Args:
        profile: :func:`~advmed.experiments.profiles.get_profile`; its ``whitebox`` section
            gives ``n_images``, ``eps_255``, ``steps`` and ``restarts``, its first seed the seed,
            ``eval.n_boot`` the bootstrap resamples.
        zoo: :func:`~advmed.experiments.zoo.trained_models`.
        attacks: attack names (default the four of :data:`ATTACKS`).
        refresh: recompute even when a stored result exists.
        progress: a tqdm bar over the models.

    Returns:
        The sweeps stacked, with leading columns ``task, arch, init, init_used, size``.
    """
    s = profile.whitebox
    attacks = tuple(attacks or ATTACKS)
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="white-box sweeps", unit="model", disable=not progress):
        task = key[0]
        if task not in sets:
            sets[task] = test_images(task, profile)
        sweep = memoised_sweep(
            "whitebox", tm, sets[task], settings={"n_images": s.n_images}, refresh=refresh,
            attacks=list(attacks), eps_255=[float(e) for e in s.eps_255], steps=int(s.steps),
            seed=profile.seed, restarts=int(s.restarts), n_boot=int(profile.eval.n_boot), early_stop=True,
            **batching(profile))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- the studies' settings
# (a) AdversarialMed (Li & Liu 2019): FGSM, I-FGSM, PGD and MI-FGSM on the pneumonia chest
#     X-rays at their eps 0.02 *in ImageNet-normalised units* = 0.02 x 0.226 = 0.00452 in
#     [0, 1] pixels (1.15/255); the iterative attacks take their adversarial training's step.
# (b) Finlayson et al. (2019): PGD *targeted to the other class*, eps 0.02 and step 0.01 in
#     their [-1, 1] input range = eps 0.01 (2.55/255) and step 0.005 in [0, 1] pixels, 20 steps.
def _study_budget(spec: Mapping[str, Any], eps_key: str, step_key: str, convention: str) -> dict[str, float]:
    eps = references.eps_to_pixels(spec[eps_key], convention)
    step = references.eps_to_pixels(spec[step_key], convention)
    return {"eps_study": spec[eps_key], "eps": eps, "eps_255": eps * 255, "step_study": spec[step_key],
            "step": step, "steps": int(spec["steps"])}


def batching(profile: Profile) -> dict[str, int]:
    """``{"batch_size": n}`` when the profile attacks in chunks (``whitebox.batch_size``), else
    ``{}``: memo keys (and results) of profiles that attack all images at once are unchanged."""
    n = profile.whitebox.batch_size
    return {} if n is None else {"batch_size": int(n)}


def study_steps(steps: int, profile: Profile) -> int:
    """A study's iteration count, capped at ``profile.whitebox.study_steps`` (a dry run's)."""
    cap = profile.whitebox.study_steps
    return int(steps) if cap is None else min(int(steps), int(cap))


def adversarialmed_eps() -> dict[str, float]:
    """Their eps and step (ImageNet-normalised units) in [0, 1] pixels (and /255), and steps."""
    return _study_budget(references.ADVERSARIALMED_ATTACKS, "eps_normalised", "step_normalised",
                         "imagenet_normalised")


def finlayson_eps() -> dict[str, float]:
    """Their eps and step ([-1, 1] inputs) in [0, 1] pixels (and /255), and steps."""
    return _study_budget(references.FINLAYSON_PGD, "eps_minus1_1", "step_minus1_1", "minus1_1")


# --------------------------------------------------------------------------- (a) AdversarialMed
def adversarialmed_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                           progress: bool = True) -> pd.DataFrame:
    """Clean, FGSM, I-FGSM, PGD, MI-FGSM at AdversarialMed's eps for every pneumonia_cxr
    model of ``zoo`` (empty when the profile has no such task), on the same test images
    as the sweep (:func:`test_images`)."""
    s = adversarialmed_eps()
    task = references.ADVERSARIALMED_ATTACKS["task"]
    n = profile.whitebox.n_images
    models = {k: tm for k, tm in zoo.items() if k[0] == task}
    if not models:
        return pd.DataFrame()
    images = test_images(task, profile)
    frames = []
    for key, tm in tqdm(list(models.items()), desc="AdversarialMed setting", disable=not progress):
        sweep = memoised_sweep("whitebox_adversarialmed", tm, images, settings={"n_images": n},
                               refresh=refresh, attacks=list(ATTACKS), eps_255=[0.0, s["eps_255"]],
                               steps=study_steps(s["steps"], profile), step_size=s["step"], seed=profile.seed,
                               n_boot=int(profile.eval.n_boot), **batching(profile))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- (b) Finlayson
def finlayson_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                      progress: bool = True) -> pd.DataFrame:
    """Targeted PGD to the other class in Finlayson et al.'s setting, for every binary
    task x model of ``zoo`` (multiclass tasks are left out: "the other class" is
    undefined there)."""
    s = finlayson_eps()
    n = profile.whitebox.n_images
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="Finlayson setting", disable=not progress):
        task = key[0]
        if len(getattr(tm, "classes", ())) not in (0, 2):
            continue
        if task not in sets:
            sets[task] = test_images(task, profile)
        if len(sets[task].classes) != 2:
            continue
        sweep = memoised_sweep("whitebox_finlayson", tm, sets[task], settings={"n_images": n},
                               refresh=refresh, attacks=["pgd"], eps_255=[0.0, s["eps_255"]],
                               steps=study_steps(s["steps"], profile), step_size=s["step"], seed=profile.seed,
                               targeted=True, target="other", n_boot=int(profile.eval.n_boot),
                               **batching(profile))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- robust accuracy
#: The label of the ensemble's worst case in the results (beside the single attacks).
ENSEMBLE = "ensemble"
ROBUST_VERSION = 1


def _ensemble_settings(profile: Profile) -> dict[str, Any]:
    s = profile.whitebox
    return {"steps": int(s.robust_steps), "restarts": int(s.robust_restarts), "pgd_restarts": int(s.pgd_restarts),
            **batching(profile)}


def robust_sweep(tm: Any, images: Any, *, eps_255: Sequence[float], steps: int, restarts: int, pgd_restarts: int,
                 n_boot: int, seed: int, progress: bool = False, batch_size: int | None = None) -> dict[str, Any]:
    """Robust accuracy of one model (:func:`advmed.attacks.robust_accuracy`): per image and
    budget the worst case over APGD-CE, APGD-margin (APGD-T with >= 4 classes) and PGD with
    restarts, on nested budgets (monotone in eps by construction). Gray images are attacked in
    one channel. Returns the curve (one row per eps, the clean row first), the cost per
    member, and per image the smallest budget that breaks it and the member that did.
    """
    from ...attacks import default_ensemble, robust_accuracy

    model = as_module(tm)
    dev = module_device(model)
    x = as_pixels(images.images).to(dev)
    y = torch.as_tensor(images.labels).long().to(dev)
    m_att, x_att, gray = gray_view(model, x)
    num_classes = len(getattr(tm, "classes", ())) or int(predict_proba(model, x[:1]).shape[1])
    grid = [float(e) / 255 for e in sorted(set(eps_255)) if float(e) > 0]
    res = robust_accuracy(m_att, x_att, y, eps_grid=grid, n_boot=n_boot, seed=seed, progress=progress,
                          batch_size=batch_size,
                          ensemble=default_ensemble(num_classes, steps=steps, restarts=restarts,
                                                    pgd_restarts=pgd_restarts))
    curve = res.to_frame()
    clean = {"eps": 0.0, "eps_255": 0.0, "accuracy": res.clean_accuracy.value, "accuracy_lo": res.clean_accuracy.lo,
             "accuracy_hi": res.clean_accuracy.hi, "auc": res.clean_auc.value, "auc_lo": res.clean_auc.lo,
             "auc_hi": res.clean_auc.hi}
    curve = pd.concat([pd.DataFrame([clean]), curve], ignore_index=True)
    curve["n"], curve["channels"] = len(y), 1 if gray else int(x.shape[1])
    cost = res.cost_frame().reset_index()
    return {"curve": curve, "cost": cost, "first_eps": np.asarray(res.first_eps, dtype=np.float64),
            "broken_by": [str(b) for b in res.broken_by], "members": list(res.members), "auc_note": res.auc_note}


class RobustResults(NamedTuple):
    """The ensemble's worst case for every model: ``curves`` (rows shaped like
    :func:`whitebox_results`, ``attack = "ensemble"``, one per eps, clean included, so the
    worst case draws beside the single attacks), ``costs`` (per model and member: images
    attacked and broken, queries, gradient evaluations, seconds) and ``first_eps`` (per model,
    each test image's smallest budget that breaks it, in [0, 1] pixels: 0 misclassified clean,
    inf never; in the order of :func:`test_images`)."""

    curves: pd.DataFrame
    costs: pd.DataFrame
    first_eps: Mapping[tuple, np.ndarray] = {}


def robust_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                   progress: bool = True) -> RobustResults:
    """:func:`robust_sweep` for every model of ``zoo`` on the sweep's test images, memoised
    by the checkpoint key, the images' digest and the ensemble's settings."""
    s = _ensemble_settings(profile)
    eps = [float(e) for e in profile.whitebox.eps_255]
    sets: dict[str, Any] = {}
    curves, costs, first = [], [], {}
    for key, tm in tqdm(list(zoo.items()), desc="robust accuracy", unit="model", disable=not progress):
        if key[0] not in sets:
            sets[key[0]] = test_images(key[0], profile)
        images = sets[key[0]]
        mkey = {"model": tm.config.key(), "images": images_key(images.images, images.labels), "eps_255": eps,
                "n_boot": int(profile.eval.n_boot), "seed": profile.seed, "version": ROBUST_VERSION, **s}
        out = memo("whitebox_robust", mkey, lambda tm=tm, images=images: robust_sweep(
            tm, images, eps_255=eps, n_boot=int(profile.eval.n_boot), seed=profile.seed, **s), refresh=refresh)
        cols = model_columns(key, tm)
        curve = out["curve"].assign(attack=ENSEMBLE, steps=s["steps"], members=" + ".join(out["members"]))
        curves.append(curve.assign(**cols)[list(cols) + list(curve.columns)])
        costs.append(out["cost"].assign(**cols)[list(cols) + list(out["cost"].columns)])
        first[key] = np.asarray(out["first_eps"], dtype=np.float64)
    if not curves:
        return RobustResults(pd.DataFrame(), pd.DataFrame())
    return RobustResults(pd.concat(curves, ignore_index=True), pd.concat(costs, ignore_index=True), first)


def with_ensemble(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """:func:`whitebox_results` with the ensemble's curves (:attr:`RobustResults.curves`)
    appended as ``attack = "ensemble"`` rows (its clean rows dropped: the sweep has them), so
    figures and tables draw the worst case beside the single attacks."""
    if curves.empty:
        return results
    extra = curves[curves["eps_255"] > 0]
    return pd.concat([results, extra[[c for c in extra.columns if c in results.columns]]], ignore_index=True)


# --------------------------------------------------------------------------- masking diagnostics
DIAGNOSTICS_VERSION = 2  # 2: monotone_eps judges the iterative attacks only


def diagnostics_sweep(tm: Any, images: Any, *, surrogate: Any, eps_255: float, steps: Sequence[int],
                      restarts: Sequence[int], eps_grid_255: Sequence[float], chosen_steps: int,
                      chosen_restarts: int, seed: int, batch_size: int | None = None) -> pd.DataFrame:
    """:func:`advmed.attacks.masking_diagnostics` of one model (gray images in one channel),
    one row per check: name, passed, summary and the numbers behind it."""
    from ...attacks import masking_diagnostics

    model = as_module(tm)
    dev = module_device(model)
    x = as_pixels(images.images).to(dev)
    y = torch.as_tensor(images.labels).long().to(dev)
    m_att, x_att, _ = gray_view(model, x)
    sur = None
    if surrogate is not None:
        sur_model = as_module(surrogate).to(dev)
        sur, _, _ = gray_view(sur_model, x)
    diag = masking_diagnostics(m_att, x_att, y, eps=float(eps_255) / 255, steps_grid=tuple(steps),
                               restarts_grid=tuple(restarts), chosen_steps=chosen_steps,
                               chosen_restarts=chosen_restarts, eps_grid=[e / 255 for e in eps_grid_255],
                               surrogate=sur, seed=seed, batch_size=batch_size, progress=False)
    rows = [{"check": c.name, "passed": bool(c.passed), "summary": c.summary,
             "numbers": "; ".join(f"{k} {v:.3f}" for k, v in c.numbers.items())} for c in diag.checks]
    return pd.DataFrame(rows)


def diagnostics_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                        progress: bool = True) -> pd.DataFrame:
    """The masking diagnostics of every model of ``zoo`` (memoised), on a stratified subset of
    ``profile.whitebox.diag_images`` test images; the transfer check uses the next model of the
    same task as the surrogate (a different architecture or initialisation)."""
    from ...data.splits import stratified_subset

    s = profile.whitebox
    by_task: dict[str, list] = {}
    for key in zoo:
        by_task.setdefault(key[0], []).append(key)
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="masking diagnostics", unit="model", disable=not progress):
        images = test_images(key[0], profile)
        if s.diag_images is not None and s.diag_images < len(images.labels):
            images = images.subset(stratified_subset(images.labels.numpy(), int(s.diag_images), profile.seed))
        peers = by_task[key[0]]
        sur_key = peers[(peers.index(key) + 1) % len(peers)] if len(peers) > 1 else None
        surrogate = zoo[sur_key] if sur_key is not None else None
        settings = {"eps_255": float(s.diag_eps_255), "steps": list(s.diag_steps), "restarts": list(s.diag_restarts),
                    "eps_grid_255": [float(e) for e in s.diag_eps_grid_255], "chosen_steps": int(s.robust_steps),
                    "chosen_restarts": int(s.robust_restarts), "seed": profile.seed, **batching(profile)}
        mkey = {"model": tm.config.key(), "surrogate": surrogate.config.key() if surrogate is not None else None,
                "images": images_key(images.images, images.labels), "version": DIAGNOSTICS_VERSION, **settings}
        out = memo("whitebox_diagnostics", mkey, lambda tm=tm, images=images, surrogate=surrogate, settings=settings:
                   diagnostics_sweep(tm, images, surrogate=surrogate, **settings), refresh=refresh)
        cols = model_columns(key, tm)
        sur_label = f"{sur_key[1]} ({sur_key[2]})" if sur_key is not None else ""
        frames.append(out.assign(**cols, surrogate=sur_label, n=len(images.labels))[
            list(cols) + ["surrogate", "n"] + list(out.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
