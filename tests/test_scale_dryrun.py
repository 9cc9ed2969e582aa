"""The dry run: the whole book with ``paper-dry`` on a CPU, every code path of ``paper``.

``paper-dry`` keeps every task of ``paper`` (the 7-class skin and 5-class retina tasks
included), its seven architectures and their initialisations, trained on a cover of the
task x model grid (the models chapters 4-7 single out on every task, each other model on one
task). Torchvision ImageNet weights cannot be had offline, so those models fall back to
random initialisation with a warning, as a reader without internet would get. It keeps
Inception's network at its own side, the gray tasks' one-channel attacks, every attack, norm,
target and chapter; it shrinks the data (a few 32 px images per split, one epoch, two attack
iterations; Inception's network resizes them to 75 px, its smallest side, where ``paper``
resizes 224 px images to 299: the same path, which ``test_scale.py`` also runs at 299). The
build runs cold, in a private cache (a warm cache would skip the code paths), with the
decoded images of the shared test cache (decoding is tested elsewhere); the cache is deleted
afterwards (VGG-16's checkpoints are 0.5 GB a task). About 6 minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from advmed import book
from advmed.experiments import cells as C
from advmed.experiments.cells import task_classes
from advmed.experiments.kernel import ATTACKS
from advmed.experiments.profiles import PROFILES
from advmed.experiments.universal.fidelity.run import ablation_config
from advmed.experiments.zoo import configs_for_profile

pytestmark = [pytest.mark.slow, pytest.mark.dryrun]

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [e for e in book.toc_files(REPO / "_toc.yml") if book.find_source(REPO, e).suffix == ".py"]


@pytest.fixture(scope="module")
def dry_book(tmp_path_factory):
    shared = Path(os.environ["ADVMED_CACHE"])
    cache = tmp_path_factory.mktemp("paper-dry-cache")
    (shared / "tensors").mkdir(parents=True, exist_ok=True)
    (cache / "tensors").symlink_to(shared / "tensors", target_is_directory=True)
    saved = os.environ["ADVMED_CACHE"]
    os.environ["ADVMED_CACHE"] = str(cache)
    try:
        res = book.build_book(root=REPO, profile="paper-dry", build_dir=tmp_path_factory.mktemp("paper-dry") / "b")
    except book.ChapterError as exc:
        pytest.fail(f"the paper-dry book did not build:\n{exc}", pytrace=False)
    finally:
        os.environ["ADVMED_CACHE"] = saved
    print(book.format_times(res))
    yield res, cache
    (cache / "tensors").unlink()
    shutil.rmtree(cache, ignore_errors=True)


def _records(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cache / "checkpoints").glob("*.json"))]


def _results(cache: Path, namespace: str) -> list:
    return [torch.load(p, weights_only=True) for p in sorted((cache / "results" / namespace).glob("*.pt"))]


def test_every_chapter_executes_without_errors(dry_book):
    res, _ = dry_book
    assert [c.chapter for c in res.chapters] == CHAPTERS and all(c.ok for c in res.chapters)
    for entry in CHAPTERS:
        nb = json.loads((res.html.parent / "stage" / f"{entry}.ipynb").read_text())
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"{entry}: {out.get('ename')}: {out.get('evalue')}"
                if out["output_type"] == "stream":
                    assert out["name"] != "stderr", f"{entry} writes to stderr: {''.join(out['text'])[:500]}"
    assert (res.html / "index.html").is_file()


def test_every_model_of_paper_was_trained_with_its_classes_and_side(dry_book):
    _, cache = dry_book
    records = _records(cache)
    paper = PROFILES["paper"]
    dry = PROFILES["paper-dry"]
    seen = {(r["config"]["task"], r["config"]["arch"], r["config"]["init"]) for r in records}
    assert seen == {(t, m.arch, m.init) for t in dry.tasks for m in dry.models_for(t)}  # the cover
    assert {(a, i) for _, a, i in seen} == {(m.arch, m.init) for m in paper.models}  # every model of paper
    assert {t for t, _, _ in seen} == set(paper.tasks)
    classes = {r["config"]["task"]: len(r["classes"]) for r in records}
    assert classes["skin7_derm"] == 7 and classes["retina5"] == 5 and classes["pneumonia_cxr"] == 2
    inception = [r for r in records if r["config"]["arch"] == "inception_v3"]
    assert len(inception) == len([t for t in dry.tasks if "inception_v3:imagenet" in
                                  {m.label for m in dry.models_for(t)}]) >= 1 and all(r["config"]["net_size"] == PROFILES["paper-dry"].net_sizes["inception_v3"]
                                       != r["config"]["size"] for r in inception)
    used = {(r["config"]["arch"], r["init_used"]) for r in records if r["config"]["init"] == "imagenet"}
    assert ("mobilenet_v1_075", "imagenet") in used  # the TF.js weights of the data mirror
    assert ("resnet50", "scratch") in used  # torchvision weights: offline fallback


def test_attacks_ran_on_one_and_three_channels_and_every_task(dry_book):
    _, cache = dry_book
    dry = PROFILES["paper-dry"]
    n_models = {t: len(dry.models_for(t)) for t in dry.tasks}
    sweeps = _results(cache, "whitebox")
    assert len(sweeps) == sum(n_models.values()) * len(ATTACKS)  # one memo entry per model and attack
    channels = {c for s in sweeps for c in s["__dataframe__"]["channels"]}
    assert channels == {1, 3}  # gray chest X-rays in one channel, colour images in three
    binary = ("pneumonia_cxr", "melanoma_derm", "referable_dr", "pneumoniamnist")
    assert len(_results(cache, "whitebox_finlayson")) == sum(n_models[t] for t in binary)  # binary tasks only
    assert len(_results(cache, "whitebox_adversarialmed")) == n_models["pneumonia_cxr"] * len(ATTACKS)


def test_every_uap_cell_of_paper_dry_was_computed_by_the_chapters(dry_book, monkeypatch):
    _, cache = dry_book
    expected = [c for c in C.book_cells(PROFILES["paper-dry"], ["03_uap"]) if c.name.startswith("universal/uap/")]
    runs = _results(cache, "uap_run")
    targets = {r["summary"]["target"] for r in runs}
    assert {None, 0, 6} <= targets  # non-targeted, and the 7-class task's first and last classes
    natural = [r for r in runs if r["summary"]["source"] == "natural"]
    sources = [r for r in runs if r["summary"]["source"] in ("natural:animals", "natural:objects")]
    dry = PROFILES["paper-dry"]
    # per task, two photo models x norms x zetas: non-targeted, and targeted toward each class the
    # profile targets; then the two sources' UAPs at the largest zeta
    n_natural = sum(2 * len(dry.uap.norms) * sum(1 + len(dry.uap.target_classes(len(task_classes(t)), float(z)))
                                                 for z in dry.uap.zetas) for t in dry.tasks)
    # chapter 4's ablation adds a photo UAP at each side whose model is not the zoo's own
    zoo_keys = {c.key() for c in configs_for_profile(dry)}
    n_ablation = sum(ablation_config(dry, s).key() not in zoo_keys for s in dry.ablation.sizes)
    assert n_ablation == 1  # 32 px is the zoo's model; 64 px is not
    assert len(sources) == len(dry.tasks) * 2 * len(dry.uap.norms) * 2
    assert len(runs) == len(expected) + len(natural) + len(sources) and len(natural) == n_natural + n_ablation
    # every ordered pair of a task's models was scored; pairs whose source UAPs are equal (a
    # UAP still zero after two passes on four images) share one result
    from advmed.cache import tensor_digest
    from advmed.experiments import zoo as Z
    from advmed.experiments.universal import run as U

    monkeypatch.setenv("ADVMED_CACHE", str(cache))
    exp = U.uap_experiment(dry, trained=Z.trained_models(dry, progress=False), progress=False)
    norm, zeta = dry.uap.norms[0], max(dry.uap.zetas)
    scored = {(exp.trained[dst].config.key(), tensor_digest(exp.runs[U.RunKey(*src, norm, zeta, None)].delta.float()))
              for task in dry.tasks for src in exp.trained if src.task == task
              for dst in exp.trained if dst.task == task and dst != src}
    assert len(scored) > len(dry.tasks)
    assert len(_results(cache, "uap_transfer")) == len(scored)
