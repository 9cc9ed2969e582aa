"""Universal adversarial perturbations at the scale of an experiment (chapters 3 and 4).

The attack itself (one perturbation for many images) lives in
:mod:`advmed.attacks.universal`; this module decides *which* images a UAP is built from and
evaluated on, runs it for every task x model x norm x zeta x target of a profile, adds the
random control, and returns a typed :class:`UAPExperiment` that :mod:`.tables` and
:mod:`.plots` turn into the book's tables and figures. Every UAP, with its predictions on the
held-out images, is memoised (:func:`advmed.cache.memo`) under the model's checkpoint key, a
digest of the image selection, the UAP settings and the seed, so a warm book build reloads it
in seconds.

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
  their ``(X - 128) / 128`` inputs), not from the natural images; :func:`natural_uap_experiment`
  does the same (``zeta_reference="medical"``) and records the bound the photos would give.

Units and definitions
---------------------
- Pixels are in [0, 1]; ``eps`` (the absolute bound) is in [0, 1] pixel units, over the
  UAP's channels. ``zeta`` is ``eps`` as a fraction of the mean per-image norm of the build
  images (L2: mean ``||x||_2``; L-inf: mean ``max |x|``):
  :func:`advmed.attacks.universal.eps_from_zeta`.
- *fooling rate*: share of held-out images whose predicted class changes under the UAP,
  relative to the clean prediction (the study's definition); *targeted success rate*: share
  of all held-out images classified as the target (the study's definition and the kernel's
  one, :func:`advmed.experiments.kernel.target_rate`). Both from
  :func:`advmed.metrics.attack_success`, intervals from :func:`advmed.metrics.mean_interval`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest
from tqdm.auto import tqdm

from ...attacks.universal import eps_from_zeta, predict, random_control, uap
from ...cache import memo, tensor_digest
from ...data import ImageSet, get_spec, get_task, load_dataset, load_task
from ...device import module_device
from ...metrics import Estimate, attack_success, mean_interval, perturbation_stats
from ...models import GrayInput, as_rgb, is_gray
from ..profiles import Profile, UAPSettings
from ..kernel import NON_TARGETED, RunKey, attack_name, selection_key, subset
from ..zoo import ModelKey, select, test_set, trained_models

#: Bumped when the way a UAP run is computed changes (invalidates the memoised results).
UNIVERSAL_VERSION = 2

@dataclass
class UAPRun:
    """One UAP and its predictions on the held-out images.

    Attributes:
        delta: the perturbation (1, C, H, W) in [0, 1] pixel units (C = 1 for a gray UAP).
        summary: how it was built (:meth:`advmed.attacks.universal.UAPResult.summary` plus
            ``zeta``, ``eps``, ``source`` and ``gray``).
        clean, adv, random: predicted classes (int64) without, with the UAP, with the control.
        y: the held-out labels.
        random_l2, random_linf: the random control's norms.
    """

    delta: torch.Tensor
    summary: dict[str, Any]
    clean: torch.Tensor
    adv: torch.Tensor
    random: torch.Tensor
    y: torch.Tensor
    random_l2: float
    random_linf: float

    @property
    def fooling_rate(self) -> float:
        return float(attack_success(self.clean, self.adv).mean())


class Rates(NamedTuple):
    """A UAP's success and its random control's, with bootstrap 95 % intervals.

    Non-targeted: the fooling rate (prediction changed, all images). Targeted: the kernel's one
    targeted success rate (:func:`~advmed.experiments.kernel.target_rate`), the share of
    **all** held-out images classified as the target, as Hirano et al. define it; the random
    control counts the images already classified as the target the same way."""

    rate: Estimate
    random: Estimate
    rate_all: float  # the point estimate of ``rate`` (kept for the tables that name it)
    random_all: float
    n: int  # images the rate is taken over


def rates(run: UAPRun, target: int | None, *, n_boot: int, seed: int) -> Rates:
    """Fooling rate (non-targeted) or targeted success rate of one run and of its control."""
    ests = [mean_interval(attack_success(run.clean, pred, target=target, among="all"), n_boot=n_boot, seed=seed)
            for pred in (run.adv, run.random)]
    return Rates(ests[0], ests[1], ests[0].value, ests[1].value, int(len(run.clean)))


@dataclass
class UAPExperiment:
    """Every UAP of one experiment, the images they were evaluated on and the models.

    Attributes:
        settings: the profile's UAP settings; seed and n_boot: the profile's.
        runs: one :class:`UAPRun` per :class:`RunKey`.
        sets: held-out ``ImageSet`` per task.
        trained: the models, by :class:`~advmed.experiments.zoo.ModelKey`.
        source: ``"medical"`` or ``"natural"`` (photos, chapter 4).
        references: natural only, per (task, norm, zeta) the bound from the medical and from
            the natural images; zeta_reference: which one was used.
        natural: natural only, per task the number of photos and their folder.
        photos: natural only, the photo source (:data:`PHOTO_SOURCES`).
    """

    settings: UAPSettings
    seed: int
    n_boot: int
    runs: dict[RunKey, UAPRun]
    sets: dict[str, Any]
    trained: dict[ModelKey, Any]
    source: str = "medical"
    references: dict[tuple, dict[str, float]] = field(default_factory=dict)
    zeta_reference: str = "medical"
    natural: dict[str, dict[str, Any]] = field(default_factory=dict)
    photos: str = "all"

    def keys(self, *, task: str | None = None, targeted: bool | None = None, zeta: float | None = None,
             norm: str | None = None) -> list[RunKey]:
        """The run keys that match every given filter (``targeted=False``: non-targeted only)."""
        out = []
        for k in self.runs:
            if task is not None and k.task != task or norm is not None and k.norm != norm:
                continue
            if zeta is not None and abs(k.zeta - float(zeta)) > 1e-12:
                continue
            if targeted is not None and (k.target is not None) != targeted:
                continue
            out.append(k)
        return out

    def strongest(self, task: str) -> RunKey:
        """The non-targeted run of ``task`` with the highest fooling rate."""
        keys = self.keys(task=task, targeted=False)
        if not keys:
            raise KeyError(f"no non-targeted UAP for task {task!r}; tasks: {sorted(self.sets)}")
        return max(keys, key=lambda k: self.runs[k].fooling_rate)

    def targeted_twins(self, key: RunKey) -> list[RunKey]:
        """The targeted runs with the same model, norm and zeta as ``key``."""
        return [k for k in self.runs if k[:5] == key[:5] and k.target is not None]

    def rates(self, key: RunKey) -> Rates:
        return rates(self.runs[key], key.target, n_boot=self.n_boot, seed=self.seed)


# --------------------------------------------------------------------------- images
def build_set(task: str, profile: Profile, *, progress: bool = True):
    """The medical images a UAP is built from: a seeded stratified subset of the *train* split
    at the profile's size, 3 channels (``advmed.data.ImageSet``)."""
    return load_task(task, "train", size=profile.task_size(task), channels=3, limit=profile.uap.n_build,
                     seed=profile.seed, progress=progress)


