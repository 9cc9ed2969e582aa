"""The cells of chapters 5-7 (:mod:`advmed.experiments.cells`): listed, estimated, and
computing exactly what the chapters read.

The contract (DESIGN.md, "Cells"): a cell computes through the chapter's own functions with
the chapter's arguments, so a chapter executed after its cells only reads the cache. The
slow test computes every cell of chapters 5-7 of the dry run of a one-model smoke profile (a
small CNN on a few images: the target of every chapter is the task's first model, the fallback
path of ``primary_key``), then
calls what the chapters call and checks that no checkpoint, VAE or result file was written.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
from advmed.experiments import cells, estimate
from advmed.experiments.profiles import PROFILES, dry_run, get_profile

CHAPTERS = ("05_blackbox", "06_patches", "07_defenses")
FAMILY = {"05_blackbox": "blackbox", "06_patches": "patches", "07_defenses": "defenses"}


@pytest.mark.parametrize("name", ["smoke", "paper-dry", "paper"])
def test_chapters_5_to_7_list_unique_staged_picklable_cells(name):
    prof = PROFILES[name]
    for chapter in CHAPTERS:
        cs = cells.book_cells(prof, [chapter])
        assert FAMILY[chapter] in {c.family for c in cs}, chapter
        assert len({c.name for c in cs}) == len(cs)
        assert [c.stage for c in cs] == sorted(c.stage for c in cs)
        assert all(c.cost_gmac > 0 for c in cs)
        assert pickle.loads(pickle.dumps(cs))[-1].name == cs[-1].name
    bb = cells.book_cells(prof, ["05_blackbox"])
    assert {c.stage for c in bb if c.name.startswith("blackbox/surrogate/")} == {0}
    assert {c.stage for c in bb if c.name.startswith("blackbox/check/")} == {2}
    # the white-box worst case the check reads: chapter 2's cells, by name
    assert any(c.name.startswith("whitebox/robust/") for c in bb)
    defenses = cells.book_cells(prof, ["07_defenses"])
    assert {c.stage for c in defenses if c.name.startswith(("defenses/at/", "defenses/vae/"))} == {0}


def test_paper_dry_reaches_every_surrogate_and_defense():
    prof = PROFILES["paper-dry"]
    cs = cells.book_cells(prof, list(CHAPTERS))
    n_tasks = len(prof.tasks)
    assert sum(c.name.startswith("blackbox/surrogate/") for c in cs) == 2 * n_tasks  # seed and disjoint
    evals = [c for c in cs if c.name.startswith("defenses/eval/")]
    assert len(evals) == n_tasks * (5 + len(prof.defense.adversarial))  # none, jpeg, at_*, bit depth, vae, retraining
    usimba = [c for c in cs if c.name.startswith("blackbox/usimba/")]
    assert {c.kwargs["target_class"] for c in usimba} == {None, 0, 1}  # non-targeted and to each class
    assert {c.kwargs["norm"] for c in usimba} == set(prof.blackbox.usimba_norms)


def test_the_estimate_counts_chapters_5_to_7():
    prof = get_profile("cpu")
    for chapter in CHAPTERS:
        plan = cells.plan(prof, [chapter])
        assert plan.cells.get(FAMILY[chapter], 0) > 0 and plan.gmac[FAMILY[chapter]] > 0, chapter
    assert cells.plan(prof, ["05_blackbox"]).seconds("cpu") > cells.plan(prof, ["01_models"]).seconds("cpu")


# --------------------------------------------------------------------------- cells, then the chapters
PROFILE = dry_run(get_profile("smoke", models=["small_cnn:scratch"]))


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("checkpoints", "results", "vae") for p in sorted((root / sub).rglob("*")) if p.is_file()}


def _chapters(prof) -> None:
    """What chapters 5-7 compute, through the functions they call."""
    from advmed.experiments import zoo as Z
    from advmed.experiments.blackbox import run as B
    from advmed.experiments.kernel import surrogates as S
    from advmed.experiments.defenses import run as D
    from advmed.experiments.patches import run as P

    zoo = Z.trained_models(prof, progress=False)
    sur = S.trained_surrogates(prof, zoo)
    transfer = B.transfer_results(prof, zoo, sur, progress=False)
    B.finlayson_blackbox(prof, zoo, sur, progress=False)
    queries = B.query_results(prof, zoo, progress=False)
    B.usimba_results(prof, zoo, progress=False)
    B.whitebox_check(prof, zoo, transfer, queries, progress=False)
    P.patch_experiment(prof, zoo, progress=False)
    dzoo = Z.trained_models(prof, tasks=D.defense_tasks(prof), models=[prof.defense.model], progress=False)
    res = D.defense_results(prof, dzoo, progress=False)
    assert [r.defense for r in res.runs] == D.defense_names(prof) and res.certified is not None


@pytest.mark.slow
def test_after_the_cells_chapters_5_to_7_only_read_the_cache(tmp_path, monkeypatch):
    shared = Path(os.environ["ADVMED_CACHE"])
    (shared / "tensors").mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tensors").symlink_to(shared / "tensors", target_is_directory=True)  # decoding is tested elsewhere
    monkeypatch.setenv("ADVMED_CACHE", str(cache))
    cs = cells.book_cells(PROFILE, list(CHAPTERS))
    assert {"zoo", "whitebox", "blackbox", "patches", "defenses"} <= {c.family for c in cs}
    for stage in cells.stages(cs):
        for cell in stage:
            assert isinstance(cells.run_cell(cell).summary, str)
    before = _files(cache)
    assert any(k.startswith("vae/") for k in before) and any(k.startswith("results/defenses/") for k in before)
    _chapters(PROFILE)
    after = _files(cache)
    assert after == before, f"the chapters computed what the cells had not: {sorted(set(after) - set(before))}"
