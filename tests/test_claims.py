"""advmed.experiments.claims: the verdict rule, and verdicts that follow the chapters' headline
records (each test writes the records a Context reads, in a private cache)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from advmed.experiments import references
from advmed.experiments.claims import report, run, tables, verdicts
from advmed.experiments.claims.verdicts import Estimate3
from advmed.experiments.defenses import report as defense_report
from advmed.experiments.defenses.report import DefenseClaims
from advmed.experiments.kernel import records
from advmed.experiments.profiles import get_profile


@pytest.fixture(autouse=True)
def _private_cache(tmp_cache):
    """Every test's records go to (and are read from) an empty cache of its own."""


def test_verdict_rule():
    assert verdicts.about_zero(Estimate3(0.01), clean=0.9)[0] == "agrees"
    assert verdicts.about_zero(Estimate3(0.4), clean=0.9)[0] == "same direction"
    assert verdicts.about_zero(Estimate3(0.9), clean=0.9)[0] == "disagrees"
    assert verdicts.matches_figure(Estimate3(0.9, 0.85, 0.96), 0.95, tolerance=0.0, lower_is_effect=False,
                                   reference=0.5)[0] == "agrees"
    assert verdicts.matches_figure(Estimate3(0.8, 0.75, 0.84), 0.95, tolerance=0.02, lower_is_effect=False,
                                   reference=0.5)[0] == "same direction"
    assert verdicts.above_bound(Estimate3(0.9), 0.8)[0] == "agrees"
    assert verdicts.above_bound(Estimate3(0.5, 0.3, 0.6), 0.8, control=0.1)[0] == "same direction"
    assert verdicts.above_bound(Estimate3(0.05, 0.0, 0.1), 0.8, control=0.1)[0] == "disagrees"
    assert run.worst(("agrees", "a"), ("disagrees", "b"))[0] == "disagrees"
    with pytest.raises(ValueError, match="unknown verdict"):
        verdicts.Claim(1, "hirano", "", "", "", Estimate3(1), "", "", 0, "maybe", "", "", "")


def context(profile, **tables) -> run.Context:
    """The Context of ``profile`` after chapters 1-7 wrote records holding ``tables`` (by the
    Context's names, ``defenses``: a DefenseClaims; every other table empty)."""
    fields: dict[type, dict[str, pd.DataFrame]] = {}
    for name, (cls, field) in run.Context.TABLES.items():
        empty = pd.DataFrame(columns=["task", "arch", "init", "init_used", "size", "val_auc"]) if name == "models" \
            else pd.DataFrame()
        fields.setdefault(cls, {})[field] = tables.pop(name, empty)
    defenses = tables.pop("defenses", DefenseClaims())
    assert not tables, f"no record holds {sorted(tables)}"
    for cls, frames in fields.items():
        records.write_record(records.make_record(cls, profile, **frames))
    records.write_record(defense_report.headline_record(profile, {}, defenses))
    return run.Context(profile)


def _uap_table(rate: float, random: float = 0.05) -> pd.DataFrame:
    rows = [{"task": t, "arch": "mobilenet_v1_075", "init": i, "norm": n, "zeta": 0.04, "target": -1,
             "rate": rate, "random": random, "rate_all": math.nan, "random_all": math.nan}
            for t in ("pneumonia_cxr", "pneumoniamnist") for i in ("imagenet", "scratch") for n in ("l2", "linf")]
    return pd.DataFrame(rows)


def test_every_claim_is_computed_and_follows_the_results():
    prof = get_profile("smoke")
    ctx = context(prof, uap=_uap_table(0.9), ablation=pd.DataFrame(), drift=pd.DataFrame())
    claim = run.claim_9(ctx)
    assert claim.verdict == "agrees" and claim.number == 9
    changed = run.claim_9(context(prof, uap=_uap_table(0.3), ablation=pd.DataFrame(),
                                      drift=pd.DataFrame()))
    assert changed.verdict == "same direction", "a lower cached fooling rate must change the verdict"
    assert run.claim_9(context(prof, uap=_uap_table(0.02, random=0.1), ablation=pd.DataFrame(),
                                   drift=pd.DataFrame())).verdict == "disagrees"
    assert sorted(run.CLAIMS) == list(range(1, 13))


