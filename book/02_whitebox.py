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
# # 2. White-box attacks
#
# Placeholder chapter (to be replaced by the chapter's author).

# %% tags=["parameters"]
profile = "auto"

# %%
import advmed.profiles; print("profile:", advmed.profiles.resolve_profile_name(profile))