def eval_set(task: str, profile: Profile, *, progress: bool = True):
    """Held-out images a UAP is evaluated on: :func:`~advmed.experiments.zoo.test_set`, limited
    to ``profile.uap.n_eval`` (stratified, seeded) when that is smaller."""
    return subset(test_set(task, profile, progress=progress), profile.uap.n_eval, profile.seed).images


#: The photo sources a natural-image UAP can be built from. ``all``: every photo of the
#: profile's folders (chapter 4's main experiment). ``animals`` and ``objects``: two disjoint
#: sources for Minagi et al.'s cross-dataset finding (they compared ImageNet with Open Images,
#: which the mirror lacks): the photos of the ILSVRC-2012 classes 0-397 (WordNet's animal
#: subtree) and of the classes 398-999 (man-made objects, with some food, plants, people and
#: scenes); a detection photo of a category outside the 1,000 classes (no index) is in neither.
PHOTO_SOURCES: dict[str, tuple[int, int] | None] = {"all": None, "animals": (0, 398), "objects": (398, 1000)}


def _check_photos(photos: str) -> None:
    if photos not in PHOTO_SOURCES:
        raise ValueError(f"unknown photo source {photos!r}; valid: {', '.join(PHOTO_SOURCES)}")


def _in_source(labels: torch.Tensor, source: tuple[int, int]) -> torch.Tensor:
    lo, hi = source
    return (labels >= lo) & (labels < hi)


