"""One registry of chapter 7's defenses: name, label, builder, identity, cost.

Every module of the family (the run, the cells, the tables, the figures, the prose) asks this
registry which defenses there are, how each is built and named, and what it costs, in the
spirit of :class:`advmed.attacks.AttackSpec`. Adding a defense is one module in
:mod:`.builders` (its ``build`` and ``identity``, and ``cost`` / ``train`` where it adds work)
and one :class:`DefenseSpec` in :data:`DEFENSES` below (its place there is its place in the
tables), plus its tests.

Example:
    >>> from advmed.experiments.defenses.registry import DEFENSES, get_defense
    >>> get_defense("jpeg").label, get_defense("jpeg").options
    ('JPEG', ('quality',))
    >>> list(DEFENSES)[:2]
    ['none', 'jpeg']
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

from ..profiles import Profile
from .builders import adversarial, bitdepth, jpeg, none, retraining, vae
from .common import Defended

#: What a defense's claim is read against (the claims chapter's claims 4, 5 and 12).
CLAIMS = ("adversarial_training", "fgsm_training", "preprocessing", "retraining")


def _always(profile: Profile) -> bool:
    return True


def _no_cost(profile: Profile, task: str, cfg: Any) -> float:
    return 0


class Training(NamedTuple):
    """A defense's own training, a stage-0 cell beside the zoo's (from the zoo model's config alone).

    Attributes:
        cell: the cell's name under ``defenses/``, ``{task}`` filled in (``"vae/{task}"``).
        fn: ``fn(profile, task, cfg) -> str`` trains (or loads) it through its cache from the
            zoo model's TrainConfig ``cfg``; returns a one-line summary.
        gmac: ``gmac(profile, cfg) -> float``, the training's estimated GMAC.
    """

    cell: str
    fn: Callable[[Profile, str, Any], str]
    gmac: Callable[[Profile, Any], float]


@dataclass(frozen=True)
class DefenseSpec:
    """How one defense is built, identified, named and costed.

    Attributes:
        name: registry key, e.g. ``"jpeg"``, ``"at_pgd"`` (memo keys and cell names hold it).
        label: how tables, figures and widgets show it, e.g. ``"JPEG"``.
        build: ``build(task, tm, profile, **options) -> Defended``: the defense of ``task``'s zoo
            model ``tm`` (a ``TrainedModel``) as the attackers meet it, trained through its cache
            when absent.
        identity: ``identity(task, tm, profile, **options) -> (model_key, extra)``: what
            ``build``'s :class:`~.common.Defended` holds in ``model_key`` and ``extra`` (what the
            memo keys hold), computed without training or loading anything, so a stored run
            is found without building the defense (a test checks both agree).
        cost: ``cost(profile, task, cfg) -> float``: the forward-equivalents of the zoo model
            (TrainConfig ``cfg``) that the defense adds to the evaluation every defense gets
            (its extra adaptive sources, its own building); the cells' estimate.
        train: its own training as a stage-0 cell (:class:`Training`), None where it has none.
        applies: ``applies(profile) -> bool``: whether the profile measures it
            (``at_<method>``: ``defense.adversarial`` lists the method).
        options: the keyword arguments ``build`` and ``identity`` take beyond the task, the
            model and the profile (JPEG: ``quality``, which the explorer varies).
        sources: its extra adaptive sources, name (as :class:`~.common.Defended` holds them)
            -> how the explorer names it in one short line.
        noun: how a sentence names it (default: ``label``).
        claim: the study claim it is read against (one of :data:`CLAIMS`), None for none.
        reference: the undefended model, the reference row: no masking diagnostics, not
            counted among the defended models.
        cite: the paper, as the book's bibliography key.
    """

    name: str
    label: str
    build: Callable[..., Defended] = field(repr=False)
    identity: Callable[..., tuple[str, Any]] = field(repr=False)
    cost: Callable[[Profile, str, Any], float] = field(default=_no_cost, repr=False)
    train: Training | None = field(default=None, repr=False)
    applies: Callable[[Profile], bool] = field(default=_always, repr=False)
    options: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    noun: str = ""
    claim: str | None = None
    reference: bool = False
    cite: str = ""

    def __post_init__(self) -> None:
        if self.claim is not None and self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r} of defense {self.name!r}; valid: {', '.join(CLAIMS)}")

    @property
    def said(self) -> str:
        """How a sentence names the defense (:attr:`noun`, else :attr:`label`)."""
        return self.noun or self.label


def _adversarial(method: str, label: str, **kw: Any) -> DefenseSpec:
    """The registry entry of adversarial training with ``method`` (one per method)."""
    return DefenseSpec(f"at_{method}", label, functools.partial(adversarial.build, method=method),
                       functools.partial(adversarial.identity, method=method),
                       train=Training(f"at/{{task}}/{method}", functools.partial(adversarial.train, method=method),
                                      functools.partial(adversarial.train_gmac, method=method)),
                       applies=functools.partial(adversarial.applies, method=method), **kw)


#: The defenses, in the order of the tables.
DEFENSES: dict[str, DefenseSpec] = {spec.name: spec for spec in (
    DefenseSpec("none", "none (undefended)", none.build, none.identity, reference=True),
    DefenseSpec("jpeg", "JPEG", jpeg.build, jpeg.identity, jpeg.cost, options=("quality",), sources=jpeg.SOURCES,
                claim="preprocessing", cite="li2019adversarialmed"),
    _adversarial("adversarialmed", "adversarial training (AdversarialMed)", claim="adversarial_training",
                 cite="li2019adversarialmed"),
    _adversarial("adversarialmed_fgsm", "FGSM training (AdversarialMed)", claim="fgsm_training",
                 cite="li2019adversarialmed"),
    _adversarial("pgd", "adversarial training (PGD, Madry et al.)", cite="madry2018towards"),
    _adversarial("fast_fgsm", "adversarial training (fast FGSM)", cite="wong2020fast"),
    DefenseSpec("bitdepth", "bit-depth reduction", bitdepth.build, bitdepth.identity, applies=bitdepth.applies,
                noun="bit-depth reduction", cite="xu2018feature"),
    DefenseSpec("vae", "VAE denoising", vae.build, vae.identity, vae.cost,
                train=Training("vae/{task}", vae.train, vae.train_gmac), sources=vae.SOURCES, noun="the VAE",
                claim="preprocessing", cite="li2019adversarialmed"),
    DefenseSpec("uap_retraining", "UAP retraining (Hirano et al.)", retraining.build, retraining.identity,
                retraining.cost, claim="retraining", cite="hirano2021universal"),
)}
#: How tables name each defense.
LABELS = {name: spec.label for name, spec in DEFENSES.items()}
#: The undefended reference row's name.
REFERENCE = next(name for name, spec in DEFENSES.items() if spec.reference)


def defense_label(name: str) -> str:
    """How tables name the defense ``name`` (an unknown name as it is)."""
    return DEFENSES[name].label if name in DEFENSES else str(name)


def is_reference(name: str) -> bool:
    """``name`` is the undefended reference (no diagnostics; not one of the defended models)."""
    return name in DEFENSES and DEFENSES[name].reference


def claimed(claim: str) -> list[str]:
    """The defenses read against the study claim ``claim`` (one of :data:`CLAIMS`), in the order of the tables."""
    if claim not in CLAIMS:
        raise KeyError(f"unknown claim {claim!r}; valid: {', '.join(CLAIMS)}")
    return [name for name, spec in DEFENSES.items() if spec.claim == claim]


def adaptive_sources() -> dict[str, str]:
    """Every defense's extra adaptive sources, name -> how the explorer names it."""
    return {k: v for spec in DEFENSES.values() for k, v in spec.sources.items()}


