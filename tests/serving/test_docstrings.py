from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "serving.assignment",
    "serving.bandit",
    "serving.eligibility",
    "serving.frozen",
    "serving.ids",
    "serving.json_items",
    "serving.keys",
    "serving.scoring.native",
    "serving.scoring.send_time",
    "serving.store.decisions",
    "serving.store.engine",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize(
    "name",
    ["serving", "serving.store", "serving.app", "serving.auth", "serving.metrics", *MODULES],
)
def test_public_names_are_listed_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for public in module.__all__:
        assert hasattr(module, public), public
