"""Clean-classification metrics with bootstrap intervals, and the size of a perturbation.

Point estimates come from scikit-learn (``sklearn.metrics``). The bootstrap is our own
because calling scikit-learn once per resample costs about 1 ms x 5 metrics x 1000
resamples; here every resample is a row of multiplicities ``W[b, i]`` (how often item
``i`` was drawn in resample ``b``) and each metric is a matrix product or a cumulative
sum over those rows. ``tests/test_metrics.py`` checks that every resample's value equals
scikit-learn's on the same resample.

Interval: the percentile bootstrap (Efron & Tibshirani 1993, *An Introduction to the
Bootstrap*, ch. 13): resample the test items with replacement ``n_boot`` times and take
the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of the metric. Resamples where a
metric is undefined (no positive items for sensitivity, a class missing for AUC) are
skipped for that metric, so its interval rests on fewer resamples.

Definitions (binary tasks: class 1 is the positive class, e.g. pneumonia, melanoma):

- accuracy: fraction of items whose arg-max class is the label.
- balanced_accuracy: mean per-class recall (``sklearn.metrics.balanced_accuracy_score``).
- auc: binary, ROC AUC of ``proba[:, 1]``; multiclass, macro one-vs-rest ROC AUC
  (``roc_auc_score(multi_class="ovr", average="macro")``: unweighted mean over classes).
- sensitivity: binary, recall of class 1; multiclass, macro recall.
- specificity: binary, recall of class 0; multiclass, mean over classes ``c`` of the
  fraction of non-``c`` items not predicted ``c``.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
from sklearn import metrics as skm

METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity")

# Bootstrap rows are processed in blocks of about this many (resample, item) cells, so
# memory stays near 100 MB whatever n and n_boot are.
_BLOCK_CELLS = 2_000_000


def fmt_interval(value: float, lo: float, hi: float, digits: int = 3) -> str:
    """``"0.912 [0.880, 0.940]"`` from three numbers (see :meth:`Estimate.fmt`)."""
    return Estimate(value, lo, hi).fmt(digits)


class Estimate(NamedTuple):
    """A metric's point estimate and its bootstrap interval ``[lo, hi]``."""

    value: float
    lo: float
    hi: float

    def fmt(self, digits: int = 3) -> str:
        """``"0.912 [0.880, 0.940]"``; a missing value is ``n/a``, a missing interval is left out."""
        if not np.isfinite(self.value):
            return "n/a"
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def __str__(self) -> str:  # pragma: no cover - thin wrapper
        return self.fmt()


