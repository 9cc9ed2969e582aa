# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The studies' claims
#
# This book exists to answer one question: which of the three studies' findings hold, and how
# strongly? This chapter sets each of their twelve claims beside the number our chapters
# computed for it ({numref}`tab-claims`, {numref}`fig-claims`) and gives each a verdict by the
# rule below. Nothing here is measured anew: every number is read from the headline record
# each chapter wrote when it ran with this profile's settings (the appendix lists them, with
# the commit and time each was written), so the verdicts change when the results do; a chapter
# that has not run stops this one with its name.
#
# **The rule.** A claim *agrees* when our estimate lies within the study's stated bound, or our
# 95 % interval covers its figure (or lies within a stated tolerance of it); *same direction*
# when the effect has the study's sign but another size; *disagrees* when it does not have the
# study's sign; *not comparable* when our setting cannot test it (a task or an experiment this
# profile lacks). "About 0" means at most 0.05. A claim with several parts takes the least
# favourable verdict of its parts. For each claim that does not agree, the reason column gives
# the measurement of this book that bears on it (the resolution ablation and the weight drift
# of chapter 4, the ensemble and diagnostics of chapter 2), or says "unexplained".

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks
models = None  # None: the profile's models

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it).
from IPython import get_ipython
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import profiles
from advmed.experiments.claims import plots as cplots
from advmed.experiments.claims import report, run, tables

get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, models=models)

# %% [markdown]
# ## The twelve claims beside ours

# %%
claims = run.all_claims(prof)

# %% tags=["hide-input"]
pages.table(tables.claims_summary(claims), "tab-claims",
            "The studies' twelve claims and the verdict of our measurements, with the chapter that computed ours. "
            "The study's figure and setting, ours and our setting, the rule that decided and the reason are in the "
            "appendix.", data=tables.claims_table(claims))

# %% tags=["hide-input"]
pages.figure(cplots.verdict_figure(claims), "fig-claims",
             "Each claim's estimate on our side (dot; bar: its 95 % interval or range), coloured by its verdict. "
             "The quantity is the one the claim is about: an accuracy, an AUC or a success rate.")

# %% tags=["remove-cell"]
pages.glue_numbers("claims", tables.verdict_tally(claims))
abstract = report.abstract(claims, prof.name)
pages.glue_text("claims-abstract", abstract)

# %% [markdown]
# ## Conclusion
#
# In one sentence, pasted into the book's abstract:

# %% tags=["remove-input"]
Markdown(f"> {abstract}\n\nThe claims that do not agree, and what this book measured about each:\n\n"
         + report.conclusion(claims))

# %% [markdown]
# (claims-appendix)=
# ## Appendix: every claim in full
#
# Interactive table (search, sort), downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.claims_table(claims), "tab-claims-full",
                     "Every claim: the study's figure and setting, ours and our setting, ours − study where both are "
                     "numbers, the verdict, and the measured reason for a verdict other than agrees.")

# %% tags=["hide-input"]
pages.appendix_table(tables.records_table(run.read_records(prof)), "tab-claims-records",
                     "The headline records this chapter read: the chapter that wrote each, its images, the "
                     "checkpoints behind it, the commit and time it was written and the profile's settings.")

# %% tags=["remove-input"]
page.footer(prof.name)
