"""advmed.experiments.claims: the registry's rules and seal, the statistics behind a verdict, and
verdicts that follow the chapters' headline records (each test writes the records a Context
reads, in a private cache)."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from advmed.attacks.escalate import CONVERGED, NOT_CONVERGED
from advmed.experiments import references
from advmed.experiments.claims import registry, report, run, tables, verdicts
from advmed.experiments.claims.statistics import (Interval, bootstrap_statistic, decide, hanley_mcneil,
                                                  images_needed, newcombe_difference, wilson)
from advmed.experiments.defenses import report as defense_report
from advmed.experiments.defenses.report import DefenseClaims
from advmed.experiments.kernel import records
from advmed.experiments.profiles import get_profile

#: The seed texts: ../shared/seeds beside the checkout, or beside the data root (a fresh clone elsewhere).
SEEDS = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "seeds",
                          Path(os.environ.get("ADVMED_DATA_ROOT", "/nonexistent")).parent / "seeds") if p.is_dir()),
             Path("/nonexistent"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_cache):
    """Every test's records go to (and are read from) an empty cache of its own."""


# --------------------------------------------------------------------------- the registry
def test_the_registry_is_sealed_by_its_changelog():
    """Editing a rule, figure, margin, quote or aggregation changes the fingerprint, which must
    then be recorded in CHANGELOG with a date and a reason."""
    last = registry.CHANGELOG[-1]
    assert registry.fingerprint() == last.fingerprint, (
        f"the claims registry changed (fingerprint {registry.fingerprint()}, last accepted {last.fingerprint}): "
        "add a dated Change with the reason to registry.CHANGELOG")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", last.date) and len(last.reason) > 20
    assert [c.date for c in registry.CHANGELOG] == sorted(c.date for c in registry.CHANGELOG)


def test_editing_a_margin_changes_the_fingerprint(monkeypatch):
    spec = registry.BY_NUMBER[2]
    name, rule = spec.rules[0]
    edited = registry.ClaimSpec(**{**spec.__dict__, "rules": ((name, rule._replace(margin=rule.margin + 0.01)),)
                                                             + spec.rules[1:]})
    before = registry.fingerprint()
    monkeypatch.setattr(registry, "CLAIMS", tuple(edited if c.number == 2 else c for c in registry.CLAIMS))
    assert registry.fingerprint() != before


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed texts (../shared/seeds) are not on this machine")
def test_every_quote_is_verbatim_from_its_seed_text():
    for spec in registry.CLAIMS:
        text = " ".join((SEEDS / spec.seed).read_text(encoding="utf-8").split())
        assert " ".join(spec.quote.split()) in text, f"claim {spec.number}: the quote is not in {spec.seed}"


def test_every_claim_has_a_function_rules_and_a_source():
    assert sorted(run.CLAIMS) == [c.number for c in registry.CLAIMS]
    for spec in registry.CLAIMS:
        assert spec.rules and spec.figure_source and spec.aggregation and spec.why and spec.strongest
        for _, rule in spec.rules + spec.strongest_rules:
            assert rule.kind in ("equivalent", "above", "below") and rule.margin >= 0


def test_the_registry_uses_the_studies_figures():
    assert registry.BY_NUMBER[2].rule_figure("accuracy") == references.ADVERSARIALMED_ATTACKS["rows"][1]["accuracy"]
    assert registry.BY_NUMBER[4].rule_figure("AUC clean") == references.ADVERSARIALMED_DEFENSES["at_clean_auc"]
    assert registry.BY_NUMBER[9].rule_figure("fooling rate") == references.HIRANO_UAP["claim_success_rate"]
    assert all(r["black_acc"] < registry.BY_NUMBER[8].rule_figure("black-box") for r in references.FINLAYSON_PATCH)


# --------------------------------------------------------------------------- statistics
def test_wilson_matches_scipy_and_widens_as_n_shrinks():
    small, large = wilson(0.2, 20), wilson(0.2, 2000)
    ci = stats.binomtest(4, 20).proportion_ci(method="wilson")
    assert math.isclose(small.lo, ci.low) and math.isclose(small.hi, ci.high)
    assert (small.hi - small.lo) > (large.hi - large.lo)
    assert not wilson(0.5, 0).has_interval


