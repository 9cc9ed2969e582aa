"""One registry of the library's attacks: name, display label, threat model, step rule.

Every experiment, table, figure and widget asks this registry how an attack is called
and what it is called, so that a name is spelled and a step size is computed in one
place (``bim`` is shown as "I-FGSM" everywhere).

Example:
    >>> from advmed.attacks import get_attack
    >>> spec = get_attack("bim")
    >>> spec.name, spec.label, spec.step_size(eps=8 / 255, steps=10) == 2 / 255
    ('ifgsm', 'I-FGSM', True)
    >>> # x_adv = spec.call(model, x, y, eps=2 / 255, steps=10, seed=0)
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ..device import amp_enabled

#: Threat models, as ART groups its attacks (evasion white-box, universal, black-box, patch).
THREATS = ("whitebox", "universal", "blackbox", "patch")


def default_step_size(eps: float, steps: int, rule: str = "madry") -> float:
    """The step size of an iterative attack when none is given, in [0, 1] pixel units.

    ``"madry"``: ``2.5 * eps / steps`` (Madry et al. 2018, appendix): enough to walk from
    any point of the ball to its far side and keep moving along the boundary. It equals
    torchattacks' defaults (eps 8/255, alpha 2/255, 10 steps). Used by I-FGSM and PGD.
    ``"dong"``: ``eps / steps`` (Dong et al. 2018, alpha = eps / T). Used by MI-FGSM.
    """
    if rule == "madry":
        return 2.5 * eps / steps
    if rule == "dong":
        return eps / steps
    raise ValueError(f"unknown step-size rule {rule!r}; valid: madry, dong")


@dataclass(frozen=True)
class AttackSpec:
    """How one attack is named, shown and called.

    Attributes:
        name: registry key (lower case), e.g. ``"ifgsm"``.
        label: how tables, figures and widgets show it, e.g. ``"I-FGSM"``.
        fn: the functional attack ``fn(model, x, y, *, eps, ...) -> x_adv``.
        threat: one of :data:`THREATS`.
        step_rule: ``"madry"`` / ``"dong"`` for fixed-step iterative attacks (see
            :func:`default_step_size`), ``"eps"`` for a single step of size eps, None where
            the attack chooses its own steps (APGD, query attacks).
        aliases: other names accepted by :func:`get_attack`.
        cite: the paper, as the book's bibliography key.
    """

    name: str
    label: str
    fn: Callable = field(repr=False)
    threat: str = "whitebox"
    step_rule: str | None = "madry"
    aliases: tuple[str, ...] = ()
    cite: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def iterative(self) -> bool:
        return self.step_rule != "eps"

    def step_size(self, eps: float, steps: int, step_size: float | None = None) -> float | None:
        """The step the attack takes at this budget ([0, 1] pixels); None if it adapts it."""
        if self.step_rule == "eps":
            return float(eps)
        if step_size is not None:
            return float(step_size)
        if self.step_rule is None:
            return None
        return default_step_size(float(eps), int(steps), self.step_rule)

    def steps_taken(self, steps: int | None) -> int:
        """Gradient steps the attack takes (1 for FGSM; 0 for attacks without steps, such as
        query attacks, whose budget is counted in queries)."""
        if self.step_rule == "eps":
            return 1
        return int(steps or 0) if "steps" in self.accepts() else 0

    def accepts(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.fn).parameters)

    def call(self, model: Any, x: Any, y: Any, *, eps: float, steps: int | None = None,
             step_size: float | None = None, seed: int | None = None, restarts: int | None = None,
             targeted: bool = False, target: Any = None, batch_size: int | None = None,
             early_stop: bool | None = None, progress: bool = False, **extra: Any) -> Any:
        """Run the attack with a budget and the settings of a sweep.

        Settings that a sweep shares but this attack has no use for are left out (FGSM is
        one step of size eps by definition, so it takes no ``steps``; only attacks with
        random starts take ``seed`` and ``restarts``; only iterative attacks stop early).
        ``early_stop=None`` keeps the attack's default. ``extra`` keyword arguments are passed
        as they are and must be accepted by the attack. Attacks with an ``amp`` argument get
        :func:`advmed.device.amp_enabled` (``ADVMED_AMP``) unless ``extra`` gives it.
        """
        params = self.accepts()
        kw: dict[str, Any] = {"eps": eps}
        if self.iterative and steps is not None and "steps" in params:  # query attacks: no steps
            kw["steps"] = int(steps)
            if step_size is not None:
                kw["step_size"] = float(step_size)
        for name, value in (("seed", seed), ("restarts", restarts), ("batch_size", batch_size)):
            if value is not None and name in params:
                kw[name] = int(value)
        if "progress" in params:
            kw["progress"] = bool(progress)
        if early_stop is not None and "early_stop" in params:
            kw["early_stop"] = bool(early_stop)
        if "amp" in params and "amp" not in extra:  # the precision policy (ADVMED_AMP)
            kw["amp"] = amp_enabled()
        if targeted:
            kw["targeted"], kw["target"] = True, target
        unknown = set(extra) - params
        if unknown:
            raise TypeError(f"{self.name} takes no {', '.join(sorted(unknown))}; it takes "
                            f"{', '.join(sorted(params - {'model', 'x', 'y'}))}")
        kw.update(extra)
        return self.fn(model, x, y, **kw)


ATTACKS: dict[str, AttackSpec] = {}


def register(spec: AttackSpec) -> AttackSpec:
    """Add an attack to :data:`ATTACKS` (its name and aliases must be new)."""
    if spec.threat not in THREATS:
        raise ValueError(f"unknown threat {spec.threat!r}; valid: {', '.join(THREATS)}")
    for key in (spec.name, *spec.aliases):
        if _normalise(key) in _INDEX:
            raise ValueError(f"attack name {key!r} is registered already")
    ATTACKS[spec.name] = spec
    for key in (spec.name, *spec.aliases):
        _INDEX[_normalise(key)] = spec.name
    return spec


_INDEX: dict[str, str] = {}


def _normalise(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


def get_attack(name: str) -> AttackSpec:
    """The :class:`AttackSpec` registered under ``name`` (case, ``-`` and ``_`` ignored;
    aliases such as ``bim`` and ``I-FGSM`` accepted)."""
    key = _INDEX.get(_normalise(name))
    if key is None:
        raise ValueError(f"unknown attack {name!r}; valid attacks: {', '.join(ATTACKS)}")
    return ATTACKS[key]


def attack_label(name: str) -> str:
    """The display label of an attack name (``"clean"`` and unknown names as they are)."""
    key = _INDEX.get(_normalise(name))
    return ATTACKS[key].label if key else str(name)
