"""Chapters 8-10's family: the studies' claims beside ours, each with two computed verdicts, and
the Methods and Discussion chapters that explain and qualify them.

- :mod:`.registry`: every claim fixed before the numbers (quote, source, setting, rules), sealed
  by a fingerprint and its changelog.
- :mod:`.statistics`: intervals, TOST and bound rules, images needed.
- :mod:`.verdicts`: evidence at two settings -> verdicts (`Claim`, `judge`).
- :mod:`.run`: one function per claim, reading the headline records of chapters 1-7.
- :mod:`.tables`, :mod:`.plots`, :mod:`.report`: the tables, the summary figure, the abstract.
- :mod:`.methods`, :mod:`.discussion`: the Methods and Discussion chapters' tables.
"""
from . import discussion, methods, plots, registry, report, run, statistics, tables, verdicts

__all__ = ["discussion", "methods", "plots", "registry", "report", "run", "statistics", "tables", "verdicts"]