def test_equivalence_is_tost_and_a_small_n_is_inconclusive_not_agreement():
    fig, m = 0.95, 0.02
    assert decide("equivalent", wilson(0.95, 5000), fig, m).verdict == "agrees"
    assert decide("equivalent", wilson(0.95, 30), fig, m).verdict == "inconclusive"  # same value, too few images
    assert decide("equivalent", wilson(0.70, 2000), fig, m).verdict == "disagrees"
    assert decide("equivalent", Interval(0.95), fig, m).verdict == "inconclusive"  # no interval, no verdict


def test_bounds_need_the_whole_interval_on_the_study_side():
    assert decide("above", Interval(0.9, 0.85, 0.95), 0.8, 0.05).verdict == "agrees"
    assert decide("above", Interval(0.82, 0.7, 0.9), 0.8, 0.05).verdict == "inconclusive"  # point above, interval not
    assert decide("above", Interval(0.5, 0.4, 0.6), 0.8, 0.05).verdict == "disagrees"
    assert decide("below", Interval(0.01, 0.0, 0.04), 0.05, 0.05).verdict == "agrees"
    assert decide("below", Interval(0.3, 0.2, 0.4), 0.05, 0.05).verdict == "disagrees"


def test_same_direction_needs_the_stated_effect_with_its_interval():
    clean = Interval(0.9, 0.85, 0.95)
    est = Interval(0.5, 0.4, 0.6)
    assert decide("below", est, 0.05, 0.05, effect=0.1, reference=clean).verdict == "same direction"
    near = Interval(0.8, 0.76, 0.84)  # below clean, but by less than the effect with its interval
    assert decide("below", near, 0.05, 0.05, effect=0.1, reference=clean).verdict == "disagrees"


def test_images_needed_grows_as_the_margin_shrinks():
    assert images_needed("equivalent", 0.9, 0.9, 0.01) > images_needed("equivalent", 0.9, 0.9, 0.05)
    n = images_needed("equivalent", 0.9, 0.9, 0.05)
    assert decide("equivalent", wilson(0.9, 4 * n), 0.9, 0.05).verdict == "agrees"


def test_newcombe_and_hanley_mcneil_and_bootstrap_intervals_contain_their_estimates():
    d = newcombe_difference(wilson(0.6, 100), wilson(0.3, 100))
    assert d.lo < 0.3 < d.hi and d.lo > 0
    h = hanley_mcneil(0.9, 50, 50)
    assert h.lo < 0.9 < h.hi and hanley_mcneil(0.9, 500, 500).hi - hanley_mcneil(0.9, 500, 500).lo < h.hi - h.lo
    b = bootstrap_statistic([0.1, 0.2, 0.3, 0.9, 0.8], seed=0)
    assert b.lo <= b.value <= b.hi and b.n == 5


# --------------------------------------------------------------------------- verdicts from records
def context(profile, **tables) -> run.Context:
    """The Context of ``profile`` after chapters 1-7 wrote records holding ``tables`` (by the
    Context's names, ``defenses``: a DefenseClaims; every other table empty)."""
    fields: dict[type, dict[str, pd.DataFrame]] = {}
    for name, (cls, field) in run.Context.TABLES.items():
        empty = pd.DataFrame(columns=["task", "arch", "init", "init_used", "size", "val_auc"]) if name == "models" \
            else pd.DataFrame()
        fields.setdefault(cls, {})[field] = tables.pop(name, empty)
    defenses = tables.pop("defenses", DefenseClaims())
    n = tables.pop("n", 200)
    assert not tables, f"no record holds {sorted(tables)}"
    for cls, frames in fields.items():
        records.write_record(records.make_record(cls, profile, n=n, **frames))
    records.write_record(dataclasses.replace(defense_report.headline_record(profile, {}, defenses), n=n))
    return run.Context(profile)


def _uap_table(rate: float, random: float = 0.05, n_eval: int = 3000, spread: float = 0.0) -> pd.DataFrame:
    rows = [{"task": t, "arch": a, "init": i, "norm": nm, "zeta": 0.04, "target": -1, "n_eval": n_eval,
             "rate": rate + (spread if a == "b" else 0.0), "random": random, "rate_all": math.nan,
             "random_all": math.nan}
            for t in ("pneumonia_cxr", "pneumoniamnist") for a in ("a", "b") for i in ("imagenet", "scratch")
            for nm in ("l2", "linf")]
    return pd.DataFrame(rows)


def test_the_uap_claim_follows_the_records():
    prof = get_profile("smoke")
    ctx = lambda *a, **k: context(prof, uap=_uap_table(*a, **k), ablation=pd.DataFrame(), drift=pd.DataFrame())  # noqa
    assert run.claim_9(ctx(0.95)).verdict == "agrees"
    assert run.claim_9(ctx(0.4)).verdict == "same direction"  # far above random, far below 80 %
    assert run.claim_9(ctx(0.02, random=0.1)).verdict == "disagrees"
    assert run.claim_9(ctx(0.6, spread=0.35)).verdict == "disagrees"  # depends on architecture


