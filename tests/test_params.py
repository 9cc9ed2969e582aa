"""Chapter parameters are checked against the ``parameters`` cell's types before anything runs.

papermill injects ``-p n_boot many`` as the string ``'many'``; the chapter then runs for
minutes and ends in a traceback. These tests pin the check that refuses it at once, and the
values it must keep accepting (every profile a build passes, an int for a float, None for
"the profile's", ``"all"`` for a count). None of them executes a chapter.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from advmed import book
from advmed.book import params as P

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.py"))
MODELS = REPO / "book" / "01_models.py"
WHITEBOX = REPO / "book" / "02_whitebox.py"

MINI = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% tags=["parameters"]
profile = "auto"
n = 1
eps = 0.5
flag = False
mode = "fast"  # fast | slow (slow: the study's setting)
label = "x"  # one | two: a list the default is not in, so no choices
anything = None  # None: the profile's
computed = 2 * 3
grid = [0, 1, 2]
k: int | None = None  # annotated: the annotation wins over the default

# %%
print(profile, n, eps)
"""


@pytest.fixture
def mini(tmp_path) -> Path:
    path = tmp_path / "09_mini.py"
    path.write_text(MINI)
    return path


@pytest.fixture
def no_execution(monkeypatch):
    """papermill fails the test if it is ever asked to execute."""
    import papermill

    def refuse(*args, **kwargs):
        raise AssertionError("papermill executed a chapter whose parameters should have been refused")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


def _refused(chapter: Path, **values) -> str:
    with pytest.raises(book.ParameterError) as info:
        book.check_parameters(chapter, values)
    return str(info.value)


