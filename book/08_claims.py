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
# strongly? This chapter sets each claim of the claims registry beside the numbers our chapters
# computed for it ({numref}`tab-claims`, {numref}`tab-claims-attacks`, {numref}`fig-claims`,
# {numref}`fig-claims-strongest`)
# and decides it by a rule the
# registry fixed before the numbers were seen. The registry quotes each study's own sentence with
# its source file, states where the study's figure comes from, and seals its rules with a
# fingerprint that a test compares with its dated changelog (the {doc}`09_methods` chapter lists
# the rules, the margins and the changelog). Nothing here is measured anew: every number is read
# from the headline record each chapter wrote when it ran with this profile's settings (the
# appendix lists them), so the verdicts change when the results do.
#
# **Two verdicts per claim.** Each claim is decided at the *study's setting* (their attack, budget
# and iterations, run on our models) and under the *book's strongest evaluation* for that claim
# (for example, the lowest accuracy over every attack at the same budget, the attacker who knows
# the defense, or the most successful surrogate). Where the study's attack is already the
# strongest the book runs for that threat model, both verdicts read the same evidence.
#
# **The rule.** A claim *agrees* when every part passes its test: for a study figure, the two
# one-sided tests of equivalence (TOST), read as our whole {glue:text}`method-level-pct` %
# interval within the registry's margin around the figure; for a bound ("more than", "about
# zero"), the whole interval on the study's side. It *disagrees* when an interval lies wholly
# beyond the margin on the other side, and holds in the *same direction* when it fails at the
# study's size but the effect the claim describes (a drop from clean accuracy, an excess over a
# random control) is at least the registry's effect size with its whole interval. It is
# *inconclusive* when an interval straddles the margin, so that our number of images cannot
# decide, and also when the evaluation does not believe its own number (a defense the masking
# diagnostics flag whose escalated attack did not converge: an upper bound): such a number yields
# neither agreement nor disagreement. It is *not
# comparable* when this profile lacks the task, model or experiment. A claim with several parts
# takes the least favourable verdict of its parts. The reason given for a claim that does not
# agree is the measurement of this book that bears on that claim, or "unexplained".

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)
tasks = None  # None: the profile's tasks
models = None  # None: the profile's models

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it).
from IPython import get_ipython
from IPython.display import Markdown

from advmed import pages
from advmed.experiments import profiles
from advmed.experiments.claims import methods
from advmed.experiments.claims import plots as cplots
from advmed.experiments.claims import report, run, tables

get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile, tasks=tasks, models=models)
pages.glue_numbers("method", methods.protocol(prof))


# %% tags=["remove-input"]
pages.banner(prof.name, prof.whitebox.n_images)
# %% [markdown]
# ## The claims beside ours

# %%
claims = run.all_claims(prof)

# %% tags=["hide-input"]
pages.table(tables.claims_summary(claims, ["adversarialmed"]), "tab-claims",
            "AdversarialMed's claims this profile can test and the verdicts of our measurements at the study's "
            "setting and under the book's strongest evaluation, with the chapter that computed ours. The study's "
            "words, figures and settings, ours with intervals, the rule's test per part and the reasons, for every "
            "claim, are in the appendix.", data=tables.claims_table(claims))

# %% tags=["hide-input"]
pages.table(tables.claims_summary(claims, exclude=["adversarialmed"]), "tab-claims-attacks",
            "The other studies' claims (Finlayson et al.; Hirano et al.; Minagi et al.), as the table above.")

# %% tags=["remove-input"]
Markdown(tables.untested_sentence(claims))

# %% tags=["hide-input"]
study_figure = cplots.verdict_figure(claims, setting=cplots.STUDY)
pages.figure(study_figure, "fig-claims",
             "Each tested claim part at the study's setting, one panel per kind of quantity: our estimate (dot; bar: "
             "its interval) coloured by the part's verdict, beside the study's figure (black line; grey band: the "
             "registry's margin) or the study's bound (dotted line; shade: the side the study claims).")

# %% tags=["hide-input"]
strongest_figure = cplots.verdict_figure(claims, setting=cplots.STRONGEST)
pages.figure(strongest_figure, "fig-claims-strongest",
             "The same under the book's strongest evaluation of each claim.")

# %% tags=["remove-cell"]
pages.glue_numbers("claims", tables.verdict_tally(claims, "study"))
pages.glue_numbers("claims-strongest", tables.verdict_tally(claims, "strongest"))
abstract = report.abstract(claims, prof.name)
pages.glue_text("claims-abstract", abstract)

# %% [markdown]
# ## Conclusion
#
# In one paragraph, pasted into the book's abstract:

# %% tags=["remove-input"]
Markdown(f"> {abstract}\n\nThe claims that do not agree at either setting, and what this book measured about each:\n\n"
         + report.conclusion(claims))

# %% [markdown]
# The {doc}`10_discussion` chapter says what these verdicts can and cannot establish with this
# profile: which claims the number of images cannot decide, and which depend on a recipe or a
# resolution the profile shortens.
#
# (claims-appendix)=
# ## Appendix: every claim in full
#
# Interactive tables (search, sort), downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(tables.claims_table(claims), "tab-claims-full",
                     "Every claim at both settings: what ran, the study's setting, ours with its interval and our "
                     "setting, the rule's test per part, the verdict, the images the rule needs beside the images we "
                     "have, the measured reason for a verdict other than agrees, and what the profile shortens.")

# %% tags=["hide-input"]
pages.appendix_table(tables.quotes_table(), "tab-claims-quotes",
                     "The claims registry: each claim in the study's own words (from the seed text named), where the "
                     "study's figure comes from, which way the errors behind its number go (missed diagnoses, false "
                     "alarms or both), how cases are aggregated and why, and where the study's text and code differ.")

# %% tags=["hide-input"]
pages.appendix_table(tables.records_table(run.read_records(prof)), "tab-claims-records",
                     "The headline records this chapter read: the chapter that wrote each, its images, the "
                     "checkpoints behind it, the commit and time it was written and the profile's settings.")

# %% tags=["remove-input"]
page.footer(prof.name)
