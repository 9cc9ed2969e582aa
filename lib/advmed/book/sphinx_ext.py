"""Sphinx fixes for the book's pages (registered in ``_config.yml`` as an extra extension).

- sphinx-thebe 0.3.1 under Jupyter Book 1.0.4 adds its configuration script twice, so
  every page redeclares ``const THEBE_JS_URL`` and the browser reports a SyntaxError;
  duplicate script entries are dropped once every extension has added its own.
- pydata-sphinx-theme logs "invalid theme mode" when no default mode is configured.
- ipywidgets' embed manager calls the MathJax 2 API; the book serves MathJax 3, so a
  small shim (``sphinx_static/advmed-mathjax2-shim.js``) is loaded before it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).with_name("sphinx_static")


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop repeated page scripts (same file or same inline body), keeping the first."""
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        attrs = getattr(js, "attributes", {}) or {}
        # a body-only script may be registered with filename None once and '' once
        name = getattr(js, "filename", js) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attrs.items() if k != "priority")))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def _configure(app: Any, config: Any) -> None:
    # the theme's templates read default_mode from the page context, not its options
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")
    config.html_context = context
    config.html_static_path = list(config.html_static_path or []) + [str(STATIC)]


def setup(app: Any) -> dict[str, Any]:
    # Sphinx re-adds registered scripts when writing starts, so de-duplicate per page
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("config-inited", _configure)
    app.add_js_file("advmed-mathjax2-shim.js", priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