def source_photos(labels: torch.Tensor, natural_images: int) -> int:
    """Photos each of the two disjoint sources (``animals``, ``objects``) contributes, given the
    ImageNet classes of every photo (-1: none): the same number for both, the smaller source's
    size or half of ``natural_images``, whichever is less, so the two sources together use no
    more photos than the main experiment."""
    sizes = [int(_in_source(labels, r).sum()) for r in PHOTO_SOURCES.values() if r is not None]
    return min(int(natural_images) // 2, *sizes)


def _natural_splits(s: UAPSettings) -> tuple[str, ...]:
    return (s.natural_split,) if isinstance(s.natural_split, str) else tuple(s.natural_split)


def natural_set(task: str, profile: Profile, *, photos: str = "all", progress: bool = True):
    """ImageNet photos (``imagenet_samples``) at the task's size: ``profile.uap.natural_images``
    of them (``photos="all"``), or :func:`source_photos` of one of the two disjoint sources of
    :data:`PHOTO_SOURCES`; a seeded random subset where the folders hold more.

    Photos are converted to the task's colour: grayscale tasks (chest X-rays) get the photos'
    luminance replicated to 3 channels, as Minagi et al. fed grayscale natural images to their
    grayscale models; colour tasks get RGB. Labels are the photos' ImageNet classes (-1: none);
    they only select a source: the UAP is built against the medical model's own predictions on
    the photos.
    """
    _check_photos(photos)
    s = profile.uap
    gray = get_spec(get_task(task).dataset).grayscale
    splits = _natural_splits(s)
    parts = [load_dataset("imagenet_samples", split, size=profile.task_size(task), channels=1 if gray else 3,
                          progress=progress) for split in splits]
    ds = parts[0] if len(parts) == 1 else ImageSet(
        images=torch.cat([p.images for p in parts]), labels=torch.cat([p.labels for p in parts]),
        classes=parts[0].classes, name=parts[0].name, split="+".join(splits))
    n = s.natural_images
    if PHOTO_SOURCES[photos] is not None:
        n = source_photos(ds.labels, n)
        ds = ds.subset(_in_source(ds.labels, PHOTO_SOURCES[photos]).numpy())
        ds.split = f"{ds.split}:{photos}"
    if n < len(ds):
        ds = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(profile.seed))
                       [:n].sort().values.numpy())
    if gray:
        ds.images = ds.images.repeat(1, 3, 1, 1)
    return ds


# --------------------------------------------------------------------------- one run
def _delta_step(settings: UAPSettings, eps: float) -> float | None:
    if settings.method == "batched" and settings.step_fraction is not None:
        return float(settings.step_fraction) * eps
    return None


def clean_predictions(tm: Any, evalset: Any) -> torch.Tensor:
    """Clean predicted classes of one model on the held-out images (memoised)."""
    def compute():
        return predict(tm.model, evalset.float().to(module_device(tm.model))).cpu()

    return memo("uap_clean", {"v": UNIVERSAL_VERSION, "model": tm.config.key(), "eval": selection_key(evalset)},
                compute)


