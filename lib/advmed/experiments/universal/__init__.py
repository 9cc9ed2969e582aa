"""Chapters 3 and 4's experiment family: universal perturbations from medical images and
from natural photos, for every model of a profile.

- :mod:`.run`: the UAPs (memoised), their random controls, transfer between models.
- :mod:`.tables`: every UAP beside its control, the study's claims, natural vs medical.
- :mod:`.plots`: the perturbations, images before / after, confusion matrices, bars.
- :mod:`.report`: the prose computed from the results.
- :mod:`.fidelity`: chapter 4's checks of our shortcuts (the resolution ablation, whose photo
  UAPs are this family's, and the weight drift of fine-tuned models from ImageNet).
"""
from . import fidelity, plots, report, run, tables

__all__ = ["fidelity", "plots", "report", "run", "tables"]
