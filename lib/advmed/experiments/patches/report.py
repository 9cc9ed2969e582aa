"""The prose of chapter 6: every sentence with a number is written here from results.

Each function returns Markdown text computed from :mod:`.tables`, so the chapter displays
it and the words change when the numbers do.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import pandas as pd

from ...attacks.patch import BASE, patch_area, side_fraction
from .. import references
from ..kernel.records import PatchesRecord, make_record
from ..profiles import Profile
from .run import PatchExperiment


#: The targeted success at which :func:`scale_reading` says a patch sends "most" images to its class.
MOST = 0.5


class PatchStudy(NamedTuple):
    """The study's setting that chapter 6's prose quotes (glued, never typed): the resolution of
    Finlayson et al.'s models (:mod:`advmed.experiments.references`)."""

    size: int


def study_numbers() -> PatchStudy:
    """:class:`PatchStudy` from the references."""
    return PatchStudy(size=int(references.FINLAYSON_PGD["setting"]["size"]))


def _span(values: pd.Series, digits: int = 3) -> str:
    """``"0.120"`` for one value, ``"0.050-0.120"`` for a range (NaN: the study lacks the task)."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


def scale_note() -> str:
    """What a patch's scale means, with the numbers computed from the library's convention."""
    return (f"**Scale.** The patch is a disc whose diameter is `scale x {BASE:g}` of the image side, so the unit scale is "
            f"Finlayson et al.'s evaluation size (a disc {side_fraction(1.0):g} of the image wide, covering "
            f"{patch_area((100, 100), scale=1.0):.1%} of a square image; \"{BASE:g}\" in their code); the whole patch "
            "always stays inside the image.")


def finlayson_reading(table: pd.DataFrame) -> str:
    """Our patches against Finlayson et al.'s three findings, from ``finlayson_table(numeric=True)``:
    the adversarial patches collapse accuracy and AUC, the black-box one nearly as much, the
    natural patch does not."""
    if table.empty:
        return "*This profile patches no binary task.*"
    lines = []
    for kind in ("white-box", "black-box", "natural"):
        g = table[table["patch"] == kind]
        if g.empty:
            continue
        lines.append(f"- {kind} patch: accuracy {_span(g['accuracy ours'])} (study {_span(g['accuracy study'], 4)}), "
                     f"AUC {_span(g['AUC ours'])} (study {_span(g['AUC study'], 4)}), targeted success "
                     f"{_span(g['success ours'])} over {len(g)} task(s)")
    white = table[table["patch"] == "white-box"].set_index("task")
    natural = table[table["patch"] == "natural"].set_index("task")
    both = white.index.intersection(natural.index)
    gap = (natural.loc[both, "accuracy ours"] - white.loc[both, "accuracy ours"]) if len(both) else pd.Series(dtype=float)
    tail = (f" The natural patch of the same size leaves accuracy higher than the adversarial one in "
            f"{int((gap > 0).sum())} of {len(gap)} tasks (median difference {gap.median():+.3f})." if len(gap) else "")
    area = float(table["area"].iloc[0])
    return (f"At the comparison scale the patch covers {area:.1%} of the image. Ours against the study's:\n\n"
            + "\n".join(lines) + "\n\n" + tail.strip())


def scale_reading(exp: PatchExperiment) -> str:
    """The smallest scale at which each adversarial patch sends most images to its target."""
    lines = []
    for k, run in exp.runs.items():
        if k.kind == "natural":
            continue
        e = run.evals.sort_values("scale")
        hit = e[e["success_rate"] >= MOST]
        if hit.empty:
            lines.append(f"- {k.task}, {k.kind}: below {MOST:.0%} targeted success at every scale up to "
                         f"{e['scale'].max():g} (best {e['success_rate'].max():.3f})")
        else:
            r = hit.iloc[0]
            lines.append(f"- {k.task}, {k.kind}: {r['success_rate']:.3f} from scale {r['scale']:g} (side "
                         f"{side_fraction(r['scale']):.2f} of the image, {r['area']:.1%} of its area)")
    if not lines:
        return ""
    return f"Smallest scale with at least {MOST:.0%} of the images sent to the target:\n\n" + "\n".join(lines)


# --------------------------------------------------------------------------- the record
def perceptibility_reading(perc: pd.DataFrame) -> str:
    """Chapter 6: how visible the patches are, beside the threat model they stand for (a sticker
    anyone can see, not an imperceptible perturbation)."""
    if perc.empty:
        return ""
    adv = perc[perc["kind"] != "natural"]
    return (f"The patches cover {_span(100 * perc['area'], 1)} % of the image and change its pixels by up to "
            f"{perc['linf_255'].max():.0f} grey levels; the median SSIM of a patched image is {_span(adv['ssim'])} "
            f"for the adversarial patches (PSNR {_span(adv['psnr_db'], 1)} dB). A patch is visible by design: its "
            f"threat is that it looks like a sticker or a marker, not that it cannot be seen.")


def headline_record(profile: Profile, zoo: Mapping[tuple, Any], numeric: pd.DataFrame) -> PatchesRecord:
    """Chapter 6's record for chapter 8: the comparison with Finlayson et al.'s patches
    (:func:`.tables.finlayson_table`, numeric)."""
    return make_record(PatchesRecord, profile, finlayson=numeric, sources=[tm.config.key() for tm in zoo.values()])


__all__ = ["MOST", "PatchStudy", "finlayson_reading", "headline_record", "scale_note", "scale_reading", "study_numbers"]
