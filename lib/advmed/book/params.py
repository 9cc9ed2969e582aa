"""Chapter parameters: typed like papermill's ``-p``, and checked against the chapter's
``parameters`` cell before anything executes.

papermill injects whatever it is given: an unknown name is only warned about, and a value of
the wrong type (``-p n_boot many``) is found minutes later, as a traceback deep in the chapter.
:func:`check_parameters` refuses both at once, saying what to pass instead.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import re
import tokenize
from pathlib import Path
from typing import Any, Sequence


class ParameterError(ValueError):
    """A parameter the chapter does not define, a value of the wrong type for one, or a
    chapter without a parameters cell."""


def resolve_value(value: str) -> Any:
    """Type a ``-p NAME VALUE`` string the way papermill's own CLI does."""
    from papermill.cli import _resolve_type

    return _resolve_type(value)


def parse_parameters(pairs: Sequence[Sequence[str]] | None, yaml_text: str | None = None) -> dict:
    """``-p NAME VALUE`` pairs and a ``-y`` YAML mapping as one dict (``-p`` wins)."""
    params: dict[str, Any] = {}
    if yaml_text:
        import yaml

        try:
            loaded = yaml.safe_load(yaml_text) or {}
        except yaml.YAMLError as err:  # a traceback would hide which argument was wrong
            raise ValueError(f"-y is not YAML ({_yaml_problem(err)}); pass a mapping, "
                             "e.g. -y 'eps_255: [0, 1, 2]'") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"-y must be a YAML mapping, got {type(loaded).__name__}")
        params.update(loaded)
    for name, value in pairs or ():
        params[name] = resolve_value(value)
    return params


def _yaml_problem(err: Exception) -> str:
    """``expected ..., but found ... at column 11``: PyYAML's problem on one line."""
    problem, mark = getattr(err, "problem", None), getattr(err, "problem_mark", None)
    if not problem:
        return " ".join(str(err).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)


# --------------------------------------------------------------------------- what a parameter takes
_NONE = type(None)
_ANYTHING = object()  # "no example known"
#: annotation names -> the values papermill or YAML can give for them (an int is a fine float)
_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,),
                                         "None": (_NONE,), "NoneType": (_NONE,)}