def uap_run(tm: Any, build: Any, evalset: Any, *, norm: str, zeta: float, target: int | None,
            settings: UAPSettings, seed: int, source: str = "medical", reference_eps: float | None = None,
            progress: bool = True) -> UAPRun:
    """Build one UAP for ``tm`` from ``build`` and evaluate it on ``evalset`` (memoised).

    Args:
        tm: ``advmed.train.TrainedModel``.
        build, evalset: ``ImageSet`` of build / held-out images.
        norm, zeta: the bound; ``eps = zeta * mean norm of the build images`` unless
            ``reference_eps`` (already absolute, [0, 1] units) is given (natural-image UAPs
            take it from the medical images).
        target: None (non-targeted) or a class index.
        settings, seed: how the UAP is built.
        source: ``"medical"`` or ``"natural"``, recorded in the result.

    When both sets are grayscale (three equal channels) the UAP is built on one channel and
    replicated (``delta`` is then (1, 1, H, W); :func:`advmed.models.as_rgb` expands it), and
    ``eps`` refers to the one-channel norm, as the study's grayscale X-ray models.
    """
    gray = is_gray(build, evalset)
    key = {"v": UNIVERSAL_VERSION, "model": tm.config.key(), "build": selection_key(build, source=source),
           "eval": selection_key(evalset), "norm": norm, "zeta": float(zeta), "target": target, "gray": gray,
           "reference_eps": None if reference_eps is None else round(float(reference_eps), 10),
           "settings": settings.build_key(seed)}
    dev = module_device(tm.model)

    def compute() -> dict[str, Any]:
        model = GrayInput(tm.model) if gray else tm.model
        xb, xe = build.float().to(dev), evalset.float().to(dev)
        if gray:
            xb, xe = xb[:, :1].contiguous(), xe[:, :1].contiguous()
        eps = float(reference_eps) if reference_eps is not None else eps_from_zeta(xb, zeta, norm)
        res = uap(model, xb, zeta=zeta, eps=eps, norm=norm, target=target, method=settings.method,
                  step_size=_delta_step(settings, eps), max_passes=settings.max_passes,
                  batch_size=settings.batch_size, min_gain=settings.min_gain, seed=seed, progress=progress)
        rnd = random_control(res, seed=seed + 1, linf_kind=settings.random_kind)
        summary = res.summary()
        summary.update(zeta=float(zeta), eps=eps, source=source, gray=gray)
        return {"delta": res.delta.cpu(), "summary": summary, "adv": predict(model, xe, res.delta).cpu(),
                "random": predict(model, xe, rnd.to(dev)).cpu(),
                "random_l2": float(rnd.norm()), "random_linf": float(rnd.abs().max())}

    out = memo("uap_run", key, compute)
    return UAPRun(delta=out["delta"], summary=out["summary"], clean=clean_predictions(tm, evalset),
                  adv=out["adv"], random=out["random"], y=evalset.labels.clone(),
                  random_l2=float(out["random_l2"]), random_linf=float(out["random_linf"]))


def random_delta(run: UAPRun, settings: UAPSettings, seed: int) -> torch.Tensor:
    """The random control of ``run`` itself (1, C, H, W), drawn again exactly as
    :func:`uap_run` drew it (seed + 1; L2: the UAP's own L2 norm, L-inf: its bound), so that
    ``run.random`` are its predictions; for figures that show the control."""
    s = run.summary
    eps = s["l2"] if s["norm"] == "l2" else s["eps"]
    return random_control(tuple(run.delta.shape), eps=eps, norm=s["norm"], seed=seed + 1,
                          linf_kind=settings.random_kind)


def run_for(exp: UAPExperiment, key: RunKey, profile: Profile, *, progress: bool = False) -> UAPRun:
    """The UAP of ``key``: ``exp.runs[key]`` when the experiment has it, else built now with the
    experiment's settings, seed and source (from medical images, or from photos with the
    experiment's ``zeta_reference``), on the same held-out images; memoised like every run,
    so asking again reloads it. For settings outside the profile's grid (a live explorer)."""
    if key in exp.runs:
        return exp.runs[key]
    if key.model not in exp.trained:
        raise KeyError(f"no model {key.model} in this experiment; models: {sorted(map(str, exp.trained))}")
    if key.task not in exp.sets:
        raise KeyError(f"no task {key.task!r} in this experiment; tasks: {sorted(exp.sets)}")
    tm, evalset = exp.trained[key.model], exp.sets[key.task]
    build, eps = build_set(key.task, profile, progress=progress), None
    if exp.source == "natural":
        photos = natural_set(key.task, profile, photos=exp.photos, progress=progress)
        ref = reference_eps(build, photos, evalset, zeta=key.zeta, norm=key.norm)
        build, eps = photos, ref["eps_medical_ref" if exp.zeta_reference == "medical" else "eps_natural_ref"]
    return uap_run(tm, build, evalset, norm=key.norm, zeta=key.zeta, target=key.target, settings=exp.settings,
                   seed=exp.seed, source=exp.source, reference_eps=eps, progress=progress)


# --------------------------------------------------------------------------- the experiment
def _targets(settings: UAPSettings, n_classes: int, zeta: float) -> list[int | None]:
    return [None] + settings.target_classes(n_classes, zeta)


def _zoo(profile: Profile, trained: Mapping[tuple, Any] | None, tasks: Any, models: Any,
         progress: bool) -> dict[ModelKey, Any]:
    if trained is None:
        return trained_models(profile, tasks=tasks, models=models, progress=progress)
    return select(trained, profile, tasks=tasks, models=models)