# --------------------------------------------------------------------------- the issue
def test_a_string_for_an_int_parameter_is_refused_before_execution(tmp_path, capsys, no_execution):
    out = tmp_path / "out"
    assert book.main(["run", str(MODELS), "-p", "n_boot", "many", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists(), "nothing may execute or be written"
    assert "parameter n_boot got 'many' (a string) but takes an int" in err
    assert "EvalSettings.n_boot" in err, "says where the type comes from"
    assert "default: n_boot = None" in err
    assert re.search(r"pass e\.g\. -p n_boot \d+$", err.strip(), re.MULTILINE), err


def test_run_chapter_refuses_a_wrong_type_before_writing_anything(mini, tmp_path, no_execution):
    with pytest.raises(book.ParameterError, match=r"parameter n got 'many' \(a string\) but takes an int"):
        book.run_chapter(mini, {"n": "many"}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_the_build_refuses_a_wrong_type_before_any_chapter_runs(mini, tmp_path, no_execution):
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Mini\n")
    (root / "book" / "01_mini.py").write_text(MINI)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_mini\n")
    with pytest.raises(book.ParameterError, match="parameter n got 'many'"):
        book.build_book(root=root, profile="smoke", build_dir=tmp_path / "b", extra_parameters={"n": "many"})
    assert not (tmp_path / "b").exists(), "a refused build writes nothing"


def test_a_value_of_the_right_type_passes_the_check():
    book.check_parameters(MODELS, {"n_boot": 200, "profile": "smoke", "tasks": ["pneumonia_cxr"],
                                   "models": "resnet18:scratch"})
    book.check_parameters(WHITEBOX, {"eps_255": [0, 1, 2.5], "n_images": "all", "steps": 5, "n_boot": None})


def test_every_profile_a_build_passes_is_accepted_by_every_chapter():
    # every profile a build can pass, paper-dry included, is accepted by every chapter
    assert "paper-dry" in book.PROFILES
    for chapter in CHAPTERS:
        for profile in book.PROFILES:
            book.check_parameters(chapter, {"profile": profile})


# --------------------------------------------------------------------------- the rules
def test_an_int_is_accepted_where_a_float_is_expected(mini):
    book.check_parameters(mini, {"eps": 2})
    assert "takes a number" in _refused(mini, eps="big")


def test_a_boolean_is_not_an_int(mini):
    msg = _refused(mini, n=True)
    assert "got True (a boolean) but takes an int" in msg and "pass e.g. -p n 1" in msg
    book.check_parameters(mini, {"flag": True})
    assert "takes True or False" in _refused(mini, flag=1)


def test_a_none_default_or_an_expression_accepts_anything(mini):
    for value in ("x", 3, [1, "a"], True, None):
        book.check_parameters(mini, {"anything": value, "computed": value})


def test_a_comment_listing_choices_limits_a_string_parameter(mini):
    book.check_parameters(mini, {"mode": "slow"})
    msg = _refused(mini, mode="medium")
    assert "parameter mode got 'medium' (a string) but takes one of fast, slow" in msg
    assert "pass e.g. -p mode fast" in msg
    book.check_parameters(mini, {"label": "three"})  # the default is not in its comment's list


def test_a_profile_name_the_profiles_do_not_know_is_refused():
    msg = _refused(MODELS, profile="gpu")
    assert "one of auto, smoke, cpu, paper, paper-dry" in msg


def test_an_annotation_in_the_parameters_cell_wins_over_the_default(mini):
    book.check_parameters(mini, {"k": 3})
    book.check_parameters(mini, {"k": None})
    assert "parameter k got 'x' (a string) but takes an int or None (as annotated)" in _refused(mini, k="x")


def test_a_list_given_with_p_is_refused_and_the_message_says_to_use_y():
    # papermill's -p gives the string "[0,1,2]"; only -y gives a list
    msg = _refused(WHITEBOX, eps_255="[0,1,2]")
    assert "takes a list of numbers or None (as WhiteboxSettings.eps_255)" in msg
    assert "pass a list with -y, e.g. -y 'eps_255: [" in msg
    assert "a list of numbers" in _refused(WHITEBOX, eps_255=[0, "one"])


def test_a_list_default_takes_a_list_from_yaml(mini):
    params = book.parse_parameters(None, "grid: [4, 8]\n")
    book.check_parameters(mini, params)
    assert "pass a list with -y, e.g. -y 'grid: [0, 1, 2]'" in _refused(mini, grid="4,8")


def test_every_wrong_value_is_named_in_one_error(mini):
    msg = _refused(mini, n="a", eps="b")
    assert "parameter n got 'a'" in msg and "parameter eps got 'b'" in msg


def test_malformed_yaml_is_a_plain_error_that_shows_an_example():
    with pytest.raises(ValueError, match=r"-y is not YAML \(.*column 11\).*e\.g\. -y 'eps_255: \[0, 1, 2\]'") as info:
        book.parse_parameters(None, "eps_255: [")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the readers
@pytest.mark.parametrize("annotation, fits, refused", [
    ("int", [3], ["3", 3.5, True, None]),
    ("float | None", [3, 3.5, None], ["x", False]),
    ("tuple[float, ...]", [[1, 2.5], (1,)], ["1,2", [1, "a"]]),
    ("Iterable[str] | str | None", ["a", ["a", "b"], None], [3, [1]]),
    ("Optional[int]", [1, None], ["1"]),
    ("Mapping[str, Any]", [{"a": 1}], [[1]]),
    ("Any", ["x", 1, None], []),
])
def test_an_annotation_says_what_a_value_may_be(annotation, fits, refused):
    accepts = P.from_annotation(annotation)
    assert all(accepts.fits(v) for v in fits), [v for v in fits if not accepts.fits(v)]
    assert not any(accepts.fits(v) for v in refused), [v for v in refused if accepts.fits(v)]


def test_comment_choices_are_read_only_from_an_a_or_b_list():
    assert P.comment_choices("smoke | cpu | paper | auto (paper with a GPU, else cpu)") == (
        "smoke", "cpu", "paper", "auto")
    assert P.comment_choices('"iterative" | "batched"') == ("iterative", "batched")
    assert P.comment_choices("None: the profile's; or a list such as [\"a\"]") == ()
    assert P.comment_choices('"medical" (Minagi et al.\'s code) or "natural"') == ()
