"""Chapter 5's experiment family: black-box attacks on every task of a profile.

- :mod:`.run`: transfer matrices, Finlayson et al.'s black box, score-based query attacks,
  U-SimBA, and the check against chapter 2's white-box worst case (all memoised); the
  attacker's own models (another seed; disjoint training data) are the kernel's
  (:mod:`advmed.experiments.kernel.surrogates`): chapters 6 and 7 attack from them too.
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the page's tables, figures and prose.
"""
from . import plots, report, run, tables

__all__ = ["plots", "report", "run", "tables"]
