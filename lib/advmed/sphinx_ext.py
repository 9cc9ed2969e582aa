"""Sphinx fixes for the book's pages (registered in ``_config.yml`` as an extra extension).

- sphinx-thebe 0.3.1 under Jupyter Book 1.0.4 adds its configuration script twice, so
  every page redeclares ``const THEBE_JS_URL`` and the browser reports a SyntaxError;
  duplicate script entries are dropped once every extension has added its own.
- pydata-sphinx-theme logs "invalid theme mode" when no default mode is configured.
"""
from __future__ import annotations

from typing import Any


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


def _default_mode(app: Any, config: Any) -> None:
    options = config.html_theme_options if isinstance(config.html_theme_options, dict) else {}
    options.setdefault("default_mode", "light")
    config.html_theme_options = options


def setup(app: Any) -> dict[str, Any]:
    # Sphinx re-adds registered scripts when writing starts, so de-duplicate per page
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("config-inited", _default_mode)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
