"""The tables of chapter 5: settings, surrogates, transfer matrices, Finlayson et al.'s black
box beside theirs, success against queries, U-SimBA beside Koga & Takemoto's logged case,
the check against the white-box worst case, and what each attack costs and needs.

Inputs are the typed results of :mod:`.run` and :mod:`.surrogates`. Rates are shares of
images; accuracy and AUC carry percentile-bootstrap 95 % intervals where the table says so.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...attacks import attack_label
from ...metrics import fmt_interval
from ...plots import model_label, task_label
from .. import references
from ..kernel import attack_name
from ..kernel.surrogates import KIND_LABELS, SurrogateSet
from ..profiles import Profile
from ..zoo import ModelKey
from .run import ENSEMBLE, QueryRun, TransferResults, USimBAKey, USimBARun, WhiteboxCheck

#: Our reading of Finlayson et al.'s "black-box attacks still succeed" (the study gives no
#: figure in our sources): at least this share of images pushed to the other class.
BLACKBOX_SUCCESS = 0.5
#: What each attacker needs, for the cost table.
NEEDS = {
    "white box": "the weights and their gradients",
    "transfer": "nothing from the target (one submission per image); training images of the task (the same "
                "distribution, for some surrogates the same images) for its own model",
    "query": "the target's output scores (probabilities), queried per image; no training data",
    "universal query": "the target's output scores on a set of images; no training data; the result then needs "
                       "no access at all",
}
#: The query attack that reads the predicted label only (claim 19 judges it).
LABEL_ONLY_ATTACK = "hopskipjump"


def settings_table(profile: Profile) -> pd.DataFrame:
    """The chapter's settings, one row each (sizes from the profile's ``blackbox`` section)."""
    s = profile.blackbox
    values = {
        "target model of each task": s.model, "transfer tasks": ", ".join(s.transfer_tasks or profile.tasks),
        "images per task (transfer)": "all" if s.n_images is None else s.n_images,
        "eps (L-inf, /255)": f"{s.eps_255:g} (= {s.eps_255 / 255:.4f} in [0, 1] pixels)",
        "iterations on the surrogate": s.steps, "transfer attacks": ", ".join(map(attack_label, s.attacks)),
        "ensemble attack": attack_label(s.ensemble_attack),
        "surrogate recipe (differs from the target's)": ", ".join(f"{k}={v}" for k, v in s.surrogate_train.items())
        or "none: the target's recipe, another seed",
        "surrogate seed": profile.seed + s.surrogate_seed_offset,
        "query attacks": ", ".join(s.query_attacks), "query images per task": s.query_images,
        "query budget per image": ", ".join(f"{t}: {q:,}" for t, q in s.query_budgets.items()),
        "SimBA step ([0, 1] pixels)": s.simba_step,
        "U-SimBA iterations": ", ".join(f"{t}: {i:,}" for t, i in s.usimba_iterations.items()),
        "U-SimBA images (build / held out)": f"{s.usimba_images} / {s.usimba_eval or 'all'}",
        "U-SimBA bounds": f"{', '.join(s.usimba_norms)}; zeta {', '.join(f'{z:g}' for z in profile.uap.zetas)} "
                          "(chapter 3's)",
        "bootstrap resamples": profile.eval.n_boot, "seed": profile.seed,
    }
    return pd.DataFrame({"value": [str(v) for v in values.values()]}, index=pd.Index(list(values), name="setting"))


def surrogate_table(surrogates: Mapping[str, SurrogateSet]) -> pd.DataFrame:
    """The trained surrogates: task, target, kind, how it was trained or why it is missing,
    and its validation AUC."""
    rows = []
    for task, sur in surrogates.items():
        for s in (sur.seed, sur.disjoint):
            rows.append({"task": task, "target": sur.target.label, "surrogate": KIND_LABELS[s.kind],
                         "trained": "yes" if s.available else "no", "how": s.note,
                         "val_auc": round(float(s.model.val_auc), 3) if s.available else float("nan")})
    return pd.DataFrame(rows)


def _source_order(rows: pd.DataFrame) -> list[str]:
    kinds = {"zoo": 0, "seed": 1, "disjoint": 2, "ensemble": 3}
    firsts = rows.drop_duplicates("source")
    return list(firsts.sort_values("source_kind", key=lambda c: c.map(kinds), kind="stable")["source"])


def transfer_matrix(transfer: TransferResults, task: str, *, metric: str = "accuracy",
                    attack: str | None = None) -> pd.DataFrame:
    """Rows: surrogate (source) x attack; columns: target models; cells: the target's
    ``metric`` on the images crafted on the source. The diagonal (source = target) is the
    white-box attack; the ensemble row attacks every source but the target. A missing
    surrogate is a row saying why."""
    rows = transfer.rows[transfer.rows["task"] == task]
    if attack is not None:
        rows = rows[(rows["attack"] == attack) | (rows["source_kind"] == "ensemble")]
    order = _source_order(rows)
    mat = rows.pivot_table(index=["source", "attack"], columns="target", values=metric, sort=False)
    mat = mat.reindex(sorted(mat.index, key=lambda i: (order.index(i[0]), i[1])))
    mat = mat.rename(index=attack_label, level="attack").round(3)
    for s in (transfer.surrogates[task].seed, transfer.surrogates[task].disjoint):
        if not s.available:
            mat.loc[(s.label, f"not trained: {s.note}"), :] = np.nan
    mat.columns.name = f"{metric} of the target"
    return mat


def transfer_summary(transfer: TransferResults) -> pd.DataFrame:
    """Per task and target: clean accuracy, white-box accuracy (the attack on itself), and the
    lowest accuracy any other source (ensemble included) leaves, with that source."""
    rows = []
    for (task, target), g in transfer.rows.groupby(["task", "target"], sort=False):
        black = g[~g["white_box"]]
        best = black.loc[black["accuracy"].idxmin()] if len(black) else None
        white = g[g["white_box"]]
        rows.append({"task": task, "target": target, "n": int(g["n"].iloc[0]), "eps_255": g["eps_255"].iloc[0],
                     "clean accuracy": round(float(g["clean_accuracy"].iloc[0]), 3),
                     "white-box accuracy": round(float(white["accuracy"].min()), 3) if len(white) else np.nan,
                     "best transfer accuracy": round(float(best["accuracy"]), 3) if best is not None else np.nan,
                     "best transfer AUC": round(float(best["auc"]), 3) if best is not None else np.nan,
                     "from": f"{attack_label(best['attack'])} on {best['source']}" if best is not None else ""})
    return pd.DataFrame(rows)


def finlayson_table(fin: pd.DataFrame) -> pd.DataFrame:
    """Finlayson et al.'s black-box finding beside ours, per task and surrogate, with the
    white-box attack of chapter 2 (same setting, on the target itself) beside it."""
    study = {r["task"]: r for r in references.FINLAYSON_PGD["rows"]}
    ref = references.FINLAYSON_BLACKBOX_PGD
    rows = []
    for _, r in fin.iterrows():
        s = study.get(r["task"], {})
        rows.append({
            "task": r["task"], "study task": s.get("study_task", "not in the study"),
            "study: black box": ref["finding"] if s else "",
            "eps (study, [-1, 1])": r["eps_study"], "eps (/255)": round(float(r["eps_255"]), 2), "steps": r["steps"],
            "target": r["target"], "surrogate": r["surrogate"], "n": r["n"],
            "clean accuracy": round(float(r["clean_accuracy"]), 3),
            "white box: accuracy / AUC": f"{r['white_accuracy']:.3f} / {r['white_auc']:.3f} (n={r['white_n']})",
            "black box: accuracy": fmt_interval(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"]),
            "black box: AUC": fmt_interval(r["auc"], r["auc_lo"], r["auc_hi"]),
            "black box: to the other class": round(float(r["target_rate"]), 3),
            "succeeds (our reading)": f"{'yes' if r['target_rate'] >= BLACKBOX_SUCCESS else 'no'} "
                                      f"({r['target_rate']:.3f} vs {BLACKBOX_SUCCESS:g})",
        })
    return pd.DataFrame(rows)


def curve_points(budget: int, points: Sequence[int]) -> list[int]:
    """The tabulated query budgets: those of ``points`` below ``budget``, then ``budget``."""
    return sorted({int(q) for q in points if q < budget} | {int(budget)})


def query_table(queries: Sequence[QueryRun], points: Sequence[int]) -> pd.DataFrame:
    """Per task and query attack: success among the attacked images within each budget of
    ``points`` (up to the run's), median queries of the successes, seconds, perturbation size."""
    rows = []
    for q in queries:
        row: dict[str, Any] = {"task": q.task, "target": q.model.label, "attack": q.attack, "norm": q.norm,
                               "eps or step": (f"{q.eps * 255:g}/255" if q.norm == "linf" else f"step {q.eps:g}"),
                               "budget": q.budget, "n": len(q.y), "attacked": int(q.attacked.sum())}
        for b in curve_points(q.budget, points):
            row[f"<= {b:,}"] = round(q.success_at(b), 3)
        row["median queries"] = q.median_queries()
        row["seconds"] = round(q.seconds, 1)
        row["seconds per image"] = round(q.seconds / max(len(q.y), 1), 2)
        row["median L2"] = round(float(np.median(q.l2[q.attacked])), 3) if q.attacked.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def query_record(queries: Sequence[QueryRun]) -> pd.DataFrame:
    """The query attacks for chapter 8's record, one row per task and attack: the target, the
    attack's norm and bound ([0, 1] units; SimBA's step), the per-image budget, the images
    attacked (correct at the clean query) and the share of them fooled within the budget."""
    return pd.DataFrame([{"task": q.task, "target": q.model.label, "attack": q.attack, "norm": q.norm,
                          "eps": float(q.eps), "budget": int(q.budget), "n": int(q.attacked.sum()),
                          "success": float(q.success_at(q.budget))} for q in queries],
                        columns=["task", "target", "attack", "norm", "eps", "budget", "n", "success"])


def usimba_table(runs: Mapping[USimBAKey, USimBARun], zoo: Mapping[tuple, Any]) -> pd.DataFrame:
    """One row per U-SimBA perturbation: bound, attack, iterations, queries, the success on the
    images it was built from and on held-out images, the random control, seconds."""
    rows = []
    for k, r in runs.items():
        s = r.summary
        classes = zoo[ModelKey(k.task, k.arch, k.init)].classes
        rows.append({"task": k.task, "model": f"{k.arch} ({k.init})", "norm": k.norm, "zeta": k.zeta,
                     "eps": round(float(s["eps"]), 4), "attack": attack_name(k.target, classes),
                     "iterations": s["passes"], "queries per image": s["queries"],
                     "build images": int(s["n_images"]), "rate (build images)": round(r.rate(k.target, on="build"), 3),
                     "rate (held out)": round(r.rate(k.target), 3), "held out n": len(r.y),
                     "random control": round(r.rate(k.target, control=True), 3), "seconds": round(float(s["seconds"]), 1)})
    return pd.DataFrame(rows)


def koga_comparison(runs: Mapping[USimBAKey, USimBARun], zoo: Mapping[tuple, Any]) -> pd.DataFrame:
    """Koga & Takemoto's logged case beside our U-SimBA runs with its norm and zeta
    (non-targeted), with the settings that differ."""
    ref = references.KOGA_USIMBA
    rows = [{"source": "Koga & Takemoto 2022", "task": ref["task"], "model": f"{ref['arch']} ({ref['init']})",
             "size": ref["resolution"], "norm": ref["norm"], "zeta": ref["zeta"], "iterations": ref["iterations"],
             "images": ref["n_images"], "rate (input images)": ref["success_rate"], "rate (held out)": np.nan,
             "hours": ref["hours"]}]
    for k, r in runs.items():
        if k.target is None and k.norm == ref["norm"] and abs(k.zeta - ref["zeta"]) < 1e-12:
            size = zoo[ModelKey(k.task, k.arch, k.init)].config.size
            rows.append({"source": "ours", "task": k.task, "model": f"{k.arch} ({k.init})", "size": size,
                         "norm": k.norm, "zeta": k.zeta, "iterations": r.summary["passes"],
                         "images": int(r.summary["n_images"]), "rate (input images)": round(r.rate(None, on="build"), 3),
                         "rate (held out)": round(r.rate(None), 3), "hours": round(float(r.summary["seconds"]) / 3600, 4)})
    return pd.DataFrame(rows)


def check_table(check: WhiteboxCheck) -> pd.DataFrame:
    """The white-box check per model: how many black-box results, the lowest accuracy any left
    (and which), the white-box ensemble's robust accuracy on the same images, and the images
    black-box attacks fooled but the ensemble did not (0 for a sound evaluation). The row per
    attack is ``check.table``."""
    t = check.table
    if t.empty:
        return t
    rows = []
    for (task, model), g in t.groupby(["task", "model"], sort=False):
        low = g.loc[g["blackbox_accuracy"].idxmin()]
        rows.append({"task": task, "model": model, "black-box results": len(g), "n": int(g["n"].max()),
                     "lowest black-box accuracy": round(float(low["blackbox_accuracy"]), 3), "by": low["attack"],
                     "white-box robust accuracy": round(float(low["wb_robust_accuracy"]), 3),
                     "at eps (/255)": low["wb_eps_255"], "images beaten": int(g["beaten"].sum()),
                     "flag": "black box beat the white-box worst case" if g["beaten"].sum() else ""})
    return pd.DataFrame(rows).sort_values("images beaten", ascending=False, kind="stable").reset_index(drop=True)


def cost_table(transfer: TransferResults, queries: Sequence[QueryRun], runs: Mapping[USimBAKey, USimBARun],
               check: WhiteboxCheck) -> pd.DataFrame:
    """What each attacker needs and what the attack cost: queries to the target per image and
    seconds per image (the surrogate's training seconds listed separately)."""
    rows = []
    c = check.costs
    if not c.empty and check.wb_images:
        n = check.wb_images
        rows.append({"attack": "white-box ensemble (chapter 2)", "needs": NEEDS["white box"],
                     "queries to the target per image": round(float(c["queries"].sum()) / n, 1),
                     "seconds per image": round(float(c["seconds"].sum()) / n, 3), "one-off seconds": 0.0})
    t = transfer.rows
    for kind in ("zoo", "seed", "disjoint", "ensemble"):
        g = t[(t["source_kind"] == kind) & ~t["white_box"]]
        if g.empty:
            continue
        crafted = g.drop_duplicates(["task", "source", "attack", "seconds"])
        train = sum(float(s.model.train_seconds) for sur in transfer.surrogates.values()
                    for s in sur.trained() if s.kind == kind)
        rows.append({"attack": f"transfer from {KIND_LABELS.get(kind, ENSEMBLE)}", "needs": NEEDS["transfer"],
                     "queries to the target per image": 1.0,
                     "seconds per image": round(float(crafted["seconds"].sum() / crafted["n"].sum()), 3),
                     "one-off seconds": round(train, 1)})
    for q in queries:
        rows.append({"attack": f"{q.attack} ({q.task})", "needs": NEEDS["query"],
                     "queries to the target per image": q.median_queries(),
                     "seconds per image": round(q.seconds / max(len(q.y), 1), 3), "one-off seconds": 0.0})
    for k, r in runs.items():
        if k.target is None:
            rows.append({"attack": f"U-SimBA ({k.task}, {k.norm}, zeta {k.zeta:g})", "needs": NEEDS["universal query"],
                         "queries to the target per image": float(r.summary["queries"]), "seconds per image": 0.0,
                         "one-off seconds": round(float(r.summary["seconds"]), 1)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the page's summaries
# In-text tables of a dozen rows at most and a few short columns (DESIGN.md, "Pages"); the long
# tables above go to the chapter's appendix.
#: What each attacker needs, in the few words of the page's cost summary.
def _whole(value: Any) -> str:
    """A count as a display table shows it: ``"737"``, or a dash where there is none (a NaN in a
    numeric column would turn the column's other counts into floats shown with decimals; the
    numbers behind a display table are in its CSV)."""
    v = float(value)
    return f"{int(round(v))}" if np.isfinite(v) else "–"


NEEDS_SHORT = {"white box": "weights and gradients",
               "transfer": "training images of the task for a model of its own; one submission per image",
               "query": "output scores, per image", "universal query": "output scores on a set of images"}


def settings_brief(profile: Profile) -> pd.DataFrame:
    """The settings a reader needs to read the page (every one: :func:`settings_table`)."""
    s = profile.blackbox
    rows = {
        "target model of each task": s.model,
        "L-inf budget (transfer, Square)": f"{s.eps_255:g}/255",
        "transfer attacks (iterations)": f"{', '.join(map(attack_label, s.attacks))} ({s.steps})",
        "test images per task (transfer)": "all" if s.n_images is None else s.n_images,
        "query attacks": ", ".join(attack_label(a) for a in s.query_attacks),
        "images per task (queries)": s.query_images,
        "queries per image": ", ".join(f"{q:,}" for q in dict.fromkeys(s.query_budgets.values())) or "none",
        "U-SimBA iterations": ", ".join(f"{i:,}" for i in dict.fromkeys(s.usimba_iterations.values())) or "none",
        "U-SimBA bounds": f"{', '.join(s.usimba_norms)}; zeta {', '.join(f'{z:g}' for z in profile.uap.zetas)}",
        "seed, bootstrap resamples": f"{profile.seed}, {profile.eval.n_boot}",
    }
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


def surrogate_summary(surrogates: Mapping[str, SurrogateSet]) -> pd.DataFrame:
    """One row per task: the target and the validation AUC of its two surrogates (a dash where
    one could not be trained; why is in :func:`surrogate_table`)."""
    rows = []
    for task, sur in surrogates.items():
        row = {"task": task_label(task), "target": sur.target.label}
        for s in (sur.seed, sur.disjoint):
            row[f"{KIND_LABELS[s.kind]}: validation AUC"] = float(s.model.val_auc) if s.available else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def transfer_brief(transfer: TransferResults) -> pd.DataFrame:
    """Models (rows) x tasks (columns): the target's accuracy ``"clean → best transfer (white box)"``,
    e.g. ``"0.91 → 0.55 (0.02)"``; the source of each best transfer is in :func:`transfer_summary`."""
    out: dict[str, dict[str, str]] = {}
    for _, r in transfer_summary(transfer).iterrows():
        row = out.setdefault(r["target"], {"model": model_label(r["target"])})
        row[task_label(r["task"])] = (f"{r['clean accuracy']:.2f} → {r['best transfer accuracy']:.2f} "
                                      f"({r['white-box accuracy']:.2f})")
    return pd.DataFrame(list(out.values())).fillna("–")


def finlayson_summary(fin: pd.DataFrame) -> pd.DataFrame:
    """Finlayson et al.'s black box, one row per task and surrogate: white-box and black-box
    accuracy, the share pushed to the other class, our reading of "still succeeds", and which way
    the errors go (missed diagnoses and false alarms among the clean-correct images)."""
    if fin.empty:
        return pd.DataFrame()
    harm = {}
    if "missed_rate" in fin.columns:
        harm = {"missed · false alarms": [f"{r['missed_rate']:.2f} of {int(r['n_disease'])} · "
                                          f"{r['false_alarm_rate']:.2f} of {int(r['n_normal'])}"
                                          for _, r in fin.iterrows()]}
    return pd.DataFrame({
        "task": fin["task"].map(task_label).to_numpy(),
        "crafted on": fin["surrogate"].to_numpy(),
        "white-box accuracy": fin["white_accuracy"].astype(float).to_numpy(),
        "black-box accuracy": [fmt_interval(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"], 2) for _, r in fin.iterrows()],
        "to the other class": fin["target_rate"].astype(float).to_numpy(),
        f"succeeds (≥ {BLACKBOX_SUCCESS:g})": (fin["target_rate"] >= BLACKBOX_SUCCESS).to_numpy(),
        **harm,
    })


def adversarialmed_summary(am: pd.DataFrame) -> pd.DataFrame:
    """AdversarialMed's four attacks at their setting, one row per attack and surrogate: the
    target's accuracy in white box (chapter 2's test images) and in black box [95 % interval],
    black-box AUC, and which way the errors go (among the clean-correct images)."""
    if am.empty:
        return pd.DataFrame()
    harm = {}
    if "missed_rate" in am.columns:
        harm = {"missed · false alarms": [f"{r['missed_rate']:.2f} · {r['false_alarm_rate']:.2f}"
                                          for _, r in am.iterrows()]}
    return pd.DataFrame({
        "attack": am["attack"].map(attack_label).to_numpy(),
        "crafted on": am["surrogate"].to_numpy(),
        "white-box accuracy": am["white_accuracy"].astype(float).to_numpy(),
        "black-box accuracy": [fmt_interval(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"], 2)
                               for _, r in am.iterrows()],
        "white-box AUC": am["white_auc"].astype(float).to_numpy(),
        "black-box AUC": [fmt_interval(r["auc"], r["auc_lo"], r["auc_hi"], 2) for _, r in am.iterrows()],
        **harm,
    })


def query_summary(queries: Sequence[QueryRun]) -> pd.DataFrame:
    """One row per task and query attack: success within the full budget (of the attacked
    images), the budget, median queries to success and seconds per image."""
    return pd.DataFrame([{"task": task_label(q.task), "attack": attack_label(q.attack),
                          "queries per image": f"{q.budget:,}", "success": q.success_at(q.budget),
                          "attacked images": int(q.attacked.sum()), "median queries": _whole(q.median_queries()),
                          "seconds per image": q.seconds / max(len(q.y), 1)} for q in queries])


def usimba_summary(runs: Mapping[USimBAKey, USimBARun]) -> pd.DataFrame:
    """The non-targeted U-SimBA perturbations, one row each: bound, success on the images it was
    built from and on held-out images, and the random control (every perturbation:
    :func:`usimba_table`)."""
    return pd.DataFrame([{"task": task_label(k.task), "bound": f"{k.norm}, zeta {k.zeta:g}",
                          "iterations": int(r.summary["passes"]), "rate (build images)": r.rate(None, on="build"),
                          "rate (held out)": r.rate(None), "random control": r.rate(None, control=True)}
                         for k, r in runs.items() if k.target is None])


def koga_summary(koga: pd.DataFrame) -> pd.DataFrame:
    """:func:`koga_comparison` in short columns: who, setting, iterations, images, the two rates, seconds."""
    if koga.empty:
        return koga
    return pd.DataFrame({
        "source": koga["source"].to_numpy(),
        "setting": [f"{task_label(r['task'])}, {r['model']}, {int(r['size'])} px, {r['norm']} zeta {r['zeta']:g}"
                    for _, r in koga.iterrows()],
        "iterations": koga["iterations"].astype(int).to_numpy(), "images": koga["images"].astype(int).to_numpy(),
        "rate (input images)": koga["rate (input images)"].astype(float).to_numpy(),
        "rate (held out)": koga["rate (held out)"].astype(float).to_numpy(),
        "seconds": [_whole(h * 3600) for h in koga["hours"].astype(float)],
    })


def check_summary(check: WhiteboxCheck) -> pd.DataFrame:
    """The white-box check per task: models checked, black-box results, the lowest black-box
    accuracy beside the white-box ensemble's, and the images black-box attacks fooled that the
    ensemble did not (0 for a sound evaluation)."""
    t = check_table(check)
    if t.empty:
        return t
    rows = []
    for task, g in t.groupby("task", sort=False):
        low = g.loc[g["lowest black-box accuracy"].idxmin()]
        rows.append({"task": task_label(task), "models": len(g), "black-box results": int(g["black-box results"].sum()),
                     "lowest black-box accuracy": float(low["lowest black-box accuracy"]),
                     "white-box robust accuracy": float(low["white-box robust accuracy"]),
                     "images beaten": int(g["images beaten"].sum())})
    return pd.DataFrame(rows)


def cost_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """:func:`cost_table` by attacker: one row per kind of attack (query attacks and U-SimBA
    over their tasks and bounds as median), what it needs in a few words, queries and seconds."""
    if costs.empty:
        return costs
    query = costs["needs"] == NEEDS["query"]
    kind = costs["attack"].where(~query, costs["attack"].str.replace(r" \(.*\)$", "", regex=True).map(attack_label))
    kind = kind.str.replace(r"^U-SimBA \(.*\)$", "U-SimBA", regex=True)
    short = {v: NEEDS_SHORT[k] for k, v in NEEDS.items()}
    g = costs.assign(kind=kind).groupby("kind", sort=False)
    return pd.DataFrame({
        "attack": list(g.groups),
        "needs": [short.get(v, v) for v in g["needs"].first()],
        "queries per image": [_whole(v) if v >= 10 else round(float(v), 1)
                              for v in g["queries to the target per image"].median()],
        "seconds per image": g["seconds per image"].median().to_numpy(),
        "one-off seconds": g["one-off seconds"].sum().to_numpy(),
    })


def diagnostics_table(check: WhiteboxCheck) -> pd.DataFrame:
    """Chapter 2's masking diagnostics of the flagged models, or one row saying that no model
    was flagged (an interactive table needs a row)."""
    if check.flagged and not check.diagnostics.empty:
        return check.diagnostics
    return pd.DataFrame({"note": ["no black-box result beat the white-box worst case: no model is flagged"]})


def transfer_long(transfer: TransferResults) -> pd.DataFrame:
    """Every transfer cell as one row: task, source and its kind, attack, target, accuracy and AUC
    [95 % interval], flip rate, seconds (the appendix's version of the matrices)."""
    r = transfer.rows
    if r.empty:
        return r
    return pd.DataFrame({
        "task": r["task"], "source": r["source"], "source kind": r["source_kind"].map(lambda k: KIND_LABELS.get(k, k)),
        "attack": r["attack"].map(attack_label), "target": r["target"], "white box": r["white_box"], "n": r["n"],
        "accuracy": [fmt_interval(a, lo, hi) for a, lo, hi in zip(r["accuracy"], r["accuracy_lo"], r["accuracy_hi"])],
        "AUC": [fmt_interval(a, lo, hi) for a, lo, hi in zip(r["auc"], r["auc_lo"], r["auc_hi"])],
        "flip rate": r["flip_rate"].round(3), "seconds": r["seconds"].round(1),
    })


__all__ = ["LABEL_ONLY_ATTACK", "BLACKBOX_SUCCESS", "NEEDS", "NEEDS_SHORT", "check_summary", "check_table", "cost_summary", "cost_table",
           "adversarialmed_summary", "curve_points", "diagnostics_table", "finlayson_summary", "finlayson_table", "koga_comparison", "koga_summary", "query_summary",
           "query_record", "query_table", "settings_brief", "settings_table", "surrogate_summary", "surrogate_table",
           "transfer_brief", "transfer_long", "transfer_matrix", "transfer_summary", "usimba_summary",
           "usimba_table"]