def uap_experiment(profile: Profile, *, trained: Mapping[tuple, Any] | None = None, tasks: Any = None,
                   models: Any = None, progress: bool = True) -> UAPExperiment:
    """Every medical-image UAP of a profile: task x model x norm x zeta x (non-targeted + each
    target class where ``profile.uap`` builds targeted ones). Each run is memoised."""
    s = profile.uap
    trained = _zoo(profile, trained, tasks, models, progress)
    builds: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    jobs = []
    for key, tm in trained.items():
        if key.task not in builds:
            builds[key.task] = build_set(key.task, profile, progress=progress)
            evals[key.task] = eval_set(key.task, profile, progress=progress)
        for norm in s.norms:
            for zeta in s.zetas:
                for target in _targets(s, len(tm.classes), float(zeta)):
                    jobs.append(RunKey(*key, norm, float(zeta), target))
    runs = {}
    for rk in tqdm(jobs, desc="UAPs", unit="uap", disable=not progress):
        runs[rk] = uap_run(trained[rk.model], builds[rk.task], evals[rk.task], norm=rk.norm, zeta=rk.zeta,
                           target=rk.target, settings=s, seed=profile.seed, progress=False)
    return UAPExperiment(settings=s, seed=profile.seed, n_boot=profile.eval.n_boot, runs=runs, sets=evals,
                         trained=dict(trained))


def uap_predictions(tm: Any, images: Any, delta: torch.Tensor, *, namespace: str = "uap_transfer") -> torch.Tensor:
    """Predicted classes of ``tm`` on ``images`` (an ``ImageSet``) with the UAP ``delta`` added
    (a gray UAP replicated to the images' channels), memoised per model, UAP and images in
    ``namespace``: a UAP applied to a model or images it was not built for (``uap_transfer``:
    chapter 3's transfer; ``natural_transfer``: chapter 4's; ``uap_photos``: another photo
    source)."""
    xe = images.float()
    dev = module_device(tm.model)

    def compute():
        return predict(tm.model, xe.to(dev), as_rgb(delta, xe.shape[1]).to(dev)).cpu()

    return memo(namespace, {"v": UNIVERSAL_VERSION, "model": tm.config.key(), "delta": tensor_digest(delta.float()),
                            "eval": selection_key(images)}, compute)


def transfer_matrix(exp: UAPExperiment, task: str, *, norm: str | None = None, zeta: float | None = None,
                    to: Mapping[ModelKey, Any] | None = None, progress: bool = True) -> pd.DataFrame:
    """Fooling rates of non-targeted UAPs built on one model (rows) applied to every model of the
    same task (columns), on the task's held-out images. A model's own UAP gives its own fooling
    rate (the same number as the UAP table). Memoised per (source run, model).

    ``to``: the models the UAPs are applied to (default: the experiment's own); chapter 4 applies
    its photo-built UAPs to every model of the task. ``norm`` defaults to the settings' first
    norm, ``zeta`` to the largest.
    """
    norm = norm or exp.settings.norms[0]
    zeta = float(zeta if zeta is not None else max(exp.settings.zetas))
    models = [k for k in exp.trained if k.task == task]
    if not models:
        raise KeyError(f"no models for task {task!r} in this experiment; tasks: "
                       f"{sorted({k.task for k in exp.trained})}")
    targets = {ModelKey(*k): tm for k, tm in (exp.trained if to is None else to).items()}
    columns = [k for k in targets if k.task == task]
    evalset = exp.sets[task]
    mat = pd.DataFrame(index=[k.label for k in models], columns=[k.label for k in columns], dtype=float)
    for src in tqdm(models, desc=f"transfer {task}", disable=not progress):
        run = exp.runs[RunKey(*src, norm, zeta, None)]
        for dst in columns:
            if dst == src:
                fr = run.fooling_rate
            else:
                tm = targets[dst]
                adv = uap_predictions(tm, evalset, run.delta, namespace="uap_transfer" if exp.source == "medical"
                                      else f"{exp.source}_transfer")
                fr = float(attack_success(clean_predictions(tm, evalset), adv).mean())
            mat.loc[src.label, dst.label] = fr
    mat.index.name = f"UAP built on ({norm}, zeta {zeta:g})"
    mat.columns.name = "applied to"
    return mat