_SEQUENCES = {"tuple", "list", "Tuple", "List", "Iterable", "Sequence", "set", "frozenset"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping"}
_TYPE_WORDS = {int: "an int", float: "a number", str: "a string", bool: "True or False", _NONE: "None",
               list: "a list", tuple: "a list", dict: "a mapping"}


@dataclasses.dataclass(frozen=True)
class Accepts:
    """What one parameter takes, read from one place (its default, its annotation, or a
    profile setting the chapter hands it to).

    Attributes:
        types: the Python types a value may have; None: anything.
        items: the types of a list value's items; None: any.
        choices: when not empty, the only strings accepted.
        words: strings accepted besides ``types`` (``"all"`` for a count that takes None).
        where: where this was read, for the message (``EvalSettings.n_boot``).
        example: a value to suggest (``_ANYTHING``: none known).
    """

    types: tuple[type, ...] | None
    items: tuple[type, ...] | None = None
    choices: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    where: str = ""
    example: Any = _ANYTHING

    def fits(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter takes (a bool is never an int here)."""
        if isinstance(value, str) and value in self.words:
            return True
        if self.types is not None and not _is_a(value, self.types):
            return False
        if self.choices and isinstance(value, str) and value not in self.choices:
            return False
        if self.items is not None and isinstance(value, (list, tuple)):
            return all(_is_a(v, self.items) for v in value)
        return True

    def describe(self) -> str:
        """``an int``, ``a list of numbers or None``, ``one of smoke, cpu``: for the message."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        words: list[str] = []
        for t in self.types or ():
            word = _TYPE_WORDS.get(t, t.__name__)
            if t in (list, tuple) and self.items:
                word = "a list of " + " or ".join(_plural(i) for i in _distinct(self.items))
            if not (t is int and float in (self.types or ())) and word not in words:
                words.append(word)
        words += [repr(w) for w in self.words]
        return " or ".join(words) or "anything"


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that True and False are not ints: ``-p n_boot True`` is a mistake."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _plural(t: type) -> str:
    return {int: "ints", float: "numbers", str: "strings", bool: "booleans", _NONE: "None"}.get(t, t.__name__)


def _distinct(types: tuple[type, ...]) -> tuple[type, ...]:
    """The item types worth naming: ``int`` goes without saying beside ``float``."""
    return tuple(t for t in dict.fromkeys(types) if not (t is int and float in types))


def from_annotation(text: str, where: str = "") -> Accepts:
    """What an annotation such as ``int | None`` or ``tuple[float, ...]`` takes.

    Anything this does not understand (``Any``, a class) accepts anything: the check may
    only refuse what is surely wrong.
    """
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return Accepts(None, where=where)
    found = _annotation_types(node)
    if found is None:
        return Accepts(None, where=where)
    types, items = found
    return Accepts(tuple(dict.fromkeys(types)), items, where=where)


def _annotation_types(node: ast.AST) -> tuple[tuple[type, ...], tuple[type, ...] | None] | None:
    """(types, item types) of one annotation node; None when it accepts anything."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right])
    if isinstance(node, ast.Constant) and node.value is None:
        return (_NONE,), None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        try:
            return _annotation_types(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    name = _dotted_tail(node.value if isinstance(node, ast.Subscript) else node)
    if name in _SCALARS and not isinstance(node, ast.Subscript):
        return _SCALARS[name], None
    if name in ("Optional", "Union") and isinstance(node, ast.Subscript):
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return _union(args + ([ast.Constant(None)] if name == "Optional" else []))
    if name in _MAPPINGS:
        return (dict,), None
    if name in _SEQUENCES:
        return (list, tuple), _item_types(node)
    return None


def _union(nodes: Sequence[ast.AST]) -> tuple[tuple[type, ...], tuple[type, ...] | None] | None:
    parts = [_annotation_types(n) for n in nodes]
    if any(p is None for p in parts):
        return None
    types = tuple(t for p in parts for t in p[0])
    containers = [p for p in parts if list in p[0]]
    if not containers or any(p[1] is None for p in containers):
        return types, None
    return types, tuple(dict.fromkeys(t for p in containers for t in p[1]))


def _item_types(node: ast.AST) -> tuple[type, ...] | None:
    """The item types of ``tuple[float, ...]``, ``list[str]``, ``tuple[float, float]``."""
    if not isinstance(node, ast.Subscript):
        return None
    args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    args = [a for a in args if not (isinstance(a, ast.Constant) and a.value is Ellipsis)]
    parts = [_annotation_types(a) for a in args]
    if not parts or any(p is None for p in parts):
        return None
    return tuple(dict.fromkeys(t for p in parts for t in p[0]))


def _dotted_tail(node: ast.AST) -> str:
    """``typing.Mapping`` -> ``Mapping``; ``int`` -> ``int``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _literal(source: str) -> Any:
    """The default's value when it is a literal (``_ANYTHING`` when it is an expression)."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _ANYTHING


def from_default(source: str, comment: str = "") -> Accepts:
    """What a default's literal says a parameter takes; a comment ``# a | b | c`` on a
    string parameter's line lists its only values (when the default is one of them).

    None, and a default that is not a literal (an expression), accept anything.
    """
    value = _literal(source)
    if value is None or value is _ANYTHING:
        return Accepts(None)
    if isinstance(value, str):
        choices = tuple(c for c in comment_choices(comment) if c)
        return Accepts((str,), choices=choices if value in choices else (), example=value)
    types = {bool: (bool,), int: (int,), float: (float, int)}.get(type(value))
    if types is None:
        types = (dict,) if isinstance(value, dict) else (list, tuple) if isinstance(
            value, (list, tuple, set, frozenset)) else (type(value),)
    return Accepts(types, example=value)


_CHOICES = re.compile(r"""^\s*(["']?[\w.\-]+["']?(?:\s*\|\s*["']?[\w.\-]+["']?)+)(?=\s|$|[(;,:])""")
_BARE = re.compile(r"[^\s\"'$\\]+")  # a word the shell passes as it is
_EXAMPLE = re.compile(r"(?:e\.g\.|such as)\s+(.+?)\s*(?:\)|;|$)")


def comment_choices(comment: str) -> tuple[str, ...]:
    """``smoke | cpu | paper | auto (paper with a GPU)`` -> ``("smoke", "cpu", "paper", "auto")``."""
    match = _CHOICES.match(comment.lstrip("#"))
    if not match:
        return ()
    return tuple(part.strip().strip("\"'") for part in match.group(1).split("|"))


def comment_example(comment: str) -> Any:
    """The literal after ``e.g.`` or ``such as`` in a comment (``_ANYTHING`` when none)."""
    for match in _EXAMPLE.finditer(comment):
        try:
            return ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _ANYTHING


# --------------------------------------------------------------------------- reading the chapter
@dataclasses.dataclass(frozen=True)
class ChapterParameter:
    """One name the ``parameters`` cell assigns: its default's source, its line's comment,
    and what it takes (every entry of ``accepts`` must take a value)."""

    name: str
    default: str
    comment: str = ""
    accepts: tuple[Accepts, ...] = ()

    @property
    def default_is_none(self) -> bool:
        return self.default.strip() == "None"


def _read_cells(chapter: str | Path) -> tuple[list[str], list[str]]:
    """The sources of the chapter's ``parameters`` cells, and of its other code cells."""
    import jupytext

    nb = jupytext.read(str(chapter))
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    tagged = [c.source for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ParameterError(f"{chapter} has no cell tagged 'parameters'; add one (see book/01_models.py)")
    others = [c.source for c in code if "parameters" not in c.get("metadata", {}).get("tags", [])]
    return tagged, others


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment ending that line (tokenized: a ``#`` inside a string is not one)."""
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def _assignments(source: str) -> list[tuple[str, str, str | None, str]]:
    """(name, default source, annotation source or None, comment) of every assignment."""
    comments = _comments(source)
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, annotation = node.targets, None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, annotation = [node.target], ast.get_source_segment(source, node.annotation)
        else:
            continue
        default = ast.get_source_segment(source, node.value) or ""
        comment = comments.get(node.end_lineno or node.lineno, "")
        out += [(t.id, default, annotation, comment) for t in targets if isinstance(t, ast.Name)]
    return out


def read_parameters(chapter: str | Path) -> dict[str, ChapterParameter]:
    """Every parameter of the chapter with what it takes, read without running anything.

    What a parameter takes is read from, first to last (the first that says something wins):

    1. an annotation on its line (``n_boot: int | None = None``);
    2. the profile settings the chapter hands it to in ``profiles.get_profile(...)``
       (``eval={"n_boot": n_boot}`` -> ``EvalSettings.n_boot: int``; the first argument takes
       a profile name). A value must fit every setting it is handed to;
    3. its default's literal (:func:`from_default`), with the choices its comment lists;
    4. nothing: it takes anything.

    A parameter whose default is None always takes None ("the profile's").

    Raises :class:`ParameterError` when the chapter has no ``parameters`` cell.
    """
    tagged, others = _read_cells(chapter)
    found = [a for source in tagged for a in _assignments(source)]
    settings = _profile_settings(others, {name for name, *_ in found})
    out: dict[str, ChapterParameter] = {}
    for name, default, annotation, comment in found:
        if annotation is not None:
            accepts = (from_annotation(annotation, where="annotated"),)
        elif settings.get(name):
            accepts = tuple(settings[name])
        else:
            accepts = (from_default(default, comment),)
        out[name] = ChapterParameter(name, default, comment, accepts)
    return out


def chapter_parameters(chapter: str | Path) -> dict[str, str]:
    """The names the chapter's cell tagged ``parameters`` assigns, with their default source text.

    Raises :class:`ParameterError` when the chapter has no such cell.
    """
    return {name: p.default for name, p in read_parameters(chapter).items()}


# --------------------------------------------------------------------------- the profile's settings
def _profile_settings(sources: Sequence[str], names: set[str]) -> dict[str, list[Accepts]]:
    """Parameter -> what each ``get_profile`` setting it is handed to takes.

    Read from the chapter's source, not by running it: a cell that is not plain Python (a
    magic) is skipped, and a chapter that never calls ``get_profile`` gives nothing.
    """
    out: dict[str, list[Accepts]] = {}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and _dotted_tail(call.func) == "get_profile":
                for name, accepts in _call_settings(call, names):
                    out.setdefault(name, []).append(accepts)
    return out


def _call_settings(call: ast.Call, names: set[str]) -> list[tuple[str, Accepts]]:
    """(parameter, what it takes) for each parameter one ``get_profile(...)`` call is handed."""
    from ..experiments import profiles

    out = []
    if call.args and isinstance(call.args[0], ast.Name) and call.args[0].id in names:
        valid = ("auto", *profiles.PROFILE_NAMES)
        out.append((call.args[0].id, Accepts((str, _NONE), choices=valid, where="a profile name",
                                             example="cpu")))
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id in names and kw.arg in ("tasks", "models", "seeds"):
            out.append((kw.value.id, _signature_setting(profiles.get_profile, kw.arg)))
        elif kw.arg in profiles.SECTIONS and isinstance(kw.value, ast.Dict):
            for key, value in zip(kw.value.keys, kw.value.values):
                if (isinstance(key, ast.Constant) and isinstance(value, ast.Name) and value.id in names):
                    setting = _section_setting(kw.arg, key.value)
                    if setting is not None:
                        out.append((value.id, setting))
    return out


def _signature_setting(function: Any, argument: str) -> Accepts:
    """What a keyword argument of ``function`` takes, from its (string) annotation."""
    annotation = inspect.signature(function).parameters[argument].annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "Any")
    return from_annotation(text, where=f"get_profile({argument}=...)")


def _section_setting(section: str, field: Any) -> Accepts | None:
    """What ``profile.<section>.<field>`` takes (None for a field it lacks: get_profile says so).

    A field that takes None also takes the word ``"all"`` (``get_profile`` turns it into None:
    "all the images"); the example is the ``cpu`` profile's value.
    """
    from ..experiments import profiles

    cls = profiles.SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if field not in fields:
        return None
    text = str(fields[field].type)
    accepts = from_annotation(text, where=f"{cls.__name__}.{field}")
    example = getattr(getattr(profiles.PROFILES["cpu"], section), field, _ANYTHING)
    words = ("all",) if "None" in text else ()
    return dataclasses.replace(accepts, words=words, example=_ANYTHING if example is None else example)


# --------------------------------------------------------------------------- the check
def _suggestion(param: ChapterParameter, accepts: Accepts) -> str:
    """``pass e.g. -p n_boot 1000`` or ``pass a list with -y, e.g. -y "eps_255: [0, 1, 2]"``."""
    candidates = [_literal(param.default), accepts.example, comment_example(param.comment)]
    example = next((c for c in candidates if c is not _ANYTHING and c is not None and accepts.fits(c)), _ANYTHING)
    if example is _ANYTHING:
        return f"pass {accepts.describe()}"
    if isinstance(example, dict):
        return f"pass a mapping with -y, e.g. -y '{param.name}: {json.dumps(example)}'"
    if isinstance(example, (list, tuple, set, frozenset)):
        return f"pass a list with -y, e.g. -y '{param.name}: {json.dumps(list(example))}'"
    text = str(example)
    return f"pass e.g. -p {param.name} {text if _BARE.fullmatch(text) else json.dumps(text)}"


def _given(value: Any) -> str:
    """``'many' (a string)``: the value as given, and what papermill or YAML made of it."""
    if value is None:
        return "None"
    kind = "a boolean" if isinstance(value, bool) else _TYPE_WORDS.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})"


def _problem(chapter: str, param: ChapterParameter, value: Any) -> str | None:
    """The message for a value the parameter does not take; None when it fits."""
    if value is None and param.default_is_none:
        return None
    for accepts in param.accepts:
        if accepts.fits(value):
            continue
        takes = accepts.describe()
        if param.default_is_none and _NONE not in (accepts.types or ()):
            takes += " or None"
        where = f" (as {accepts.where})" if accepts.where else ""
        comment = f"  # {param.comment}" if param.comment else ""
        return (f"{chapter}: parameter {param.name} got {_given(value)} but takes {takes}{where}\n"
                f"  default: {param.name} = {param.default}{comment}\n"
                f"  {_suggestion(param, accepts)}")
    return None


def check_parameters(chapter: str | Path, parameters: dict[str, Any]) -> None:
    """Refuse, before anything executes, parameters the chapter's ``parameters`` cell does
    not define (listing the valid ones) and values that do not fit what a parameter takes.

    papermill only warns about an unknown parameter and runs the chapter with its defaults,
    and injects a value of the wrong type as it is: either costs minutes and ends in a
    traceback, or silently ignores what the reader asked for. What a parameter takes is
    read by :func:`read_parameters`. The rules:

    - an int is a fine float; True and False are not ints;
    - a default of None (or an expression, or an unknown annotation) takes anything, unless
      the chapter hands the parameter to a typed profile setting;
    - a string default whose comment lists ``a | b | c`` (and is one of them) takes only those;
      a parameter handed to ``get_profile(profile, ...)`` takes a profile name;
    - a count that takes None in the profile also takes ``"all"``;
    - a list comes from ``-y`` (``-p`` only gives numbers, booleans, None and strings).
    """
    params = read_parameters(chapter)
    unknown = sorted(set(parameters) - set(params))
    if unknown:
        listing = "\n".join(f"  {k} = {p.default}" for k, p in params.items())
        raise ParameterError(f"{Path(chapter).name} has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters (with defaults):\n{listing}")
    problems = [_problem(Path(chapter).name, params[name], value) for name, value in parameters.items()]
    problems = [p for p in problems if p]
    if problems:
        raise ParameterError("\n".join(problems))
