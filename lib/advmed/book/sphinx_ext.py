"""Sphinx fixes for the book's pages (registered in ``_config.yml`` as an extra extension).

- sphinx-thebe 0.3.1 under Jupyter Book 1.0.4 adds its configuration script twice, so
  every page redeclares ``const THEBE_JS_URL`` and the browser reports a SyntaxError;
  duplicate script entries are dropped once every extension has added its own.
- pydata-sphinx-theme logs "invalid theme mode" when no default mode is configured.
- ipywidgets' embed manager calls the MathJax 2 API; the book serves MathJax 3, so a
  small shim (``sphinx_static/advmed-mathjax2-shim.js``) is loaded before it.
- Interactive tables (``advmed.pages.appendix_table``, itables in its offline mode) wait for
  the DataTables bundle that a notebook's set-up cell embeds (about 1 MB of base64). That cell
  is removed from the page, so every page with such a table gets a small loader instead, and
  the bundle of the installed itables is served once, from ``_static/itables/``.
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


ITABLES_STATIC = "itables"


def _itables_names() -> tuple[str, str, Path]:
    """(window global, ready event, folder of dt_bundle.js/.css) of the installed itables, as its
    offline templates name them (``_itables_2_9_1``, ``itables-2.9.1-ready``; a test checks this
    against the HTML itables writes)."""
    import itables

    version = itables.__version__
    return (f"_itables_{version.replace('.', '_')}", f"itables-{version}-ready",
            Path(itables.__file__).with_name("html"))


def itables_loader(js_url: str, css_url: str, global_name: str, ready_event: str) -> str:
    """The HTML that makes the served bundle available the way itables' offline init cell does:
    ``window[global_name]`` is the promise of the module, ``ready_event`` fires when it resolves."""
    return (f'<link rel="stylesheet" href="{css_url}">\n'
            f'<script>if (!window.{global_name}) {{ window.{global_name} = import("{js_url}"); '
            f'window.{global_name}.then(() => window.dispatchEvent(new Event("{ready_event}"))); }}</script>\n')


def _serve_itables(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    body = context.get("body") or ""
    global_name, ready_event, _ = _itables_names()
    if f"window.{global_name}" not in body:
        return
    pathto = context["pathto"]
    js = pathto(f"_static/{ITABLES_STATIC}/dt_bundle.js", 1)
    css = pathto(f"_static/{ITABLES_STATIC}/dt_bundle.css", 1)
    # a relative module specifier must start with ./ or ../
    js = js if js.startswith((".", "/")) else "./" + js
    context["body"] = itables_loader(js, css, global_name, ready_event) + body


def _copy_itables(app: Any, exception: Any) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    _, _, folder = _itables_names()
    dest = Path(app.outdir) / "_static" / ITABLES_STATIC
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dt_bundle.js", "dt_bundle.css"):
        shutil.copy2(folder / name, dest / name)


def _configure(app: Any, config: Any) -> None:
    # the theme's templates read default_mode from the page context, not its options
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")
    config.html_context = context
    config.html_static_path = list(config.html_static_path or []) + [str(STATIC)]


def setup(app: Any) -> dict[str, Any]:
    # Sphinx re-adds registered scripts when writing starts, so de-duplicate per page
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _serve_itables, priority=950)
    app.connect("build-finished", _copy_itables)
    app.connect("config-inited", _configure)
    app.add_js_file("advmed-mathjax2-shim.js", priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
