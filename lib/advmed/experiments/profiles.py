"""Experiment sizes, all in one place: the only module where a size is written.

A single parameter, ``profile``, sizes every chapter:

- ``smoke``: tiny subsets and a small CNN; the whole book executes in a few minutes.
  Used by the tests. Its numbers mean nothing about medicine.
- ``cpu``: the default without a GPU. Reduced resolution, subsets of the test sets and
  small or pretrained-mobile networks, so that the whole book builds cold on a 2-core
  machine within its time budget.
- ``paper``: the default with CUDA. 224 px (299 for Inception), every architecture,
  full test sets, the studies' training settings.
- ``paper-dry``: ``paper`` with every task, architecture, initialisation, seed, attack and
  chapter code path kept and the data shrunk (a few images per split, 32 px images, one
  epoch, two attack iterations; Inception's network still runs at its own side, resizing
  the images inside, at 75 px instead of 299): proves on a CPU in minutes that ``paper``
  runs (:func:`dry_run`). Its numbers mean nothing.

A profile is a frozen :class:`Profile` made of typed sections. Chapters read one with
:func:`get_profile`, passing their parameters as overrides (``None`` means "the
profile's"), and show it with :func:`profile_table`::

    prof = get_profile("cpu", tasks=["pneumonia_cxr"], whitebox={"steps": 20, "eps_255": None})
    prof.whitebox.steps, prof.task_size("pneumonia_cxr"), prof.seed   # 20, 64, 0
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from ..data import get_spec, get_task
from ..models import get_arch
from ..train import TrainConfig

PROFILE_NAMES = ("smoke", "cpu", "paper", "paper-dry")


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelSpec:
    """One architecture of a profile and the initialisation asked for."""

    arch: str
    init: str = "scratch"

    @property
    def label(self) -> str:
        return f"{self.arch}:{self.init}"

    @classmethod
    def parse(cls, m: Any) -> "ModelSpec":
        """``"resnet18"``, ``"resnet18:imagenet"``, ``{"arch": ..., "init": ...}`` or a ModelSpec."""
        if isinstance(m, ModelSpec):
            return m
        if isinstance(m, Mapping):
            return cls(str(m["arch"]), str(m.get("init", "scratch")))
        arch, _, init = str(m).partition(":")
        return cls(arch, init or "scratch")


@dataclass(frozen=True)
class EvalSettings:
    """Clean evaluation: test images per task (None: the whole split) and bootstrap resamples."""

    max_test: int | None
    n_boot: int


@dataclass(frozen=True)
class WhiteboxSettings:
    """White-box attacks of chapter 2.

    Attributes:
        n_images: held-out test images attacked per task (None: all).
        eps_255: L-inf budgets in 8-bit levels (eps = eps_255 / 255); 0 is the clean row.
        steps, restarts: iterations of the iterative attacks; PGD random restarts.
        report_eps_255: the budget of the perceptibility table and the gallery.
        gallery_images: images per gallery figure.
        study_steps: at most this many iterations in the studies' own settings (AdversarialMed,
            Finlayson et al.); None: the studies' own counts (a dry run caps them).
        batch_size: attack (and evaluate) this many images at a time; None: all at once (a
            whole test set at 224 px through a backward pass does not fit a GPU).
        chunk_pixels: with ``batch_size`` None, attack in chunks of at most ``chunk_pixels /
            side**2`` images where a test set is larger (None: all at once). On the 2-core CPU
            a MobileNet attack step at 128 px ran 4.3x faster in chunks of 32 than on 300
            images at once (the activations leave the caches), while at 28 px the whole set is
            fastest (``benchmarks/bench_chunk.py``); results differ only by the random starts.
        robust_steps, robust_restarts, pgd_restarts: the robust-accuracy ensemble (APGD-CE,
            APGD-margin or APGD-T, PGD): iterations of every member, APGD's restarts, PGD's.
        diag_images: test images the gradient-masking diagnostics run on (a stratified subset).
        diag_eps_255: the budget whose evaluation the diagnostics check.
        diag_steps, diag_restarts: the iterations and restarts compared for convergence.
        diag_eps_grid_255: the budgets of the single-attack curves (up to 32/255: accuracy
            must reach 0).
    """

    n_images: int | None
    eps_255: tuple[float, ...]
    steps: int
    restarts: int
    report_eps_255: float
    gallery_images: int
    robust_steps: int = 100
    robust_restarts: int = 1
    pgd_restarts: int = 5
    diag_images: int | None = 100
    diag_eps_255: float = 1.0
    diag_steps: tuple[int, ...] = (10, 50, 100)
    diag_restarts: tuple[int, ...] = (1, 5)
    diag_eps_grid_255: tuple[float, ...] = (1, 2, 4, 8, 16, 32)
    study_steps: int | None = None
    batch_size: int | None = None
    chunk_pixels: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_pixels"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"whitebox {name} must be an integer >= 1 or None, got {v!r}")


@dataclass(frozen=True)
class ExplorerSettings:
    """What the chapter-2 explorer precomputes: (task, model) pairs, images, attacks, eps;
    ``budget_mb``: the page's payload budget for its frames (MB of PNG, stated under it)."""

    pairs: int
    n_images: int
    attacks: tuple[str, ...]
    eps_255: tuple[float, ...]
    budget_mb: float = 2.0


@dataclass(frozen=True)
class UAPSettings:
    """How the universal perturbations of chapters 3 and 4 are built and evaluated.

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
        targeted_zetas: the zetas at which targeted UAPs are built (None: every zeta).
        min_gain: stop building a UAP after a pass that raised its build-set rate by less
            than this (None: every pass, as the study's ART call did).
        natural_images, natural_split: how many ``imagenet_samples`` photos, from which
            folder(s) (a tuple takes them from several, in order).
        natural_models: the profile models chapter 4 attacks (``"arch:init"``).
        random_kind: L-inf random control, ``"sign"`` (+-eps per pixel: the largest L2 norm in
            the ball, a strong control) or ``"uniform"`` (the study's ART ``random_sphere``).
        max_targets: targeted UAPs towards at most this many classes, spread evenly over the
            class list, first and last included (None: every class; a dry run's 2 keeps the
            7-class task's last class).
    """

    n_build: int
    n_eval: int | None
    max_passes: int
    zetas: tuple[float, ...]
    norms: tuple[str, ...]
    method: str
    batch_size: int
    step_fraction: float | None = None
    targeted: bool = True
    targeted_zetas: tuple[float, ...] | None = None
    min_gain: float | None = None
    natural_images: int = 1000
    natural_split: str | tuple[str, ...] = "one_per_class_1000"
    natural_models: tuple[str, ...] = ("mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch")
    random_kind: str = "sign"
    max_targets: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("iterative", "batched"):
            raise ValueError(f"unknown uap method {self.method!r}; valid: iterative, batched")
        if self.random_kind not in ("sign", "uniform"):
            raise ValueError(f"unknown random_kind {self.random_kind!r}; valid: sign, uniform")

    def build_key(self, seed: int) -> dict[str, Any]:
        """What decides a UAP (not how it is summarised): part of every memo key."""
        key = {"n_build": self.n_build, "max_passes": self.max_passes, "method": self.method,
               "batch_size": self.batch_size, "step_fraction": self.step_fraction, "seed": seed,
               "random_kind": self.random_kind}
        if self.min_gain is not None:
            key["min_gain"] = self.min_gain
        return key

    def targets_at(self, zeta: float) -> bool:
        """Whether targeted UAPs are built at this zeta."""
        tz = self.targeted_zetas
        return self.targeted and (tz is None or any(abs(float(zeta) - float(z)) < 1e-12 for z in tz))

    def target_classes(self, n_classes: int, zeta: float) -> list[int]:
        """The classes targeted UAPs are built towards at this zeta (none where not targeted)."""
        if not self.targets_at(zeta):
            return []
        m = self.max_targets
        if m is None or m >= n_classes:
            return list(range(n_classes))
        if m <= 1:
            return [0][:max(0, m)]
        return sorted({round(i * (n_classes - 1) / (m - 1)) for i in range(m)})


