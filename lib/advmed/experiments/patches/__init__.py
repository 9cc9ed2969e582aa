"""Chapter 6's experiment family: adversarial patches (white box, black box, natural control).

- :mod:`.run`: the patches (memoised) and their evaluation at fixed scales.
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: Finlayson et al.'s table beside ours, the
  scale sweep, pictures of the patches and patched images, the prose.
"""
from . import plots, report, run, tables

__all__ = ["plots", "report", "run", "tables"]