# --------------------------------------------------------------------------- inputs
def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor without importing torch here
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_inputs(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 ``(n,)`` and probabilities as float64 ``(n, K)``.

    A 1-D ``proba`` is read as the probability of class 1 of a binary task.
    """
    y = _as_numpy(y_true).astype(np.int64).reshape(-1)
    p = _as_numpy(proba).astype(np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba must have shape (n, n_classes) with n = len(y_true) = {len(y)}, "
                         f"got {p.shape}")
    if p.shape[1] < 2:
        raise ValueError("proba needs at least two columns (binary tasks have two logits)")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1} to match proba's columns")
    return y, p


# --------------------------------------------------------------------------- points
def _confusion_rates(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class recall and specificity from confusion matrices ``(..., K, K)`` (rows = truth).

    Undefined rates (class absent) are ``nan``.
    """
    cm = cm.astype(np.float64)
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    row = cm.sum(-1)
    col = cm.sum(-2)
    total = row.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = diag / row
        negatives = total - row
        specificity = (negatives - (col - diag)) / negatives
    recall[row == 0] = np.nan
    specificity[negatives == 0] = np.nan
    return recall, specificity


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of class probabilities ``p`` (n, K) for labels ``y``: binary, of class 1;
    multiclass, macro one-vs-rest. NaN where it is undefined (a class missing from ``y``)."""
    k = p.shape[1]
    if np.unique(y).size < k:  # a class missing from y_true: AUC undefined
        return float("nan")
    try:
        if k == 2:
            return float(skm.roc_auc_score(y, p[:, 1]))
        # sklearn demands rows that sum to one for multiclass; softmax outputs do, up to
        # rounding, and renormalising does not change any one-vs-rest ranking.
        q = p / p.sum(1, keepdims=True)
        return float(skm.roc_auc_score(y, q, multi_class="ovr", average="macro", labels=np.arange(k)))
    except ValueError:  # e.g. non-finite scores
        return float("nan")


def _point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    k = p.shape[1]
    pred = p.argmax(1)
    cm = skm.confusion_matrix(y, pred, labels=np.arange(k))
    recall, spec = _confusion_rates(cm)
    if k == 2:
        sens, specificity = recall[1], recall[0]
    else:
        # macro recall over the classes present, as balanced_accuracy_score does
        sens = np.nanmean(recall) if np.isfinite(recall).any() else np.nan
        specificity = np.nanmean(spec) if np.isfinite(spec).any() else np.nan
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected on subsets
        warnings.simplefilter("ignore")
        bal = float(skm.balanced_accuracy_score(y, pred))
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": bal,
        "auc": roc_auc(y, p),
        "sensitivity": float(sens),
        "specificity": float(specificity),
    }


# --------------------------------------------------------------------------- bootstrap
def _weighted_auc(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` for ``positive`` items, one value per row of weights ``w``.

    The Mann-Whitney form: AUC = P(score_pos > score_neg) + 0.5 P(equal), with every
    item counted ``w[b, i]`` times. Items are sorted once; ties are handled by tie
    groups. Rows with no positive or no negative weight give ``nan``.
    """
    order = np.argsort(score, kind="stable")
    s = score[order]
    pos = positive[order].astype(np.float64)
    ws = w[:, order].astype(np.float64)
    wpos = ws * pos
    wneg = ws * (1.0 - pos)
    cumneg = np.cumsum(wneg, axis=1)
    # tie groups: first and last sorted index of each item's group of equal scores
    new_group = np.r_[True, s[1:] != s[:-1]]
    gid = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(s)] - 1
    first, last = starts[gid], ends[gid]
    below = np.where(first > 0, cumneg[:, np.maximum(first - 1, 0)], 0.0)
    equal = cumneg[:, last] - below
    numer = (wpos * (below + 0.5 * equal)).sum(1)
    n_pos, n_neg = wpos.sum(1), wneg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = numer / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _resample_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of multiplicities ``w`` (shape ``(B, n)``)."""
    k = p.shape[1]
    pred = p.argmax(1)
    wf = w.astype(np.float64)
    total = wf.sum(1)
    acc = wf @ (pred == y).astype(np.float64) / total
    # confusion matrix of every resample: W @ one-hot(cell of item i)
    cell = np.zeros((len(y), k * k))
    cell[np.arange(len(y)), y * k + pred] = 1.0
    cm = (wf @ cell).reshape(-1, k, k)
    recall, spec = _confusion_rates(cm)
    with warnings.catch_warnings():  # all-nan rows are expected and give nan
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_recall = np.nanmean(recall, axis=1)
        macro_spec = np.nanmean(spec, axis=1)
    if k == 2:
        sens, specificity = recall[:, 1], recall[:, 0]
        auc = _weighted_auc(p[:, 1], y == 1, w)
    else:
        sens, specificity = macro_recall, macro_spec
        present = (cm.sum(2) > 0).all(1)
        per_class = np.stack([_weighted_auc(p[:, c], y == c, w) for c in range(k)], axis=1)
        auc = np.where(present, per_class.mean(1), np.nan)
    return {"accuracy": acc, "balanced_accuracy": macro_recall, "auc": auc,
            "sensitivity": sens, "specificity": specificity}


def resample_weights(n: int, n_boot: int, seed: int):
    """The bootstrap's resamples as blocks of multiplicity rows ``W[b, i]`` (how often item
    ``i`` is drawn in resample ``b``), about :data:`_BLOCK_CELLS` cells per block.

    The one resampling scheme of the library: every interval (classification metrics,
    attack success and fooling rates) is computed from these rows.
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        # multiplicities: one bincount over the flattened (resample, item) index
        yield np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)


