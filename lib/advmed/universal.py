"""Universal adversarial perturbations at the scale of an experiment (chapters 3 and 4).

The attack itself (one perturbation for many images) lives in :mod:`advmed.attacks.uap`;
this module decides *which* images a UAP is built from and evaluated on, runs it for every
task x model x norm x zeta x target of a profile, adds the random control, and turns the
results into the book's tables. Every UAP, with its predictions on the held-out images, is
memoised (:func:`advmed.cache.memo`) under the model's checkpoint key, the image selection,
the UAP settings and the seed, so a warm book build reloads it in seconds.

References
----------
- Moosavi-Dezfooli, Fawzi, Fawzi & Frossard (CVPR 2017), universal adversarial perturbations.
- Hirano & Takemoto (Algorithms 13:268, 2020), targeted UAPs (FGSM inner step).
- Hirano, Minagi & Takemoto (BMC Med Imaging 21:9, 2021): non-targeted and targeted UAPs on
  medical images reach > 80 % success at zeta = 2-4 %, "depended very little" on the
  architecture, and a random perturbation of the same norm stays low.
- Minagi, Hirano & Takemoto (J. Imaging 8:38, 2022): UAPs built only from natural (ImageNet)
  photos fool transfer-learned medical models. Their code (``kztakemoto/Natural_UAP``,
  ``run_Natural_UAP.py``) computes the norm bound from the **medical training images**
  (``norm_rate * mean ||X_train||_p``, raw pixels over all channels, then divided by 128 for
  their ``(X - 128) / 128`` inputs), not from the natural images; :func:`natural_uap_table`
  does the same (``zeta_reference="medical"``) and shows the bound the natural images would
  have given beside it.

Units and definitions
---------------------
- Pixels are in [0, 1]; ``eps`` (the absolute bound) is in [0, 1] pixel units, over all three
  channels. ``zeta`` is ``eps`` as a fraction of the mean per-image norm of the build images
  (L2: mean ``||x||_2``; L-inf: mean ``max |x|``): :func:`advmed.attacks.uap.eps_from_zeta`.
- *fooling rate*: share of held-out images whose predicted class changes under the UAP,
  relative to the clean prediction (the study's definition).
- *targeted success rate*: share of held-out images classified as the target. ``rate`` counts
  only images whose clean prediction is not already the target (ours, stricter on an
  imbalanced test set); ``rate_all`` divides by all images (the study's definition).
- Intervals are percentile bootstrap 95 % intervals over the held-out images.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .attacks.universal import eps_from_zeta, predict, random_control, uap
from .cache import memo, tensor_digest
from .metrics import attack_success, fmt_interval, mean_interval

#: Bumped when the way a UAP run is computed changes (invalidates the memoised results).
UNIVERSAL_VERSION = 1

#: Defaults for entries a profile's ``"uap"`` section may leave out.
DEFAULTS: dict[str, Any] = {
    "n_build": 256, "n_eval": None, "max_passes": 5, "zetas": [0.02, 0.04], "norms": ["l2", "linf"],
    "method": "iterative", "batch_size": 32, "step_fraction": None, "targeted": True, "targeted_zetas": None,
    "natural_images": 1000, "natural_split": "one_per_class_1000",
    "natural_models": ["mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch"],
    "random_kind": "sign", "claim_threshold": 0.80, "arch_spread": 0.10,
}

NON_TARGETED = "non-targeted"


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class UAPSettings:
    """How the UAPs of one experiment are built and evaluated (a profile's ``"uap"`` entry).

    Attributes:
        n_build: medical training images a UAP is built from (seeded stratified subset).
        n_eval: held-out test images it is evaluated on (None: the profile's test set).
        max_passes: passes over the build images (the study: 15).
        zetas: bounds as fractions of the mean image norm (the study: 0.02, 0.04).
        norms: ``"l2"`` and/or ``"linf"``.
        method: ``"iterative"`` (Moosavi-Dezfooli / Hirano, FGSM inner step, the study's) or
            ``"batched"`` (Shafahi et al. 2020 mini-batch sign-gradient ascent, much cheaper).
        batch_size: mini-batch of either method.
        step_fraction: batched only, the step as a fraction of ``eps`` (None: eps / 10);
            iterative: ignored (the study's FGSM step, 0.0012 in [0, 1] units).
        targeted: also build one targeted UAP per class.
        targeted_zetas: the zetas at which targeted UAPs are built (None: every zeta); a
            small profile builds them at its largest zeta only, to fit its time budget.
        natural_images, natural_split: how many ``imagenet_samples`` photos, from which folder.
        natural_models: the profile models chapter 4 attacks (``"arch:init"``).
        random_kind: L-inf random control, ``"sign"`` (+-eps per pixel: the largest L2 norm in
            the ball, a strong control) or ``"uniform"`` (the study's ART ``random_sphere``).
        claim_threshold: the study's "> 80 %" success claim.
        arch_spread: largest max - min rate across architectures still read as "depends very
            little on the architecture" (the study gives no number; this is our reading).
        seed: seeds image subsets, image order and the random controls.
        n_boot: bootstrap resamples for the intervals.
    """

    n_build: int = 256
    n_eval: int | None = None
    max_passes: int = 5
    zetas: tuple[float, ...] = (0.02, 0.04)
    norms: tuple[str, ...] = ("l2", "linf")
    method: str = "iterative"
    batch_size: int = 32
    step_fraction: float | None = None
    targeted: bool = True
    targeted_zetas: tuple[float, ...] | None = None
    natural_images: int = 1000
    natural_split: str = "one_per_class_1000"
    natural_models: tuple[str, ...] = ("mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch")
    random_kind: str = "sign"
    claim_threshold: float = 0.80
    arch_spread: float = 0.10
    seed: int = 0
    n_boot: int = 1000

    def build_key(self) -> dict[str, Any]:
        """What decides a UAP (not how it is summarised): part of every memo key."""
        return {"n_build": self.n_build, "max_passes": self.max_passes, "method": self.method,
                "batch_size": self.batch_size, "step_fraction": self.step_fraction, "seed": self.seed,
                "random_kind": self.random_kind}


def uap_settings(profile: Mapping[str, Any], **overrides: Any) -> UAPSettings:
    """The profile's ``"uap"`` entry (missing entries from :data:`DEFAULTS`), with overrides.

    ``None`` overrides are ignored, so a chapter can pass ``zetas=None`` for "the profile's".
    """
    spec = {**DEFAULTS, **dict(profile.get("uap", {}))}
    spec.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(spec) - {f for f in UAPSettings.__dataclass_fields__} - {"seed", "n_boot"}
    if unknown:
        raise KeyError(f"unknown uap settings {sorted(unknown)}; valid: "
                       f"{', '.join(sorted(UAPSettings.__dataclass_fields__))}")
    spec.setdefault("seed", int(profile.get("seeds", [0])[0]))
    spec.setdefault("n_boot", int(profile.get("eval", {}).get("n_boot", 1000)))
    for key in ("zetas", "norms", "natural_models", "targeted_zetas"):
        value = spec[key]
        if value is None:
            continue
        spec[key] = tuple([value] if isinstance(value, (str, float, int)) else value)
    if spec["method"] not in ("iterative", "batched"):
        raise ValueError(f"unknown uap method {spec['method']!r}; valid: iterative, batched")
    return UAPSettings(**spec)


# --------------------------------------------------------------------------- images
def _task_size(profile: Mapping[str, Any], task: str) -> int:
    try:
        return int(profile["tasks"][task]["size"])
    except KeyError:
        raise KeyError(f"task {task!r} is not in profile {profile.get('name', '?')!r}; its tasks: "
                       f"{', '.join(profile['tasks'])}") from None


def build_set(task: str, profile: Mapping[str, Any], settings: UAPSettings, *, progress: bool = True):
    """The medical images a UAP is built from: a seeded stratified subset of the *train* split
    at the profile's size, 3 channels (``advmed.data.ImageSet``)."""
    from .data import load_task

    return load_task(task, "train", size=_task_size(profile, task), channels=3, limit=settings.n_build,
                     seed=settings.seed, progress=progress)


def eval_set(task: str, profile: Mapping[str, Any], settings: UAPSettings, *, progress: bool = True):
    """Held-out images a UAP is evaluated on: :func:`advmed.experiment.test_set`, limited to
    ``settings.n_eval`` (stratified, seeded) when that is smaller."""
    from .experiment import test_set

    test = test_set(task, dict(profile), progress=progress)
    if settings.n_eval is not None and settings.n_eval < len(test):
        from .data.splits import stratified_subset

        test = test.subset(stratified_subset(test.labels.numpy(), int(settings.n_eval), settings.seed))
    return test


def natural_set(task: str, profile: Mapping[str, Any], settings: UAPSettings, *, progress: bool = True):
    """``settings.natural_images`` ImageNet photos (``imagenet_samples``) at the task's size.

    Photos are converted to the task's colour: grayscale tasks (chest X-rays) get the photos'
    luminance replicated to 3 channels, as Minagi et al. fed grayscale natural images to their
    grayscale models; colour tasks get RGB. Labels are meaningless here (the UAP is built
    against the medical model's own predictions on the photos).
    """
    from .data import get_spec, get_task, load_dataset

    gray = get_spec(get_task(task).dataset).grayscale
    ds = load_dataset("imagenet_samples", settings.natural_split, size=_task_size(profile, task),
                      channels=1 if gray else 3, limit=settings.natural_images, seed=settings.seed,
                      progress=progress)
    if gray:
        ds.images = ds.images.repeat(1, 3, 1, 1)
    return ds


def _selection(ds, **extra: Any) -> dict[str, Any]:
    """A memo-key description of an image selection (dataset, split, size, count, content)."""
    imgs = ds.images
    # a cheap content fingerprint: sums of a few strided slices catch a changed data layer
    fp = [int(imgs[i::97].sum()) for i in range(3)] if len(imgs) else []
    return {"name": ds.name, "split": ds.split, "shape": list(imgs.shape), "fingerprint": fp, **extra}


# --------------------------------------------------------------------------- one run
def _delta_step(settings: UAPSettings, eps: float) -> float | None:
    if settings.method == "batched" and settings.step_fraction is not None:
        return float(settings.step_fraction) * eps
    return None


def _clean_predictions(tm: Any, x_eval: torch.Tensor, eval_key: dict[str, Any]) -> torch.Tensor:
    """Clean predicted classes of one model on the held-out images (memoised)."""
    def compute():
        return predict(tm.model, x_eval.to(_device(tm))).cpu()

    return memo("uap_clean", {"v": UNIVERSAL_VERSION, "model": tm.config.key(), "eval": eval_key}, compute)


def _device(tm: Any) -> torch.device:
    p = next(tm.model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _GrayInput(torch.nn.Module):
    """One-channel input replicated to the three channels the model takes.

    Grayscale images (chest X-rays) are stored as three equal channels so that every
    architecture takes them; a perturbation of those should stay gray (an X-ray carries no
    colour, and the study's X-ray models took one channel), so it is built on one channel.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.expand(-1, 3, -1, -1))


def is_gray(*sets: Any) -> bool:
    """True when every image of every ``ImageSet`` has three identical channels."""
    for ds in sets:
        im = ds.images
        if im.shape[1] != 3 or not (torch.equal(im[:, 0], im[:, 1]) and torch.equal(im[:, 0], im[:, 2])):
            return False
    return True


def as_rgb(delta: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """A (1, 1, H, W) gray perturbation expanded to ``channels``; others unchanged."""
    return delta.expand(-1, channels, -1, -1).contiguous() if delta.shape[1] == 1 else delta


def uap_run(tm: Any, build: Any, evalset: Any, *, norm: str, zeta: float, target: int | None,
            settings: UAPSettings, source: str = "medical", reference_eps: float | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Build one UAP for ``tm`` from ``build`` and evaluate it on ``evalset`` (memoised).

    Args:
        tm: ``advmed.train.TrainedModel``.
        build, evalset: ``ImageSet`` of build / held-out images.
        norm, zeta: the bound; ``eps = zeta * mean norm of the build images`` unless
            ``reference_eps`` (already absolute, [0, 1] units) is given (natural-image UAPs
            take it from the medical images).
        target: None (non-targeted) or a class index.
        source: ``"medical"`` or ``"natural"``, recorded in the result.

    When both sets are grayscale (three equal channels, :func:`is_gray`) the UAP is built on
    one channel and replicated (``delta`` is then (1, 1, H, W); :func:`as_rgb` expands it),
    and ``eps`` refers to the one-channel norm, as the study's grayscale X-ray models.

    Returns:
        dict: ``delta`` (1, C, H, W) float tensor, ``summary`` (the :class:`UAPResult`
        summary: eps, passes, seconds, ...; ``gray``), ``clean`` / ``adv`` / ``random``
        predicted classes on ``evalset`` (int64 tensors), ``y`` its labels, ``random_l2`` /
        ``random_linf`` (the control's norms).
    """
    eval_key = _selection(evalset)
    gray = is_gray(build, evalset)
    key = {"v": UNIVERSAL_VERSION, "model": tm.config.key(), "build": _selection(build, source=source),
           "eval": eval_key, "norm": norm, "zeta": float(zeta), "target": target, "gray": gray,
           "reference_eps": None if reference_eps is None else round(float(reference_eps), 10),
           "settings": settings.build_key()}
    dev = _device(tm)

    def compute() -> dict[str, Any]:
        model = _GrayInput(tm.model) if gray else tm.model
        xb = build.float().to(dev)
        xe = evalset.float().to(dev)
        if gray:
            xb, xe = xb[:, :1].contiguous(), xe[:, :1].contiguous()
        eps = float(reference_eps) if reference_eps is not None else eps_from_zeta(xb, zeta, norm)
        res = uap(model, xb, zeta=zeta, eps=eps, norm=norm, target=target, method=settings.method,
                  step_size=_delta_step(settings, eps), max_passes=settings.max_passes,
                  batch_size=settings.batch_size, seed=settings.seed, progress=progress)
        rnd = random_control(res, seed=settings.seed + 1, linf_kind=settings.random_kind)
        summary = res.summary()
        summary.update(zeta=float(zeta), eps=eps, source=source, gray=gray)
        return {"delta": res.delta.cpu(), "summary": summary,
                "adv": predict(model, xe, res.delta).cpu(),
                "random": predict(model, xe, rnd.to(dev)).cpu(),
                "random_l2": float(rnd.norm()), "random_linf": float(rnd.abs().max())}

    out = memo("uap_run", key, compute)
    out = dict(out)
    out["clean"] = _clean_predictions(tm, evalset.float(), eval_key)
    out["y"] = evalset.labels.clone()
    return out


def rates(run: Mapping[str, Any], *, target: int | None, n_boot: int, seed: int) -> dict[str, Any]:
    """Rates of one :func:`uap_run` with bootstrap 95 % intervals, for the UAP and its control.

    Non-targeted: fooling rate (prediction changed). Targeted: success rate among images not
    already predicted as the target (``rate``), and among all images (``rate_all``, the study's).
    """
    clean = np.asarray(run["clean"])
    out: dict[str, Any] = {}
    for name in ("adv", "random"):
        pred = np.asarray(run[name])
        hit = attack_success(clean, pred, target=target)
        hit_all = attack_success(clean, pred, target=target, among="all")
        prefix = "rate" if name == "adv" else "random"
        est = mean_interval(hit, n_boot=n_boot, seed=seed)
        out.update({prefix: est.value, f"{prefix}_lo": est.lo, f"{prefix}_hi": est.hi,
                    f"{prefix}_all": float(hit_all.mean()) if hit_all.size else float("nan"),
                    f"{prefix}_n": int(hit.size)})
    return out


# --------------------------------------------------------------------------- the experiment
def _settings(profile: Mapping[str, Any], settings: UAPSettings | None, overrides: dict) -> UAPSettings:
    """``settings`` (or the profile's) with the non-None ``overrides`` applied."""
    if settings is None:
        return uap_settings(profile, **overrides)
    from dataclasses import replace

    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _targets(settings: UAPSettings, n_classes: int, zeta: float) -> list[int | None]:
    tz = settings.targeted_zetas
    targeted = settings.targeted and (tz is None or any(math.isclose(zeta, float(z)) for z in tz))
    return [None] + (list(range(n_classes)) if targeted else [])


def _attack_name(target: int | None, classes: Iterable[str]) -> str:
    return NON_TARGETED if target is None else f"targeted -> {list(classes)[target]}"


def uap_experiment(profile: Mapping[str, Any], *, trained: Mapping[tuple, Any] | None = None,
                   tasks: Any = None, models: Any = None, settings: UAPSettings | None = None,
                   progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Every medical-image UAP of a profile: task x model x norm x zeta x (non-targeted + each
    target class). Each run is memoised (:func:`uap_run`).

    Returns ``{"settings", "runs": {(task, arch, init, norm, zeta, target): run}, "sets":
    {task: eval ImageSet}, "trained"}`` for :func:`uap_table`, :func:`transfer_matrix` and the
    figures.
    """
    from .experiment import trained_models

    settings = _settings(profile, settings, overrides)
    if trained is None:
        trained = trained_models(dict(profile), tasks=tasks, models=models, progress=progress)
    elif tasks is not None or models is not None:
        from .experiment import _select_models, _select_tasks

        keep_t = set(_select_tasks(dict(profile), tasks))
        keep_m = {(m["arch"], m["init"]) for m in _select_models(dict(profile), models)}
        trained = {k: v for k, v in trained.items() if k[0] in keep_t and (k[1], k[2]) in keep_m}
    builds: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    jobs = []
    for key, tm in trained.items():
        task = key[0]
        if task not in builds:
            builds[task] = build_set(task, profile, settings, progress=progress)
            evals[task] = eval_set(task, profile, settings, progress=progress)
        for norm in settings.norms:
            for zeta in settings.zetas:
                for target in _targets(settings, len(tm.classes), float(zeta)):
                    jobs.append((key, norm, float(zeta), target))
    runs = {}
    for key, norm, zeta, target in tqdm(jobs, desc="UAPs", unit="uap", disable=not progress):
        tm = trained[key]
        runs[key + (norm, zeta, target)] = uap_run(tm, builds[key[0]], evals[key[0]], norm=norm, zeta=zeta,
                                                   target=target, settings=settings, progress=False)
    return {"settings": settings, "runs": runs, "sets": evals, "trained": dict(trained), "source": "medical"}


def uap_table(exp: Mapping[str, Any], *, numeric: bool = False, digits: int = 3) -> pd.DataFrame:
    """One row per UAP: setting columns, rate and random control with 95 % intervals, claim check.

    Columns: task, arch, init, init_used, size (px), norm, zeta, eps ([0, 1] units; L2 over the
    UAP's channels or L-inf), eps_255 (L-inf only: eps x 255), uap_channels (1: a gray UAP for
    a grayscale task, replicated to the model's 3 channels; 3: colour), method, passes, n_build, n_eval,
    attack, rate (non-targeted: fooling rate; targeted: success among images not already
    predicted as the target), rate_all (targeted: the study's definition, among all images),
    random (the same for the random control of the same norm), claim ("> 80 %" holds:
    ``yes (0.912)`` / ``no (0.412)``, judged on the study's own definition, ``rate_all``).
    ``numeric=True`` gives floats with ``_lo`` / ``_hi`` columns instead of strings.
    """
    s: UAPSettings = exp["settings"]
    rows = []
    for (task, arch, init, norm, zeta, target), run in exp["runs"].items():
        tm = exp["trained"][(task, arch, init)]
        r = rates(run, target=target, n_boot=s.n_boot, seed=s.seed)
        summ = run["summary"]
        row: dict[str, Any] = {
            "task": task, "arch": arch, "init": init, "init_used": tm.init_used, "size": tm.config.size,
            "norm": norm, "zeta": zeta, "eps": summ["eps"],
            "eps_255": summ["eps"] * 255 if norm == "linf" else float("nan"),
            "uap_channels": 1 if summ.get("gray") else 3,
            "method": summ["method"], "passes": summ["passes"], "n_build": summ["n_images"],
            "n_eval": len(run["y"]), "source": summ.get("source", "medical"),
            "attack": _attack_name(target, tm.classes), "target": -1 if target is None else target,
        }
        judged = r["rate_all"] if target is not None else r["rate"]
        holds = bool(np.isfinite(judged) and judged > s.claim_threshold)
        if numeric:
            row.update({k: r[k] for k in ("rate", "rate_lo", "rate_hi", "rate_all",
                                          "random", "random_lo", "random_hi", "random_all")})
            row["claim_holds"] = holds
        else:
            row["rate"] = fmt_interval(r["rate"], r["rate_lo"], r["rate_hi"], digits)
            row["rate_all"] = f"{r['rate_all']:.{digits}f}" if target is not None else ""
            row["random"] = fmt_interval(r["random"], r["random_lo"], r["random_hi"], digits)
            row["claim"] = f"{'yes' if holds else 'no'} ({judged:.{digits}f})"
        rows.append(row)
    df = pd.DataFrame(rows)
    if not numeric and len(df):
        df["eps"] = df["eps"].map(lambda v: f"{v:.4f}")
        df["eps_255"] = df["eps_255"].map(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")
        df = df.drop(columns=["target", "source"])
    return df


def claim_summary(table: pd.DataFrame, settings: UAPSettings) -> pd.DataFrame:
    """The study's two claims, checked per setting, from ``uap_table(..., numeric=True)``.

    One row per task x norm x zeta x attack: how many models exceed the success threshold
    (``> 80 %``, on the study's definition), the lowest and highest rate across architectures,
    their spread (max - min) and whether it is within ``settings.arch_spread`` ("depends very
    little on the architecture", our reading of the study's words).
    """
    rows = []
    judged = table["rate_all"].where(table["target"] >= 0, table["rate"])
    t = table.assign(judged=judged)
    for (task, norm, zeta, attack), g in t.groupby(["task", "norm", "zeta", "attack"], sort=False):
        spread = float(g["judged"].max() - g["judged"].min())
        rows.append({"task": task, "norm": norm, "zeta": zeta, "attack": attack, "models": len(g),
                     "above_threshold": f"{int((g['judged'] > settings.claim_threshold).sum())} of {len(g)}",
                     "lowest": round(float(g["judged"].min()), 3), "highest": round(float(g["judged"].max()), 3),
                     "random_highest": round(float(g["random_all"].where(g["target"] >= 0, g["random"]).max()), 3),
                     "spread": round(spread, 3),
                     "little_arch_dependence": f"{'yes' if spread <= settings.arch_spread else 'no'} "
                                               f"({spread:.3f})"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- transfer
def transfer_matrix(exp: Mapping[str, Any], task: str, *, norm: str | None = None, zeta: float | None = None,
                    progress: bool = True) -> pd.DataFrame:
    """Fooling rates of non-targeted UAPs built on one model (rows) applied to every model of the
    same task (columns), on the task's held-out images. The diagonal is each model's own
    fooling rate (the same number as :func:`uap_table`). Memoised per (source run, model).

    ``norm`` defaults to the settings' first norm, ``zeta`` to the largest.
    """
    s: UAPSettings = exp["settings"]
    norm = norm or s.norms[0]
    zeta = float(zeta if zeta is not None else max(s.zetas))
    models = [k for k in exp["trained"] if k[0] == task]
    if not models:
        raise KeyError(f"no models for task {task!r} in this experiment; tasks: "
                       f"{sorted({k[0] for k in exp['trained']})}")
    evalset = exp["sets"][task]
    eval_key = _selection(evalset)
    xe = evalset.float()

    def label(k):
        return f"{k[1]} ({k[2]})"

    mat = pd.DataFrame(index=[label(k) for k in models], columns=[label(k) for k in models], dtype=float)
    for src in tqdm(models, desc=f"transfer {task}", disable=not progress):
        run = exp["runs"][src + (norm, zeta, None)]
        for dst in models:
            if dst == src:
                fr = float((np.asarray(run["adv"]) != np.asarray(run["clean"])).mean())
            else:
                tm = exp["trained"][dst]
                clean = _clean_predictions(tm, xe, eval_key)

                def compute(tm=tm, delta=as_rgb(run["delta"], xe.shape[1])):
                    return predict(tm.model, xe.to(_device(tm)), delta.to(_device(tm))).cpu()

                adv = memo("uap_transfer", {"v": UNIVERSAL_VERSION, "model": tm.config.key(),
                                            "delta": _delta_key(run), "eval": eval_key}, compute)
                fr = float((np.asarray(adv) != np.asarray(clean)).mean())
            mat.loc[label(src), label(dst)] = fr
    mat.index.name = f"UAP built on ({norm}, zeta {zeta:g})"
    mat.columns.name = "applied to"
    return mat


def _delta_key(run: Mapping[str, Any]) -> str:
    """A stable digest of a perturbation tensor (memo key of everything applied with it)."""
    return tensor_digest(run["delta"].float())


# --------------------------------------------------------------------------- natural images
def natural_uap_experiment(profile: Mapping[str, Any], *, trained: Mapping[tuple, Any] | None = None,
                           tasks: Any = None, models: Any = None, settings: UAPSettings | None = None,
                           zeta_reference: str = "medical", progress: bool = True,
                           **overrides: Any) -> dict[str, Any]:
    """Non-targeted UAPs built ONLY from ImageNet photos (Minagi et al. 2022), evaluated on the
    medical held-out images, for ``settings.natural_models`` (default: MobileNet v1 0.75 from
    ImageNet and from scratch) of every task. Memoised like :func:`uap_experiment`.

    The photos' "labels" are the medical model's own predictions on them (a non-targeted UAP
    pushes them away from those). ``zeta_reference="medical"`` (Minagi et al.'s code) takes the
    absolute bound from the mean norm of the medical build images, so natural-image UAPs,
    medical-image UAPs and random controls have the same absolute size; ``"natural"`` takes it
    from the photos instead.
    """
    from .experiment import trained_models

    if zeta_reference not in ("medical", "natural"):
        raise ValueError(f"zeta_reference must be 'medical' or 'natural', got {zeta_reference!r}")
    settings = _settings(profile, settings, overrides)
    if models is None:
        models = available_models(profile, settings.natural_models)
    if trained is None:
        trained = trained_models(dict(profile), tasks=tasks, models=models, progress=progress)
    else:
        from .experiment import _select_models, _select_tasks

        keep_t = set(_select_tasks(dict(profile), tasks))
        keep_m = {(m["arch"], m["init"]) for m in _select_models(dict(profile), models)}
        trained = {k: v for k, v in trained.items() if k[0] in keep_t and (k[1], k[2]) in keep_m}
    runs, evals, refs = {}, {}, {}
    jobs = [(k, n, float(z)) for k in trained for n in settings.norms for z in settings.zetas]
    nat_sets: dict[str, Any] = {}
    med_sets: dict[str, Any] = {}
    for key, norm, zeta in tqdm(jobs, desc="natural-image UAPs", unit="uap", disable=not progress):
        task = key[0]
        if task not in nat_sets:
            nat_sets[task] = natural_set(task, profile, settings, progress=progress)
            med_sets[task] = build_set(task, profile, settings, progress=progress)
            evals[task] = eval_set(task, profile, settings, progress=progress)
        xm, xn = med_sets[task].float(), nat_sets[task].float()
        if is_gray(med_sets[task], nat_sets[task], evals[task]):
            xm, xn = xm[:, :1], xn[:, :1]  # the UAP will be one gray channel: so is its reference
        ref_med = eps_from_zeta(xm, zeta, norm)
        ref_nat = eps_from_zeta(xn, zeta, norm)
        refs[(task, norm, zeta)] = {"eps_medical_ref": ref_med, "eps_natural_ref": ref_nat}
        eps = ref_med if zeta_reference == "medical" else ref_nat
        runs[key + (norm, zeta, None)] = uap_run(trained[key], nat_sets[task], evals[task], norm=norm, zeta=zeta,
                                                 target=None, settings=settings, source="natural",
                                                 reference_eps=eps, progress=False)
    return {"settings": settings, "runs": runs, "sets": evals, "trained": dict(trained), "source": "natural",
            "references": refs, "zeta_reference": zeta_reference,
            "natural": {t: {"n": len(d), "split": settings.natural_split} for t, d in nat_sets.items()}}


def available_models(profile: Mapping[str, Any], wanted: Iterable[str]) -> list[str]:
    """The ``"arch:init"`` entries of ``wanted`` that the profile has (a small profile may lack
    the from-scratch twin); raises if none is left."""
    have = {f"{m['arch']}:{m.get('init', 'scratch')}" for m in profile["models"]}
    out = [m if ":" in m else f"{m}:scratch" for m in wanted]
    out = [m for m in out if m in have]
    if not out:
        raise KeyError(f"none of the natural-image UAP models {list(wanted)} is in profile "
                       f"{profile.get('name', '?')!r}; its models: {', '.join(sorted(have))}")
    return out


def natural_vs_medical(natural: Mapping[str, Any], medical: Mapping[str, Any], *,
                       digits: int = 3) -> pd.DataFrame:
    """Natural-image UAPs beside medical-image UAPs and random controls, same model, norm, zeta.

    One row per task x model x norm x zeta (non-targeted). ``eps`` is the common absolute bound
    (from the medical images, as Minagi et al.); ``eps_if_natural_ref`` is the bound the photos'
    own mean norm would have given.
    """
    s: UAPSettings = natural["settings"]
    rows = []
    for (task, arch, init, norm, zeta, target), run in natural["runs"].items():
        tm = natural["trained"][(task, arch, init)]
        rn = rates(run, target=None, n_boot=s.n_boot, seed=s.seed)
        med = medical["runs"].get((task, arch, init, norm, zeta, None))
        rm = rates(med, target=None, n_boot=s.n_boot, seed=s.seed) if med is not None else None
        ref = natural["references"][(task, norm, zeta)]
        rows.append({
            "task": task, "arch": arch, "init": init, "init_used": tm.init_used, "size": tm.config.size,
            "norm": norm, "zeta": zeta, "eps": round(run["summary"]["eps"], 4),
            "eps_if_natural_ref": round(ref["eps_natural_ref"], 4), "method": run["summary"]["method"],
            "n_natural": run["summary"]["n_images"], "n_eval": len(run["y"]),
            "natural_uap": fmt_interval(rn["rate"], rn["rate_lo"], rn["rate_hi"], digits),
            "medical_uap": fmt_interval(rm["rate"], rm["rate_lo"], rm["rate_hi"], digits) if rm else "n/a",
            "random": fmt_interval(rn["random"], rn["random_lo"], rn["random_hi"], digits),
            "natural_minus_random": round(rn["rate"] - rn["random"], digits),
            "natural_above_random": "yes" if rn["rate_lo"] > rn["random_hi"] else "no (intervals overlap)",
            "_natural": rn["rate"], "_medical": rm["rate"] if rm else float("nan"), "_random": rn["random"],
        })
    return pd.DataFrame(rows)


def minagi_comparison(table: pd.DataFrame, reference: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Minagi et al.'s one logged case beside ours with the same task, norm and zeta.

    ``table`` is :func:`natural_vs_medical`; ``reference`` defaults to
    :data:`advmed.references.MINAGI_NATURAL_UAP`. Our rows differ in architecture,
    resolution and dataset sizes; the columns say how.
    """
    from .references import MINAGI_NATURAL_UAP, STUDIES

    ref = dict(reference or MINAGI_NATURAL_UAP)
    rows = [{"source": "Minagi et al. 2022", "task": ref["task"], "arch": ref["arch"], "init": ref["init"],
             "size": ref["resolution"], "norm": ref["norm"], "zeta": ref["zeta"], "n_natural": "see paper",
             "n_eval": "their test set", "natural_uap": ref["fooling_rate"], "random": ref["random_fooling_rate"],
             "difference": round(ref["fooling_rate"] - ref["random_fooling_rate"], 3)}]
    ours = table[(table["task"] == ref["task"]) & (table["norm"] == ref["norm"])
                 & np.isclose(table["zeta"].astype(float), ref["zeta"])]
    for _, r in ours.iterrows():
        rows.append({"source": "ours", "task": r["task"], "arch": r["arch"], "init": r["init_used"],
                     "size": r["size"], "norm": r["norm"], "zeta": r["zeta"], "n_natural": r["n_natural"],
                     "n_eval": r["n_eval"], "natural_uap": round(r["_natural"], 3), "random": round(r["_random"], 3),
                     "difference": round(r["_natural"] - r["_random"], 3)})
    out = pd.DataFrame(rows)
    out.attrs["cite"] = STUDIES["minagi"]["cite"]
    return out


def settings_table(settings: UAPSettings) -> pd.DataFrame:
    """The UAP settings as a two-column table for the book."""
    d = asdict(settings)
    return pd.DataFrame({"value": [", ".join(map(str, v)) if isinstance(v, tuple) else v for v in d.values()]},
                        index=pd.Index(list(d), name="setting"))


def study_step_note() -> str:
    """The study's FGSM step in our units, for the prose (computed, not typed)."""
    from .attacks.universal import STUDY_STEP
    from .references import HIRANO_UAP

    return (f"{HIRANO_UAP['step']} in the study's (X - 128)/128 units = {STUDY_STEP:.5f} in [0, 1] pixel "
            f"units = {STUDY_STEP * 255:.3f}/255")

