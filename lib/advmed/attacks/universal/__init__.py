"""Universal perturbations: one perturbation for every image (Moosavi-Dezfooli et al. 2017).

:mod:`.uap` builds them (iterative, targeted, batched); :mod:`.evaluate` applies them and
measures fooling and targeted success rates, with a random control of the same norm.
"""
from .evaluate import (
           apply,
           fooling_rate,
           per_class_rates,
           predict,
           random_control,
           targeted_success_rate,
)
from .uap import (
           METHODS,
           STUDY_STEP,
           UAPResult,
           eps_from_zeta,
           mean_norm,
           perturbation_norms,
           project,
           uap,
)

__all__ = ["METHODS", "STUDY_STEP", "UAPResult", "apply", "eps_from_zeta", "fooling_rate", "mean_norm",
           "per_class_rates", "perturbation_norms", "predict", "project", "random_control",
           "targeted_success_rate", "uap"]
