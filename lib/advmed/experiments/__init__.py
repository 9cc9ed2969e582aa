"""The experiments layer: what the chapters run, at the sizes of a profile.

- :mod:`.profiles`: the typed profiles (smoke, cpu, paper): the only place sizes are written.
- :mod:`.zoo`: the profile's trained models, test sets and clean results.
- :mod:`.references`: the studies' published figures (the only place a study number is written).
- :mod:`.compare`, :mod:`.cards`: study-vs-ours rows and dataset cards.
- One subpackage per experiment family with the same modules (run, tables, plots, report):
  :mod:`.whitebox` (chapter 2), :mod:`.universal` (chapters 3 and 4).

It builds on the core (data, models, attacks, defenses, metrics, train, cache, device) and the
presentation layer (plots, widgets); nothing below imports it.
"""