def test_claims_table_and_abstract_are_computed_from_claims():
    mk = lambda n, v: verdicts.Claim(n, "hirano", f"claim {n}", "x", "s", Estimate3(0.5), "0.5", "o", 0.1, v, "r",
                                     "because", "03_uap")  # noqa: E731
    claims = [mk(1, "agrees"), mk(2, "disagrees"), mk(3, "not comparable")]
    t = tables.claims_table(claims)
    assert list(t["verdict"]) == ["agrees", "disagrees", "not comparable"] and t.loc[0, "why"] == ""
    text = report.abstract(claims, "cpu")
    assert "1 agree" in text and "1 disagree (claim 2)" in text and "tested in this setting (claim 3)" in text
    assert "Claim 2" in report.conclusion(claims)
    assert tables.verdict_counts(claims).to_dict() == {"agrees": 1, "same direction": 0, "disagrees": 1,
                                                       "not comparable": 1}


def _blackbox_rows(to_target: float) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "surrogate_kind": k, "surrogate": f"mobilenet ({k})", "target_rate": to_target,
                          "clean_accuracy": 0.9, "white_target_rate": 1.0}
                         for t in ("pneumonia_cxr", "melanoma_derm") for k in ("seed", "disjoint")])


def test_blackbox_claim_follows_the_share_pushed_to_the_other_class():
    prof = get_profile("smoke")
    ctx = lambda v: context(prof, finlayson_blackbox=_blackbox_rows(v), ablation=pd.DataFrame())
    assert run.claim_7(ctx(0.9)).verdict == "agrees"
    assert run.claim_7(ctx(0.3)).verdict == "same direction"  # above the 0.1 clean control, below 0.5
    assert run.claim_7(ctx(0.05)).verdict == "disagrees"
    empty = context(prof, finlayson_blackbox=pd.DataFrame(), ablation=pd.DataFrame())
    assert run.claim_7(empty).verdict == "not comparable"


def _patch_rows(white: float, black: float, natural: float) -> pd.DataFrame:
    rows = []
    for kind, acc in (("white-box", white), ("black-box", black), ("natural", natural)):
        rows.append({"task": "pneumonia_cxr", "patch": kind, "our model": "mobilenet", "accuracy ours": acc,
                     "accuracy_lo": max(acc - 0.02, 0), "accuracy_hi": min(acc + 0.02, 1), "clean accuracy": 0.9})
    return pd.DataFrame(rows)


def test_patch_claim_needs_all_three_parts():
    prof = get_profile("smoke")
    ctx = lambda *v: context(prof, patches=_patch_rows(*v), ablation=pd.DataFrame())
    assert run.claim_8(ctx(0.01, 0.05, 0.88)).verdict == "agrees"
    assert run.claim_8(ctx(0.01, 0.05, 0.5)).verdict == "disagrees"  # the natural control must keep accuracy
    assert run.claim_8(ctx(0.3, 0.05, 0.88)).verdict == "same direction"


def _defense_claims(*, at_auc=0.97, flagged=False, jpeg=(0.8, 0.8, 0.3), helped=(0.5, 0.1)):
    from advmed.experiments.defenses import report as D

    at = [D.ATNumbers("pneumoniamnist", "mobilenet", 1.0, 0.97, 0.99, at_auc, 0.9, 0.1, flagged)]
    obl, ada, base = jpeg
    pre = [D.PreprocessingNumbers("pneumoniamnist", "jpeg", 1.0, 0.9, obl, ada, base, False)]
    rt = [D.RetrainingNumbers("pneumoniamnist", "mobilenet", 1, helped[0], helped[0], helped[1], 0.9, 0.9),
          D.RetrainingNumbers("referable_dr", "mobilenet", 1, 0.4, 0.4, 0.4, 0.9, 0.9)]
    return D.DefenseClaims(at, pre, rt)