class SourceComparison(NamedTuple):
    """One model, norm and zeta: the non-targeted UAPs from two disjoint photo sources.

    ``medical``: each source's fooling rate on the held-out medical images; ``difference``: the
    first source's minus the second's, a paired bootstrap interval over the same images, and
    ``p_mcnemar`` the exact McNemar test of the images fooled by one UAP only; ``photos``: each
    source's UAP's fooling rate on the *other* source's photos (against the model's clean
    predictions on them); ``random``: the larger random control of the two.
    """

    key: RunKey
    sources: tuple[str, str]
    medical: tuple[Estimate, Estimate]
    difference: Estimate
    p_mcnemar: float
    photos: tuple[Estimate, Estimate]
    random: Estimate
    n_photos: int
    n_eval: int


def compare_sources(first: UAPExperiment, second: UAPExperiment, profile: Profile, *,
                    progress: bool = False) -> list[SourceComparison]:
    """Minagi et al.'s cross-dataset finding: the non-targeted UAPs of two experiments built from
    disjoint photo sources (:func:`natural_uap_experiment` with ``photos="animals"`` and
    ``"objects"``), compared on the same held-out medical images and each applied to the other
    source's photos. Their keys must match."""
    if set(first.runs) != set(second.runs):
        raise ValueError("the two photo sources' experiments must have the same UAPs (model, norm, zeta); "
                         f"{first.photos}: {len(first.runs)}, {second.photos}: {len(second.runs)}")
    photos = {}
    rows = []
    for key in [k for k in first.runs if k.target is None]:
        runs = (first.runs[key], second.runs[key])
        tm = first.trained[key.model]
        for exp in (first, second):
            if (key.task, exp.photos) not in photos:
                photos[(key.task, exp.photos)] = natural_set(key.task, profile, photos=exp.photos, progress=progress)
        hit = [np.asarray(attack_success(r.clean, r.adv), dtype=np.float64) for r in runs]
        b, c = int(((hit[0] == 1) & (hit[1] == 0)).sum()), int(((hit[0] == 0) & (hit[1] == 1)).sum())
        on_other = []
        for run, other in zip(runs, (second, first)):
            ph = photos[(key.task, other.photos)]
            fooled = attack_success(clean_predictions(tm, ph), uap_predictions(tm, ph, run.delta, namespace="uap_photos"))
            on_other.append(mean_interval(fooled, n_boot=first.n_boot, seed=first.seed))
        randoms = [mean_interval(attack_success(r.clean, r.random), n_boot=first.n_boot, seed=first.seed)
                   for r in runs]
        rows.append(SourceComparison(
            key=key, sources=(first.photos, second.photos),
            medical=tuple(mean_interval(h, n_boot=first.n_boot, seed=first.seed) for h in hit),
            difference=mean_interval(hit[0] - hit[1], n_boot=first.n_boot, seed=first.seed),
            p_mcnemar=float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0,
            photos=tuple(on_other), random=max(randoms, key=lambda e: e.value),
            n_photos=int(first.natural[key.task]["n"]), n_eval=len(runs[0].y)))
    return rows


# --------------------------------------------------------------------------- natural images
def reference_eps(medical: Any, natural: Any, evalset: Any, *, zeta: float, norm: str) -> dict[str, float]:
    """The absolute bound ([0, 1] units) ``zeta`` gives from the medical build images and from
    the photos (``eps_medical_ref``, ``eps_natural_ref``); on one channel when the UAP will be
    gray (every set gray), since its norm is then taken over that channel."""
    xm, xn = medical.float(), natural.float()
    if is_gray(medical, natural, evalset):
        xm, xn = xm[:, :1], xn[:, :1]
    return {"eps_medical_ref": eps_from_zeta(xm, zeta, norm), "eps_natural_ref": eps_from_zeta(xn, zeta, norm)}