def get_defense(name: str) -> DefenseSpec:
    """The :class:`DefenseSpec` registered under ``name``; an unknown name is refused with the valid ones."""
    if name not in DEFENSES:
        raise KeyError(f"unknown defense {name!r}; valid defenses: {', '.join(DEFENSES)}")
    return DEFENSES[name]


def defense_names(profile: Profile) -> list[str]:
    """The defenses a profile measures, in the order of the tables (:data:`DEFENSES`): none,
    JPEG, each adversarial training of ``defense.adversarial``, the VAE, UAP retraining."""
    return [name for name, spec in DEFENSES.items() if spec.applies(profile)]


def _measured(defense: str, profile: Profile) -> DefenseSpec:
    if defense not in DEFENSES or not DEFENSES[defense].applies(profile):
        raise KeyError(f"unknown defense {defense!r} for this profile; valid: {', '.join(defense_names(profile))}")
    return DEFENSES[defense]


def _options(spec: DefenseSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``spec`` takes, of those given (the others, such as a quality for a defense
    without one, do not concern it)."""
    return {k: v for k, v in given.items() if k in spec.options}


def defended(task: str, defense: str, tm: Any, profile: Profile, *, quality: int | None = None) -> Defended:
    """The defense ``defense`` (a name of :func:`defense_names`) of ``task``'s zoo model ``tm``
    (a ``TrainedModel``), as the attackers meet it; ``quality``: JPEG only, the libjpeg quality
    (None: ``defense.jpeg_quality``). Trained defenses come from their caches (the checkpoint
    cache, the VAE's, the retraining memo), trained there first when absent."""
    spec = _measured(defense, profile)
    return spec.build(task, tm, profile, **_options(spec, {"quality": quality}))


def defense_identity(task: str, defense: str, tm: Any, profile: Profile, *,
                     quality: int | None = None) -> tuple[str, Any]:
    """``(model_key, extra)`` of :func:`defended` (what its memo keys hold), computed without
    training or loading the defense: a stored run is found without touching the adversarially
    trained checkpoint, the VAE or the retraining (a test checks both agree)."""
    spec = _measured(defense, profile)
    return spec.identity(task, tm, profile, **_options(spec, {"quality": quality}))


__all__ = ["CLAIMS", "DEFENSES", "DefenseSpec", "LABELS", "REFERENCE", "Training", "adaptive_sources", "claimed",
           "defended", "defense_identity", "defense_label", "defense_names", "get_defense", "is_reference"]
