"""Chapter parameters: typed like papermill's ``-p``, and checked against the chapter's
``parameters`` cell before anything executes."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Sequence


class ParameterError(ValueError):
    """A parameter the chapter does not define (or a chapter without a parameters cell)."""


def resolve_value(value: str) -> Any:
    """Type a ``-p NAME VALUE`` string the way papermill's own CLI does."""
    from papermill.cli import _resolve_type

    return _resolve_type(value)


def parse_parameters(pairs: Sequence[Sequence[str]] | None, yaml_text: str | None = None) -> dict:
    """``-p NAME VALUE`` pairs and a ``-y`` YAML mapping as one dict (``-p`` wins)."""
    params: dict[str, Any] = {}
    if yaml_text:
        import yaml

        loaded = yaml.safe_load(yaml_text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"-y must be a YAML mapping, got {type(loaded).__name__}")
        params.update(loaded)
    for name, value in pairs or ():
        params[name] = resolve_value(value)
    return params


def chapter_parameters(chapter: str | Path) -> dict[str, str]:
    """The names the chapter's cell tagged ``parameters`` assigns, with their default source text.

    Raises :class:`ParameterError` when the chapter has no such cell.
    """
    import jupytext

    nb = jupytext.read(str(chapter))
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParameterError(f"{chapter} has no cell tagged 'parameters'; add one (see book/01_models.py)")
    out: dict[str, str] = {}
    for cell in cells:
        source = cell.source
        for node in ast.parse(source).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = ast.get_source_segment(source, node.value) or ""
    return out


def check_parameters(chapter: str | Path, parameters: dict[str, Any]) -> None:
    """Refuse parameters the chapter's ``parameters`` cell does not define, listing the valid ones.

    papermill only warns about such a parameter and runs the chapter with its defaults, which
    costs minutes and silently ignores what the reader asked for.
    """
    valid = chapter_parameters(chapter)
    unknown = sorted(set(parameters) - set(valid))
    if unknown:
        listing = "\n".join(f"  {k} = {v}" for k, v in valid.items())
        raise ParameterError(f"{Path(chapter).name} has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters (with defaults):\n{listing}")
