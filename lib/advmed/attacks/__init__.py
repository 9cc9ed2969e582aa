"""Attacks, grouped by threat model (as ART groups its evasion attacks), one file per attack.

Every attack is a function ``attack(model, x, y, *, eps, ...) -> x_adv`` with pixels in
[0, 1] and ``eps`` in [0, 1] pixel units; the model returns logits and is run in eval
mode under :func:`frozen_eval` (its mode and parameter gradients are restored).

- :mod:`.whitebox`: :func:`fgsm` (Goodfellow et al. 2015), :func:`ifgsm` / ``bim``
  (Kurakin et al. 2017), :func:`pgd` (Madry et al. 2018; L-inf or L2, random start,
  restarts), :func:`mifgsm` (Dong et al. 2018).
- :func:`apgd` (Croce & Hein 2020; CE, margin, DLR, APGD-T), and on top of the
  white-box attacks :func:`robust_accuracy` (:mod:`.robust`: the per-image worst case over
  an attack ensemble on nested budgets; :func:`worst_case` the same over the scores of several
  sources of adversarial images, e.g. a defense's attackers) and :func:`masking_diagnostics`
  (:mod:`.diagnostics`: the red flags of gradient masking), and :func:`escalate`
  (:mod:`.escalate`: the survivors of a worst case attacked by stronger and stronger stages,
  :class:`Stage` / :func:`default_stages`, until it stops moving or the stages are spent).
- :mod:`.universal`: :func:`~advmed.attacks.universal.uap`, universal perturbations
  (Moosavi-Dezfooli et al. 2017; Hirano & Takemoto 2020; Shafahi et al. 2020).
- :mod:`.blackbox`: score-based query attacks, :func:`~.blackbox.square` (Andriushchenko
  et al. 2020), :func:`~.blackbox.simba` (Guo et al. 2019) and the universal
  :func:`~.blackbox.usimba` (Koga & Takemoto 2022), through a query-counting oracle.
- :mod:`.patch`: :func:`~advmed.attacks.patch.train_patch`, universal targeted adversarial
  patches trained with expectation over transformations (Brown et al. 2017; Finlayson et al.
  2019). Registered as ``"patch"`` (threat ``"patch"``, ``step_rule=None``) for its name,
  label and citation only: it has no eps budget, so call the entry directly,
  ``get_attack("patch")(model, x, target=1)`` (the same as ``train_patch``), never through
  the eps-sweep helper ``AttackSpec.call(model, x, y, eps=...)``.

:data:`ATTACKS` / :func:`get_attack` is the one registry of names, display labels and
step-size rules (:mod:`.registry`). Losses (``loss=``): ``"ce"`` or ``"margin"``
(:mod:`.losses`; :func:`true_margin`, the true-class score minus the largest other, on
tensors or arrays). Targeted attacks: ``targeted=True, target=<int | tensor | "other">``.

Example:
    >>> import torch
    >>> from advmed.attacks import pgd
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> x_adv = pgd(model, x, y, eps=2 / 255, steps=5, seed=0)
    >>> bool((x_adv - x).abs().max() <= 2 / 255 + 1e-7)
    True
"""
from __future__ import annotations

from .checks import check_eps, check_images, check_labels, frozen_eval
from .losses import LOSSES, get_loss, true_margin
from .patch import train_patch
from .registry import ATTACKS, THREATS, AttackSpec, attack_label, default_step_size, get_attack, register
from .whitebox import apgd, bim, fgsm, ifgsm, mifgsm, pgd
from .blackbox import hopskipjump, images_only, simba, square, usimba  # noqa: E402
from .robust import (EnsembleMember, RobustResult, default_ensemble, robust_accuracy,  # noqa: E402
                     worst_case, worst_case_choice)
from .diagnostics import MaskingDiagnostics, masking_diagnostics  # noqa: E402
from .escalate import Escalation, Stage, StageRun, default_stages, escalate  # noqa: E402

register(AttackSpec("fgsm", "FGSM", fgsm, "whitebox", step_rule="eps", cite="goodfellow2015explaining"))
register(AttackSpec("ifgsm", "I-FGSM", ifgsm, "whitebox", step_rule="madry", aliases=("bim", "i-fgsm"),
                    cite="kurakin2017adversarial"))
register(AttackSpec("pgd", "PGD", pgd, "whitebox", step_rule="madry", cite="madry2018towards"))
register(AttackSpec("mifgsm", "MI-FGSM", mifgsm, "whitebox", step_rule="dong", cite="dong2018boosting"))
register(AttackSpec("apgd", "APGD", apgd, "whitebox", step_rule=None, aliases=("auto-pgd", "autopgd"),
                    cite="croce2020reliable"))
# query attacks: registered through images_only (the registry's fn -> x_adv); budgets are
# queries / max_queries / iterations, not steps. U-SimBA is "universal": one perturbation,
# evaluated on held-out images like every UAP (its black-box access is in its label).
register(AttackSpec("square", "Square", images_only(square), "blackbox", step_rule=None,
                    cite="andriushchenko2020square"))
register(AttackSpec("simba", "SimBA-DCT", images_only(simba), "blackbox", step_rule=None,
                    cite="guo2019simple"))
register(AttackSpec("hopskipjump", "HopSkipJump (label only)", images_only(hopskipjump), "blackbox",
                    step_rule=None, aliases=("hsja",), cite="chen2020hopskipjump"))
register(AttackSpec("usimba", "U-SimBA (black-box)", images_only(usimba), "universal", step_rule=None,
                    aliases=("u-simba",), cite="koga2022simple"))

register(AttackSpec("patch", "Adversarial patch", train_patch, "patch", step_rule=None,
                    aliases=("adversarial_patch",), cite="brown2017adversarial"))

__all__ = ["ATTACKS", "LOSSES", "THREATS", "AttackSpec", "EnsembleMember", "Escalation", "MaskingDiagnostics",
           "RobustResult", "Stage", "StageRun", "apgd", "attack_label", "bim", "check_eps", "check_images",
           "check_labels", "default_ensemble", "default_stages", "default_step_size", "escalate", "fgsm",
           "frozen_eval", "get_attack", "get_loss", "hopskipjump", "ifgsm", "masking_diagnostics", "mifgsm", "pgd", "register",
           "robust_accuracy", "simba", "square", "train_patch", "true_margin", "usimba", "worst_case",
           "worst_case_choice"]
