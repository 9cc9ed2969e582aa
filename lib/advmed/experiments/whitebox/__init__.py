"""Chapter 2's experiment family: white-box attacks on every model of a profile.

- :mod:`.run`: the sweeps (every attack at every eps) and the studies' own settings, memoised.
- :mod:`.tables`: sweep tables, accuracy grids, perceptibility, study comparisons.
- :mod:`.plots`: robustness curves, the adversarial-example gallery, explorer inputs.
- :mod:`.report`: the prose computed from the results.
"""
from . import plots, report, run, tables

__all__ = ["plots", "report", "run", "tables"]