def available_models(profile: Profile, wanted: Iterable[str]) -> list[str]:
    """The ``"arch:init"`` entries of ``wanted`` that the profile has (a small profile may lack
    the from-scratch twin); raises if none is left."""
    have = {m.label for m in profile.models}
    out = [m if ":" in m else f"{m}:scratch" for m in wanted]
    out = [m for m in out if m in have]
    if not out:
        raise KeyError(f"none of the natural-image UAP models {list(wanted)} is in profile "
                       f"{profile.name!r}; its models: {', '.join(sorted(have))}")
    return out


def natural_source(photos: str) -> str:
    """The ``source`` a natural-image UAP records: ``natural`` (every photo) or
    ``natural:<photos>`` (one of the disjoint sources)."""
    _check_photos(photos)
    return "natural" if photos == "all" else f"natural:{photos}"


def natural_uap_experiment(profile: Profile, *, trained: Mapping[tuple, Any] | None = None, tasks: Any = None,
                           models: Any = None, zeta_reference: str = "medical", photos: str = "all",
                           targeted: bool = False, zetas: Iterable[float] | None = None,
                           progress: bool = True) -> UAPExperiment:
    """UAPs built ONLY from ImageNet photos (Minagi et al. 2022), evaluated on the medical
    held-out images, for ``profile.uap.natural_models`` (default: MobileNet v1 0.75 from
    ImageNet and from scratch) of every task. Memoised like :func:`uap_experiment`.

    ``targeted=False``: the non-targeted UAPs; the photos' "labels" are the medical model's own
    predictions on them (a non-targeted UAP pushes them away from those). ``targeted=True``: the
    targeted ones instead, toward each class the profile targets at each of its targeted zetas
    (as chapter 3's medical-image UAPs; Minagi et al.: natural-image UAPs are "useful for both
    non-targeted and targeted attacks"). ``photos``: the photo source (:data:`PHOTO_SOURCES`).
    ``zetas``: a subset of the profile's (default: all of them).

    ``zeta_reference="medical"`` (Minagi et al.'s code) takes the absolute bound from the mean
    norm of the medical build images, so natural-image UAPs, medical-image UAPs and random
    controls have the same absolute size; ``"natural"`` takes it from the photos instead.
    """
    if zeta_reference not in ("medical", "natural"):
        raise ValueError(f"zeta_reference must be 'medical' or 'natural', got {zeta_reference!r}")
    source = natural_source(photos)
    s = profile.uap
    zetas = [float(z) for z in (s.zetas if zetas is None else zetas)]
    if unknown := [z for z in zetas if not any(abs(z - float(p)) < 1e-12 for p in s.zetas)]:
        raise ValueError(f"zetas {unknown} are not the profile's; its zetas: {list(s.zetas)}")
    trained = _zoo(profile, trained, tasks, models if models is not None
                   else available_models(profile, s.natural_models), progress)
    runs, evals, refs = {}, {}, {}
    nat_sets: dict[str, Any] = {}
    med_sets: dict[str, Any] = {}
    jobs = [RunKey(*k, n, z, t) for k, tm in trained.items() for n in s.norms for z in zetas
            for t in (s.target_classes(len(tm.classes), z) if targeted else [None])]
    for rk in tqdm(jobs, desc="natural-image UAPs", unit="uap", disable=not progress):
        task = rk.task
        if task not in nat_sets:
            nat_sets[task] = natural_set(task, profile, photos=photos, progress=progress)
            med_sets[task] = build_set(task, profile, progress=progress)
            evals[task] = eval_set(task, profile, progress=progress)
        ref = reference_eps(med_sets[task], nat_sets[task], evals[task], zeta=rk.zeta, norm=rk.norm)
        refs[(task, rk.norm, rk.zeta)] = ref
        eps = ref["eps_medical_ref"] if zeta_reference == "medical" else ref["eps_natural_ref"]
        runs[rk] = uap_run(trained[rk.model], nat_sets[task], evals[task], norm=rk.norm, zeta=rk.zeta,
                           target=rk.target, settings=s, seed=profile.seed, source=source, reference_eps=eps,
                           progress=False)
    return UAPExperiment(settings=s, seed=profile.seed, n_boot=profile.eval.n_boot, runs=runs, sets=evals,
                         trained=dict(trained), source="natural", references=refs, zeta_reference=zeta_reference,
                         natural={t: {"n": len(d), "split": d.split} for t, d in nat_sets.items()},
                         photos=photos)


