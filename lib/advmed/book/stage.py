"""Staging: the table of contents, the vendored JavaScript, the staged configuration.

The book serves its own JavaScript (RequireJS, the ipywidgets embed manager, MathJax 3)
from ``node_modules`` (``npm ci``), so the HTML needs no CDN.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

#: Files from ``node_modules`` that the book serves itself instead of loading from a CDN,
#: as (source inside node_modules, destination inside the staged static folder).
VENDOR_FILES = (
    ("requirejs/require.js", "vendor/require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "vendor/embed-amd.js"),
)
VENDOR_DIRS = (("mathjax/es5", "vendor/mathjax"),)
#: ``nb_ipywidgets_js`` for myst-nb: local copies, no ``data-jupyter-widgets-cdn``.
IPYWIDGETS_JS = {"vendor/require.js": {}, "vendor/embed-amd.js": {}}
MATHJAX_PATH = "vendor/mathjax/tex-mml-chtml.js"
WIDGET_FONTS = "@jupyter-widgets/html-manager/dist"


def toc_files(toc_path: Path) -> list[str]:
    """Every ``root``/``file`` entry of a Jupyter Book ``_toc.yml``, in reading order."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node and isinstance(node[key], str):
                    files.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return files


def find_source(root: Path, entry: str) -> Path:
    """The source file for a toc entry (``book/01_models`` -> ``book/01_models.py``)."""
    base = root / entry
    if base.suffix and base.is_file():
        return base
    for suffix in (".py", ".md", ".ipynb"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    raise FileNotFoundError(f"_toc.yml names {entry!r} but no {entry}.py/.md/.ipynb exists under {root}")


def matches(entry: str, wanted: Iterable[str]) -> bool:
    """Whether a toc entry is one of the chapters asked for (name, stem, path or number)."""
    stem = Path(entry).name
    for w in wanted:
        w_stem = Path(w).with_suffix("").name if Path(w).suffix in (".py", ".ipynb", ".md") else Path(w).name
        if w_stem == stem or w_stem == entry or stem.startswith(w_stem + "_") or stem.split("_")[0] == w_stem:
            return True
    return False


def vendor_root(root: Path) -> Path:
    return root / "node_modules"


def stage_vendor(root: Path, dest: Path) -> None:
    """Copy the JavaScript the book serves itself (no CDN) into ``dest``."""
    nm = vendor_root(root)
    missing = [src for src, _ in VENDOR_FILES + VENDOR_DIRS if not (nm / src).exists()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} missing under {nm}: run `npm ci` in {root} "
            "(`make book` does) or pass --allow-cdn")
    for src, dst in VENDOR_FILES:
        (dest / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nm / src, dest / dst)
    for src, dst in VENDOR_DIRS:
        if (dest / dst).exists():
            shutil.rmtree(dest / dst)
        shutil.copytree(nm / src, dest / dst, ignore=shutil.ignore_patterns("*.map"))


def stage_widget_fonts(root: Path, html: Path) -> None:
    """Put the widget manager's icon fonts where embed-amd.js asks for them.

    Its webpack build resolves the Font Awesome files relative to the page
    (``<page dir>/@jupyter-widgets/html-manager/dist/``), so every folder that holds
    pages gets a copy; otherwise pages log 404s for them.
    """
    src = vendor_root(root) / WIDGET_FONTS
    fonts = [f for f in src.iterdir() if f.suffix in (".woff2", ".woff", ".ttf", ".eot", ".svg")]
    page_dirs = {p.parent for p in html.rglob("*.html") if "_static" not in p.parts}
    for d in page_dirs:
        # a page whose widget code is loaded by another script (a page with interactive tables)
        # resolves the same files one level up, at <page dir>/@jupyter-widgets/: serve both
        for dest in (d / WIDGET_FONTS, d / Path(WIDGET_FONTS).parts[0]):
            dest.mkdir(parents=True, exist_ok=True)
            for f in fonts:
                shutil.copy2(f, dest / f.name)


#: Overrides ``repository.url`` of ``_config.yml`` for one build (the publish workflow sets it
#: to the repository it runs in, so the repository and launch buttons point there).
REPOSITORY_ENV = "ADVMED_REPOSITORY_URL"


def repository_url(root: Path) -> str:
    """The book's repository: ``$ADVMED_REPOSITORY_URL`` or ``_config.yml``'s ``repository.url``,
    the one place the repository, launch and issue buttons and ``CITATION.cff`` take it from."""
    import yaml

    env = os.environ.get(REPOSITORY_ENV, "").strip()
    if env:
        return env.rstrip("/")
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    return str((config.get("repository") or {}).get("url", "")).rstrip("/")


def stage_bibliography(root: Path, stage: Path) -> list[str]:
    """Copy the ``bibtex_bibfiles`` of ``_config.yml`` into the stage (Sphinx reads them from
    its source folder); a listed file that is missing is an error that names it."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    files = list(config.get("bibtex_bibfiles") or [])
    for name in files:
        src = root / name
        if not src.is_file():
            raise FileNotFoundError(f"_config.yml lists bibtex file {name!r} but {src} does not exist")
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, stage / name)
    return files


def stage_config(root: Path, stage: Path, entries: list[str], *, allow_cdn: bool) -> None:
    """Write the staged _config.yml and _toc.yml (toc limited to the staged entries)."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    config.setdefault("repository", {})["url"] = repository_url(root)
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    sphinx_cfg = config.setdefault("sphinx", {}).setdefault("config", {}) or {}
    config["sphinx"]["config"] = sphinx_cfg
    static = list(sphinx_cfg.get("html_static_path", []) or [])
    if not allow_cdn:
        static.append("_vendor")
        sphinx_cfg["nb_ipywidgets_js"] = IPYWIDGETS_JS
        sphinx_cfg["mathjax_path"] = MATHJAX_PATH
    sphinx_cfg["html_static_path"] = static
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    keep = set(entries)

    def prune(node: Any) -> Any:
        if isinstance(node, dict):
            node = dict(node)
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    kids = [prune(c) for c in node[key] or []]
                    kids = [c for c in kids if c is not None]
                    if kids:
                        node[key] = kids
                    else:
                        node.pop(key)
            if "file" in node and node["file"] not in keep and not any(
                    k in node for k in ("parts", "chapters", "sections")):
                return None
            return node
        return node

    (stage / "_toc.yml").write_text(yaml.safe_dump(prune(toc), sort_keys=False))


def copy_tree(src: Path, dst: Path) -> None:
    """Replace ``dst`` by a copy of ``src``."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
