"""Defenses under oblivious and adaptive attack, at the scale of an experiment (chapter 7).

For each task of ``profile.defense`` and its defended model (``defense.model``, from the zoo):

- ``none``: the undefended model (the reference row);
- ``jpeg``: JPEG compression at ``defense.jpeg_quality`` (AdversarialMed: 20), the real codec;
- ``at_<method>``: adversarial training (``advmed.train.adversarial``: AdversarialMed's
  0.7 / 0.3 I-FGSM recipe; Madry et al.'s PGD where the profile asks), trained through the
  checkpoint cache (``TrainConfig(adversarial=...)``);
- ``vae``: VAE denoising (the posterior-mean reconstruction in front of the classifier);
- ``uap_retraining``: Hirano et al.'s adversarial retraining against UAPs;
- and, on one task, randomized smoothing (Cohen et al. 2019): certified accuracy against the
  L2 radius (:func:`smoothing_results`).

Each defended model is measured three ways on the same test images:

- **clean** accuracy and AUC (bootstrap 95 % intervals);
- **oblivious** attacker: PGD crafted on the *undefended* model at every budget of
  ``defense.eps_255`` (full iterations), evaluated on the defended model;
- **adaptive** attacker (Athalye, Carlini & Wagner 2018; Tramer et al. 2020): the robust
  ensemble (:func:`advmed.attacks.robust_accuracy`: APGD-CE, APGD-margin / APGD-T, PGD) run
  on the defended model itself, through BPDA for JPEG (the real codec forward, identity
  backward) and end to end through the VAE; plus transfer sources that know the defense (PGD
  through kornia's differentiable JPEG; EOT-PGD through the *sampled* VAE) and the oblivious
  images themselves. An adaptive attacker may try all of them, so the adaptive result is the
  per-image worst case (lowest true-class margin) over every source, nested over the
  budgets: at least as strong as the oblivious one by construction.

The masking diagnostics of chapter 2 (:func:`advmed.attacks.masking_diagnostics`) run on every
defended model's attackable view (BPDA for JPEG), with the undefended model as the transfer
surrogate; a defense flagged there is reported as unevaluated, not robust. Costs: training
seconds (the checkpoint's, the VAE's, the retraining's) and inference seconds per image.

Every result is memoised (:func:`advmed.cache.memo`) under the checkpoint keys, a digest of the
images and the settings. Every eps is in [0, 1] pixel units (``eps_255`` = eps x 255).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ...attacks import default_ensemble, get_attack, robust_accuracy
from ...cache import memo
from ...data.splits import stratified_subset
from ...defenses import JPEGCompression, eot, train_vae, uap_retraining, vae_defense, vae_key
from ...defenses.smoothing import SmoothedClassifier
from ...device import module_device
from ...metrics import classification_metrics
from ...models import as_rgb, gray_view, predict_proba
from ...train import AdversarialConfig, TrainConfig, get_trained_model
from ..profiles import DefenseSettings, Profile
from ..whitebox import run as wb
from ..zoo import ModelKey

#: Bump when a change here changes what a memoised result holds.
DEFENSE_VERSION = 3  # 2: the studies' attacks at AdversarialMed's setting; 3: monotone_eps on iterative attacks
#: The defenses in the order of the tables.
DEFENSES = ("none", "jpeg", "at_adversarialmed", "at_pgd", "at_fast_fgsm", "vae", "uap_retraining")
LABELS = {"none": "none (undefended)", "jpeg": "JPEG", "at_adversarialmed": "adversarial training (AdversarialMed)",
          "at_pgd": "adversarial training (PGD, Madry et al.)", "at_fast_fgsm": "adversarial training (fast FGSM)",
          "vae": "VAE denoising", "uap_retraining": "UAP retraining (Hirano et al.)"}
ATTACKERS = ("oblivious", "adaptive")


# --------------------------------------------------------------------------- results
@dataclass
class DefenseRun:
    """One defense of one task: clean and robust numbers, diagnostics and costs.

    Attributes:
        task, defense, label: the task, the defense's name (:data:`DEFENSES`) and how tables name it.
        model: the defended architecture (``"arch:init"``); ``config_key``: the checkpoint key of
            the classifier behind the defense.
        clean: one row: ``accuracy, auc`` with ``_lo`` / ``_hi`` (bootstrap 95 %), ``n``.
        curves: one row per (attacker, eps): ``attacker`` (oblivious / adaptive), ``eps``, ``eps_255``,
            ``accuracy, auc`` with intervals; the adaptive AUC is an upper bound (the attacks stop at
            the first success; :data:`advmed.attacks.robust.AUC_NOTE`).
        sources: per adaptive source and eps, the accuracy it alone leaves (which source did the work).
        diagnostics: the masking checks (``check, passed, summary, numbers``).
        train_seconds: what the defense cost to build (0 for JPEG and none).
        infer_seconds: inference seconds per image of the defended model (batch of the test images).
        adaptive: how the adaptive attacker reached the defense.
        history: UAP retraining only, Hirano et al.'s fooling rates per round (else empty).
        study_attacks: FGSM, I-FGSM, PGD, MI-FGSM at AdversarialMed's setting, per attacker
            (``attacker, attack, eps_255, steps, accuracy, auc`` with intervals; last iterate).
    """

    task: str
    defense: str
    label: str
    model: str
    config_key: str
    clean: pd.DataFrame
    curves: pd.DataFrame
    sources: pd.DataFrame
    diagnostics: pd.DataFrame
    train_seconds: float
    infer_seconds: float
    adaptive: str
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    study_attacks: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def flagged(self) -> bool:
        """A masking check failed: the defense is unevaluated, not robust."""
        return bool(len(self.diagnostics)) and not bool(self.diagnostics["passed"].all())

    def robust(self, attacker: str, eps_255: float, metric: str = "accuracy") -> float:
        """The ``metric`` the ``attacker`` leaves at ``eps_255``."""
        c = self.curves
        row = c[(c.attacker == attacker) & np.isclose(c.eps_255, float(eps_255))]
        return float(row[metric].iloc[0]) if len(row) else float("nan")


@dataclass
class CertifiedRun:
    """Randomized smoothing on one task: certified accuracy against the L2 radius.

    ``curve``: ``radius`` ([0, 1] pixel units, L2), ``certified_accuracy`` (correct and certified
    at that radius; abstentions count as wrong); ``abstain``: the share of abstentions;
    ``sigma``, ``n``, ``n0``, ``alpha``: the certification's settings; ``base_clean_accuracy``: the
    noise-trained base classifier without noise."""

    task: str
    model: str
    sigma: float
    n: int
    n0: int
    alpha: float
    n_images: int
    curve: pd.DataFrame
    abstain: float
    base_clean_accuracy: float
    train_seconds: float
    certify_seconds: float


@dataclass
class DefenseResults:
    """Every defense run of a profile and the certified baseline."""

    runs: list[DefenseRun]
    certified: CertifiedRun | None

    def get(self, task: str, defense: str) -> DefenseRun | None:
        return next((r for r in self.runs if r.task == task and r.defense == defense), None)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.runs))

    def curves(self) -> pd.DataFrame:
        """Every run's curves with leading ``task, defense, label`` columns, clean rows (eps 0) included."""
        frames = []
        for r in self.runs:
            clean = pd.concat([r.clean.assign(attacker=a, eps=0.0, eps_255=0.0) for a in ATTACKERS])
            frames.append(pd.concat([clean, r.curves], ignore_index=True).assign(
                task=r.task, defense=r.defense, label=r.label))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        lead = ["task", "defense", "label", "attacker", "eps_255", "eps"]
        return out[lead + [c for c in out.columns if c not in lead]] if len(out) else out