def _photo_rows(finetuned: float, scratch: float, random: float = 0.02) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "arch": "m", "init": i, "norm": nm, "zeta": 0.04, "n_eval": 300,
                          "_natural": finetuned if i == "imagenet" else scratch, "_medical": 0.9, "_random": random}
                         for t in ("pneumonia_cxr", "melanoma_derm", "pneumoniamnist") for nm in ("l2", "linf")
                         for i in ("imagenet", "scratch")])


def test_the_photo_uap_claims_follow_the_records():
    prof = get_profile("smoke")
    ctx = lambda **t: context(prof, ablation=pd.DataFrame(), **t)  # noqa: E731
    # 16: targeted photo UAPs against their random control
    assert run.claim_16(ctx(natural_targeted=_photo_rows(0.7, 0.5))).verdict == "agrees"
    assert run.claim_16(ctx(natural_targeted=_photo_rows(0.03, 0.02))).verdict == "disagrees"
    assert run.claim_16(ctx()).verdict == "not comparable"
    # 17: the weaker of two photo sources, and other architectures
    sources = pd.DataFrame({"animals_medical": [0.6, 0.5, 0.7, 0.6], "objects_medical": [0.5, 0.6, 0.6, 0.7],
                            "random": [0.02] * 4})
    transfer = pd.DataFrame({"task": ["t"] * 4, "built on": ["a", "a", "b", "b"], "applied to": ["a", "b", "a", "b"],
                             "fooling rate": [0.9, 0.5, 0.55, 0.8]})
    assert run.claim_17(ctx(cross_source=sources, natural_transfer=transfer)).verdict == "agrees"
    weak = sources.assign(objects_medical=0.02)
    assert run.claim_17(ctx(cross_source=weak, natural_transfer=transfer)).verdict == "disagrees"
    # 18: scratch less than fine-tuned, but above its random control
    assert run.claim_18(ctx(natural=_photo_rows(0.6, 0.3))).verdict == "agrees"
    # a scratch model no more fooled than its control: "not immune" cannot be shown (n cannot rule out zero)
    assert run.claim_18(ctx(natural=_photo_rows(0.6, 0.02))).verdict == "inconclusive"
    assert run.claim_18(ctx(natural=_photo_rows(0.2, 0.6))).verdict == "disagrees"  # scratch fooled more


def test_the_label_only_claim_pools_the_attacked_images_of_every_task():
    prof = get_profile("smoke")

    def ctx(success: float, n: int = 150):
        rows = [{"task": t, "target": "m", "attack": a, "norm": "linf", "eps": 1 / 255, "budget": 1000, "n": n,
                 "success": success if a == "hopskipjump" else 0.99} for t in ("t1", "t2") for a in ("square", "hopskipjump")]
        return context(prof, queries=pd.DataFrame(rows), ablation=pd.DataFrame())

    assert run.claim_19(ctx(0.6)).verdict == "agrees"
    assert run.claim_19(ctx(0.0)).verdict == "disagrees"  # Square's success is not the label-only attack's
    assert run.claim_19(ctx(0.12, n=5)).verdict == "inconclusive"  # ten images cannot decide
    assert run.claim_19(ctx(0.5)).at("study").parts[0][1].n == 300


def test_a_flagged_measurement_is_inconclusive_never_agrees():
    prof = get_profile("smoke")

    def at(auc: float, flagged: bool):
        a = defense_report.ATNumbers("pneumoniamnist", "mobilenet", 1.0, 0.97, auc, auc, 0.9, 0.1, flagged)
        return run.claim_4(context(prof, defenses=DefenseClaims([a], [], []), ablation=pd.DataFrame(), n=4000))

    assert at(0.99, False).strongest == "agrees"
    assert at(0.99, True).strongest == "inconclusive"
    assert at(0.6, True).strongest == "inconclusive"


def _blackbox_rows(to_target: float, n: int = 300) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "surrogate_kind": k, "surrogate": f"mobilenet ({k})", "target_rate": to_target,
                          "clean_accuracy": 0.9, "white_target_rate": 1.0, "n": n}
                         for t in ("pneumonia_cxr", "melanoma_derm") for k in ("seed", "disjoint")])


