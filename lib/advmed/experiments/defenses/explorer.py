"""The defense explorer's images (chapter 7): a few test images of one defense, clean and
attacked by both attackers at every budget, exactly as the chapter's curves count them
(:func:`attacked_images`, memoised); ``plots.explorer`` draws them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ...attacks import worst_case_choice
from ...cache import memo
from ...device import module_device
from ...models import predict_proba
from ..kernel import ensemble_settings, images_key
from ..profiles import Profile
from .common import DEFENSE_VERSION, defense_images, pixels
from .evaluate import AUC_ATTACK, AUC_SOURCE, ENSEMBLE_SOURCE, OBLIVIOUS_SOURCE, ensemble_images, transfer_images
from .registry import defended

#: Bump when what :func:`attacked_images` stores changes.
EXPLORER_VERSION = 1


@dataclass
class AttackedImages:
    """A few test images of one defense, clean and attacked (the defense explorer's frames).

    Attributes:
        x, y: the images ``(N, C, H, W)`` in [0, 1] and their labels ``(N,)``.
        eps_255: the budgets (/255, ascending: ``defense.eps_255``).
        clean: the defended model's scores on ``x`` ``(N, K)``.
        adv: per attacker (:data:`~.common.ATTACKERS`), the adversarial images ``(E, N, C, H, W)``:
            per budget and image the worst case over the attacker's sources, nested over the
            budgets, exactly as the chapter's curves count them.
        proba: per attacker, the defended model's scores on them ``(E, N, K)``.
        source: per attacker, the source of each image (``[E][N]``: ``"ensemble"``, an extra
            source's name or :data:`~.evaluate.OBLIVIOUS_SOURCE`).
    """

    x: torch.Tensor
    y: torch.Tensor
    eps_255: tuple[float, ...]
    clean: np.ndarray
    adv: dict[str, torch.Tensor]
    proba: dict[str, np.ndarray]
    source: dict[str, list[list[str]]]


def attacked_images(task: str, tm: Any, defense: str, profile: Profile, index: Sequence[int], *,
                    quality: int | None = None, refresh: bool = False) -> AttackedImages:
    """The test images ``index`` (positions in :func:`~.common.defense_images`) of ``defense`` on
    ``task``'s zoo model ``tm``, attacked by both attackers at every budget of ``defense.eps_255``:
    the oblivious PGD on the undefended model; the adaptive worst case over the robust ensemble on
    the defense (each budget run alone, so every budget has its image), the defense's extra
    sources and the oblivious image (:func:`~.evaluate.evaluate_defense`'s sources). ``quality``:
    JPEG's (None: the profile's). Memoised under the defense's keys and the images."""
    s = profile.defense
    images = defense_images(task, profile)
    shown = images.subset(np.asarray(index, dtype=int))
    d = defended(task, defense, tm, profile, quality=quality)
    eps_255 = tuple(sorted(float(e) for e in s.eps_255))

    def compute() -> dict[str, Any]:
        base = tm.model.eval()
        x, y = pixels(shown, module_device(base))
        grid = [e / 255 for e in eps_255]
        kw = {"eps_grid": grid, "steps": int(s.steps), "seed": profile.seed}
        cands = {ENSEMBLE_SOURCE: ensemble_images(d.attackable, x, y, eps_grid=grid, profile=profile),
                 AUC_SOURCE: transfer_images(d.attackable, x, y, eps_grid=grid, seed=profile.seed, attack=AUC_ATTACK,
                                             steps=int(ensemble_settings(profile)["steps"])),
                 **{name: transfer_images(src, x, y, **kw) for name, src in d.extra_sources.items()},
                 OBLIVIOUS_SOURCE: transfer_images(base, x, y, **kw)}
        probas = {name: np.stack([predict_proba(d.evaluated, xa) for xa in imgs]) for name, imgs in cands.items()}
        y_np = y.cpu().numpy()
        out: dict[str, Any] = {"clean": predict_proba(d.evaluated, x), "adv": {}, "proba": {}, "source": {}}
        for attacker, names in (("oblivious", [OBLIVIOUS_SOURCE]), ("adaptive", list(cands))):
            src, bud = worst_case_choice([probas[n] for n in names], y_np)
            n = np.arange(len(y_np))
            out["adv"][attacker] = torch.stack([torch.stack([cands[names[src[e, i]]][bud[e, i]][i].cpu() for i in n])
                                                for e in range(len(grid))])
            out["proba"][attacker] = np.stack([probas[n] for n in names])[src, bud, n[None, :]]
            out["source"][attacker] = [[names[j] for j in row] for row in src]
        return out

    key = {"version": EXPLORER_VERSION, "defense_version": DEFENSE_VERSION, "task": task, "defense": defense,
           "model": d.model_key, "extra": d.extra, "images": images_key(shown.images, shown.labels),
           "eps_255": list(eps_255), "steps": int(s.steps), "ensemble": ensemble_settings(profile),
           "seed": profile.seed}
    out = memo("defense_explorer_images", key, compute, refresh=refresh)
    return AttackedImages(x=shown.float(), y=torch.as_tensor(shown.labels).long(), eps_255=eps_255,
                          clean=np.asarray(out["clean"]), adv=dict(out["adv"]),
                          proba={a: np.asarray(p) for a, p in out["proba"].items()}, source=dict(out["source"]))


__all__ = ["EXPLORER_VERSION", "AttackedImages", "attacked_images"]