# --------------------------------------------------------------------------- images and models
def defense_tasks(profile: Profile) -> list[str]:
    """The tasks defended: ``defense.tasks`` that the profile has (None: all of them)."""
    s = profile.defense
    names = list(profile.tasks) if s.tasks is None else [t for t in s.tasks if t in profile.tasks]
    return names


def defense_images(task: str, profile: Profile, n: int | None = None):
    """A stratified subset (profile seed) of ``n`` (default ``defense.n_images``) of chapter 2's test images."""
    base = wb.test_images(task, profile)
    n = profile.defense.n_images if n is None else n
    if n is None or n >= len(base):
        return base
    return base.subset(stratified_subset(base.labels.numpy(), int(n), profile.seed))


def adversarial_config(method: str, s: DefenseSettings) -> AdversarialConfig:
    """The AdversarialConfig of ``method``: AdversarialMed's published settings; PGD and fast
    FGSM at ``defense.pgd_eps_255``."""
    if method == "adversarialmed":
        return AdversarialConfig("adversarialmed")
    return AdversarialConfig(method, eps=float(s.pgd_eps_255) / 255)


def adversarial_train_config(base: TrainConfig, method: str, profile: Profile) -> TrainConfig:
    """The zoo model's recipe with ``adversarial=method`` and ``defense.at_train``."""
    s = profile.defense
    return dataclasses.replace(base, adversarial=adversarial_config(method, s), **dict(s.at_train))


def adversarial_model(base: TrainConfig, method: str, profile: Profile, *, device: Any = None,
                      progress: bool = False):
    """:func:`adversarial_train_config`'s model, from the checkpoint cache (trained there first when absent)."""
    return get_trained_model(adversarial_train_config(base, method, profile), device=device, progress=progress)


def _split(cfg: TrainConfig, split: str):
    """The training (``max_train`` subset) or validation split of a zoo config, as it was trained on."""
    from ...data import load_task

    if cfg.exclude_train is not None:
        raise ValueError("defenses start from the zoo's models, which never exclude training data")
    limit = cfg.max_train if split == "train" else cfg.max_val
    return load_task(cfg.task, split, size=cfg.size, channels=cfg.channels, limit=limit, seed=cfg.seed,
                     progress=False)


def _restore(cfg: TrainConfig, num_classes: int, state: Mapping[str, torch.Tensor], dev: torch.device) -> nn.Module:
    """The architecture of ``cfg`` holding the retrained weights ``state``."""
    from ...models import build_model

    model = build_model(cfg.arch, num_classes, in_channels=cfg.channels, init="scratch", input_size=cfg.size,
                        seed=cfg.seed, net_size=cfg.net_size)
    model.load_state_dict(dict(state), strict=True)
    return model.to(dev).eval()


def ensemble_settings(profile: Profile) -> dict[str, Any]:
    """Chapter 2's robust ensemble (``whitebox.robust_steps``, ``robust_restarts``, ``pgd_restarts``)."""
    w = profile.whitebox
    return {"steps": int(w.robust_steps), "restarts": int(w.robust_restarts), "pgd_restarts": int(w.pgd_restarts),
            **wb.batching(profile)}


