"""The book's explorers: move a control, see the setting (live in a notebook, precomputed
frames switched in the browser in the static HTML book).

- :mod:`.core`: the one mechanism (:class:`Control`, :class:`LiveExplorer`,
  :class:`StaticExplorer`, :func:`explorer`, the payload budget, :func:`resolve_mode`).
- :mod:`.whitebox`: chapter 2's attack explorer (task, architecture, image, attack, eps).
- :mod:`.universal`: chapters 3 and 4's UAP explorer (task, model, norm, zeta, target,
  source).
- :mod:`.patch`: chapter 6's patch explorer (task, patch, scale, rotation, location).
- :mod:`.defense`: chapter 7's defense explorer (task, defense, JPEG quality, attacker, eps).

A new explorer is a module here with its controls, a renderer (``obj -> PNG bytes``) and a
function that calls :func:`core.explorer`; its data come from the experiments layer as plain
tensors, labels and estimates (DESIGN.md, "Where a new thing goes").
"""
from . import core, defense, patch, universal, whitebox
from .core import (DEFAULT_BUDGET_MB, FIRST, Control, LiveExplorer, StaticExplorer, Unavailable, dead_controls,
                   figure_png, resolve_mode, shown)
from .defense import DefenseSetting, DefenseView, defense_controls, defense_explorer, render_defense_frame
from .patch import PatchSetting, PatchView, patch_controls, patch_explorer, render_patch_frame
from .universal import UAPSetting, UAPView, render_uap_frame, uap_controls, uap_explorer
from .whitebox import (DEFAULT_ATTACKS, DEFAULT_EPS_255, ExplorerData, Frame, compute_frame, compute_frames,
                       explorer, prepare, render_frame, static_explorer)

__all__ = ["Control", "DEFAULT_ATTACKS", "DEFAULT_BUDGET_MB", "DEFAULT_EPS_255", "DefenseSetting", "DefenseView",
           "ExplorerData", "FIRST", "Frame", "LiveExplorer", "PatchSetting", "PatchView", "StaticExplorer",
           "UAPSetting", "UAPView", "Unavailable", "compute_frame", "compute_frames", "core", "dead_controls",
           "defense", "defense_controls", "defense_explorer", "explorer", "figure_png", "patch", "patch_controls",
           "patch_explorer", "prepare", "render_defense_frame", "render_frame", "render_patch_frame",
           "render_uap_frame", "resolve_mode", "shown", "static_explorer", "uap_controls", "uap_explorer", "universal",
           "whitebox"]
