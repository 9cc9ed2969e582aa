"""The package's three layers and the chapters' shape, checked on the source (ast).

Layers (DESIGN.md): core (data, models, attacks, defenses, metrics, train, cache, device)
imports neither presentation (plots, widgets), experiments nor the book pipeline;
presentation imports neither experiments nor the pipeline; experiments do not import the
pipeline. No module imports another module's private (underscore) names. Chapters hold
markdown, a parameters cell and calls into advmed: no functions, lambdas or classes, and no
memo keys of their own.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib" / "advmed"
LAYERS = {  # top-level subpackage or module -> layer rank (lower may not import higher)
    "data": 0, "models": 0, "attacks": 0, "defenses": 0, "metrics": 0, "train": 0, "cache": 0, "device": 0,
    "plots": 1, "widgets": 1, "pages": 1,
    "experiments": 2,
    "book": 3, "__main__": 3,
}
NAMES = {0: "core", 1: "presentation", 2: "experiments", 3: "pipeline"}


def _modules():
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts


def _imports(path: Path, parts: list[str]):
    """(absolute module, imported names) for every import of a module, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "advmed":
        return None
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    missing = sorted({parts[1] for _, parts in _modules() if len(parts) > 1 and parts[1] not in LAYERS})
    assert not missing, f"modules outside the three layers (add them to DESIGN.md and LAYERS): {missing}"


def test_lower_layers_never_import_higher_ones():
    bad = []
    for path, parts in _modules():
        own = LAYERS.get(parts[1]) if len(parts) > 1 else None
        if own is None:
            continue
        for module, names in _imports(path, parts):
            targets = [module] + [f"{module}.{n}" for n in names]
            for target in targets:
                layer = _layer(target)
                if layer is not None and layer > own and target.split(".")[1] in LAYERS:
                    bad.append(f"{path.relative_to(REPO)} ({NAMES[own]}) imports {target} ({NAMES[layer]})")
                    break
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    bad = []
    for path, parts in _modules():
        for module, names in _imports(path, parts):
            if not module.startswith("advmed"):
                continue
            bad += [f"{path.relative_to(REPO)}: from {module} import {n}" for n in names
                    if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def _private_attribute_uses(path: Path, parts: list[str]) -> list[str]:
    """``alias._name`` where ``alias`` names an advmed module imported into this file."""
    tree = ast.parse(path.read_text())
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("advmed")):
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("advmed")}
    return [f"line {n.lineno}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
            and n.attr.startswith("_") and not n.attr.startswith("__")]


def test_no_module_reaches_into_another_modules_private_attributes():
    bad = [f"{path.relative_to(REPO)} {use}" for path, parts in _modules()
           for use in _private_attribute_uses(path, parts)]
    assert not bad, "\n".join(bad)


def test_the_layer_test_sees_a_violation(tmp_path):
    # the checker itself must fail on a core module importing the experiments layer
    fake = tmp_path / "advmed" / "metrics.py"
    fake.parent.mkdir()
    fake.write_text("from .experiments import profiles\nfrom .plots import _private\nfrom . import plots as P\n"
                    "P._hidden(1)\n")
    imports = list(_imports(fake, ["advmed", "metrics"]))
    assert ("advmed.experiments", ["profiles"]) in imports and _layer("advmed.experiments") == 2
    assert ("advmed.plots", ["_private"]) in imports
    assert _private_attribute_uses(fake, ["advmed", "metrics"]) == ["line 4: P._hidden"]


CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapters_define_no_logic(chapter):
    tree = ast.parse(chapter.read_text())
    defs = [f"line {n.lineno}: {type(n).__name__}" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))]
    assert not defs, f"{chapter.name} defines logic (move it into advmed): {defs}"
    keys = [f"line {n.lineno}: {n.id}" for n in ast.walk(tree)
            if isinstance(n, ast.Name) and n.id in {"memo", "tensor_digest", "key_hash"}]
    assert not keys, f"{chapter.name} builds memo keys itself: {keys}"


#: The experiment modules every family may import (DESIGN.md, "the experiment kernel").
SHARED = {"kernel", "profiles", "zoo", "references", "cells", "estimate", "cards", "compare"}
#: Families that may read other families' results (chapter 8's claims).
READERS = {"claims"}


def _family(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["advmed", "experiments"] else None


def test_families_import_the_core_and_the_kernel_never_each_other():
    bad = []
    for path, parts in _modules():
        if len(parts) < 4 or parts[1] != "experiments":
            continue  # a module directly under experiments/ is shared, not a family
        own = parts[2]
        for module, names in _imports(path, parts):
            targets = [module] if _family(module) else [f"{module}.{n}" for n in names]
            for target in targets:
                other = _family(target)
                if other is None or other == own or other in SHARED or own in READERS:
                    continue
                bad.append(f"{path.relative_to(REPO)} ({own}) imports {target}")
    assert not bad, "families import the core and the kernel, never each other:\n" + "\n".join(bad)


def test_the_kernel_imports_no_family():
    bad = [f"{path.relative_to(REPO)} imports {module}" for path, parts in _modules()
           if parts[1:3] == ["experiments", "kernel"]
           for module, names in _imports(path, parts)
           for target in [module] + [f"{module}.{n}" for n in names]
           if _family(target) not in (None, "kernel") and _family(target) not in SHARED]
    assert not bad, "\n".join(bad)


def test_the_experiments_layer_imports_advmed_at_module_level():
    """No advmed module is imported inside a function of the experiments layer: a lazy import
    there hid import cycles (cells <-> estimate, zoo <-> cells)."""
    bad = []
    for path, parts in _modules():
        if parts[1:2] != ["experiments"]:
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bad += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(fn)
                        if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("advmed"))]
    assert not bad, "\n".join(bad)