def test_defense_claims_follow_the_adaptive_attacker_and_the_diagnostics():
    prof = get_profile("smoke")
    ctx = lambda **kw: context(prof, defenses=_defense_claims(**kw), ablation=pd.DataFrame())
    assert run.claim_4(ctx()).verdict == "agrees"
    assert run.claim_4(ctx(at_auc=0.6)).verdict == "same direction"  # above the undefended 0.1, below 0.95
    assert run.claim_4(ctx(flagged=True)).verdict == "not comparable"  # a masked number is no evidence
    assert run.claim_5(ctx()).verdict == "agrees"
    assert run.claim_5(ctx(jpeg=(0.8, 0.3, 0.3))).verdict == "same direction"  # oblivious only
    assert run.claim_5(ctx(jpeg=(0.3, 0.3, 0.3))).verdict == "disagrees"
    assert run.claim_12(ctx()).verdict == "agrees"  # 1 of 2 cases helped
    assert run.claim_12(ctx(helped=(0.4, 0.4))).verdict == "same direction"  # none helped
    empty = context(prof, defenses=DefenseClaims(), ablation=pd.DataFrame())
    assert {run.claim_4(empty).verdict, run.claim_5(empty).verdict, run.claim_12(empty).verdict} == {"not comparable"}


def test_a_resolution_reason_is_cited_only_when_the_ablation_moves():
    """The patch claim's reason names resolution when robust accuracy changes across the
    ablation's sizes by at least RESOLUTION_EFFECT, and says "not resolution" when it does not;
    the budget named is the ablation's own."""
    prof = get_profile("smoke")

    def reason(lo: float, hi: float) -> str:
        ablation = pd.DataFrame({"size": [32, 48], "robust_accuracy": [lo, hi]})
        return run.claim_8(context(prof, patches=_patch_rows(0.5, 0.6, 0.9), ablation=ablation)).reason

    assert reason(0.0, 0.3).startswith("resolution (measured")
    assert reason(0.005, 0.0).startswith("not resolution")
    assert f"at {prof.ablation.eps_255:g}/255" in reason(0.0, 0.3)


def test_the_uap_claim_names_a_collapse_into_one_class():
    """Claim 9's reason says when the non-targeted UAPs send (almost) every held-out image to
    one class, with the ceiling that puts on the fooling rate; without collapse it says nothing of it."""
    prof = get_profile("smoke")

    def reason(share: float) -> str:
        t = _uap_table(0.3).assign(dominant_share=share, ceiling=0.3)
        return run.claim_9(context(prof, uap=t, ablation=pd.DataFrame(), drift=pd.DataFrame())).reason

    assert "send at least 95% of the held-out images to one class" in reason(1.0)
    assert "median ceiling 0.300" in reason(1.0)
    assert "one class" not in reason(0.6)


def test_the_claims_type_no_study_number():
    """Inside the claims' functions no float is typed and no string holds a figure, a side, a
    step count or a percentage: they come from references.py or a named module constant."""
    import ast
    import re
    from pathlib import Path

    tree = ast.parse(Path(run.__file__).read_text())
    bad = []
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        body = fn.body[1:] if ast.get_docstring(fn) else fn.body
        for node in [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Constant)]:
            if isinstance(node.value, float) or (isinstance(node.value, str) and re.search(
                    r"\d\.\d|\d ?(px|steps|rounds)\b|\d %|\d/255|quality \d|eps \d", node.value)):
                bad.append(f"{fn.name}, line {node.lineno}: {node.value!r}")
    assert not bad, "\n".join(bad)


def test_the_claims_readings_fit_the_studies_figures():
    assert all(r["black_acc"] < run.PATCH_BLACKBOX_BOUND for r in references.FINLAYSON_PATCH)
    assert 0 < run.FEW_CASES < 1 and run.STUDY_SIDES == (224, 299)
    ctx = context(get_profile("smoke"), uap=_uap_table(0.5).iloc[:0], natural=pd.DataFrame(
        columns=["task", "norm", "zeta", "init"]))
    statements = {n: claim(ctx).statement for n, claim in run.CLAIMS.items()}
    assert statements[9] == ("Non-targeted UAPs at zeta 4 % reach > 80 % fooling rate, almost independent of "
                             "architecture")
    assert statements[2] == "FGSM at eps 0.02 (normalised) drops accuracy and AUC"
    assert statements[4] == "Adversarial training keeps AUC > 0.95 under attack and about 0.97 clean"
    assert statements[8] == ("The adversarial patch drives accuracy to about 0 white-box and < 0.1 black-box; a "
                             "natural patch keeps accuracy")