@dataclass(frozen=True)
class AblationSettings:
    """The resolution ablation (chapter 4): one task and model trained at several sizes.

    Attributes:
        task, model: what is retrained at each size (``"arch:init"``; the fine-tuned MobileNet).
        sizes: image sides in px (the study worked at 224 px; the cpu profile at 128).
        max_train: training images at every size (the same, so only the resolution changes).
        n_images: test images for clean AUC and robust accuracy.
        eps_255: the robust-accuracy budget (L-inf, /255).
        natural_images: photos the photo-built UAP (L-inf, ``zeta``) is made of.
        zeta: its bound, a fraction of the mean medical image norm.
    """

    task: str
    model: str
    sizes: tuple[int, ...]
    max_train: int | None
    n_images: int | None
    eps_255: float
    natural_images: int
    zeta: float


@dataclass(frozen=True)
class UAPExplorerSettings:
    """What the UAP explorers of chapters 3 and 4 precompute for the static page (a page holds
    every frame: frames = tasks x models x norms x zetas x targets x sources). Live, the
    explorer offers every run of the experiment and builds the others on demand.

    Attributes:
        tasks, models: how many of the experiment's tasks, and models per task, the page
            holds (the first ones; None: all).
        norms, zetas: the subsets of the UAP settings' norms and zetas (None: all).
        targets: also the targeted UAPs (where the experiment built them).
        n_images: held-out images in each frame's before / after grid.
        live_zetas: zetas a live explorer offers beyond the experiment's (built on demand).
        budget_mb: the page's payload budget (MB of PNG, stated under the explorer).
    """

    tasks: int | None = None
    models: int | None = None
    norms: tuple[str, ...] | None = None
    zetas: tuple[float, ...] | None = None
    targets: bool = True
    n_images: int = 3
    live_zetas: tuple[float, ...] = ()
    budget_mb: float = 2.0



@dataclass(frozen=True)
class BlackboxSettings:
    """The black-box attacks of chapter 5: transfer from surrogates, query attacks, U-SimBA.

    Attributes:
        model: ``"arch:init"``, the target of each task's query, U-SimBA and Finlayson runs and
            the architecture of the surrogates trained for it (a task without it: its first model).
        n_images: test images per task for the transfer attacks (a stratified subset of
            chapter 2's test images, so each image has its white-box worst case; None: all).
        eps_255: the L-inf budget (/255) of the transfer matrices and of the Square Attack; one
            of chapter 2's eps grid, so the white-box worst case at it is known.
        steps: iterations of the attacks run on a surrogate.
        attacks: the transfer attacks run on each single surrogate.
        ensemble_attack: the attack run on the ensemble of surrogates (logits averaged).
        transfer_tasks: the tasks with transfer matrices (None: every task of the profile).
        surrogate_seed_offset: a surrogate's seed is the profile's seed plus this.
        surrogate_train: the TrainConfig fields of the trained surrogates that differ from the
            target's (empty: the target's recipe with another seed).
        query_budgets: task -> the per-image query budget of the Square Attack and SimBA-DCT;
            the tasks the query attacks run on.
        query_images: test images per task attacked by queries (a subset of the transfer images).
        query_attacks: ``"square"`` (L-inf, ``eps_255``), ``"simba"`` (SimBA-DCT, L2 steps) and / or
            ``"hopskipjump"`` (label-only, L-inf ``eps_255``).
        simba_step: SimBA's step per DCT coordinate ([0, 1] pixel units; the paper: 0.2).
        curve_queries: the query budgets at which the success curve is tabulated (up to the budget).
        usimba_iterations: task -> U-SimBA iterations; the tasks U-SimBA runs on. Its zetas are
            chapter 3's (``uap.zetas``; targeted ones where ``uap.targets_at``).
        usimba_images: training images a U-SimBA perturbation is built from (Koga & Takemoto: 100).
        usimba_eval: held-out test images it is evaluated on (None: the profile's test set).
        usimba_norms: the norms of the U-SimBA bounds.
    """

    n_images: int | None
    eps_255: float
    steps: int
    surrogate_train: Mapping[str, Any]
    query_budgets: Mapping[str, int]
    query_images: int
    usimba_iterations: Mapping[str, int]
    usimba_images: int
    usimba_eval: int | None
    model: str = "mobilenet_v1_075:imagenet"
    attacks: tuple[str, ...] = ("pgd", "mifgsm")
    ensemble_attack: str = "mifgsm"
    transfer_tasks: tuple[str, ...] | None = None
    surrogate_seed_offset: int = 1
    query_attacks: tuple[str, ...] = ("square", "simba", "hopskipjump")
    simba_step: float = 0.2
    curve_queries: tuple[int, ...] = (100, 300, 1000, 3000, 10000)
    usimba_norms: tuple[str, ...] = ("l2",)

    def __post_init__(self) -> None:
        for a in (*self.attacks, self.ensemble_attack):
            if a not in ("pgd", "mifgsm", "ifgsm", "fgsm"):
                raise ValueError(f"unknown transfer attack {a!r}; valid: fgsm, ifgsm, pgd, mifgsm")
        bad = sorted(set(self.query_attacks) - {"square", "simba", "hopskipjump"})
        if bad:
            raise ValueError(f"unknown query attacks {bad}; valid: square, simba, hopskipjump")


@dataclass(frozen=True)
class PatchSettings:
    """The adversarial patches of chapter 6 (Brown et al. 2017; Finlayson et al. 2019).

    Scale: the patch side is ``scale x 0.4`` of the image side (``advmed.attacks.patch``), so
    scale 1.0 is Finlayson et al.'s evaluation size ("0.4" in their code).

    Attributes:
        tasks: the tasks patched (None: every task of the profile).
        model: ``"arch:init"``, the target model of each task (a task without it: its first
            model); the black-box patch is trained on chapter 5's surrogate of it (another seed).
        n_train: training images a patch is trained on (seeded stratified subset).
        n_eval: held-out test images it is evaluated on (None: the profile's test set).
        steps, lr, batch_size: Adam steps (mini-batches), learning rate ([0, 1] pixel units
            per step, about) and images per step, for each of the two patches ("other" class).
        scale_range, max_rotation, shape: the expectation over transformations of training
            (scale relative to the base 0.4; rotation in degrees).
        eval_scale: the scale of the comparison with Finlayson et al. (1.0 = their 0.4).
        eval_scales: the sweep of success against scale.
        n_placements: random placements per test image at each scale (theirs: 1).
        natural_location: where the natural control is cut from its image (``center``, ``random``).
        gallery_images: patched images shown per task.
    """

    n_train: int
    n_eval: int | None
    steps: int
    lr: float
    batch_size: int
    eval_scales: tuple[float, ...]
    tasks: tuple[str, ...] | None = None
    model: str = "mobilenet_v1_075:imagenet"
    scale_range: tuple[float, float] = (0.3, 1.5)
    max_rotation: float = 22.5
    shape: str = "circle"
    eval_scale: float = 1.0
    n_placements: int = 1
    natural_location: str = "center"
    gallery_images: int = 3