# --------------------------------------------------------------------------- attacking
def _pixels(images: Any, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return images.float().to(dev), torch.as_tensor(images.labels).long().to(dev)


def _margin(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True-class probability minus the largest other one: < 0 exactly when the image is misclassified."""
    p_y = proba[np.arange(len(y)), y]
    other = proba.copy()
    other[np.arange(len(y)), y] = -np.inf
    return p_y - other.max(1)


def worst_case_choice(probas: Sequence[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per budget and image, where the worst case comes from: the source with the lowest
    true-class margin, nested over the budgets (an image found at a smaller budget lies in every
    larger ball).

    Args:
        probas: one ``(E, N, K)`` array of softmax scores per source, the budgets ascending.
        y: labels ``(N,)``.

    Returns:
        ``(source, budget)``, two ``(E, N)`` integer arrays: the index of the source and of the
        budget whose scores (and adversarial image) stand at each budget and image.
    """
    n_eps, n = probas[0].shape[:2]
    source = np.zeros((n_eps, n), dtype=int)
    budget = np.repeat(np.arange(n_eps)[:, None], n, axis=1)
    best = probas[0].copy()
    for i, p in enumerate(probas[1:], start=1):
        for e in range(n_eps):
            better = _margin(p[e], y) < _margin(best[e], y)
            best[e][better] = p[e][better]
            source[e][better] = i
    for e in range(1, n_eps):
        better = _margin(best[e - 1], y) < _margin(best[e], y)
        best[e][better] = best[e - 1][better]
        source[e][better], budget[e][better] = source[e - 1][better], budget[e - 1][better]
    return source, budget


def worst_case(probas: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Per budget and image, the scores of the source with the lowest true-class margin, nested
    over the budgets (:func:`worst_case_choice`).

    Args:
        probas: one ``(E, N, K)`` array of softmax scores per source, the budgets ascending.
        y: labels ``(N,)``.
    """
    source, budget = worst_case_choice(probas, y)
    return np.stack(probas)[source, budget, np.arange(source.shape[1])[None, :]]


def transfer_images(source: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    steps: int, seed: int) -> list[torch.Tensor]:
    """PGD images crafted on ``source`` at each budget (full iterations, gray images in one
    channel, returned with ``x``'s channels)."""
    m_att, x_att, _ = gray_view(source, x)
    pgd = get_attack("pgd")
    return [as_rgb(pgd.call(m_att, x_att, y, eps=eps, steps=steps, seed=seed, early_stop=False).detach(), x.shape[1])
            for eps in eps_grid]


def transfer_probas(source: nn.Module, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    eps_grid: Sequence[float], steps: int, seed: int) -> np.ndarray:
    """``(E, N, K)`` scores of ``target`` on PGD images crafted on ``source`` at each budget
    (:func:`transfer_images`)."""
    return np.stack([predict_proba(target, x_adv)
                     for x_adv in transfer_images(source, x, y, eps_grid=eps_grid, steps=steps, seed=seed)])


def _ensemble(model: nn.Module, x: torch.Tensor, profile: Profile) -> tuple[nn.Module, torch.Tensor, dict, list]:
    """The attacked view of ``model`` (gray images in one channel), its images, the batching and
    chapter 2's robust ensemble for its number of classes."""
    s = ensemble_settings(profile)
    m_att, x_att, _ = gray_view(model, x)
    k = int(predict_proba(model, x[:1]).shape[1])
    members = default_ensemble(k, steps=s["steps"], restarts=s["restarts"], pgd_restarts=s["pgd_restarts"])
    return m_att, x_att, s, members


def ensemble_probas(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    profile: Profile) -> np.ndarray:
    """``(E, N, K)`` scores of the adversarial images the robust ensemble found on ``model``."""
    m_att, x_att, s, members = _ensemble(model, x, profile)
    res = robust_accuracy(m_att, x_att, y, eps_grid=list(eps_grid), n_boot=0, seed=profile.seed, progress=False,
                          batch_size=s.get("batch_size"), ensemble=members)
    return np.asarray(res.proba)


def ensemble_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_grid: Sequence[float],
                    profile: Profile) -> list[torch.Tensor]:
    """The robust ensemble's image of every input at each budget, each budget run alone:
    ``robust_accuracy`` keeps one image per input (the one of its first budget), the explorer
    shows one per budget. Returned with ``x``'s channels."""
    m_att, x_att, s, members = _ensemble(model, x, profile)
    out = []
    for eps in eps_grid:
        res = robust_accuracy(m_att, x_att, y, eps_grid=[float(eps)], n_boot=0, seed=profile.seed, progress=False,
                              batch_size=s.get("batch_size"), ensemble=members)
        out.append(as_rgb(res.x_adv.detach().to(x.device), x.shape[1]))
    return out


#: The studies' four attacks, run at AdversarialMed's setting on every defense (their own measure).
STUDY_ATTACKS = ("fgsm", "ifgsm", "pgd", "mifgsm")


def study_attack_rows(evaluated: nn.Module, attackable: nn.Module, undefended: nn.Module, x: torch.Tensor,
                      y: torch.Tensor, *, profile: Profile) -> pd.DataFrame:
    """FGSM, I-FGSM, PGD and MI-FGSM at AdversarialMed's eps (1.15/255) and step, full iterations
    (the studies' protocol: accuracy and AUC of the last iterate), crafted on the undefended model
    (oblivious) and on the defense's attackable view (adaptive), evaluated on the defended model."""
    st = wb.adversarialmed_eps()
    steps = wb.study_steps(st["steps"], profile)
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    rows = []
    for attacker, source in (("oblivious", undefended), ("adaptive", attackable)):
        m_att, x_att, _ = gray_view(source, x)
        for name in STUDY_ATTACKS:
            x_adv = get_attack(name).call(m_att, x_att, y, eps=st["eps"], steps=steps, step_size=st["step"],
                                          seed=seed, early_stop=False).detach()
            m = classification_metrics(y_np, predict_proba(evaluated, as_rgb(x_adv, x.shape[1])), n_boot=n_boot,
                                       seed=seed)
            row = {"attacker": attacker, "attack": name, "eps_255": st["eps_255"], "steps": steps}
            for k in ("accuracy", "auc"):
                row[k], row[f"{k}_lo"], row[f"{k}_hi"] = m[k]
            rows.append(row)
    return pd.DataFrame(rows)


def _curve_rows(attacker: str, y: np.ndarray, proba: np.ndarray, eps_grid: Sequence[float], *, n_boot: int,
                seed: int) -> list[dict[str, Any]]:
    rows = []
    for e, p in zip(eps_grid, proba):
        m = classification_metrics(y, p, n_boot=n_boot, seed=seed)
        row = {"attacker": attacker, "eps": float(e), "eps_255": float(e) * 255}
        for name in ("accuracy", "auc"):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
        rows.append(row)
    return rows


def _clean_row(y: np.ndarray, proba: np.ndarray, *, n_boot: int, seed: int) -> pd.DataFrame:
    m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
    row: dict[str, Any] = {"n": len(y)}
    for name in ("accuracy", "auc"):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
    return pd.DataFrame([row])


def _infer_seconds(model: nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    predict_proba(model, x)
    return (time.perf_counter() - t0) / max(1, len(x))


def evaluate_defense(evaluated: nn.Module, attackable: nn.Module, undefended: nn.Module, x: torch.Tensor,
                     y: torch.Tensor, *, eps_grid: Sequence[float], profile: Profile,
                     extra_sources: Mapping[str, nn.Module] | None = None) -> dict[str, Any]:
    """Clean, oblivious and adaptive numbers of one defended model.

    Args:
        evaluated: the defended model as deployed (real JPEG codec; mean VAE; the trained weights).
        attackable: the view the adaptive ensemble attacks, whose forward is ``evaluated``'s
            (BPDA for JPEG; ``evaluated`` itself otherwise).
        undefended: the oblivious attacker's model.
        extra_sources: more adaptive sources, name -> model PGD is crafted on and transferred to
            ``evaluated`` (kornia's differentiable JPEG; EOT through the sampled VAE).
    """
    s = profile.defense
    n_boot, seed = int(profile.eval.n_boot), profile.seed
    y_np = y.cpu().numpy()
    proba_clean = predict_proba(evaluated, x)
    oblivious = transfer_probas(undefended, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    oblivious = worst_case([oblivious], y_np)
    sources = {"ensemble": ensemble_probas(attackable, x, y, eps_grid=eps_grid, profile=profile)}
    for name, src in (extra_sources or {}).items():
        sources[name] = transfer_probas(src, evaluated, x, y, eps_grid=eps_grid, steps=int(s.steps), seed=seed)
    sources["oblivious images"] = oblivious
    adaptive = worst_case(list(sources.values()), y_np)
    rows = _curve_rows("oblivious", y_np, oblivious, eps_grid, n_boot=n_boot, seed=seed)
    rows += _curve_rows("adaptive", y_np, adaptive, eps_grid, n_boot=n_boot, seed=seed)
    src_rows = [{"source": name, "eps_255": float(e) * 255, "accuracy": float((p[i].argmax(1) == y_np).mean())}
                for name, p in sources.items() for i, e in enumerate(eps_grid)]
    return {"clean": _clean_row(y_np, proba_clean, n_boot=n_boot, seed=seed), "curves": pd.DataFrame(rows),
            "sources": pd.DataFrame(src_rows), "infer_seconds": _infer_seconds(evaluated, x),
            "study_attacks": study_attack_rows(evaluated, attackable, undefended, x, y, profile=profile)}


def diagnostics(attackable: nn.Module, undefended: nn.Module, images: Any, profile: Profile) -> pd.DataFrame:
    """Chapter 2's masking diagnostics (:func:`~advmed.experiments.whitebox.run.diagnostics_sweep`)
    on ``defense.diag_images`` of the images, the undefended model as the transfer surrogate."""
    w, n = profile.whitebox, profile.defense.diag_images
    if n is not None and n < len(images.labels):
        images = images.subset(stratified_subset(images.labels.numpy(), int(n), profile.seed))
    return wb.diagnostics_sweep(attackable, images, surrogate=undefended, eps_255=float(w.diag_eps_255),
                                steps=list(w.diag_steps), restarts=list(w.diag_restarts),
                                eps_grid_255=[float(e) for e in w.diag_eps_grid_255],
                                chosen_steps=int(w.robust_steps), chosen_restarts=int(w.robust_restarts),
                                seed=profile.seed, **wb.batching(profile))


# --------------------------------------------------------------------------- the defenses
@dataclass
class Defended:
    """One defense as the attackers meet it.

    Attributes:
        evaluated: the defended model as deployed (real JPEG codec; mean VAE; the trained weights).
        attackable: the view the adaptive ensemble attacks, whose forward is ``evaluated``'s
            (BPDA for JPEG; ``evaluated`` itself otherwise).
        extra_sources: more adaptive sources, name -> model PGD is crafted on and transferred
            (kornia's differentiable JPEG; EOT through the sampled VAE).
        adaptive: how the adaptive attacker reaches the defense, in words.
        model_key: the key of the classifier behind the defense (a checkpoint key).
        train_seconds: what the defense cost to build.
        history: UAP retraining only, Hirano et al.'s rounds (else empty).
        extra: what identifies the defense beyond ``model_key`` (JPEG quality, the VAE's key,
            the retraining settings), part of its memo keys.
    """

    evaluated: nn.Module
    attackable: nn.Module
    extra_sources: dict[str, nn.Module]
    adaptive: str
    model_key: str
    train_seconds: float = 0.0
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: Any = None


def _memo_key(profile: Profile, task: str, defense: str, model_key: str, images: Any, extra: Any = None) -> dict:
    s = profile.defense
    return {"version": DEFENSE_VERSION, "task": task, "defense": defense, "model": model_key,
            "images": wb.images_key(images.images, images.labels), "eps_255": [float(e) for e in s.eps_255],
            "steps": int(s.steps), "study_steps": profile.whitebox.study_steps, "ensemble": ensemble_settings(profile), "n_boot": int(profile.eval.n_boot),
            "seed": profile.seed, "diag": {"images": s.diag_images, "eps": float(profile.whitebox.diag_eps_255),
                                           "steps": list(profile.whitebox.diag_steps),
                                           "grid": [float(e) for e in profile.whitebox.diag_eps_grid_255]},
            "extra": extra}


def _run(task: str, defense: str, spec: str, d: Defended, undefended: nn.Module, images: Any,
         profile: Profile) -> dict[str, Any]:
    dev = module_device(undefended)
    x, y = _pixels(images, dev)
    grid = [float(e) / 255 for e in sorted(profile.defense.eps_255)]
    out = evaluate_defense(d.evaluated, d.attackable, undefended, x, y, eps_grid=grid, profile=profile,
                           extra_sources=d.extra_sources)
    out["diagnostics"] = (diagnostics(d.attackable, undefended, images, profile) if defense != "none"
                          else pd.DataFrame(columns=["check", "passed", "summary", "numbers"]))
    out.update(task=task, defense=defense, label=LABELS[defense], model=spec, config_key=d.model_key,
               train_seconds=float(d.train_seconds), adaptive=d.adaptive)
    if len(d.history):
        out["history"] = d.history
    return out


def _as_run(d: Mapping[str, Any]) -> DefenseRun:
    return DefenseRun(task=d["task"], defense=d["defense"], label=d["label"], model=d["model"],
                      config_key=d["config_key"], clean=d["clean"], curves=d["curves"], sources=d["sources"],
                      diagnostics=d["diagnostics"], train_seconds=float(d["train_seconds"]),
                      infer_seconds=float(d["infer_seconds"]), adaptive=d["adaptive"],
                      history=d.get("history", pd.DataFrame()), study_attacks=d["study_attacks"])


def defense_vae(cfg: TrainConfig, profile: Profile, dev: Any = None):
    """The VAE of the ``vae`` defense for the zoo model trained with ``cfg``: trained on its
    training images (``defense.vae_images`` of them), from the VAE cache or trained now."""
    from ...device import default_device

    return _vae_for(cfg, profile.defense, profile.seed, default_device() if dev is None else dev)


def _vae_inputs(cfg: TrainConfig, s: DefenseSettings, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The VAE's training images (``defense.vae_images`` of the zoo model's) and its settings."""
    train = _split(cfg, "train")
    imgs = train.images
    if s.vae_images is not None and s.vae_images < len(imgs):
        imgs = imgs[stratified_subset(train.labels.numpy(), int(s.vae_images), seed)]
    return imgs, dict(epochs=int(s.vae_epochs), patch_size=s.vae_patch, width=int(s.vae_width),
                      latent_channels=int(s.vae_latent), levels=int(s.vae_levels), batch_size=int(s.vae_batch),
                      seed=seed)


def _vae_for(cfg: TrainConfig, s: DefenseSettings, seed: int, dev: torch.device):
    imgs, kwargs = _vae_inputs(cfg, s, seed)
    return train_vae(imgs, **kwargs, device=dev, progress=False)


def retraining_uap_kwargs(profile: Profile) -> dict[str, Any]:
    """How retraining builds its UAPs: chapter 3's method, passes, batch and stopping rule
    (``profile.uap``); the step is :func:`~advmed.attacks.universal.uap`'s default for the method."""
    u = profile.uap
    kw: dict[str, Any] = {"method": u.method, "max_passes": int(u.max_passes), "batch_size": int(u.batch_size)}
    if u.min_gain is not None:
        kw["min_gain"] = float(u.min_gain)
    return kw


def _retraining_settings(profile: Profile) -> dict[str, Any]:
    s = profile.defense
    return {"rounds": s.retrain_rounds, "uaps": s.retrain_uaps, "uap_images": s.retrain_uap_images,
            "zeta": s.retrain_zeta, "norm": s.retrain_norm, "epochs": s.retrain_epochs,
            "uap": retraining_uap_kwargs(profile)}


def _retrained(tm: Any, images: Any, profile: Profile, dev: torch.device) -> dict[str, Any]:
    """Hirano et al.'s retraining of ``tm``: state, history, seconds (memoised under the
    checkpoint key, the held-out images and the retraining settings, so the explorer rebuilds
    the model the chapter measured without retraining it)."""
    s, cfg = profile.defense, tm.config

    def compute() -> dict[str, Any]:
        x, y = _pixels(images, dev)
        res = uap_retraining(tm.model, _split(cfg, "train"), _split(cfg, "val"), x, config=cfg, heldout_y=y,
                             rounds=int(s.retrain_rounds), uaps_per_round=int(s.retrain_uaps),
                             uap_images=int(s.retrain_uap_images), zeta=float(s.retrain_zeta), norm=s.retrain_norm,
                             epochs=int(s.retrain_epochs), uap_kwargs=retraining_uap_kwargs(profile),
                             seed=profile.seed, device=dev, progress=False)
        return {"state": {k: v.detach().cpu() for k, v in res.model.state_dict().items()}, "history": res.history,
                "seconds": float(res.seconds)}

    key = {"version": DEFENSE_VERSION, "model": cfg.key(), "images": wb.images_key(images.images, images.labels),
           "seed": profile.seed, "retraining": _retraining_settings(profile)}
    return memo("defenses_retrained", key, compute)


def defended(task: str, defense: str, tm: Any, profile: Profile, *, quality: int | None = None) -> Defended:
    """The defense ``defense`` (:data:`DEFENSES`) of ``task``'s zoo model ``tm`` (a
    ``TrainedModel``), as the attackers meet it; ``quality``: JPEG only, the libjpeg quality
    (None: ``defense.jpeg_quality``). Trained defenses come from their caches (the checkpoint
    cache, the VAE's, the retraining memo), trained there first when absent."""
    from ...defenses import DefendedModel

    s = profile.defense
    base = tm.model.eval()
    dev = module_device(base)
    ck = tm.config.key()
    if defense == "none":
        return Defended(base, base, {}, "the robust ensemble on the model", ck)
    if defense == "jpeg":
        q = int(s.jpeg_quality if quality is None else quality)
        real = DefendedModel(JPEGCompression(q, "real"), base)
        return Defended(real, real.with_defense(JPEGCompression(q, "bpda")),
                        {"differentiable JPEG": real.with_defense(JPEGCompression(q, "differentiable"))},
                        f"BPDA (real codec forward, identity backward); PGD through kornia's differentiable JPEG "
                        f"(q {q})", ck, extra={"quality": q})
    if defense.startswith("at_") and defense[3:] in s.adversarial:
        at = adversarial_model(tm.config, defense[3:], profile, device=dev)
        model = at.model.eval()
        return Defended(model, model, {}, "the robust ensemble on the adversarially trained model", at.config.key(),
                        train_seconds=float(at.train_seconds))
    if defense == "vae":
        tv = defense_vae(tm.config, profile, dev)
        mean = vae_defense(base, tv, sample=False)
        sampled = vae_defense(base, tv, sample=True)
        return Defended(mean, mean, {"EOT through the sampled VAE": eot(sampled, samples=int(s.eot_samples))},
                        f"the robust ensemble end to end through the VAE; EOT-PGD ({s.eot_samples} draws) through "
                        "the sampled VAE", ck, train_seconds=float(tv.train_seconds), extra={"vae": tv.key})
    if defense == "uap_retraining":
        r = _retrained(tm, defense_images(task, profile), profile, dev)
        model = _restore(tm.config, len(tm.classes), r["state"], dev)
        return Defended(model, model, {}, "the robust ensemble on the retrained model", ck,
                        train_seconds=r["seconds"], history=r["history"], extra=_retraining_settings(profile))
    valid = ["none", "jpeg", *(f"at_{m}" for m in s.adversarial), "vae", "uap_retraining"]
    raise KeyError(f"unknown defense {defense!r} for this profile; valid: {', '.join(valid)}")


def defense_identity(task: str, defense: str, tm: Any, profile: Profile, *,
                     quality: int | None = None) -> tuple[str, Any]:
    """``(model_key, extra)`` of :func:`defended` (what its memo keys hold), computed without
    training or loading the defense: a stored run is found without touching the adversarially
    trained checkpoint, the VAE or the retraining (a test checks both agree)."""
    s = profile.defense
    ck = tm.config.key()
    if defense == "jpeg":
        return ck, {"quality": int(s.jpeg_quality if quality is None else quality)}
    if defense.startswith("at_") and defense[3:] in s.adversarial:
        return adversarial_train_config(tm.config, defense[3:], profile).key(), None
    if defense == "vae":
        imgs, kwargs = _vae_inputs(tm.config, s, profile.seed)
        return ck, {"vae": vae_key(imgs, **kwargs)}
    if defense == "uap_retraining":
        return ck, _retraining_settings(profile)
    if defense == "none":
        return ck, None
    raise KeyError(f"unknown defense {defense!r} for this profile; valid: {', '.join(defense_names(profile))}")


def defense_run(task: str, key: ModelKey, tm: Any, defense: str, profile: Profile, *, quality: int | None = None,
                refresh: bool = False) -> DefenseRun:
    """One defense of one task (:func:`defended`) measured on :func:`defense_images`, memoised
    under the checkpoint keys, the images and the settings; ``quality``: JPEG's (None: the
    profile's, the chapter's run; the defense explorer asks for others). The defense is built
    only when the run is not stored (:func:`defense_identity`)."""
    images = defense_images(task, profile)
    model_key, extra = defense_identity(task, defense, tm, profile, quality=quality)
    return _as_run(memo("defenses", _memo_key(profile, task, defense, model_key, images, extra),
                        lambda: _run(task, defense, f"{key.arch}:{key.init}",
                                     defended(task, defense, tm, profile, quality=quality), tm.model.eval(), images,
                                     profile), refresh=refresh))


def defense_names(profile: Profile) -> list[str]:
    """The defenses a profile measures, in the order of its tables: none, JPEG, each
    adversarial training of ``defense.adversarial``, the VAE, UAP retraining."""
    return ["none", "jpeg", *(f"at_{m}" for m in profile.defense.adversarial), "vae", "uap_retraining"]


def task_defenses(task: str, key: ModelKey, tm: Any, profile: Profile, *, refresh: bool = False,
                  device: Any = None, only: Sequence[str] | None = None) -> list[DefenseRun]:
    """Every defense of ``defense`` for one task's model ``tm`` (a zoo ``TrainedModel``):
    :func:`defense_run` of each of :func:`defense_names`.

    Args:
        only: compute just these defenses (names of :func:`defense_names`), under the memo
            keys the full call uses: one build cell per defense (:mod:`.cells`).
    """
    return [defense_run(task, key, tm, name, profile, refresh=refresh) for name in defense_names(profile)
            if only is None or name in only]


# --------------------------------------------------------------------------- the explorer's images
#: Bump when what :func:`attacked_images` stores changes.
EXPLORER_VERSION = 1
#: The adaptive attacker's source that is the oblivious attacker's image.
OBLIVIOUS_SOURCE = "oblivious images"


@dataclass
class AttackedImages:
    """A few test images of one defense, clean and attacked (the defense explorer's frames).

    Attributes:
        x, y: the images ``(N, C, H, W)`` in [0, 1] and their labels ``(N,)``.
        eps_255: the budgets (/255, ascending: ``defense.eps_255``).
        clean: the defended model's scores on ``x`` ``(N, K)``.
        adv: per attacker (:data:`ATTACKERS`), the adversarial images ``(E, N, C, H, W)``:
            per budget and image the worst case over the attacker's sources, nested over the
            budgets, exactly as the chapter's curves count them.
        proba: per attacker, the defended model's scores on them ``(E, N, K)``.
        source: per attacker, the source of each image (``[E][N]``: ``"ensemble"``, an extra
            source's name or :data:`OBLIVIOUS_SOURCE`).
    """

    x: torch.Tensor
    y: torch.Tensor
    eps_255: tuple[float, ...]
    clean: np.ndarray
    adv: dict[str, torch.Tensor]
    proba: dict[str, np.ndarray]
    source: dict[str, list[list[str]]]


def attacked_images(task: str, tm: Any, defense: str, profile: Profile, index: Sequence[int], *,
                    quality: int | None = None, refresh: bool = False) -> AttackedImages:
    """The test images ``index`` (positions in :func:`defense_images`) of ``defense`` on ``task``'s
    zoo model ``tm``, attacked by both attackers at every budget of ``defense.eps_255``: the
    oblivious PGD on the undefended model; the adaptive worst case over the robust ensemble on
    the defense (each budget run alone, so every budget has its image), the defense's extra
    sources and the oblivious image (:func:`evaluate_defense`'s sources). ``quality``: JPEG's
    (None: the profile's). Memoised under the defense's keys and the images."""
    s = profile.defense
    images = defense_images(task, profile)
    shown = images.subset(np.asarray(index, dtype=int))
    d = defended(task, defense, tm, profile, quality=quality)
    eps_255 = tuple(sorted(float(e) for e in s.eps_255))

    def compute() -> dict[str, Any]:
        base = tm.model.eval()
        x, y = _pixels(shown, module_device(base))
        grid = [e / 255 for e in eps_255]
        kw = {"eps_grid": grid, "steps": int(s.steps), "seed": profile.seed}
        cands = {"ensemble": ensemble_images(d.attackable, x, y, eps_grid=grid, profile=profile),
                 **{name: transfer_images(src, x, y, **kw) for name, src in d.extra_sources.items()},
                 OBLIVIOUS_SOURCE: transfer_images(base, x, y, **kw)}
        probas = {name: np.stack([predict_proba(d.evaluated, xa) for xa in imgs]) for name, imgs in cands.items()}
        y_np = y.cpu().numpy()
        out: dict[str, Any] = {"clean": predict_proba(d.evaluated, x), "adv": {}, "proba": {}, "source": {}}
        for attacker, names in (("oblivious", [OBLIVIOUS_SOURCE]), ("adaptive", list(cands))):
            src, bud = worst_case_choice([probas[n] for n in names], y_np)
            n = np.arange(len(y_np))
            out["adv"][attacker] = torch.stack([torch.stack([cands[names[src[e, i]]][bud[e, i]][i].cpu() for i in n])
                                                for e in range(len(grid))])
            out["proba"][attacker] = np.stack([probas[n] for n in names])[src, bud, n[None, :]]
            out["source"][attacker] = [[names[j] for j in row] for row in src]
        return out

    key = {"version": EXPLORER_VERSION, "defense_version": DEFENSE_VERSION, "task": task, "defense": defense,
           "model": d.model_key, "extra": d.extra, "images": wb.images_key(shown.images, shown.labels),
           "eps_255": list(eps_255), "steps": int(s.steps), "ensemble": ensemble_settings(profile),
           "seed": profile.seed}
    out = memo("defense_explorer_images", key, compute, refresh=refresh)
    return AttackedImages(x=shown.float(), y=torch.as_tensor(shown.labels).long(), eps_255=eps_255,
                          clean=np.asarray(out["clean"]), adv=dict(out["adv"]),
                          proba={a: np.asarray(p) for a, p in out["proba"].items()}, source=dict(out["source"]))


# --------------------------------------------------------------------------- smoothing
def smoothing_config(base: TrainConfig, profile: Profile) -> TrainConfig:
    """The noise-trained base classifier's recipe: the zoo model's with Gaussian noise of ``smoothing_sigma``."""
    return dataclasses.replace(base, adversarial=AdversarialConfig("gaussian",
                                                                   sigma=float(profile.defense.smoothing_sigma)))


def smoothing_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                      device: Any = None) -> CertifiedRun | None:
    """Randomized smoothing (Cohen, Rosenfeld & Kolter 2019) on ``defense.smoothing_task``: the
    zoo model's recipe trained with Gaussian noise of ``smoothing_sigma``, certified on
    ``smoothing_images`` test images (None where the profile has no such task)."""
    s = profile.defense
    task = s.smoothing_task
    if task is None or task not in profile.tasks:
        return None
    from ..blackbox.surrogates import primary_key

    key = primary_key(profile, zoo, task, s.model)
    cfg = smoothing_config(zoo[key].config, profile)
    base = get_trained_model(cfg, device=device, progress=False)
    images = defense_images(task, profile, int(s.smoothing_images))
    mkey = {"version": DEFENSE_VERSION, "model": cfg.key(), "images": wb.images_key(images.images, images.labels),
            "n": int(s.smoothing_n), "n0": int(s.smoothing_n0), "alpha": float(s.smoothing_alpha),
            "radii": [float(r) for r in s.smoothing_radii], "seed": profile.seed}

    def compute():
        dev = module_device(base.model)
        x, y = _pixels(images, dev)
        t0 = time.perf_counter()
        cert = SmoothedClassifier(base.model.eval(), float(s.smoothing_sigma)).certify(
            x, n0=int(s.smoothing_n0), n=int(s.smoothing_n), alpha=float(s.smoothing_alpha), seed=profile.seed)
        seconds = time.perf_counter() - t0
        curve = cert.certified_accuracy(y, list(s.smoothing_radii)).to_frame()
        clean = float((predict_proba(base.model, x).argmax(1) == y.cpu().numpy()).mean())
        abstain = float((cert.label.cpu() < 0).float().mean())
        return {"curve": curve, "abstain": abstain, "clean": clean, "seconds": seconds}

    out = memo("defenses_smoothing", mkey, compute, refresh=refresh)
    return CertifiedRun(task=task, model=f"{key.arch}:{key.init}", sigma=float(s.smoothing_sigma), n=int(s.smoothing_n),
                        n0=int(s.smoothing_n0), alpha=float(s.smoothing_alpha), n_images=len(images.labels),
                        curve=out["curve"], abstain=float(out["abstain"]), base_clean_accuracy=float(out["clean"]),
                        train_seconds=float(base.train_seconds), certify_seconds=float(out["seconds"]))


# --------------------------------------------------------------------------- a profile
def defense_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False, device: Any = None,
                    progress: bool = True) -> DefenseResults:
    """:func:`task_defenses` for every task of :func:`defense_tasks` (its ``defense.model`` from
    ``zoo``, else the task's first model), and :func:`smoothing_results`."""
    from ..blackbox.surrogates import primary_key

    if profile.defense is None:
        raise ValueError(f"profile {profile.name!r} has no defense section")
    runs: list[DefenseRun] = []
    tasks = [t for t in defense_tasks(profile) if any(k[0] == t for k in zoo)]
    for task in tqdm(tasks, desc="defenses", unit="task", disable=not progress):
        key = primary_key(profile, zoo, task, profile.defense.model)
        runs.extend(task_defenses(task, key, zoo[key], profile, refresh=refresh, device=device))
    return DefenseResults(runs, smoothing_results(profile, zoo, refresh=refresh, device=device))


__all__ = ["ATTACKERS", "DEFENSES", "LABELS", "OBLIVIOUS_SOURCE", "STUDY_ATTACKS", "AttackedImages",
           "CertifiedRun", "Defended", "DefenseResults", "DefenseRun", "adversarial_config",
           "adversarial_model", "adversarial_train_config", "attacked_images", "defended", "defense_identity",
           "defense_images", "defense_names",
           "defense_results", "defense_run", "defense_tasks", "defense_vae", "diagnostics",
           "ensemble_images", "evaluate_defense", "smoothing_config", "smoothing_results",
           "study_attack_rows", "task_defenses", "transfer_images", "transfer_probas", "worst_case",
           "worst_case_choice"]
