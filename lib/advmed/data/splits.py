"""Split rules: patient ids from Kermany file names, group-aware splits, stratified subsets.

Images of one patient (Kermany) or one lesion (HAM10000) never fall in two splits:
both rules assign whole groups to folds with scikit-learn's ``StratifiedKFold`` run over
the groups, which keeps the class mix balanced across folds. The seed of a split is fixed
(``SPLIT_SEED``), so every run, profile and engineer sees the same split; the ``seed``
of the loaders only draws ``limit`` subsets.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
from sklearn.model_selection import StratifiedKFold

SPLIT_SEED = 0

# personN_bacteria_M.jpeg -> personN; IM-0115-0001.jpeg -> IM-0115;
# NORMAL2-IM-0012-0001.jpeg -> NORMAL2-IM-0012 (Kermany et al. file naming).
_PATIENT = re.compile(r"^(person\d+)_|^(NORMAL2-IM-\d+)-|^(IM-\d+)-")


def kermany_patient(path: str) -> str:
    """The patient id in a Kermany file name (see the pattern above)."""
    name = str(path).rsplit("/", 1)[-1]  # not PurePosixPath: every load of the index parses 5,840 names
    m = _PATIENT.match(name)
    if not m:
        raise ValueError(
            f"cannot read a patient id from {path!r}: Kermany file names start with personN_, "
            f"IM-XXXX- or NORMAL2-IM-XXXX-. Rename the file or remove it from the data root."
        )
    return next(g for g in m.groups() if g)


def _group_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Fold number (0..n_splits-1) of every image; each group lies in one fold.

    ``StratifiedKFold`` over the *groups*, each labelled by its most frequent image label
    (every Kermany patient and HAM10000 lesion has a single label), so the class mix is
    balanced across folds by group. scikit-learn's ``StratifiedGroupKFold`` does the same
    job per image but loops in Python over groups x folds: 15 s for HAM10000's ~6,000
    lesions, against milliseconds here.
    """
    labels = np.asarray(labels, dtype=np.int64)
    uniq, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    counts = np.zeros((len(uniq), labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (inv, labels), 1)
    group_label = counts.argmax(axis=1)
    if np.bincount(group_label).max() < n_splits:
        # Too few groups to stratify (tiny fixtures only): deal groups out at random.
        return (np.random.default_rng(seed).permutation(len(uniq)) % n_splits)[inv]
    group_fold = np.empty(len(uniq), dtype=np.int64)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare classes with fewer groups than folds are fine: they just miss some folds.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test_idx) in enumerate(cv.split(np.zeros(len(uniq)), group_label)):
            group_fold[test_idx] = k
    return group_fold[inv]


def carve_validation(labels: np.ndarray, groups: np.ndarray, seed: int = SPLIT_SEED,
                     n_splits: int = 10) -> np.ndarray:
    """Boolean mask of the ~1/n_splits of images (whole groups) that become validation."""
    return _group_folds(np.asarray(labels), np.asarray(groups), n_splits, seed) == 0


def train_val_test_by_group(labels: np.ndarray, groups: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """``train``/``val``/``test`` per image, 70/15/15 by group, stratified by label.

    Twenty folds of about 5 % each: folds 0-2 are test, 3-5 validation, the rest train.
    """
    folds = _group_folds(np.asarray(labels), np.asarray(groups), 20, seed)
    out = np.full(len(folds), "train", dtype=object)
    out[folds < 3] = "test"
    out[(folds >= 3) & (folds < 6)] = "val"
    return out.astype(str)


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of ``limit`` images, each class kept in proportion (largest remainder).

    Every class present keeps at least one image when ``limit`` allows, so a small
    smoke subset still has both classes of a binary task.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * limit / n
    take = np.floor(quota).astype(int)
    if limit >= len(classes):
        take = np.maximum(take, 1)
    # Hand out what is left by largest remainder; take back from the biggest if over.
    while take.sum() < limit:
        take[np.argmax(np.where(take < counts, quota - take, -np.inf))] += 1
    while take.sum() > limit:
        take[np.argmax(take)] -= 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def disjoint_subset(labels: np.ndarray, groups: np.ndarray | None, *, exclude_limit: int, exclude_seed: int,
                    limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of images another model's training subset never saw.

    The excluded model trained on ``stratified_subset(labels, exclude_limit, exclude_seed)``
    (how ``load_task(..., limit=, seed=)`` draws a subset). Those images are left out and,
    where the data has patient / lesion ``groups``, so is every image of their groups (a
    patient seen in training is seen data even through another image). Of what remains,
    ``limit`` images are drawn stratified with ``seed`` (None: all of them).

    Raises ``ValueError`` when nothing remains (the excluded model used the whole split):
    there is then no disjoint data to train on, and a caller should say so, not fake it.

    Example:
        >>> y = np.array([0, 1] * 10)
        >>> seen = stratified_subset(y, 10, 0)
        >>> rest = disjoint_subset(y, None, exclude_limit=10, exclude_seed=0, limit=None, seed=1)
        >>> len(rest), bool(np.intersect1d(seen, rest).size)
        (10, False)
    """
    labels = np.asarray(labels)
    n = len(labels)
    if exclude_limit is None or exclude_limit >= n:
        raise ValueError(f"the excluded model trained on every one of the {n} images of the split "
                         f"(limit {exclude_limit}): no disjoint images are left")
    seen = stratified_subset(labels, int(exclude_limit), int(exclude_seed))
    keep = np.ones(n, dtype=bool)
    keep[seen] = False
    if groups is not None:
        g = np.asarray(groups).astype(str)
        keep &= ~np.isin(g, np.unique(g[seen]))
    rest = np.flatnonzero(keep)
    if rest.size == 0:
        raise ValueError(f"every image of the split shares a {'group' if groups is not None else 'row'} with "
                         "the excluded model's training subset: no disjoint images are left")
    if limit is not None and limit < rest.size:
        rest = rest[stratified_subset(labels[rest], int(limit), int(seed))]
    return np.sort(rest)
