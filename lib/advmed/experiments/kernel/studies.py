"""The studies' own attack settings, in [0, 1] pixel units, and their sweeps.

(a) AdversarialMed (Li & Liu 2019): FGSM, I-FGSM, PGD and MI-FGSM on the pneumonia chest
    X-rays at their eps 0.02 *in ImageNet-normalised units* = 0.02 x 0.226 = 0.00452 in
    [0, 1] pixels (1.15/255); the iterative attacks take their adversarial training's step.
(b) Finlayson et al. (2019): PGD *targeted to the other class*, eps 0.02 and step 0.01 in
    their [-1, 1] input range = eps 0.01 (2.55/255) and step 0.005 in [0, 1] pixels, 20 steps.

They run the full iterations as the studies did (no early stopping), on chapter 2's test
images (:func:`.selection.test_images`), so chapters 2, 5 and 7 read one memoised result.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
from tqdm.auto import tqdm

from .. import references
from ..profiles import Profile
from .evaluation import ATTACKS, memoised_sweep
from .keys import model_columns
from .selection import batching, study_steps, test_images


def _study_budget(spec: Mapping[str, Any], eps_key: str, step_key: str, convention: str) -> dict[str, float]:
    eps = references.eps_to_pixels(spec[eps_key], convention)
    step = references.eps_to_pixels(spec[step_key], convention)
    return {"eps_study": spec[eps_key], "eps": eps, "eps_255": eps * 255, "step_study": spec[step_key],
            "step": step, "steps": int(spec["steps"])}


def adversarialmed_eps() -> dict[str, float]:
    """Their eps and step (ImageNet-normalised units) in [0, 1] pixels (and /255), and steps."""
    return _study_budget(references.ADVERSARIALMED_ATTACKS, "eps_normalised", "step_normalised",
                         "imagenet_normalised")


def finlayson_eps() -> dict[str, float]:
    """Their eps and step ([-1, 1] inputs) in [0, 1] pixels (and /255), and steps."""
    return _study_budget(references.FINLAYSON_PGD, "eps_minus1_1", "step_minus1_1", "minus1_1")


def adversarialmed_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                           progress: bool = True) -> pd.DataFrame:
    """Clean, FGSM, I-FGSM, PGD, MI-FGSM at AdversarialMed's eps for every pneumonia_cxr
    model of ``zoo`` (empty when the profile has no such task), on the same test images
    as the sweep (:func:`test_images`)."""
    s = adversarialmed_eps()
    task = references.ADVERSARIALMED_ATTACKS["task"]
    n = profile.whitebox.n_images
    models = {k: tm for k, tm in zoo.items() if k[0] == task}
    if not models:
        return pd.DataFrame()
    images = test_images(task, profile)
    frames = []
    for key, tm in tqdm(list(models.items()), desc="AdversarialMed setting", disable=not progress):
        sweep = memoised_sweep("whitebox_adversarialmed", tm, images, settings={"n_images": n},
                               refresh=refresh, attacks=list(ATTACKS), eps_255=[0.0, s["eps_255"]],
                               steps=study_steps(s["steps"], profile), step_size=s["step"], seed=profile.seed,
                               n_boot=int(profile.eval.n_boot), **batching(profile, images))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True)


def finlayson_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                      progress: bool = True) -> pd.DataFrame:
    """Targeted PGD to the other class in Finlayson et al.'s setting, for every binary
    task x model of ``zoo`` (multiclass tasks are left out: "the other class" is
    undefined there)."""
    s = finlayson_eps()
    n = profile.whitebox.n_images
    sets: dict[str, Any] = {}
    frames = []
    for key, tm in tqdm(list(zoo.items()), desc="Finlayson setting", disable=not progress):
        task = key[0]
        if len(getattr(tm, "classes", ())) not in (0, 2):
            continue
        if task not in sets:
            sets[task] = test_images(task, profile)
        if len(sets[task].classes) != 2:
            continue
        sweep = memoised_sweep("whitebox_finlayson", tm, sets[task], settings={"n_images": n},
                               refresh=refresh, attacks=["pgd"], eps_255=[0.0, s["eps_255"]],
                               steps=study_steps(s["steps"], profile), step_size=s["step"], seed=profile.seed,
                               targeted=True, target="other", n_boot=int(profile.eval.n_boot),
                               **batching(profile, sets[task]))
        cols = model_columns(key, tm)
        frames.append(sweep.assign(**cols)[list(cols) + list(sweep.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


__all__ = ["adversarialmed_eps", "adversarialmed_results", "finlayson_eps", "finlayson_results"]
