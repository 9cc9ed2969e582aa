"""The defense explorer (advmed.widgets.defense, fed by advmed.experiments.defenses.plots.explorer).

The synthetic world of tests/defense_world.py (tiny CNNs on 12-px gray two-class images, the
data layer and the checkpoint cache patched, a private cache) stands in for the zoo and the
chapter's results; the static explorer is built once and shared by the tests, which only read it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

ipywidgets = pytest.importorskip("ipywidgets")

from advmed import widgets as wg  # noqa: E402
from advmed.experiments.defenses import plots as P  # noqa: E402
from advmed.experiments.defenses import run as D  # noqa: E402
from advmed.experiments.profiles import DefenseExplorerSettings  # noqa: E402
from advmed.models import predict_proba  # noqa: E402

from defense_world import EPS_255, TASK, profile, world  # noqa: E402

torch.set_num_threads(1)

DEFENSES = ["none", "jpeg", "at_adversarialmed", "at_adversarialmed_fgsm", "bitdepth", "vae", "uap_retraining"]
QUALITIES = [10, 20, 50]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The results, profile and zoo of the synthetic world, and its static explorer (the world's
    patches stay on for every test of the module)."""
    prof = profile(defense_explorer=DefenseExplorerSettings(tasks=1, qualities=(10, 50), live_qualities=(75,),
                                                            budget_mb=2.0))
    with world(tmp_path_factory.mktemp("defense-explorer-cache"), prof) as w:
        yield w, P.explorer(w.results, profile=prof, zoo=w.zoo, mode="static")


@pytest.fixture
def static(setup):
    return setup[1]


@pytest.fixture
def w(setup):
    return setup[0]


def _key(**changes):
    base = dict(task=TASK, defense="jpeg", quality=20, attacker="oblivious", eps_255=max(EPS_255))
    return tuple(wg.DefenseSetting(**{**base, **changes}))


# --------------------------------------------------------------------------- static
def test_static_explorer_holds_the_profiles_grid(static):
    e = static
    assert isinstance(e, wg.StaticExplorer)
    assert e.levels == ["defense", "quality", "attacker", "eps"]  # one task: fixed text, not a dead control
    assert {n: type(c).__name__ for n, c in e.controls.items()} == {
        "defense": "Dropdown", "quality": "SelectionSlider", "attacker": "ToggleButtons", "eps": "SelectionSlider"}
    assert [v for _, v in e.controls["defense"].options] == DEFENSES
    # the defense's own quality (20) joins the profile's; JPEG, its quality and the largest budget first
    assert [v for _, v in e.controls["quality"].options] == QUALITIES
    assert (e.controls["defense"].value, e.controls["quality"].value, e.controls["eps"].value) == ("jpeg", 20, 16.0)
    for key, leaf in e.images.items():  # every key reaches its own frame through the linked stacks
        assert wg.shown(e, key) is leaf and isinstance(leaf, ipywidgets.Image)
    assert wg.dead_controls(e) == []
    assert e.n_frames == (len(DEFENSES) - 1 + len(QUALITIES)) * 2 * len(EPS_255)
    assert 0 < e.payload_bytes <= e.budget_bytes
    assert f"{e.n_frames} frames" in e.children[-1].value and "budget 2 MB" in e.children[-1].value


def test_the_quality_slider_matters_for_jpeg_only(static):
    e = static
    holder = e.holders["quality"]  # a Stack linked to the defense: the slider under JPEG, blank elsewhere
    assert [ch is e.controls["quality"] for ch in holder.children] == [d == "jpeg" for d in DEFENSES]
    for d in DEFENSES:
        leaves = [wg.shown(e, _key(defense=d, quality=q)) for q in QUALITIES]
        if d == "jpeg":
            assert len({id(x) for x in leaves}) == len(QUALITIES)
        else:
            assert all(x is leaves[0] for x in leaves), d


def test_frames_show_the_chapters_numbers_and_attacks(static, w):
    res, prof = w.results, w.profile
    for d in DEFENSES:
        for attacker in D.ATTACKERS:
            for eps in EPS_255:
                v = static.computed[_key(defense=d, attacker=attacker, eps_255=eps)]
                run = res.get(TASK, d)
                row = run.curves[(run.curves.attacker == attacker) & np.isclose(run.curves.eps_255, eps)].iloc[0]
                assert (v.robust.value, v.robust.lo, v.robust.hi) == (row.accuracy, row.accuracy_lo, row.accuracy_hi)
                assert v.clean.value == run.clean.accuracy.iloc[0] and v.n == 32
                # the attack stays in the budget and the box; gray images keep gray perturbations
                delta = v.adv - v.x
                assert float(delta.abs().max()) <= eps / 255 + 1e-5 and 0 <= float(v.adv.min())
                assert torch.equal(delta[0], delta[1]) and torch.equal(delta[0], delta[2])
    for attacker in D.ATTACKERS:  # the undefended model's probabilities are those of the zoo model
        v = static.computed[_key(defense="none", attacker=attacker)]
        assert np.allclose(v.adv_proba, predict_proba(w.zoo[(TASK, "tiny", "scratch")].model, v.adv[None])[0],
                           atol=1e-5)
        assert int(np.argmax(v.clean_proba)) == v.y  # the shown image is one the model gets right
    # the adaptive attacker is the oblivious one's worst case or worse, on the shown image too
    for d in DEFENSES:
        ob, ad = (static.computed[_key(defense=d, attacker=a)] for a in D.ATTACKERS)
        assert ad.adv_proba[ad.y] <= ob.adv_proba[ob.y] + 1e-6, d
    # another JPEG quality is its own JPEG run (memoised), not the chapter's
    other = D.defense_run(TASK, D.ModelKey(TASK, "tiny", "scratch"), w.zoo[(TASK, "tiny", "scratch")], "jpeg", prof,
                          quality=10)
    v = static.computed[_key(quality=10)]
    row = other.curves[(other.curves.attacker == "oblivious") & np.isclose(other.curves.eps_255, 16.0)].iloc[0]
    assert v.robust.value == row.accuracy and "quality 10" in v.setting