def source_comparison(profile: Profile, *, trained: Mapping[tuple, Any] | None = None,
                      zeta_reference: str = "medical", progress: bool = True) -> list[SourceComparison]:
    """Chapter 4's cross-dataset check: the non-targeted photo-built UAPs of the profile's
    natural models at its largest zeta, built once from the ``animals`` and once from the
    ``objects`` photos (:data:`PHOTO_SOURCES`), compared by :func:`compare_sources`."""
    first, second = (natural_uap_experiment(profile, trained=trained, zeta_reference=zeta_reference, photos=p,
                                            zetas=[max(profile.uap.zetas)], progress=progress)
                     for p in ("animals", "objects"))
    return compare_sources(first, second, profile, progress=progress)


__all__ = ["NON_TARGETED", "PHOTO_SOURCES", "Rates", "RunKey", "SourceComparison", "UAPExperiment", "UAPRun",
           "attack_name", "available_models", "build_set", "clean_predictions", "compare_sources", "eval_set",
           "natural_set", "natural_source", "natural_uap_experiment", "random_delta", "rates", "reference_eps",
           "run_for", "selection_key", "source_comparison", "source_photos", "transfer_matrix", "uap_experiment", "uap_predictions",
           "uap_run"]


# --------------------------------------------------------------------------- what the page draws
#: Held-out images each UAP's perceptibility is measured on (SSIM costs a few ms an image).
PERCEPTIBILITY_IMAGES = 64


def perceptibility(exp: UAPExperiment, *, n_images: int = PERCEPTIBILITY_IMAGES) -> pd.DataFrame:
    """How visible each UAP is, with chapter 2's one measure (:func:`advmed.metrics.perturbation_stats`)
    on the first ``n_images`` held-out images of its task: one row per UAP (``task, arch, init,
    norm, zeta, attack``), its L-inf and L2 norms in grey levels (x 255; over one channel for a
    grey UAP), and the median PSNR (dB) and SSIM of the perturbed against the clean image
    (after clipping to [0, 1], as the model sees it). Memoised per UAP and images."""
    rows = []
    for key, run in exp.runs.items():
        images = exp.sets[key.task]
        shown = images.subset(list(range(min(int(n_images), len(images.labels)))))
        mkey = {"v": UNIVERSAL_VERSION, "delta": tensor_digest(run.delta.float()),
                "images": selection_key(shown), "n": len(shown.labels)}

        def compute(run=run, shown=shown) -> dict[str, float]:
            x = shown.float()
            x_adv = (x + as_rgb(run.delta.float().cpu(), x.shape[1])).clamp(0, 1)
            stats = perturbation_stats(x, x_adv)
            return {"psnr_db": float(stats["psnr_db"].median()), "ssim": float(stats["ssim"].median())}

        out = memo("uap_perceptibility", mkey, compute)
        d = run.delta.float()
        rows.append({"task": key.task, "arch": key.arch, "init": key.init, "norm": key.norm, "zeta": key.zeta,
                     "attack": attack_name(key.target, exp.trained[ModelKey(key.task, key.arch, key.init)].classes),
                     "linf_255": float(d.abs().max()) * 255, "l2_255": float(d.norm()) * 255,
                     "n_images": len(shown.labels), **out})
    return pd.DataFrame(rows)


def strongest_keys(exp: UAPExperiment) -> list[RunKey]:
    """The strongest non-targeted UAP of every task (:meth:`UAPExperiment.strongest`), in task order."""
    return [exp.strongest(task) for task in exp.sets]


def confusion_keys(exp: UAPExperiment, *, twins: int = 2) -> dict[str, list[RunKey]]:
    """Per task, the strongest non-targeted UAP and up to ``twins`` targeted UAPs of the same
    model and bound: the columns of the confusion figure."""
    out = {}
    for task in exp.sets:
        key = exp.strongest(task)
        out[task] = [key] + exp.targeted_twins(key)[:twins]
    return out


def transfer_matrices(exp: UAPExperiment, *, to: Mapping[tuple, Any] | None = None,
                      progress: bool = True) -> dict[str, pd.DataFrame]:
    """:func:`transfer_matrix` of every task, by task (``to``: the models the UAPs are applied
    to, default the experiment's own)."""
    return {task: transfer_matrix(exp, task, to=to, progress=progress) for task in exp.sets}