@dataclass(frozen=True)
class DefenseSettings:
    """The defenses of chapter 7 (AdversarialMed, Hirano et al., Cohen et al.).

    Attributes:
        model: ``"arch:init"``, the defended model of each task (a task without it: its first model).
        tasks: the tasks defended (None: every task of the profile).
        n_images: test images per task (a stratified subset of chapter 2's; None: all).
        eps_255: the L-inf budgets (/255) of the robust-accuracy curves (oblivious and adaptive).
        steps: iterations of the oblivious PGD and of the adaptive transfer sources (full, no early stop).
        jpeg_quality: libjpeg quality of the JPEG defense (AdversarialMed: 20).
        bitdepth_bits: bits per channel of the bit-depth reduction baseline (Xu et al. 2018's
            feature squeezing; None: not measured).
        adversarial: adversarial-training methods (``advmed.train.adversarial``): ``"adversarialmed"``
            (their 10-step I-FGSM recipe), ``"adversarialmed_fgsm"`` (their text's one-step FGSM
            variant) and optionally ``"pgd"`` / ``"fast_fgsm"``.
        pgd_eps_255: the training budget (/255) of ``"pgd"`` / ``"fast_fgsm"``.
        at_train: TrainConfig fields of the adversarially trained models that differ from the zoo's.
        at_warm_start: adversarial training fine-tunes the zoo's clean model of the task
            (``TrainConfig.warm_start``) instead of starting from the zoo's initialisation.
            AdversarialMed started from a trained chest X-ray network (CheXNet); from ImageNet,
            the robust selection kept a first epoch that predicted one class (clean AUC below
            0.5 on the cpu profile).
        vae_epochs, vae_patch, vae_images: the VAE denoiser (epochs, patch side or None for
            whole images, training images; None: the model's training subset).
        vae_width, vae_latent, vae_levels: its architecture (``advmed.defenses.VAEConfig``);
            vae_batch: its mini-batch (of patches with ``vae_patch``).
        eot_samples: draws per forward of the EOT attacker through the sampled VAE.
        retrain_rounds, retrain_uaps, retrain_uap_images, retrain_epochs: Hirano et al.'s retraining
            (rounds; UAPs per round; training images per UAP; fine-tuning epochs per round).
        retrain_zeta, retrain_norm: the UAPs' bound (fraction of the mean image norm) and norm.
        smoothing_task: the task of the randomized-smoothing baseline (None: no smoothing).
        smoothing_sigma: noise std in [0, 1] pixel units (also the training noise).
        smoothing_images, smoothing_n0, smoothing_n, smoothing_alpha: certification (Cohen et al.).
        smoothing_radii: L2 radii ([0, 1] pixel units) of the certified-accuracy curve.
        diag_images: test images of the masking diagnostics of each defended model.
        regularisation_fractions, regularisation_seeds, regularisation_task: AdversarialMed's
            regularisation experiment (claim 14): the defended model's recipe trained with and
            without the adversarial loss on these fractions of its training images, each with this
            many seeds, on this task (None: the first defended task); no fractions: not run.
        regularisation_train: TrainConfig fields of that experiment's trainings that differ from
            the zoo's (None: ``at_train``); it always starts from the zoo's initialisation.
        escalation_factor, escalation_restarts, escalation_square_queries: the cap of the
            escalation of a flagged defense (``advmed.attacks.default_stages``): the multiple of
            chapter 2's ensemble iterations, the restarts, and Square's queries (None: 10 per
            escalated iteration).
    """

    eps_255: tuple[float, ...]
    steps: int
    n_images: int | None
    at_train: Mapping[str, Any]
    vae_epochs: int
    retrain_rounds: int
    retrain_uaps: int
    retrain_uap_images: int
    smoothing_images: int
    smoothing_n: int
    model: str = "mobilenet_v1_075:imagenet"
    tasks: tuple[str, ...] | None = None
    jpeg_quality: int = 20
    bitdepth_bits: int | None = 5
    adversarial: tuple[str, ...] = ("adversarialmed", "adversarialmed_fgsm")
    at_warm_start: bool = True
    pgd_eps_255: float = 2.0
    vae_patch: int | None = None
    vae_images: int | None = None
    vae_width: int = 32
    vae_latent: int = 8
    vae_levels: int = 2
    vae_batch: int = 64
    eot_samples: int = 8
    retrain_epochs: int = 1
    retrain_zeta: float = 0.04
    retrain_norm: str = "linf"
    smoothing_task: str | None = None
    smoothing_sigma: float = 0.25
    smoothing_n0: int = 100
    smoothing_alpha: float = 0.001
    smoothing_radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    diag_images: int | None = 32
    regularisation_fractions: tuple[float, ...] = (0.1, 0.3, 1.0)
    regularisation_seeds: int = 3
    regularisation_task: str | None = None
    regularisation_train: Mapping[str, Any] | None = None
    escalation_factor: int = 4
    escalation_restarts: int = 2
    escalation_square_queries: int | None = None

    def __post_init__(self) -> None:
        valid = ("adversarialmed", "adversarialmed_fgsm", "pgd", "fast_fgsm")
        bad = sorted(set(self.adversarial) - set(valid))
        if bad:
            raise ValueError(f"unknown adversarial-training methods {bad}; valid: {', '.join(valid)}")
        if not self.eps_255 or any(float(e) <= 0 for e in self.eps_255):
            raise ValueError(f"defense eps_255 must be budgets > 0 (the clean row is always there), got {self.eps_255}")
        if self.retrain_norm not in ("linf", "l2"):
            raise ValueError(f"unknown retrain_norm {self.retrain_norm!r}; valid: linf, l2")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.bitdepth_bits is not None and not 1 <= int(self.bitdepth_bits) <= 8:
            raise ValueError(f"bitdepth_bits must be in 1..8 or None (not measured), got {self.bitdepth_bits}")
        if any(not 0 < float(f) <= 1 for f in self.regularisation_fractions):
            raise ValueError(f"regularisation_fractions are shares of the training images in (0, 1], got "
                             f"{self.regularisation_fractions}")
        for name in ("escalation_factor", "escalation_restarts", "regularisation_seeds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"defense {name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "vae_epochs", "retrain_rounds", "retrain_uaps", "retrain_uap_images",
                     "smoothing_images", "smoothing_n", "eot_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"defense {name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class PatchExplorerSettings:
    """What the patch explorer of chapter 6 precomputes for the static page (a page holds
    every frame: frames = tasks x patches x scales x rotations x locations). Live, the
    explorer offers every task and patch of the experiment and ``live_scales`` /
    ``live_rotations`` beyond the grid, computed on demand.

    Attributes:
        tasks: how many of the experiment's tasks the page holds (the first ones; None: all).
        patches: the kinds of patch shown (None: every kind the experiment made).
        scales: the subset of ``patch.eval_scales`` on the page (None: all); scale 1 = a patch
            side of 0.4 of the image side.
        rotations: the rotations on the page (degrees, clockwise).
        locations: where the patch is pasted (``random``, ``center``, ``top-left``,
            ``bottom-right``).
        n_images: held-out images in each frame.
        live_scales, live_rotations: the values a live explorer offers beyond the grid.
        budget_mb: the page's payload budget (MB of PNG, stated under the explorer).
    """

    tasks: int | None = None
    patches: tuple[str, ...] | None = None
    scales: tuple[float, ...] | None = None
    rotations: tuple[float, ...] = (0.0, 22.5)
    locations: tuple[str, ...] = ("random", "center")
    n_images: int = 3
    live_scales: tuple[float, ...] = ()
    live_rotations: tuple[float, ...] = ()
    budget_mb: float = 2.0


@dataclass(frozen=True)
class DefenseExplorerSettings:
    """What the defense explorer of chapter 7 precomputes for the static page (a page holds
    every frame: frames = tasks x (defenses other than JPEG + JPEG x qualities) x 2 attackers x
    budgets). Live, the explorer offers every task and defense of the chapter's results, every
    budget of ``defense.eps_255`` and ``live_qualities`` beyond the grid, computed on demand.
    A JPEG quality other than ``defense.jpeg_quality`` is a JPEG defense of its own: its robust
    accuracy is one more run of the chapter's JPEG evaluation (memoised), about the cost of the
    chapter's JPEG row.

    Attributes:
        tasks: how many of the results' tasks the page holds (the first ones; None: all).
        defenses: the defenses on the page (names of ``defenses.run.DEFENSES``; None: every
            defense the results hold).
        qualities: the JPEG qualities on the page (``defense.jpeg_quality`` is always one of them).
        eps_255: the budgets on the page (a subset of ``defense.eps_255``; None: all of them).
        live_qualities: the JPEG qualities a live explorer offers beyond the grid.
        budget_mb: the page's payload budget (MB of PNG, stated under the explorer).
    """

    tasks: int | None = 1
    defenses: tuple[str, ...] | None = None
    qualities: tuple[int, ...] = (10, 20, 50)
    eps_255: tuple[float, ...] | None = None
    live_qualities: tuple[int, ...] = (5, 75, 95)
    budget_mb: float = 2.0

    def __post_init__(self) -> None:
        bad = [q for q in (*self.qualities, *self.live_qualities) if not 1 <= int(q) <= 100]
        if bad:
            raise ValueError(f"defense_explorer qualities must be in 1..100, got {bad}")


SECTIONS: dict[str, type] = {"eval": EvalSettings, "whitebox": WhiteboxSettings, "explorer": ExplorerSettings,
                             "uap": UAPSettings, "ablation": AblationSettings, "uap_explorer": UAPExplorerSettings,
                             "blackbox": BlackboxSettings, "patch": PatchSettings,
                             "defense": DefenseSettings, "patch_explorer": PatchExplorerSettings,
                             "defense_explorer": DefenseExplorerSettings}


@dataclass(frozen=True)
class Profile:
    """Every size of one book build, by chapter section.

    Attributes:
        name, description: the profile and what it is for.
        tasks: task name -> image side in pixels (the order is the book's order).
        models: the architectures and initialisations trained for every task.
        train: :class:`advmed.train.TrainConfig` fields shared by every model.
        skip: task -> model labels (``"arch:init"``) not trained for that task (a model too
            costly at the task's resolution on this profile's machine).
        recipes: per initialisation (``"imagenet"``, ``"scratch"``), the TrainConfig fields
            that differ from ``train`` (fine-tuning and training from scratch are different
            recipes: AdversarialMed fine-tuned with Adam at 1e-4).
        eval, whitebox, explorer, uap, ablation, uap_explorer, blackbox, patch, patch_explorer,
            defense, defense_explorer: the chapters' settings.
        seeds: the first seeds every run; further seeds are for repeated runs.
        net_sizes: per architecture, the side its network runs at when that is not the
            task's: the model resizes its input inside (``TrainConfig.net_size``), so the
            images and every perturbation keep the task's side (Inception v3: 299 px).
    """

    name: str
    description: str
    tasks: Mapping[str, int]
    models: tuple[ModelSpec, ...]
    train: Mapping[str, Any]
    eval: EvalSettings
    whitebox: WhiteboxSettings
    explorer: ExplorerSettings
    uap: UAPSettings
    ablation: AblationSettings
    blackbox: BlackboxSettings
    patch: PatchSettings
    seeds: tuple[int, ...] = (0,)
    recipes: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    net_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    skip: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    uap_explorer: UAPExplorerSettings = dataclasses.field(default_factory=UAPExplorerSettings)
    # required (chapter 7 reads it); a default only because the sections before it have one
    defense: DefenseSettings = None  # type: ignore[assignment]
    patch_explorer: PatchExplorerSettings = dataclasses.field(default_factory=PatchExplorerSettings)
    defense_explorer: DefenseExplorerSettings = dataclasses.field(default_factory=DefenseExplorerSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.defense, DefenseSettings):
            raise TypeError(f"profile {self.name!r} needs a defense section (DefenseSettings(...)), got "
                            f"{type(self.defense).__name__}: chapter 7 reads it")

    def models_for(self, task: str) -> tuple[ModelSpec, ...]:
        """The models trained for ``task``: every model but those ``skip`` lists for it."""
        skipped = set(self.skip.get(task, ()))
        return tuple(m for m in self.models if m.label not in skipped)

    @property
    def seed(self) -> int:
        return int(self.seeds[0])

    def train_fields(self, init: str) -> dict[str, Any]:
        """The TrainConfig fields of a model with this initialisation: ``train``, then its recipe."""
        return {**self.train, **self.recipes.get(init, {})}

    def task_size(self, task: str) -> int:
        """The image side of ``task`` in this profile; a clear error for a task it lacks."""
        try:
            return int(self.tasks[task])
        except KeyError:
            raise KeyError(f"task {task!r} is not in profile {self.name!r}; its tasks: "
                           f"{', '.join(self.tasks)} (add one with get_profile(..., tasks=[...]))") from None

    def select(self, tasks: Iterable[str] | str | None = None,
               models: Iterable[Any] | str | None = None) -> "Profile":
        """The same profile restricted to some of its tasks and models (None: all).

        Models are chosen by ``"arch"`` (every init of it), ``"arch:init"``, a mapping or a
        :class:`ModelSpec`; names the profile lacks raise with the valid ones.
        """
        out = self
        if tasks is not None:
            names = [tasks] if isinstance(tasks, str) else list(tasks)
            out = dataclasses.replace(out, tasks={t: self.task_size(t) for t in names})
        if models is not None:
            out = dataclasses.replace(out, models=tuple(_match_models(self, models)))
        return out


def _match_models(profile: Profile, wanted: Iterable[Any] | str) -> list[ModelSpec]:
    wanted = [wanted] if isinstance(wanted, (str, Mapping, ModelSpec)) else list(wanted)
    chosen: list[ModelSpec] = []
    for m in wanted:
        explicit = not isinstance(m, str) or ":" in m
        spec = ModelSpec.parse(m)
        hits = [p for p in profile.models if p.arch == spec.arch and (not explicit or p.init == spec.init)]
        if not hits:
            valid = ", ".join(p.label for p in profile.models)
            raise KeyError(f"model {m!r} is not in profile {profile.name!r}; its models: {valid}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


# --------------------------------------------------------------------------- the profiles
_UAP_NATURAL = {"natural_split": "one_per_class_1000",
                "natural_models": ("mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch")}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny subsets and a small CNN; executes the whole book in minutes (tests)",
        tasks={"pneumonia_cxr": 32, "pneumoniamnist": 28},
        models=(ModelSpec("small_cnn", "scratch"), ModelSpec("mobilenet_v1_075", "imagenet")),
        train={"epochs": 2, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "max_train": 512,
               "max_val": 128, "patience": 2},
        eval=EvalSettings(max_test=128, n_boot=200),
        whitebox=WhiteboxSettings(n_images=32, eps_255=(0, 1, 4, 8), steps=5, restarts=1, report_eps_255=4,
                                  gallery_images=2, robust_steps=5, robust_restarts=1, pgd_restarts=1,
                                  diag_images=16, diag_eps_255=1, diag_steps=(2, 5), diag_restarts=(1, 2),
                                  diag_eps_grid_255=(1, 8, 32)),
        explorer=ExplorerSettings(pairs=1, n_images=2, attacks=("fgsm", "pgd"), eps_255=(0, 4)),
        uap=UAPSettings(n_build=64, n_eval=64, max_passes=2, zetas=(0.04,), norms=("linf",), method="batched",
                        batch_size=16, step_fraction=0.25, natural_images=64, **_UAP_NATURAL),
        ablation=AblationSettings(task="pneumonia_cxr", model="mobilenet_v1_075:imagenet", sizes=(32, 48),
                                  max_train=256, n_images=32, eps_255=1, natural_images=32, zeta=0.04),
        uap_explorer=UAPExplorerSettings(n_images=3, live_zetas=(0.02, 0.08), budget_mb=2.0),
        blackbox=BlackboxSettings(n_images=32, eps_255=4, steps=5, surrogate_train={"epochs": 1, "max_train": 256},
                                  query_budgets={"pneumonia_cxr": 100, "pneumoniamnist": 300}, query_images=8,
                                  usimba_iterations={"pneumoniamnist": 30}, usimba_images=32, usimba_eval=32,
                                  usimba_norms=("linf",)),
        patch=PatchSettings(tasks=("pneumonia_cxr",), n_train=64, n_eval=32, steps=20, lr=0.05, batch_size=8,
                            eval_scales=(0.5, 1.0, 1.5), gallery_images=2),
        defense=DefenseSettings(model="small_cnn:scratch", tasks=("pneumoniamnist",), n_images=32, eps_255=(1, 4),
                                steps=5, at_train={}, vae_epochs=8, vae_images=512, vae_patch=16, vae_width=16,
                                vae_latent=4, vae_levels=1, eot_samples=4,
                                retrain_rounds=1, retrain_uaps=2, retrain_uap_images=64, smoothing_task="pneumoniamnist",
                                smoothing_images=16, smoothing_n0=20, smoothing_n=100, smoothing_alpha=0.01,
                                diag_images=16, escalation_factor=2, escalation_restarts=1,
                                escalation_square_queries=50, regularisation_fractions=(0.25, 1.0),
                                regularisation_seeds=2, regularisation_train={"max_train": 256}),
        # 1 task x 3 patches x 2 scales x 2 rotations x 2 locations = 24 frames at 32 px
        patch_explorer=PatchExplorerSettings(scales=(0.5, 1.0), n_images=2, live_scales=(0.75, 1.25),
                                             live_rotations=(10.0, 45.0), budget_mb=2.0),
        # 1 task x (6 defenses + JPEG x 3 qualities) x 2 attackers x 2 budgets = 36 frames at 28 px;
        # the two other qualities are two more JPEG runs of 32 images (seconds each)
        defense_explorer=DefenseExplorerSettings(tasks=1, qualities=(10, 20, 50), live_qualities=(5, 75),
                                                 budget_mb=2.0),
    ),
    "cpu": Profile(
        name="cpu",
        description=("2-core CPU: the chest X-ray and dermoscopy tasks at 128 px (the mobile networks), the "
                     "MedMNIST tasks at 28 px, the studies' recipes, 300 attacked images per task"),
        tasks={"pneumonia_cxr": 128, "melanoma_derm": 128, "referable_dr": 28, "pneumoniamnist": 28},
        models=(ModelSpec("resnet18", "scratch"), ModelSpec("mobilenet_v1_075", "imagenet"),
                ModelSpec("mobilenet_v1_075", "scratch")),
        # ResNet-18 at 128 px costs about twice a MobileNet (training 70 vs 116 images/s on 2
        # cores): it is trained on the 28 px tasks only, where the architecture comparison runs
        skip={"pneumonia_cxr": ("resnet18:scratch",), "melanoma_derm": ("resnet18:scratch",)},
        # 1,200 training images and a patience of 2 epochs: what the 2-core budget affords at 128 px
        train={"epochs": 12, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "max_train": 1200,
               "max_val": 400, "patience": 2},
        # fine-tuning as AdversarialMed (Adam, lr 1e-4, constant); from scratch: AdamW, cosine
        recipes={"imagenet": {"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "constant"}},
        eval=EvalSettings(max_test=None, n_boot=1000),
        whitebox=WhiteboxSettings(n_images=300, eps_255=(0, 0.25, 0.5, 1, 2), steps=10, restarts=1,
                                  report_eps_255=1, gallery_images=3, robust_steps=20, robust_restarts=1,
                                  pgd_restarts=1, diag_images=64, diag_eps_255=0.5, diag_steps=(10, 20, 50),
                                  diag_restarts=(1, 2), diag_eps_grid_255=(0.5, 2, 8, 32),
                                  chunk_pixels=32 * 128 * 128),  # 32 images a chunk at 128 px, all at 28
        explorer=ExplorerSettings(pairs=1, n_images=3, attacks=("fgsm", "pgd"), eps_255=(0, 0.5, 1, 2)),
        # batched UAPs run to convergence (a pass gaining < 0.01), targeted ones at the largest zeta
        uap=UAPSettings(n_build=500, n_eval=300, max_passes=15, min_gain=0.01, zetas=(0.02, 0.04),
                        norms=("l2", "linf"), method="batched", batch_size=32, step_fraction=0.25,
                        targeted_zetas=(0.04,), natural_images=2000,
                        natural_split=("one_per_class_1000", "det200_five_per_class_1000"),
                        natural_models=("mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch")),
        ablation=AblationSettings(task="pneumonia_cxr", model="mobilenet_v1_075:imagenet", sizes=(64, 128, 224),
                                  max_train=600, n_images=200, eps_255=0.5, natural_images=300, zeta=0.04),
        # frames at 128 px: ~50 KB dermoscopy, ~27 KB chest X-ray; one norm (L2, Minagi et al.'s
        # logged case) in the static page: 32 frames in chapter 3, 24 in chapter 4 (~1.2 MB, ~0.9 MB)
        uap_explorer=UAPExplorerSettings(tasks=2, models=2, norms=("l2",), n_images=3, live_zetas=(0.01, 0.08),
                                         budget_mb=2.0),
        # sized to ~6 minutes per chapter on 2 cores, surrogates included: 128 px costs ~20x
        # 28 px, so 10,000 queries and U-SimBA run on the 28 px tasks (paper: every task)
        # eps 2/255: the largest budget of the white-box grid, so the worst case beside it is known
        blackbox=BlackboxSettings(n_images=64, eps_255=2, steps=10,
                                  surrogate_train={"epochs": 2, "max_train": 1000},
                                  query_budgets={"referable_dr": 10000, "pneumoniamnist": 10000, "melanoma_derm": 1000},
                                  query_images=32, usimba_iterations={"referable_dr": 500},
                                  usimba_images=100, usimba_eval=300, usimba_norms=("l2",)),
        patch=PatchSettings(tasks=("melanoma_derm", "pneumonia_cxr", "referable_dr"), n_train=500, n_eval=300,
                            steps=250, lr=0.02, batch_size=16, eval_scales=(0.5, 0.75, 1.0, 1.25, 1.5)),
        # the 28 px tasks. Measured on PneumoniaMNIST (a shared 2-core machine, zoo model cached): 5.5 min
        # with 128 test / 32 diagnostic images, 4.4 min with these 96 / 24 (about 9 min for both tasks).
        # Adversarial training fine-tunes the zoo model (its 1,200 images, up to its 12 epochs, patience 3):
        # from ImageNet at 4 epochs on 600 images the robust selection kept a first epoch near one
        # class (clean AUC 0.45); fine-tuned, robust balanced accuracy rose 0.34 -> 0.62 in 8 epochs
        # at clean AUC 0.98 (PneumoniaMNIST, 2026-12-04)
        # AdversarialMed's own task (the Kermany chest X-rays, here at 128 px) beside the two 28 px tasks
        defense=DefenseSettings(tasks=("pneumoniamnist", "referable_dr", "pneumonia_cxr"), n_images=96,
                                eps_255=(0.5, 1, 2),
                                steps=10, at_train={"patience": 3}, regularisation_train={"epochs": 4, "max_train": 600},
                                vae_epochs=8, vae_images=None,
                                vae_patch=16, vae_width=16, vae_latent=4, vae_levels=1,
                                retrain_rounds=2, retrain_uaps=3, retrain_uap_images=200,
                                smoothing_task="pneumoniamnist", smoothing_images=100, smoothing_n=1000,
                                diag_images=24, escalation_factor=2, escalation_restarts=1,
                                # Madry et al.'s PGD training beside AdversarialMed's two recipes: the reference
                                adversarial=("adversarialmed", "adversarialmed_fgsm", "pgd")),
        # frames of two images at 128 px: ~31 KB dermoscopy, ~26 KB chest X-ray (noisy patches); the
        # first two tasks x 3 patches x 2 scales x 2 rotations x 2 locations = 48 frames (~1.4 MB)
        patch_explorer=PatchExplorerSettings(tasks=2, scales=(0.5, 1.0), n_images=2, live_scales=(0.25, 2.0),
                                             live_rotations=(10.0, 45.0), budget_mb=2.0),
        # both 28 px tasks x (6 defenses + JPEG x 3 qualities) x 2 attackers x 3 budgets = 108 frames;
        # the other qualities: 4 more JPEG runs of 96 images
        defense_explorer=DefenseExplorerSettings(tasks=2, qualities=(10, 20, 50), budget_mb=2.0),
    ),
    "paper": Profile(
        name="paper",
        description="GPU: 224 px (299 Inception), every architecture, full test sets",
        tasks={"pneumonia_cxr": 224, "melanoma_derm": 224, "skin7_derm": 224, "referable_dr": 224,
               "pneumoniamnist": 224, "retina5": 224},
        # Hirano et al.'s seven architectures (VGG-16/19, ResNet-50, Inception-v3,
        # Inception-ResNet-v2, DenseNet-121/169; the VGGs with batch norm) and the book's own; the
        # three added last so that the dry run's cover keeps its earlier pairs (Inception v3 on a
        # gray and a colour task) and Inception-ResNet-v2 meets a gray one too
        models=(ModelSpec("resnet50", "imagenet"), ModelSpec("densenet121", "imagenet"),
                ModelSpec("vgg16_bn", "imagenet"), ModelSpec("inception_v3", "imagenet"),
                ModelSpec("resnet18", "scratch"), ModelSpec("mobilenet_v1_075", "imagenet"),
                ModelSpec("mobilenet_v1_075", "scratch"), ModelSpec("densenet169", "imagenet"),
                ModelSpec("vgg19_bn", "imagenet"), ModelSpec("inception_resnet_v2", "imagenet")),
        train={"epochs": 30, "batch_size": 32, "lr": 1e-4, "weight_decay": 1e-4, "max_train": None,
               "max_val": None, "patience": 5},
        eval=EvalSettings(max_test=None, n_boot=2000),
        whitebox=WhiteboxSettings(n_images=None, eps_255=(0, 0.5, 1, 2, 4, 8), steps=20, restarts=1,
                                  report_eps_255=2, gallery_images=4, robust_steps=100, robust_restarts=1,
                                  pgd_restarts=5, diag_images=500, diag_eps_255=1, diag_steps=(10, 50, 100, 200),
                                  diag_restarts=(1, 5), diag_eps_grid_255=(0.5, 1, 2, 4, 8, 16, 32),
                                  batch_size=128),
        explorer=ExplorerSettings(pairs=2, n_images=3, attacks=("fgsm", "ifgsm", "pgd", "mifgsm"),
                                  eps_255=(0, 1, 2, 4, 8)),
        uap=UAPSettings(n_build=2000, n_eval=None, max_passes=15, zetas=(0.02, 0.04), norms=("l2", "linf"),
                        method="iterative", batch_size=32, natural_images=2000,
                        natural_split=("one_per_class_1000", "det200_five_per_class_1000"),
                        natural_models=_UAP_NATURAL["natural_models"]),
        ablation=AblationSettings(task="pneumonia_cxr", model="mobilenet_v1_075:imagenet", sizes=(64, 128, 224, 299),
                                  max_train=None, n_images=None, eps_255=1, natural_images=2000, zeta=0.04),
        # 224 px frames (~50 KB dermoscopy, ~28 KB X-ray): L2 and non-targeted only in the static
        # page (16 frames in chapter 3, 24 in chapter 4, ~0.6 and ~0.9 MB); live adds the rest
        uap_explorer=UAPExplorerSettings(tasks=2, models=2, norms=("l2",), targets=False, n_images=3,
                                         live_zetas=(0.01, 0.08), budget_mb=2.0),
        blackbox=BlackboxSettings(n_images=None, eps_255=4, steps=20, surrogate_train={},
                                  query_budgets={"melanoma_derm": 10000, "pneumonia_cxr": 10000, "referable_dr": 10000},
                                  query_images=500,
                                  usimba_iterations={"melanoma_derm": 5000, "pneumonia_cxr": 5000, "referable_dr": 5000},
                                  usimba_images=100, usimba_eval=None, usimba_norms=("l2", "linf")),
        patch=PatchSettings(tasks=("melanoma_derm", "pneumonia_cxr", "referable_dr"), n_train=2000, n_eval=None,
                            steps=2000, lr=0.01, batch_size=16, eval_scales=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
                            n_placements=3, gallery_images=4),
        defense=DefenseSettings(tasks=None, n_images=None, eps_255=(0.5, 1, 2, 4), steps=20, at_train={},
                                adversarial=("adversarialmed", "adversarialmed_fgsm", "pgd"), vae_epochs=30,
                                vae_patch=32,
                                retrain_rounds=5, retrain_uaps=10, retrain_uap_images=500, retrain_epochs=2,
                                eot_samples=16, smoothing_task="pneumonia_cxr", smoothing_images=500,
                                smoothing_n=10000, diag_images=200),
        # 224 px frames of two images (~29 KB dermoscopy, ~25 KB chest X-ray): 48 frames (~1.3 MB)
        patch_explorer=PatchExplorerSettings(tasks=2, scales=(0.5, 1.0), n_images=2, live_rotations=(10.0, 45.0),
                                             budget_mb=2.0),
        # the first task x (7 defenses + JPEG x 3 qualities) x 2 attackers x 2 budgets = 40 frames: 224 px
        # images drawn at 125 px are several times a 28 px frame's ~10 KB, so two of the four budgets (1/255,
        # nearest AdversarialMed's, and 4/255); the other qualities: 2 more JPEG runs of the full test set
        defense_explorer=DefenseExplorerSettings(tasks=1, qualities=(10, 20, 50), eps_255=(1.0, 4.0), budget_mb=2.0),
        seeds=(0, 1, 2),
        # the studies' recipes: AdversarialMed fine-tuned with Adam at 1e-4
        recipes={"imagenet": {"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "constant"},
                 "scratch": {"lr": 1e-3}},
        # the studies ran Inception v3 at its native 299 px: the network resizes the task's
        # 224 px images inside, so one perturbation still fits every model of a task
        net_sizes={"inception_v3": 299, "inception_resnet_v2": 299},
    ),
}


# --------------------------------------------------------------------------- the dry run
#: The sizes of a dry run (:func:`dry_run`), by section: a value, or a function of the
#: source profile's section. Every section of :data:`SECTIONS` has an entry (a test checks
#: it), so a new family's sizes cannot stay at paper scale in ``paper-dry`` by accident.
#: Counts are the smallest that keep the code paths of the source profile: 8 test images
#: keep every class of the 7-class task (``whitebox.n_images`` None would mean the whole test
#: split, not the profile's test subset); one nonzero eps, two iterations, two restarts
#: where the source has restarts; 32 px images, the smallest every architecture takes.
#: ``net_sizes``: an architecture that runs its network at its own side in the source
#: (Inception v3 at 299 px in ``paper``) keeps doing so, at its smallest side (75 px): the
#: same code path (the network resizing the task's images inside), at 1/16 of the cost;
#: at 299 px Inception's cells alone would take about 7 minutes of a dry run on 2 cores.
DRY_RUN: dict[str, dict[str, Any]] = {
    "train": {"epochs": 1, "max_train": 16, "max_val": 8},
    "eval": {"max_test": 8, "n_boot": 20},
    "whitebox": {"n_images": 8, "eps_255": lambda s: (0, s.report_eps_255), "steps": 2,
                 "gallery_images": 1, "robust_steps": 2, "robust_restarts": lambda s: min(s.robust_restarts, 2),
                 "pgd_restarts": lambda s: min(s.pgd_restarts, 2), "diag_images": 4, "diag_steps": (1, 2),
                 "diag_restarts": lambda s: tuple(sorted({1, min(max(s.diag_restarts), 2)})),
                 "diag_eps_grid_255": lambda s: (min(s.diag_eps_grid_255), max(s.diag_eps_grid_255)),
                 "study_steps": 2, "batch_size": lambda s: None if s.batch_size is None else 4},
    "explorer": {"n_images": 1, "eps_255": lambda s: (0, min(e for e in s.eps_255 if e > 0))},
    "uap": {"n_build": 4, "max_passes": 2, "zetas": lambda s: (max(s.zetas),), "natural_images": 8,
            "max_targets": lambda s: s.max_targets if s.max_targets is not None and s.max_targets < 2 else 2},
    "ablation": {"sizes": lambda s: (DRY_RUN_SIZE, 2 * DRY_RUN_SIZE)[:len(s.sizes)], "max_train": 16, "n_images": 8,
                 "natural_images": 8},
    "uap_explorer": {"tasks": 1, "models": 1, "n_images": 1, "live_zetas": ()},
    "blackbox": {"n_images": 8, "steps": 2, "surrogate_train": {"epochs": 1, "max_train": 16},
                 "query_budgets": lambda s: {t: 20 for t in s.query_budgets}, "query_images": 4,
                 "curve_queries": (10, 20), "usimba_iterations": lambda s: {t: 2 for t in s.usimba_iterations},
                 "usimba_images": 4, "usimba_eval": 8},
    "patch": {"n_train": 8, "n_eval": 8, "steps": 2, "batch_size": 4, "eval_scales": lambda s: (s.eval_scale,),
              "n_placements": 1, "gallery_images": 1},
    "defense": {"n_images": 8, "eps_255": lambda s: (max(s.eps_255),), "steps": 2,
                "at_train": {"epochs": 1, "max_train": 16}, "vae_epochs": 1, "vae_images": 16, "eot_samples": 2,
                "retrain_rounds": 1, "retrain_uaps": 1, "retrain_uap_images": 4, "retrain_epochs": 1,
                "smoothing_images": 4, "smoothing_n0": 4, "smoothing_n": 8, "diag_images": 4,
                "escalation_factor": 1, "escalation_restarts": 1, "escalation_square_queries": 4,
                "regularisation_fractions": lambda s: (tuple(sorted({min(s.regularisation_fractions), 1.0}))
                                                       if s.regularisation_fractions else ()),
                "regularisation_seeds": lambda s: min(s.regularisation_seeds, 2)},
    "patch_explorer": {"tasks": 1, "n_images": 1, "scales": None, "rotations": (0.0,), "locations": ("random",),
                       "live_scales": (), "live_rotations": ()},
    "defense_explorer": {"tasks": 1, "qualities": lambda s: tuple(sorted(s.qualities))[:2], "live_qualities": ()},
    "net_sizes": lambda sizes: {arch: _min_side(arch) for arch in sizes},
}
#: The image side of every task in a dry run (px).
DRY_RUN_SIZE = 32
#: In a dry run, the tasks each architecture that no chapter singles out is trained on (see
#: :func:`dry_run_skip`): one, since a model's every cell (its checkpoint, VGG's half a
#: gigabyte, its attacks and UAPs in every chapter) costs the dry run about half a minute.
DRY_RUN_TASKS_PER_MODEL = 1


def _central_models(profile: Profile) -> set[str]:
    """The models the chapters single out on every task: the black-box, patch and defense
    targets, the ablation's model and chapter 4's natural-image models."""
    return {ModelSpec.parse(m).label for m in (profile.blackbox.model, profile.patch.model, profile.defense.model,
                                                 profile.ablation.model, *profile.uap.natural_models)}


def dry_run_skip(profile: Profile) -> dict[str, tuple[str, ...]]:
    """The ``skip`` of a dry run: a cover of the task x model grid, not the whole product.

    Every task keeps the models the chapters single out (:func:`_central_models`: chapters 4-7
    run in full on every task); every other model is trained on :data:`DRY_RUN_TASKS_PER_MODEL`
    task(s), the models spread over the task list (paper: the gray and the colour, the binary
    and the multi-class tasks each get some). Code paths are a union over tasks and
    architectures: each architecture's own path (its network, Inception's side) runs on one
    task, each task's (one or three channels, two or more classes) with at least the singled-out
    models; the source profile's own skips stay.
    """
    tasks = list(profile.tasks)
    central = _central_models(profile)
    keep = {t: {m.label for m in profile.models_for(t) if m.label in central} for t in tasks}
    others = [m for m in profile.models if m.label not in central]
    n = min(DRY_RUN_TASKS_PER_MODEL, len(tasks))
    stride = max(1, len(tasks) // n) if n else 1
    # a network that resizes the images inside (Inception) meets a gray task first: the one-channel
    # input replicated, then resized, is its own path
    gray = [t for t in tasks if get_spec(get_task(t).dataset).grayscale]
    resized = [m for m in others if m.arch in profile.net_sizes]
    for j, m in enumerate(others):
        for r in range(n):
            t = tasks[(j + r * stride) % len(tasks)]
            if r == 0 and m in resized and gray:
                t = gray[resized.index(m) % len(gray)]
            if m in profile.models_for(t):
                keep[t].add(m.label)
    return {t: skipped for t in tasks
            if (skipped := tuple(m.label for m in profile.models if m.label not in keep[t]))}


def _min_side(arch: str) -> int:
    return int(get_arch(arch).min_size)


def _dry_section(section: Any, changes: Mapping[str, Any]) -> Any:
    given = {k: (v(section) if callable(v) else v) for k, v in changes.items()}
    return dataclasses.replace(section, **given)


def dry_run(profile: Profile, *, name: str | None = None) -> Profile:
    """``profile`` with the same tasks, models, initialisations, seeds, attacks, norms,
    targets and methods, the sizes of :data:`DRY_RUN`, and a cover of the task x model grid
    (:func:`dry_run_skip`): every code path of a build of ``profile`` runs, on a few images,
    in minutes on a CPU.

    Example:
        >>> dry = dry_run(PROFILES["paper"])
        >>> (list(dry.tasks) == list(PROFILES["paper"].tasks), dry.models == PROFILES["paper"].models)
        (True, True)
    """
    train = {**profile.train, **DRY_RUN["train"]}
    recipes = {init: {**fields, **{k: v for k, v in DRY_RUN["train"].items() if k in fields}}
               for init, fields in profile.recipes.items()}
    sections = {key: _dry_section(getattr(profile, key), DRY_RUN[key]) for key in SECTIONS}
    # chapter 5 compares with the white-box worst case at its budget: keep it on the dry grid
    sections["blackbox"] = dataclasses.replace(sections["blackbox"], eps_255=max(sections["whitebox"].eps_255))
    return dataclasses.replace(
        profile, name=name or f"{profile.name}-dry",
        description=f"dry run of {profile.name}: its every code path on a few {DRY_RUN_SIZE} px images "
                    "per split, one epoch, two attack iterations (CPU, minutes; meaningless numbers)",
        tasks={t: DRY_RUN_SIZE for t in profile.tasks}, skip=dry_run_skip(profile), train=train, recipes=recipes,
        net_sizes=DRY_RUN["net_sizes"](profile.net_sizes), **sections)


PROFILES["paper-dry"] = dry_run(PROFILES["paper"])


# --------------------------------------------------------------------------- access
def resolve_profile_name(name: str | None = "auto") -> str:
    """``auto`` (or None) is ``paper`` when CUDA is visible, else ``cpu``."""
    if name in (None, "", "auto"):
        return "paper" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; valid profiles: auto, {', '.join(PROFILE_NAMES)}")
    return str(name)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def _override_section(section: Any, changes: Mapping[str, Any], where: str) -> Any:
    valid = {f.name for f in dataclasses.fields(section)}
    unknown = sorted(set(changes) - valid)
    if unknown:
        raise KeyError(f"unknown {where} settings {unknown}; valid: {', '.join(sorted(valid))}")
    # "all" stands for None where a setting takes None ("all the images"), since None itself
    # means "the profile's" in a chapter's parameters
    optional = {f.name for f in dataclasses.fields(section) if "None" in str(f.type)}
    given = {k: None if (v == "all" and k in optional) else _as_tuple(v) for k, v in changes.items()
             if v is not None}
    return dataclasses.replace(section, **given) if given else section


def _override_train(train: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    valid = {f.name for f in dataclasses.fields(TrainConfig)} - {"task", "arch", "init", "size", "seed"}
    unknown = sorted(set(changes) - valid)
    if unknown:
        raise KeyError(f"unknown train settings {unknown}; valid: {', '.join(sorted(valid))}")
    return {**train, **{k: v for k, v in changes.items() if v is not None}}


def get_profile(name: str | Profile | None = "auto", *, tasks: Iterable[str] | str | None = None,
                models: Iterable[Any] | str | None = None, seeds: Iterable[int] | None = None,
                **sections: Mapping[str, Any] | None) -> Profile:
    """A profile with a chapter's parameters applied; ``None`` anywhere means "the profile's".

    Args:
        name: ``smoke``, ``cpu``, ``paper`` or ``auto`` (:func:`resolve_profile_name`), or a
            :class:`Profile` to change further.
        tasks: task names; a task the profile lacks gets the largest size of the profile.
        models: ``"arch"``, ``"arch:init"`` entries (a model the profile lacks is added).
        seeds: replace the profile's seeds.
        sections: ``train=``, ``eval=``, ``whitebox=``, ``explorer=``, ``uap=``, ``uap_explorer=`` mappings of
            settings to change (unknown sections or settings raise and list the valid ones);
            ``"all"`` sets a count such as ``n_images`` to None (all the images).

    Example:
        >>> get_profile("smoke", whitebox={"steps": 10, "eps_255": None}).whitebox.steps
        10
    """
    prof = name if isinstance(name, Profile) else PROFILES[resolve_profile_name(name)]
    if tasks is not None:
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        default = max(prof.tasks.values()) if prof.tasks else 224
        for t in names:
            get_task(t)  # validates the name
        prof = dataclasses.replace(prof, tasks={t: prof.tasks.get(t, default) for t in names})
    if models is not None:
        specs = [models] if isinstance(models, (str, Mapping)) else list(models)
        prof = dataclasses.replace(prof, models=tuple(ModelSpec.parse(m) for m in specs))
    if seeds is not None:
        prof = dataclasses.replace(prof, seeds=tuple(int(s) for s in seeds))
    unknown = sorted(set(sections) - set(SECTIONS) - {"train", "recipes"})
    if unknown:
        raise KeyError(f"unknown profile sections {unknown}; valid: train, recipes, {', '.join(SECTIONS)}, "
                       "tasks, models, seeds")
    changes: dict[str, Any] = {}
    for key, value in sections.items():
        if not value:
            continue
        if not isinstance(value, Mapping):
            raise TypeError(f"{key}= takes a mapping of settings, e.g. {key}={{...}}; got {value!r}")
        if key == "recipes":
            changes[key] = {**prof.recipes, **{init: _override_train(prof.recipes.get(init, {}), fields)
                                               for init, fields in value.items()}}
        else:
            changes[key] = (_override_train(prof.train, value) if key == "train"
                            else _override_section(getattr(prof, key), value, key))
    return dataclasses.replace(prof, **changes) if changes else prof


def _fmt(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        return "; ".join(f"{f.name}={_fmt(getattr(value, f.name))}" for f in dataclasses.fields(value))
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def profile_table(profile: str | Profile | None = "auto"):
    """A profile as a two-column table (entry, value) for the book."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    rows = [{"entry": "tasks", "value": ", ".join(f"{t} ({s} px)" for t, s in prof.tasks.items())},
            {"entry": "models", "value": ", ".join(f"{m.arch} ({m.init})" for m in prof.models)}]
    for f in dataclasses.fields(prof):
        if f.name not in ("tasks", "models", "name"):
            rows.append({"entry": f.name, "value": _fmt(getattr(prof, f.name))})
    return pd.DataFrame(rows)


__all__ = ["AblationSettings", "BlackboxSettings", "DRY_RUN", "DRY_RUN_SIZE", "DefenseExplorerSettings",
           "DefenseSettings", "EvalSettings", "ExplorerSettings", "ModelSpec", "PROFILES", "PROFILE_NAMES",
           "PatchExplorerSettings", "PatchSettings", "Profile", "SECTIONS", "UAPExplorerSettings", "UAPSettings", "WhiteboxSettings", "dry_run", "get_profile",
           "profile_table", "resolve_profile_name"]
