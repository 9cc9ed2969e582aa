"""The examples in the public docstrings run and print what they say (doctest)."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "advmed.attacks", "advmed.attacks.registry", "advmed.attacks.whitebox.fgsm", "advmed.attacks.whitebox.ifgsm",
    "advmed.attacks.whitebox.pgd", "advmed.attacks.whitebox.mifgsm", "advmed.attacks.universal.uap",
    "advmed.models.gray", "advmed.models.inference", "advmed.experiments.profiles", "advmed.widgets.core",
    "advmed.widgets.patch", "advmed.widgets.defense",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
