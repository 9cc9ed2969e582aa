"""Drive headless Chromium (Debian's ``chromium`` + ``chromedriver``) through selenium.

Used by the book and widget tests::

    from tests.browser import Browser, require_chromium

    require_chromium()                       # skips the test when chromium is missing
    with Browser(html_dir) as b:             # serves html_dir on 127.0.0.1:<free port>
        b.open("book/01_models.html")
        b.wait_for_widgets()                 # the ipywidgets embed manager has rendered
        b.images()                           # [{src, width, loaded}, ...]
        b.set_slider(".widget-slider", 3)    # keyboard moves a slider
        b.screenshot(out_dir / "01_models.png", full_page=True)
        for root in b.explorers():           # advmed.widgets explorers on the page
            assert b.explorer_problems(root) == []   # every control changes the frame

Chromium runs with a fresh ``--user-data-dir`` and no network features
(``--disable-background-networking`` etc.); the pages are served by a local
``http.server`` in a thread, so a book that needs a CDN shows up as broken here.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socketserver
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)


def find_chromium() -> tuple[str | None, str | None]:
    """(chromium binary, chromedriver) or Nones. ``$CHROMIUM`` / ``$CHROMEDRIVER`` win."""
    browser = os.environ.get("CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return browser, driver


def require_chromium() -> None:
    """Skip the calling test (with the reason) when chromium or selenium is missing."""
    browser, driver = find_chromium()
    if not browser or not driver:
        pytest.skip("headless chromium not found: `apt-get install chromium chromium-driver` "
                    "(make test does this when run as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium missing: pip install --no-deps -r requirements-test.txt")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve(directory: str | os.PathLike):
    """Serve ``directory`` on http://127.0.0.1:<free port>/ in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """A headless Chromium session on a locally served folder."""

    def __init__(self, directory: str | os.PathLike, *, timeout: float = 30.0):
        self.directory = Path(directory)
        self.timeout = timeout
        self._stack = contextlib.ExitStack()
        self.driver = None
        self.base_url = ""

    # -- lifecycle
    def __enter__(self) -> "Browser":
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        browser, driver = find_chromium()
        if not browser or not driver:
            raise RuntimeError("chromium / chromedriver not found (apt-get install chromium chromium-driver)")
        self.base_url = self._stack.enter_context(serve(self.directory))
        profile = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="advmed-chromium-"))
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
        self.driver.set_page_load_timeout(self.timeout)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            self._stack.close()

    # -- navigation and queries
    def open(self, path: str = "index.html") -> None:
        """Load ``path`` (relative to the served folder) and wait for the load event."""
        self.driver.get(self.base_url + str(path).lstrip("/"))
        self.wait_until("return document.readyState === 'complete'")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_until(self, script: str, *args: Any, timeout: float | None = None) -> Any:
        """Poll a JS expression (``return ...``) until it is truthy; TimeoutError otherwise."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for: {script}")
            time.sleep(0.2)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.js("return document.body.innerText")

    def title(self) -> str:
        return self.driver.title

    def images(self) -> list[dict]:
        """Every <img> of the page's article: src, naturalWidth, complete && loaded."""
        self.wait_until("return Array.from(document.images).every(i => i.complete)")
        return self.js(
            "return Array.from(document.querySelectorAll('article img, main img')).map(i => ("
            "{src: i.getAttribute('src'), width: i.naturalWidth, loaded: i.complete && i.naturalWidth > 0}))")

    def n_widget_views(self) -> int:
        """Number of widget view placeholders (``application/vnd.jupyter.widget-view+json`` scripts)."""
        return self.js("return document.querySelectorAll("
                       "'script[type=\"application/vnd.jupyter.widget-view+json\"]').length")

    def wait_for_widgets(self, timeout: float | None = None) -> int:
        """Wait until every embedded widget view has been rendered (.widget-* elements).

        Returns the number of rendered widget roots (0 when the page has no widgets).
        """
        n = self.n_widget_views()
        if n == 0:
            return 0
        self.wait_until(
            "return document.querySelectorAll('.jupyter-widgets, .widget-container, .lm-Widget').length > 0",
            timeout=timeout)
        time.sleep(0.5)  # let the manager finish laying out
        return self.js("return document.querySelectorAll('.jupyter-widgets').length")

    # -- interaction
    def click(self, css: str, index: int = 0) -> None:
        self.find_all(css)[index].click()

    def set_slider(self, css: str, value: float, *, index: int = 0, max_steps: int = 500) -> float:
        """Move the ``index``-th ipywidgets slider under ``css`` to ``value`` with the keyboard.

        Uses the slider handle (noUiSlider in ipywidgets 8) and arrow keys, the way a
        reader does; returns the value the slider then shows in its readout.
        """
        from selenium.webdriver.common.keys import Keys

        root = self.find_all(css)[index]
        handle = root.find_element("css selector", ".noUi-handle, [role=slider], input[type=range]")
        handle.click()

        def current() -> float:
            for attr in ("aria-valuenow", "value"):
                v = handle.get_attribute(attr)
                if v not in (None, ""):
                    return float(v)
            return float(root.find_element("css selector", ".widget-readout").text)

        for _ in range(max_steps):
            cur = current()
            if abs(cur - value) < 1e-9:
                break
            key = Keys.ARROW_RIGHT if cur < value else Keys.ARROW_LEFT
            handle.send_keys(key)
            if abs(current() - cur) < 1e-12:  # can not move further
                break
        time.sleep(0.3)
        return current()

    def select(self, css: str, label: str, index: int = 0) -> None:
        """Choose ``label`` in the ``index``-th <select> (ipywidgets Dropdown) under ``css``."""
        from selenium.webdriver.support.ui import Select

        el = self.find_all(css)[index]
        if el.tag_name != "select":
            el = el.find_element("css selector", "select")
        Select(el).select_by_visible_text(label)
        time.sleep(0.3)

    # -- the reader's page (advmed.pages conventions)
    def overflowing(self, slack: float = 2.0) -> list[str]:
        """Elements of the article wider than its text column that no scroll container of
        their own holds (an ancestor inside the column with overflow-x auto / scroll / hidden)."""
        return self.js("""
            const art = document.querySelector('article.bd-article') || document.querySelector('main');
            if (!art) return ['no article element'];
            const st = getComputedStyle(art);
            const box = art.getBoundingClientRect();
            const left = box.left + parseFloat(st.paddingLeft) - arguments[0];
            const right = box.right - parseFloat(st.paddingRight) + arguments[0];
            const clips = el => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
            const bad = [];
            for (const el of art.querySelectorAll('*')) {
                const r = el.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) continue;           // folded or hidden
                if (r.left >= left && r.right <= right) continue;
                let held = false;
                for (let a = el.parentElement; a && a !== art; a = a.parentElement) {
                    const ra = a.getBoundingClientRect();
                    if (clips(a) && ra.left >= left && ra.right <= right) { held = true; break; }
                }
                if (!held) bad.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ` +
                                    `(${Math.round(r.left - left)}..${Math.round(r.right - left)} px, column ` +
                                    `${Math.round(right - left)} px): ${(el.innerText || '').slice(0, 60)}`);
            }
            // report the outermost offenders only
            return bad.slice(0, 20);
        """, slack)

    def figures(self) -> list[dict]:
        """Every image of the article outside the widgets: its figure's caption and number."""
        return self.js("""
            return Array.from(document.querySelectorAll('article img')).filter(
                i => !i.closest('.jupyter-widgets, .widget-container, .lm-Widget, .cell_output .widget-area')
            ).map(i => {
                const f = i.closest('figure');
                const cap = f ? f.querySelector('figcaption') : null;
                const num = cap ? cap.querySelector('.caption-number') : null;
                return {src: i.getAttribute('src'), caption: cap ? cap.innerText.trim() : '',
                        number: num ? num.innerText.trim() : '', id: f ? f.id : ''};
            });
        """)

    def reader_tables(self) -> list[dict]:
        """The in-text tables (advmed.pages.table): number, caption, body rows, CSV link."""
        return self.js("""
            return Array.from(document.querySelectorAll('article table.advmed-table')).map(t => {
                const cap = t.querySelector('caption');
                const wrap = t.closest('.cell_output') || t.parentElement;
                const csv = wrap.querySelector('a.advmed-csv');
                const box = t.parentElement;  // the theme's scroll container
                return {caption: cap ? cap.innerText.trim() : '', rows: t.querySelectorAll('tbody tr').length,
                        fits: box.scrollWidth <= box.clientWidth + 1,
                        number: cap && cap.querySelector('.caption-number') ? cap.querySelector('.caption-number').innerText : '',
                        csv: csv ? csv.getAttribute('href') : ''};
            });
        """)

    def appendix_tables(self, timeout: float | None = None) -> list[dict]:
        """The interactive tables (advmed.pages.appendix_table), once DataTables has drawn them."""
        n = self.js("return document.querySelectorAll('.advmed-appendix-table').length")
        if n:
            self.wait_until("return Array.from(document.querySelectorAll('.advmed-appendix-table')).every("
                            "d => d.querySelector('table.dataTable'))", timeout=timeout)
        return self.js("""
            return Array.from(document.querySelectorAll('.advmed-appendix-table')).map(d => {
                const info = d.querySelector('.dt-info');
                const csv = d.querySelector('a.advmed-csv');
                return {id: d.id, rendered: !!d.querySelector('table.dataTable'),
                        rows: d.querySelectorAll('table.dataTable tbody tr').length,
                        search: !!d.querySelector('.dt-search input'), info: info ? info.innerText : '',
                        csv: csv ? csv.getAttribute('href') : ''};
            });
        """)

    def filter_table(self, table_id: str, text: str) -> str:
        """Type ``text`` into the search box of the appendix table ``table_id``; its info line after."""
        from selenium.webdriver.common.keys import Keys

        box = self.driver.find_element("css selector", f"#{table_id} .dt-search input")
        # erase key by key, as a reader does (clear() fires no input event for DataTables)
        box.send_keys(Keys.END, *[Keys.BACKSPACE] * len(box.get_attribute("value") or ""))
        if text:
            box.send_keys(text)
        time.sleep(0.5)
        return self.js("const i = document.querySelector(arguments[0] + ' .dt-info'); return i ? i.innerText : ''",
                       f"#{table_id}")

    # -- explorers (advmed.widgets)
    def explorers(self) -> list:
        """The rendered advmed explorers of the page (``.advmed-explorer`` roots)."""
        return self.find_all(".advmed-explorer")

    def explorer_frame(self, root: Any) -> tuple[str, str] | None:
        """What an explorer shows: ``("png", sha1 of the visible image's bytes)`` or ``("note",
        its text)``; None while it is loading or when not exactly one frame is visible."""
        import base64
        import hashlib

        r = self.driver.execute_async_script(_SHOWN_FRAME, root)
        if not r or r.get("n") != 1 or r.get("loading") or r.get("error"):
            return None
        if "note" in r:
            return ("note", r["note"])
        return ("png", hashlib.sha1(base64.b64decode(r["png"])).hexdigest())

    def wait_for_frame(self, root: Any, *, other_than: Any = None, timeout: float = 10.0) -> tuple[str, str]:
        """The explorer's frame once it is shown (and differs from ``other_than``)."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.explorer_frame(root)
            if now is not None and now != other_than:
                return now
            if time.monotonic() > deadline:
                raise TimeoutError(f"the explorer kept showing {now or other_than}")
            time.sleep(0.2)

    def explorer_controls(self, root: Any) -> list:
        """The explorer's visible controls (dropdowns, toggle buttons, sliders), in page order."""
        from selenium.webdriver.common.by import By

        css = ".widget-dropdown, .widget-toggle-buttons, .widget-slider"
        return [c for c in root.find_elements(By.CSS_SELECTOR, css) if c.is_displayed()]

    def control_state(self, control: Any) -> tuple[str, int, int]:
        """(label, number of options, selected index) of an ipywidgets selection control."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        labels = control.find_elements(By.CSS_SELECTOR, ".widget-label")
        name = labels[0].text if labels else control.get_attribute("class")
        cls = control.get_attribute("class")
        if "widget-dropdown" in cls:
            sel = Select(control.find_element(By.CSS_SELECTOR, "select"))
            return name, len(sel.options), [o.is_selected() for o in sel.options].index(True)
        if "widget-toggle-buttons" in cls:
            buttons = control.find_elements(By.CSS_SELECTOR, ".widget-toggle-button")
            active = [i for i, bt in enumerate(buttons) if "mod-active" in bt.get_attribute("class")]
            return name, len(buttons), active[0] if active else -1
        handle = control.find_element(By.CSS_SELECTOR, ".noUi-handle")
        return (name, int(float(handle.get_attribute("aria-valuemax"))) + 1,
                int(round(float(handle.get_attribute("aria-valuenow")))))

    def set_control(self, control: Any, index: int) -> None:
        """Choose option ``index`` the way a reader does (select, click, arrow keys)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select

        cls = control.get_attribute("class")
        if "widget-dropdown" in cls:
            Select(control.find_element(By.CSS_SELECTOR, "select")).select_by_index(index)
        elif "widget-toggle-buttons" in cls:
            control.find_elements(By.CSS_SELECTOR, ".widget-toggle-button")[index].click()
        else:
            handle = control.find_element(By.CSS_SELECTOR, ".noUi-handle")
            handle.click()
            for _ in range(50):
                cur = self.control_state(control)[2]
                if cur == index:
                    break
                handle.send_keys(Keys.ARROW_RIGHT if cur < index else Keys.ARROW_LEFT)
        time.sleep(0.2)

    def explorer_problems(self, root: Any, *, timeout: float = 10.0) -> list[str]:
        """Move every control of an explorer through each of its options and back; each move
        must show another frame (else the control is dead there). Returns the problems."""
        problems = []
        n_controls = len(self.explorer_controls(root))
        if not n_controls:
            return ["the explorer shows no control"]
        for j in range(n_controls):
            # looked up again each time: a Stack re-creates the views it switches to (a control
            # shown only for some values of another one is a new element after that one moved)
            control = self.explorer_controls(root)[j]
            name, n, start = self.control_state(control)
            if n < 2:
                problems.append(f"control {name!r} has {n} option(s)")
                continue
            prev = self.wait_for_frame(root, timeout=timeout)
            for i in [i for i in range(n) if i != start] + [start]:
                self.set_control(control, i)
                try:
                    prev = self.wait_for_frame(root, other_than=prev, timeout=timeout)
                except TimeoutError:
                    problems.append(f"control {name!r}: option {i + 1} of {n} shows the same frame (dead)")
                    self.set_control(control, start)
                    break
        return problems

    def console_errors(self) -> list[str]:
        """SEVERE messages of the browser console since the last call."""
        try:
            logs = self.driver.get_log("browser")
        except Exception:  # noqa: BLE001 - not every driver supports logs
            return []
        return [e["message"] for e in logs if e.get("level") == "SEVERE"]

    def screenshot(self, path: str | os.PathLike, *, full_page: bool = True) -> Path:
        """Save a PNG; ``full_page`` resizes the window to the document height first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            height = self.js("return Math.max(document.body.scrollHeight, "
                             "document.documentElement.scrollHeight)")
            self.driver.set_window_size(1280, min(int(height) + 100, 16000))
            time.sleep(0.3)
        self.driver.save_screenshot(str(path))
        if full_page:
            self.driver.set_window_size(1280, 1000)
        return path


_SHOWN_FRAME = """
const root = arguments[0], done = arguments[arguments.length - 1];
const visible = e => e.offsetParent !== null;
const imgs = Array.from(root.querySelectorAll('.widget-image')).filter(visible);
const notes = Array.from(root.querySelectorAll('.advmed-frame-note')).filter(visible);
if (imgs.length + notes.length !== 1) { done({n: imgs.length + notes.length}); return; }
if (notes.length) { done({n: 1, note: notes[0].innerText}); return; }
const img = imgs[0];
if (!img.complete || !img.naturalWidth) { done({n: 1, loading: true}); return; }
fetch(img.src).then(r => r.arrayBuffer()).then(b => {
  let s = ''; const u = new Uint8Array(b);
  for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
  done({n: 1, png: btoa(s)});
}).catch(e => done({n: 1, error: String(e)}));
"""


# --------------------------------------------------------------------------- static checks
_ASSET_RE = None


def external_assets(html: str) -> list[str]:
    """``<script src>`` / ``<link href>`` / ``<img src>`` / ``<iframe src>`` pointing at
    another host (http(s):// or protocol-relative //). Plain ``<a href>`` links are fine.
    """
    import re

    global _ASSET_RE
    if _ASSET_RE is None:
        _ASSET_RE = re.compile(
            r"<(script|link|img|iframe|source)\b[^>]*?\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)[\"']",
            re.IGNORECASE)
    return [f"<{m.group(1)} {m.group(2)}={m.group(3)}>" for m in _ASSET_RE.finditer(html)
            if not re.match(r"(https?:)?//(127\.0\.0\.1|localhost)[:/]", m.group(3))]