def test_frames_name_the_direction_of_each_flip(static, harm_label_calls):
    calls = harm_label_calls
    view = static.computed[_key()]
    assert view.task == TASK
    wg.defense.render_defense_frame(view, quantize=False)
    assert calls == [(TASK, view.classes, view.y, int(np.asarray(view.clean_proba).argmax()),
                      int(np.asarray(view.adv_proba).argmax()))]


def test_static_frames_are_memoised_by_the_results(static, w, monkeypatch):
    monkeypatch.setattr(wg.defense, "render_defense_frame", lambda *a, **k: pytest.fail("drew a frame again"))
    second = P.explorer(w.results, profile=w.profile, zoo=w.zoo, mode="static")
    assert second.n_frames == static.n_frames and second.computed == {}
    assert [x.value for x in second.images.values()] == [x.value for x in static.images.values()]
    run = w.results.get(TASK, "vae")
    changed = dataclasses.replace(run, curves=run.curves.assign(accuracy=run.curves.accuracy / 2))
    other = dataclasses.replace(w.results, runs=[changed if r is run else r for r in w.results.runs])
    with pytest.raises(pytest.fail.Exception, match="drew a frame"):
        P.explorer(other, profile=w.profile, zoo=w.zoo, mode="static")


# --------------------------------------------------------------------------- live
def test_live_explorer_responds_and_attacks_other_qualities(w, monkeypatch):
    e = P.explorer(w.results, profile=w.profile, zoo=w.zoo, mode="live")
    assert isinstance(e, wg.LiveExplorer)
    c = e.controls
    assert [v for _, v in c["quality"].options] == [10, 20, 50, 75]  # the grid and the live quality
    assert c["quality"].layout.display == ""  # JPEG first: the slider shows
    shown = [e.image.value]
    for name, value in (("attacker", "adaptive"), ("eps", 4.0), ("quality", 50), ("defense", "vae"),
                        ("attacker", "oblivious"), ("defense", "uap_retraining")):
        c[name].value = value
        assert e.image.value[:4] == b"\x89PNG" and e.image.value != shown[-1], name
        shown.append(e.image.value)
    assert c["quality"].layout.display == "none"  # hidden away from JPEG
    before = e.image.value
    c["quality"].value = 10  # hidden and without effect: the same frame
    assert e.image.value == before
    c["defense"].value = "jpeg"  # at quality 10, the static grid's
    calls = []
    real = D.defense_run
    monkeypatch.setattr(D, "defense_run", lambda *a, **k: calls.append(k.get("quality")) or real(*a, **k))
    c["quality"].value = 75  # not in the chapter: evaluated and attacked now, once
    assert calls == [75] and e.status.value == "" and e.image.value[:4] == b"\x89PNG"
    v = e.cache[e.current]
    assert "quality 75" in v.setting and 0 <= v.robust.lo <= v.robust.value <= v.robust.hi <= 1
    again = P.explorer(w.results, profile=w.profile, zoo=w.zoo, mode="live")  # memoised: nothing is attacked again
    monkeypatch.setattr(D, "evaluate_defense", lambda *a, **k: pytest.fail("evaluated a memoised defense"))
    again.controls["quality"].value = 75
    assert again.image.value[:4] == b"\x89PNG" and again.status.value == ""


def test_live_says_what_is_missing(w):
    run = w.results.get(TASK, "vae")
    partial = dataclasses.replace(run, curves=run.curves[~np.isclose(run.curves.eps_255, 4.0)])
    res = dataclasses.replace(w.results, runs=[partial if r is run else r for r in w.results.runs
                                               if r.defense != "uap_retraining"])
    e = P.explorer(res, profile=w.profile, zoo=w.zoo, mode="live")
    assert "uap_retraining" not in [v for _, v in e.controls["defense"].options]  # what the results hold
    e.controls["defense"].value = "vae"
    e.controls["eps"].value = 4.0
    assert e.image.value == b"" and "not attacked at eps 4/255" in e.status.value


def test_controls_refuse_unknown_values():
    kw = dict(tasks=[("t", "t")], defenses=[("none", "none"), ("JPEG", "jpeg")], qualities=[20], eps_255=[1.0])
    with pytest.raises(ValueError, match="valid: oblivious, adaptive"):
        wg.defense_controls(**kw, attackers=("oblivious", "omniscient"))
    with pytest.raises(KeyError, match="valid: task, defense"):
        wg.defense_controls(**kw, live={"budget": [1]})
    ctl = wg.defense_controls(**kw)
    assert next(c for c in ctl if c.name == "quality").when == ("defense", ("jpeg",))
    with pytest.raises(ValueError, match="in that order"):
        wg.defense_explorer(lambda s: None, ctl[::-1], mode="static")
