"""Chapter 5's experiment family: black-box attacks on every task of a profile.

- :mod:`.surrogates`: the attacker's own models (another seed; disjoint training data).
- :mod:`.run`: transfer matrices, Finlayson et al.'s black box, score-based query attacks,
  U-SimBA, and the check against chapter 2's white-box worst case (all memoised).
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the page's tables, figures and prose.
"""
from . import plots, report, run, surrogates, tables

__all__ = ["plots", "report", "run", "surrogates", "tables"]