def test_the_blackbox_claim_follows_the_share_pushed_to_the_other_class():
    prof = get_profile("smoke")
    ctx = lambda *a: context(prof, finlayson_blackbox=_blackbox_rows(*a), ablation=pd.DataFrame())  # noqa: E731
    assert run.claim_7(ctx(0.9)).verdict == "agrees"
    assert run.claim_7(ctx(0.3)).verdict == "same direction"  # above the 0.1 clean control, below 0.5
    assert run.claim_7(ctx(0.05)).verdict == "disagrees"
    assert run.claim_7(ctx(0.55, 20)).verdict == "inconclusive"  # 20 images cannot place 0.55 above 0.5
    empty = context(prof, finlayson_blackbox=pd.DataFrame(), ablation=pd.DataFrame())
    assert run.claim_7(empty).verdict == "not comparable"


def _patch_rows(white: float, black: float, natural: float) -> pd.DataFrame:
    rows = []
    for kind, acc in (("white-box", white), ("black-box", black), ("natural", natural)):
        rows.append({"task": "pneumonia_cxr", "patch": kind, "our model": "mobilenet", "accuracy ours": acc,
                     "accuracy_lo": max(acc - 0.02, 0), "accuracy_hi": min(acc + 0.02, 1), "clean accuracy": 0.9,
                     "n": 2000})
    return pd.DataFrame(rows)


def test_the_patch_claim_needs_all_three_parts():
    prof = get_profile("smoke")
    ctx = lambda *v: context(prof, patches=_patch_rows(*v), ablation=pd.DataFrame())  # noqa: E731
    assert run.claim_8(ctx(0.01, 0.05, 0.88)).verdict == "agrees"
    assert run.claim_8(ctx(0.01, 0.05, 0.5)).verdict == "disagrees"  # the natural control must keep accuracy
    assert run.claim_8(ctx(0.5, 0.05, 0.88)).verdict == "same direction"


def _defense_claims(*, jpeg=(0.8, 0.8, 0.3), helped=(0.5, 0.1), k=2):
    D = defense_report
    obl, ada, base = jpeg
    pre = [D.PreprocessingNumbers("pneumoniamnist", "jpeg", 1.0, 0.9, obl, ada, base, False)]
    rt = [D.RetrainingNumbers("pneumoniamnist", "mobilenet", 1, helped[0], helped[0], helped[1], 0.9, 0.9)]
    rt += [D.RetrainingNumbers(f"task{i}", "mobilenet", 1, 0.4, 0.4, 0.4, 0.9, 0.9) for i in range(k - 1)]
    return D.DefenseClaims([], pre, rt)


def test_one_step_fgsm_training_claim_needs_a_gain_above_the_effect_and_fails_without_one():
    D = defense_report
    prof = get_profile("smoke")

    def verdict(trained: float, undefended: float, evaluation: str = "passed", flagged: bool = False) -> str:
        case = D.ATNumbers("pneumoniamnist", "small_cnn", 1.0, 0.9, 0.8, 0.8, trained, 0.7, flagged,
                           evaluation=evaluation, undefended_robust_accuracy_adaptive=undefended,
                           defense="at_adversarialmed_fgsm")
        claims = D.DefenseClaims(fgsm_training=[case])
        return run.claim_13(context(prof, defenses=claims, ablation=pd.DataFrame(), n=2000)).verdict

    assert verdict(0.8, 0.3) == "agrees"  # a gain well above the registry's effect
    assert verdict(0.3, 0.3) == "disagrees"  # no gain at all, with 2000 images to show it
    assert verdict(0.8, 0.3, evaluation=NOT_CONVERGED, flagged=True) == "inconclusive"  # an upper bound decides nothing
    assert verdict(0.8, 0.3, evaluation=CONVERGED, flagged=True) == "agrees"  # escalated and converged: believed
    empty = context(prof, defenses=DefenseClaims(), ablation=pd.DataFrame())
    assert run.claim_13(empty).verdict == "not comparable"


