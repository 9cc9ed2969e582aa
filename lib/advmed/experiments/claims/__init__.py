"""Chapter 8's family: the studies' twelve claims beside ours, each with a computed verdict.

- :mod:`.verdicts`: the rule (agrees / same direction / disagrees / not comparable), `Claim`.
- :mod:`.run`: one function per claim, computed from the cached results of chapters 1-7.
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the table, the summary figure, the abstract.
"""
from . import plots, report, run, tables, verdicts

__all__ = ["plots", "report", "run", "tables", "verdicts"]
