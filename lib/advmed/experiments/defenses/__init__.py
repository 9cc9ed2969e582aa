"""Chapter 7's experiment family: defenses under oblivious and adaptive attack.

- :mod:`.run`: JPEG, adversarial training, VAE denoising, UAP retraining and randomized
  smoothing on every task of ``profile.defense``; oblivious and adaptive robust accuracy,
  masking diagnostics and costs (all memoised).
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the page's tables, figures and prose, and
  :func:`.report.claim_numbers` for the claims chapter.
"""
from . import plots, report, run, tables

__all__ = ["plots", "report", "run", "tables"]
