"""Generic adversarial evaluation of one model, memoised: the attack sweep over eps, the
robust accuracy of the attack ensemble (worst case per image), and the masking diagnostics.

Every family that evaluates a model under white-box attacks calls these (chapter 2's sweeps,
chapter 5's check against the white box, chapter 7's defended models), so a result computed
for one chapter is read, not recomputed, by the others: the memo keys are the model's
checkpoint key, the images' fingerprint (:func:`.keys.images_key`) and the settings.

Attacks (``advmed.attacks``): FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015), I-FGSM
(Kurakin, Goodfellow & Bengio, ICLR 2017 workshop), PGD (Madry et al., ICLR 2018), MI-FGSM
(Dong et al., CVPR 2018), and the ensemble of :func:`advmed.attacks.robust_accuracy` (APGD,
Croce & Hein, ICML 2020). Every eps is an L-inf budget in [0, 1] pixel units; ``eps_255`` is
the same budget in 8-bit levels (eps = eps_255 / 255).
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...attacks import default_ensemble, get_attack, masking_diagnostics, robust_accuracy
from ...cache import memo
from ...data import TASKS
from ...device import module_device
from ...metrics import perturbation_stats
from ...models import as_module, as_pixels, as_rgb, gray_view, predict_proba
from ..cells import task_classes
from ..profiles import Profile
from .keys import images_key, model_columns
from .rows import metric_row
from .selection import batching, subset, test_images

#: The four white-box attacks of the studies (AdversarialMed's table), in their order.
ATTACKS: tuple[str, ...] = ("fgsm", "ifgsm", "pgd", "mifgsm")
#: Perturbation statistics (``advmed.metrics.perturbation_stats``) summarised per row.
PERTURBATION_STATS = ("l2", "linf", "psnr_db", "ssim")
#: Bump when a change here changes the numbers a memoised sweep holds.
SWEEP_VERSION = 4  # 2: gray images attacked in one channel; 3: nested budgets when early-stopped; 4: harm split


def _step_taken(name: str, eps: float, steps: int, step_size: float | None) -> tuple[int, float]:
    """(steps, step size in [0, 1] pixels) that the attack actually uses."""
    if name == "clean":
        return 0, 0.0
    spec = get_attack(name)
    return spec.steps_taken(steps), spec.step_size(eps, steps, step_size)


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
def disease_ids(trained: Any) -> tuple[int, ...] | None:
    """The disease class ids of a ``TrainedModel``'s task (``advmed.data.Task.disease``); None
    for a bare module, a task that names none, or a model whose classes are not its task's."""
    config, classes = getattr(trained, "config", None), getattr(trained, "classes", None)
    task = TASKS.get(getattr(config, "task", None))
    if task is None or not classes or not task.disease:
        return None
    if tuple(classes) != task_classes(task.name):
        return None
    return task.disease_ids(tuple(classes))


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
        ``target_rate``, ``missed_rate`` / ``false_alarm_rate`` with intervals (a
        ``TrainedModel`` of a task with disease classes; see
        :data:`~.rows.DENOMINATORS`), and ``{l2, linf, psnr_db, ssim}_{median, min, max}``
        ([0, 1] pixel units; NaN on the clean row).
    """
    model = as_module(trained_or_model)
    disease = disease_ids(trained_or_model)
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
                 "n": len(y_np), **metric_row(y_np, p_clean, clean_pred, n_boot=n_boot, seed=seed, target=tgt,
                                              disease=disease),
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
                         "n": len(y_np), **metric_row(y_np, proba, clean_pred, n_boot=n_boot, seed=seed, target=tgt,
                                                      disease=disease),
                         **_stat_summary(xf[:, :channels], seen), "channels": channels})
    finally:
        if dev != home:
            model.to(home)
    return pd.DataFrame(rows)


def memoised_sweep(namespace: str, tm: Any, images: Any, *, settings: Mapping[str, Any],
                   refresh: bool = False, progress: bool = False, **sweep_kwargs: Any) -> pd.DataFrame:
    """:func:`attack_sweep` of a ``TrainedModel`` on an ``ImageSet``, one memo entry **per
    attack** (so adding an attack computes only that attack), each keyed by the model's
    checkpoint key, the images' fingerprint and every setting (``settings`` plus
    ``sweep_kwargs``, with that attack's ``attack_kwargs`` only). The clean row comes from
    the first attack's entry."""
    kwargs = dict(sweep_kwargs)
    attacks = list(kwargs.pop("attacks", ATTACKS))
    per_attack = dict(kwargs.pop("attack_kwargs", None) or {})
    frames = []
    fixed = {"model": tm.config.key(), "images": images_key(images.images, images.labels), "settings": dict(settings)}
    for name in attacks:
        kw = dict(kwargs, attacks=[name])
        if per_attack.get(name):
            kw["attack_kwargs"] = {name: dict(per_attack[name])}
        key = {**fixed, "kwargs": kw, "version": SWEEP_VERSION}
        sweep = memo(namespace, key, lambda kw=kw: attack_sweep(tm, images.images, images.labels,
                                                                progress=progress, **kw), refresh=refresh)
        frames.append(sweep if not frames else sweep[sweep["attack"] != "clean"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- robust accuracy
#: The label of the ensemble's worst case in the results (beside the single attacks).
ENSEMBLE = "ensemble"
ROBUST_VERSION = 2  # 2: each budget also judged after rounding to 8 bits


def ensemble_settings(profile: Profile, images: Any = None) -> dict[str, Any]:
    """The robust ensemble's settings, with the chunking of ``images`` (:func:`batching`)."""
    s = profile.whitebox
    return {"steps": int(s.robust_steps), "restarts": int(s.robust_restarts), "pgd_restarts": int(s.pgd_restarts),
            **batching(profile, images)}


def robust_sweep(tm: Any, images: Any, *, eps_255: Sequence[float], steps: int, restarts: int, pgd_restarts: int,
                 n_boot: int, seed: int, progress: bool = False, batch_size: int | None = None) -> dict[str, Any]:
    """Robust accuracy of one model (:func:`advmed.attacks.robust_accuracy`): per image and
    budget the worst case over APGD-CE, APGD-margin (APGD-T with >= 4 classes) and PGD with
    restarts, on nested budgets (monotone in eps by construction). Gray images are attacked in
    one channel. Returns the curve (one row per eps, the clean row first), the cost per
    member, and per image the smallest budget that breaks it and the member that did.
    """
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
    eps = [float(e) for e in profile.whitebox.eps_255]
    sets: dict[str, Any] = {}
    curves, costs, first = [], [], {}
    for key, tm in tqdm(list(zoo.items()), desc="robust accuracy", unit="model", disable=not progress):
        if key[0] not in sets:
            sets[key[0]] = test_images(key[0], profile)
        images = sets[key[0]]
        s = ensemble_settings(profile, images)
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


# --------------------------------------------------------------------------- masking diagnostics
DIAGNOSTICS_VERSION = 3  # 2: monotone_eps judges the iterative attacks only; 3: tolerance at least one image


def diagnostics_sweep(tm: Any, images: Any, *, surrogate: Any, eps_255: float, steps: Sequence[int],
                      restarts: Sequence[int], eps_grid_255: Sequence[float], chosen_steps: int,
                      chosen_restarts: int, seed: int, batch_size: int | None = None) -> pd.DataFrame:
    """:func:`advmed.attacks.masking_diagnostics` of one model (gray images in one channel),
    one row per check: name, passed, summary and the numbers behind it."""
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
    s = profile.whitebox
    by_task: dict[str, list] = {}
    for key in zoo:
        by_task.setdefault(key[0], []).append(key)
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="masking diagnostics", unit="model", disable=not progress):
        images = test_images(key[0], profile)
        images = subset(images, s.diag_images, profile.seed).images
        peers = by_task[key[0]]
        sur_key = peers[(peers.index(key) + 1) % len(peers)] if len(peers) > 1 else None
        surrogate = zoo[sur_key] if sur_key is not None else None
        settings = {"eps_255": float(s.diag_eps_255), "steps": list(s.diag_steps), "restarts": list(s.diag_restarts),
                    "eps_grid_255": [float(e) for e in s.diag_eps_grid_255], "chosen_steps": int(s.robust_steps),
                    "chosen_restarts": int(s.robust_restarts), "seed": profile.seed, **batching(profile, images)}
        mkey = {"model": tm.config.key(), "surrogate": surrogate.config.key() if surrogate is not None else None,
                "images": images_key(images.images, images.labels), "version": DIAGNOSTICS_VERSION, **settings}
        out = memo("whitebox_diagnostics", mkey, lambda tm=tm, images=images, surrogate=surrogate, settings=settings:
                   diagnostics_sweep(tm, images, surrogate=surrogate, **settings), refresh=refresh)
        cols = model_columns(key, tm)
        sur_label = f"{sur_key[1]} ({sur_key[2]})" if sur_key is not None else ""
        frames.append(out.assign(**cols, surrogate=sur_label, n=len(images.labels))[
            list(cols) + ["surrogate", "n"] + list(out.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


__all__ = ["ATTACKS", "DIAGNOSTICS_VERSION", "ENSEMBLE", "PERTURBATION_STATS", "ROBUST_VERSION", "RobustResults",
           "SWEEP_VERSION", "attack_sweep", "diagnostics_results", "disease_ids", "diagnostics_sweep", "ensemble_settings",
           "memoised_sweep", "robust_results", "robust_sweep"]
