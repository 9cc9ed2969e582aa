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
# # Discussion and limitations
#
# What the verdicts of the {doc}`08_claims` chapter establish, and what they cannot. Every table
# here is computed from the same claims and records; nothing is typed.

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | paper | paper-dry | auto (paper with a GPU, else cpu)

# %% tags=["remove-cell"]
# Set-up, removed from the page (the notebook keeps it).
from IPython import get_ipython

from advmed import pages
from advmed.experiments import profiles
from advmed.experiments.claims import discussion, run

get_ipython().run_line_magic("matplotlib", "inline")
page = pages.setup()
prof = profiles.get_profile(profile)
claims = run.all_claims(prof)
pages.glue_numbers("standing", discussion.standing(claims))


# %% tags=["remove-input"]
pages.banner(prof.name, prof.whitebox.n_images)
# %% [markdown]
# ## What holds
#
# {glue:text}`standing-holds` claims agree at the study's setting and under the book's strongest
# evaluation ({numref}`tab-disc-holds`).

# %% tags=["hide-input"]
pages.table(discussion.holds(claims), "tab-disc-holds",
            "Claims that agree at both settings.")

# %% [markdown]
# ## What does not hold, and why
#
# {glue:text}`standing-does-not-hold` claims disagree, or hold only in direction, at one setting
# or both ({numref}`tab-disc-not`). The reason beside each is the measurement of this book that
# bears on it; "unexplained" means the book has no measurement that explains the difference.

# %% tags=["hide-input"]
pages.table(discussion.does_not_hold(claims), "tab-disc-not",
            "Claims that disagree or hold only in direction, with both verdicts and the measured reason.")

# %% [markdown]
# ## What this profile cannot decide
#
# {glue:text}`standing-inconclusive` claims are inconclusive at one setting or both
# ({numref}`tab-disc-n`): their interval straddles the registry's margin, or the evaluation does
# not believe its own number. The table gives the images (or cases) the rule needs at our
# estimate beside what this profile has; a larger profile may decide them, a flagged evaluation
# needs a stronger attack first.

# %% tags=["hide-input"]
pages.table(discussion.cannot_decide(claims), "tab-disc-n",
            "Inconclusive claims: where, the images the rule needs at our estimate and the images we have (the "
            "rule's test per part is in the claims chapter's appendix).")

# %% [markdown]
# ## What the miniature shortens
#
# {glue:text}`standing-shortened` claims depend on a setting this profile replaces by a smaller
# one ({numref}`tab-disc-short`): another architecture, a lower resolution, a shorter training.
# Their verdicts are about the miniature; the resolution ablation of the
# {doc}`04_natural_uap` chapter measures how far resolution alone moves the numbers.

# %% tags=["hide-input"]
pages.table(discussion.shortened(claims), "tab-disc-short",
            "Claims that depend on a setting the profile shortens, and what it shortens.")

# %% [markdown]
# ## What is not tested
#
# {glue:text}`standing-untested` claims cannot be tested with this profile
# ({numref}`tab-disc-untested`), and the studies' text and code differ in places (the appendix
# table at the end): the registry says which the book tests.

# %% tags=["hide-input"]
pages.table(discussion.untested(claims), "tab-disc-untested", "Claims this profile cannot test, and why.")

# %% [markdown]
# ## Appendix: where the studies' text and code differ
#
# Interactive table (search, sort), downloadable as CSV.

# %% tags=["hide-input"]
pages.appendix_table(discussion.text_and_code(claims), "tab-disc-code",
                     "Where a study's text and its code differ, and what the book tests.")

# %% tags=["remove-input"]
page.footer(prof.name)