def _bootstrap(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int,
               groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    if groups is None:
        parts = [_resample_metrics(y, p, w) for w in resample_weights(len(y), n_boot, seed)]
    else:  # resample clusters; every item of a drawn cluster comes with it
        _, codes = np.unique(groups, return_inverse=True)
        n_groups = int(codes.max()) + 1
        parts = []
        for w in resample_weights(n_groups, n_boot, seed):
            # keep the item-level blocks near the same size as the cluster-level ones
            for chunk in np.array_split(w, max(1, int(np.ceil(len(y) / n_groups))), axis=0):
                if len(chunk):
                    parts.append(_resample_metrics(y, p, chunk[:, codes]))
    return {m: np.concatenate([part[m] for part in parts]) for m in METRICS}


def _percentile_interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def classification_metrics(y_true: Any, proba: Any, *, n_boot: int = 1000, seed: int = 0,
                           ci: float = 0.95, groups: Any = None) -> dict[str, Estimate]:
    """Accuracy, balanced accuracy, AUC, sensitivity, specificity with bootstrap intervals.

    Args:
        y_true: integer labels ``(n,)`` (numpy or torch).
        proba: class probabilities ``(n, K)`` (softmax of the logits), or ``(n,)`` for the
            probability of class 1 of a binary task.
        n_boot: bootstrap resamples (0: no interval, ``lo`` and ``hi`` are ``nan``).
        seed: seed of the resampling.
        ci: interval coverage (0.95: the 2.5th and 97.5th percentiles).
        groups: optional cluster id per item (e.g. the image behind several patch
            placements): the bootstrap then resamples clusters, each with all its items,
            instead of items as if they were independent.

    Returns:
        ``{metric: Estimate(value, lo, hi)}`` for the names in :data:`METRICS`.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    y, p = _check_inputs(y_true, proba)
    if len(y) == 0:
        raise ValueError("no items to evaluate")
    point = _point_metrics(y, p)
    if groups is not None:
        groups = np.asarray(_as_numpy(groups)).reshape(-1)
        if groups.shape != y.shape:
            raise ValueError(f"groups must have one id per item ({len(y)}), got shape {groups.shape}")
    boots = _bootstrap(y, p, int(n_boot), seed, groups) if n_boot > 0 else None
    out: dict[str, Estimate] = {}
    for m in METRICS:
        lo, hi = _percentile_interval(boots[m], ci) if boots is not None else (np.nan, np.nan)
        out[m] = Estimate(point[m], lo, hi)
    return out


def mean_interval(values: Any, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """The mean of per-item values (e.g. 0/1 attack success per image) with its percentile
    bootstrap interval, from the same resamples as :func:`classification_metrics`.

    An empty sample gives ``Estimate(nan, nan, nan)``; ``n_boot=0`` gives no interval.
    """
    v = np.asarray(_as_numpy(values), dtype=np.float64).reshape(-1)
    if v.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    if n_boot <= 0:
        return Estimate(float(v.mean()), float("nan"), float("nan"))
    means = np.concatenate([w @ v / v.size for w in resample_weights(v.size, int(n_boot), seed)])
    lo, hi = _percentile_interval(means, ci)
    return Estimate(float(v.mean()), lo, hi)


def attack_success(clean_pred: Any, adv_pred: Any, *, target: Any = None,
                   among: str = "non_target") -> np.ndarray:
    """Per-image success (0/1 floats) of an attack, from predicted classes.

    Untargeted (``target=None``): the prediction changed, ``adv != clean`` (the *fooling
    rate* of Moosavi-Dezfooli et al. 2017 and Hirano et al. 2021 is its mean; on images
    the model classified correctly it is the flip rate). Targeted: the perturbed image is
    classified as ``target`` (an int or one class per image); ``among="non_target"``
    keeps only the images whose clean prediction is not already the target (so an
    imbalanced test set cannot inflate the rate), ``among="all"`` keeps every image (the
    study's definition). The returned array has one entry per kept image.
    """
    clean = np.asarray(_as_numpy(clean_pred)).reshape(-1)
    adv = np.asarray(_as_numpy(adv_pred)).reshape(-1)
    if clean.shape != adv.shape:
        raise ValueError(f"clean and adversarial predictions differ in length: {clean.shape} vs {adv.shape}")
    if target is None:
        return (adv != clean).astype(np.float64)
    if among not in ("non_target", "all"):
        raise ValueError(f"unknown among={among!r}; valid: 'non_target', 'all'")
    tgt = np.broadcast_to(np.asarray(_as_numpy(target)).reshape(-1), adv.shape)
    hit = (adv == tgt).astype(np.float64)
    return hit if among == "all" else hit[clean != tgt]


class HarmSplit(NamedTuple):
    """Which way an attack's errors go (:func:`harm_split`): ``missed`` diagnoses among the
    diseased images the model got right clean, ``false_alarm`` among the others it got right,
    each a rate with its bootstrap interval, and the images each rate is over."""

    missed: Estimate
    false_alarm: Estimate
    n_disease: int
    n_normal: int


def harm_split(y: Any, clean_pred: Any, adv_pred: Any, disease: Iterable[int], *, n_boot: int = 1000,
               seed: int = 0) -> HarmSplit:
    """An attack's damage split by clinical direction (Finlayson et al. 2019: "Either sent for
    unnecessary treatment, or miss required treatment").

    Over the images classified correctly clean (the attack is what changed them):
    ``missed`` is the share of diseased images (true class in ``disease``) the attack moves
    to a class outside ``disease`` (a missed diagnosis); ``false_alarm`` the share of the other
    images it moves into ``disease`` (an unnecessary treatment). A move between two disease
    classes (melanoma to carcinoma) is neither. Labels and predictions are class ids;
    ``disease``: the disease class ids (``advmed.data.Task.disease_ids``).

    Example:
        >>> y = [1, 1, 0, 0]; clean = [1, 1, 0, 1]; adv = [0, 1, 1, 1]
        >>> h = harm_split(y, clean, adv, disease=[1], n_boot=0)
        >>> h.missed.value, h.false_alarm.value, h.n_disease, h.n_normal
        (0.5, 1.0, 2, 1)
    """
    y = np.asarray(_as_numpy(y)).reshape(-1)
    clean = np.asarray(_as_numpy(clean_pred)).reshape(-1)
    adv = np.asarray(_as_numpy(adv_pred)).reshape(-1)
    if not (y.shape == clean.shape == adv.shape):
        raise ValueError(f"labels and predictions differ in length: {y.shape}, {clean.shape}, {adv.shape}")
    ids = np.asarray(list(disease), dtype=int)
    if ids.size == 0 or ids.min() < 0:
        raise ValueError("disease must name at least one class id >= 0 (advmed.data.Task.disease_ids)")
    top = int(max(y.max(initial=0), clean.max(initial=0), adv.max(initial=0), ids.max()))
    sick = np.isin(np.arange(top + 1), ids)
    right = clean == y
    diseased, normal = right & sick[y], right & ~sick[y]
    missed = ~sick[adv[diseased]]
    alarm = sick[adv[normal]]
    return HarmSplit(mean_interval(missed, n_boot=n_boot, seed=seed), mean_interval(alarm, n_boot=n_boot, seed=seed),
                     int(diseased.sum()), int(normal.sum()))


def metrics_frame(results: Mapping[Any, Mapping[str, Estimate]] | Iterable[Mapping[str, Any]], *,
                  metrics: Iterable[str] = METRICS, numeric: bool = False, digits: int = 3,
                  index_names: Iterable[str] | None = None) -> pd.DataFrame:
    """Tabulate several models' :func:`classification_metrics` as one DataFrame.

    Args:
        results: ``{label: metrics}``, where a tuple label becomes a MultiIndex (name its
            levels with ``index_names``); or a list of row dicts whose :class:`Estimate`
            values are expanded and whose other values are kept as columns.
        numeric: ``True`` gives three float columns per metric (``auc``, ``auc_lo``,
            ``auc_hi``), for plots and further computation; ``False`` one string column
            ``"value [lo, hi]"`` per metric, for the book's tables.
        digits: decimals in the string form.
    """
    metrics = list(metrics)
    if isinstance(results, Mapping):
        labels = list(results)
        rows = [dict(results[k]) for k in labels]
    else:
        rows = [dict(r) for r in results]
        labels = None
    table = []
    for row in rows:
        out: dict[str, Any] = {k: v for k, v in row.items() if not isinstance(v, Estimate)}
        for m in metrics:
            est = row.get(m)
            if est is None:
                continue
            est = Estimate(*est)
            if numeric:
                out[m], out[f"{m}_lo"], out[f"{m}_hi"] = est
            else:
                out[m] = est.fmt(digits)
        table.append(out)
    frame = pd.DataFrame(table)
    if labels is not None:
        if labels and all(isinstance(k, tuple) for k in labels):
            frame.index = pd.MultiIndex.from_tuples(labels, names=list(index_names) if index_names else None)
        else:
            frame.index = pd.Index(labels, name=(list(index_names)[0] if index_names else None))
    return frame


# --------------------------------------------------------------------------- perturbations
def perturbation_stats(x: Any, x_adv: Any) -> pd.DataFrame:
    """How large each image's perturbation is, one row per image.

    Args:
        x, x_adv: images ``(N, C, H, W)`` or ``(C, H, W)``, float pixels in [0, 1]
            (torch or numpy).

    Returns:
        DataFrame with columns ``l2`` (Euclidean norm of ``x_adv - x`` over all pixels and
        channels, [0, 1] pixel units), ``linf`` (largest absolute pixel change; x 255 for
        8-bit levels), ``psnr_db`` (``10 log10(1 / MSE)`` in dB with data range 1; ``inf``
        for an unchanged image) and ``ssim`` (``skimage.metrics.structural_similarity``
        over the channels, ``data_range=1``, Wang et al. 2004, IEEE TIP 13(4)).
    """
    from skimage.metrics import structural_similarity

    a = _as_numpy(x).astype(np.float64)
    b = _as_numpy(x_adv).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (C, H, W), got {a.shape}")
    d = (b - a).reshape(len(a), -1)
    l2 = np.sqrt((d**2).sum(1))
    linf = np.abs(d).max(1) if d.shape[1] else np.zeros(len(a))
    mse = (d**2).mean(1)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(1.0 / mse)
    # SSIM's default 7x7 window must fit the image; smaller images get the largest odd window
    side = min(a.shape[2], a.shape[3])
    win = min(7, side if side % 2 else side - 1)
    ssim = np.array([
        structural_similarity(a[i], b[i], channel_axis=0, data_range=1.0, win_size=win)
        for i in range(len(a))
    ]) if win >= 3 else np.full(len(a), np.nan)
    return pd.DataFrame({"l2": l2, "linf": linf, "psnr_db": psnr, "ssim": ssim})
