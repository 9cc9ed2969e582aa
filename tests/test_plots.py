"""advmed.plots: every function returns a Figure that renders with Agg, without pyplot."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from advmed import plots


def _render(fig) -> bytes:
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # Agg, no display needed
    assert buf.tell() > 1000
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """Figures must not be registered with pyplot (they would leak and show twice)."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def _binary(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    return y, np.stack([1 - s, s], 1)


def test_roc_curves_binary_and_multiclass():
    a, b = _binary(seed=0), _binary(seed=1)
    fig = plots.roc_curves({"model A": a, "model B": {"y": b[0], "proba": b[1]}}, title="test")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("model A (AUC 0.") and labels[-1] == "chance"
    _render(fig)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 100)
    p = rng.dirichlet(np.ones(4), 100)
    _render(plots.roc_curves({"m": (y, p)}))


def test_confusion_matrix():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    fig = plots.confusion_matrix(y, pred, ["a", "b", "c"], title="cm")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "1\n50%" in texts and "2\n67%" in texts
    _render(fig)


def test_backend_untouched():
    backend = matplotlib.get_backend()
    plots.roc_curves({"m": _binary()})
    assert matplotlib.get_backend() == backend


def test_figures_display_as_png_without_pyplot():
    """IPython shows our figures through _repr_png_, with no pyplot backend involved."""
    from IPython.core.formatters import DisplayFormatter

    from advmed import plots

    fig = plots.confusion_matrix([0, 1, 1], [0, 1, 0], ["a", "b"])
    data, _ = DisplayFormatter().format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