def test_the_defense_claims_follow_the_attacker_that_knows_the_defense():
    prof = get_profile("smoke")
    ctx = lambda **kw: context(prof, defenses=_defense_claims(**kw), ablation=pd.DataFrame(), n=2000)  # noqa: E731
    assert run.claim_5(ctx()).verdict == "agrees" and run.claim_5(ctx()).strongest == "agrees"
    oblivious_only = run.claim_5(ctx(jpeg=(0.8, 0.3, 0.3)))
    assert oblivious_only.verdict == "agrees" and oblivious_only.strongest == "disagrees"
    assert run.claim_5(ctx(jpeg=(0.3, 0.3, 0.3))).verdict == "disagrees"
    assert run.claim_12(ctx(k=40)).verdict == "agrees"  # 1 of 40 helped: a few
    assert run.claim_12(ctx(k=4)).verdict == "inconclusive"  # 1 of 4: too few cases to bound the share
    assert run.claim_12(ctx(helped=(0.4, 0.4), k=40)).verdict == "inconclusive"  # none: cannot show "some"
    empty = context(prof, defenses=DefenseClaims(), ablation=pd.DataFrame())
    assert {run.claim_4(empty).verdict, run.claim_5(empty).verdict, run.claim_12(empty).verdict} == {"not comparable"}


def test_a_resolution_reason_is_cited_only_when_the_ablation_moves():
    prof = get_profile("smoke")
    rows = pd.DataFrame([{"task": "pneumonia_cxr", "arch": "m", "init": "imagenet", "attack": a, "accuracy": acc,
                          "accuracy_lo": acc - 0.02, "accuracy_hi": acc + 0.02, "n": 300}
                         for a, acc in (("clean", 0.9), ("targeted_pgd", 0.5))])

    def reason(lo: float, hi: float) -> str:
        ablation = pd.DataFrame({"size": [32, 48], "robust_accuracy": [lo, hi]})
        return run.claim_6(context(prof, finlayson=rows, ablation=ablation)).reason

    assert reason(0.0, 0.3).startswith("resolution (measured")
    assert f"at {prof.ablation.eps_255:g}/255" in reason(0.0, 0.3)
    assert reason(0.005, 0.0) == "unexplained"  # an ablation that did not move explains nothing


def test_the_uap_claim_names_a_collapse_into_one_class():
    prof = get_profile("smoke")

    def reason(share: float) -> str:
        t = _uap_table(0.3).assign(dominant_share=share, ceiling=0.3)
        return run.claim_9(context(prof, uap=t, ablation=pd.DataFrame(), drift=pd.DataFrame())).reason

    assert "send at least 95% of the held-out images to one class" in reason(1.0)
    assert "one class" not in reason(0.6)


def test_tables_abstract_and_figure_show_both_settings():
    prof = get_profile("smoke")
    claims = [run.claim_9(context(prof, uap=_uap_table(0.4), ablation=pd.DataFrame(), drift=pd.DataFrame())),
              run.claim_14(context(prof, defenses=DefenseClaims(), ablation=pd.DataFrame()))]
    full = tables.claims_table(claims)
    assert list(full["setting"]) == ["study's setting", "strongest evaluation"] * 2
    summary = tables.claims_summary(claims)
    assert list(summary["study's setting"]) == ["same direction"]  # claim 14 is untestable: named, not a row
    assert "claim 14" in tables.untested_sentence(claims)
    from advmed.experiments.claims import discussion
    assert list(discussion.cannot_decide(claims)["no."]) == [] and list(discussion.untested(claims)["no."]) == [14]
    text = report.abstract(claims, "smoke")
    assert "claim 9" in text and "claim 14" in text
    assert "Claim 9" in report.conclusion(claims)
    assert tables.verdict_tally(claims).same_direction == 1
    from advmed.experiments.claims import plots as cplots
    fig = cplots.verdict_figure(claims)
    assert {ax.get_title(loc="left") for ax in fig.axes} >= {"rate or share", "difference"}
    with pytest.raises(ValueError, match="unknown verdict"):
        verdicts.Verdict("study", "", "maybe", "", "")


def test_the_claims_type_no_study_number():
    """Inside the claims' functions no float is typed and no string holds a figure, a side, a
    step count or a percentage: they come from the registry, references.py or a record."""
    import ast

    tree = ast.parse(Path(run.__file__).read_text())
    bad = []
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        body = fn.body[1:] if ast.get_docstring(fn) else fn.body
        for node in [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Constant)]:
            if isinstance(node.value, float) or (isinstance(node.value, str) and re.search(
                    r"\d\.\d|\d ?(px|steps|rounds)\b|\d %|\d/255|quality \d|eps \d", node.value)):
                bad.append(f"{fn.name}, line {node.lineno}: {node.value!r}")
    assert not bad, "\n".join(bad)


def test_every_claim_says_which_way_its_errors_go():
    assert set(registry.DIRECTIONS) == {c.number for c in registry.CLAIMS}
    assert all(registry.DIRECTIONS[c.number] for c in registry.CLAIMS)
    assert "direction of the errors" in tables.quotes_table().columns
