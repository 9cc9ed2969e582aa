"""advmed.experiments.claims: the verdict rule, and verdicts that follow the cached results."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from advmed.experiments.claims import report, run, tables, verdicts
from advmed.experiments.claims.verdicts import Estimate3
from advmed.experiments.defenses.report import DefenseClaims
from advmed.experiments.profiles import get_profile


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


class FakeContext(run.Context):
    """A context whose records are given, not read (the claims read nothing else)."""

    def __init__(self, profile, **results):
        super().__init__(profile)
        results.pop("zoo", None)  # the models come from chapter 1's record: none here
        results.setdefault("models", pd.DataFrame(columns=["task", "arch", "init", "init_used", "size", "val_auc"]))
        self.__dict__.update(results)


def _uap_table(rate: float, random: float = 0.05) -> pd.DataFrame:
    rows = [{"task": t, "arch": "mobilenet_v1_075", "init": i, "norm": n, "zeta": 0.04, "target": -1,
             "rate": rate, "random": random, "rate_all": math.nan, "random_all": math.nan}
            for t in ("pneumonia_cxr", "pneumoniamnist") for i in ("imagenet", "scratch") for n in ("l2", "linf")]
    return pd.DataFrame(rows)


def test_every_claim_is_computed_and_follows_the_results():
    prof = get_profile("smoke")
    ctx = FakeContext(prof, uap=_uap_table(0.9), zoo={}, ablation=pd.DataFrame(), drift=pd.DataFrame())
    claim = run.claim_9(ctx)
    assert claim.verdict == "agrees" and claim.number == 9
    changed = run.claim_9(FakeContext(prof, uap=_uap_table(0.3), zoo={}, ablation=pd.DataFrame(),
                                      drift=pd.DataFrame()))
    assert changed.verdict == "same direction", "a lower cached fooling rate must change the verdict"
    assert run.claim_9(FakeContext(prof, uap=_uap_table(0.02, random=0.1), zoo={}, ablation=pd.DataFrame(),
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
    ctx = lambda v: FakeContext(prof, finlayson_blackbox=_blackbox_rows(v), zoo={}, ablation=pd.DataFrame())
    assert run.claim_7(ctx(0.9)).verdict == "agrees"
    assert run.claim_7(ctx(0.3)).verdict == "same direction"  # above the 0.1 clean control, below 0.5
    assert run.claim_7(ctx(0.05)).verdict == "disagrees"
    empty = FakeContext(prof, finlayson_blackbox=pd.DataFrame(), zoo={}, ablation=pd.DataFrame())
    assert run.claim_7(empty).verdict == "not comparable"


def _patch_rows(white: float, black: float, natural: float) -> pd.DataFrame:
    rows = []
    for kind, acc in (("white-box", white), ("black-box", black), ("natural", natural)):
        rows.append({"task": "pneumonia_cxr", "patch": kind, "our model": "mobilenet", "accuracy ours": acc,
                     "accuracy_lo": max(acc - 0.02, 0), "accuracy_hi": min(acc + 0.02, 1), "clean accuracy": 0.9})
    return pd.DataFrame(rows)


def test_patch_claim_needs_all_three_parts():
    prof = get_profile("smoke")
    ctx = lambda *v: FakeContext(prof, patches=_patch_rows(*v), zoo={}, ablation=pd.DataFrame())
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
    ctx = lambda **kw: FakeContext(prof, defenses=_defense_claims(**kw), zoo={}, ablation=pd.DataFrame())
    assert run.claim_4(ctx()).verdict == "agrees"
    assert run.claim_4(ctx(at_auc=0.6)).verdict == "same direction"  # above the undefended 0.1, below 0.95
    assert run.claim_4(ctx(flagged=True)).verdict == "not comparable"  # a masked number is no evidence
    assert run.claim_5(ctx()).verdict == "agrees"
    assert run.claim_5(ctx(jpeg=(0.8, 0.3, 0.3))).verdict == "same direction"  # oblivious only
    assert run.claim_5(ctx(jpeg=(0.3, 0.3, 0.3))).verdict == "disagrees"
    assert run.claim_12(ctx()).verdict == "agrees"  # 1 of 2 cases helped
    assert run.claim_12(ctx(helped=(0.4, 0.4))).verdict == "same direction"  # none helped
    empty = FakeContext(prof, defenses=DefenseClaims(), zoo={}, ablation=pd.DataFrame())
    assert {run.claim_4(empty).verdict, run.claim_5(empty).verdict, run.claim_12(empty).verdict} == {"not comparable"}


def test_a_resolution_reason_is_cited_only_when_the_ablation_moves():
    """The patch claim's reason names resolution when robust accuracy changes across the
    ablation's sizes by at least RESOLUTION_EFFECT, and says "not resolution" when it does not;
    the budget named is the ablation's own."""
    prof = get_profile("smoke")

    def reason(lo: float, hi: float) -> str:
        ablation = pd.DataFrame({"size": [32, 48], "robust_accuracy": [lo, hi]})
        return run.claim_8(FakeContext(prof, patches=_patch_rows(0.5, 0.6, 0.9), zoo={}, ablation=ablation)).reason

    assert reason(0.0, 0.3).startswith("resolution (measured")
    assert reason(0.005, 0.0).startswith("not resolution")
    assert f"at {prof.ablation.eps_255:g}/255" in reason(0.0, 0.3)


def test_the_uap_claim_names_a_collapse_into_one_class():
    """Claim 9's reason says when the non-targeted UAPs send (almost) every held-out image to
    one class, with the ceiling that puts on the fooling rate; without collapse it says nothing of it."""
    prof = get_profile("smoke")

    def reason(share: float) -> str:
        t = _uap_table(0.3).assign(dominant_share=share, ceiling=0.3)
        return run.claim_9(FakeContext(prof, uap=t, zoo={}, ablation=pd.DataFrame(), drift=pd.DataFrame())).reason

    assert "send at least 95% of the held-out images to one class" in reason(1.0)
    assert "median ceiling 0.300" in reason(1.0)
    assert "one class" not in reason(0.6)
