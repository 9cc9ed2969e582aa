"""Chapter 7's experiment family: defenses under oblivious and adaptive attack.

- :mod:`.registry`: the defenses (:class:`~.registry.DefenseSpec`: name, label, builder,
  identity, cost), one builder module each in :mod:`.builders`; ``defended`` /
  ``defense_identity`` build or identify one.
- :mod:`.evaluate`: the adversarial evaluation of one defended model (clean, oblivious,
  adaptive worst case, the studies' attacks, masking diagnostics).
- :mod:`.run`: every defense of every task of ``profile.defense`` (memoised), and the names
  the chapter uses; :mod:`.smoothing`: randomized smoothing's certification;
  :mod:`.explorer`: the defense explorer's attacked images.
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the page's tables, figures and prose, and
  :func:`.report.claim_numbers` for the claims chapter.
"""
from . import plots, registry, report, run, tables

__all__ = ["plots", "registry", "report", "run", "tables"]
