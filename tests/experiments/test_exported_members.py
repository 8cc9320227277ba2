from __future__ import annotations

import importlib

import pytest

MODULES = [
    "experiments",
    "experiments.analysis",
    "experiments.bayes",
    "experiments.decision",
    "inboxlab.experiment",
    "experiments.exports",
    "experiments.means",
    "experiments.ope",
    "experiments.report",
    "experiments.segments",
    "experiments.source",
    "experiments.srm",
    "experiments.statistics",
]


@pytest.mark.parametrize("name", MODULES)
def test_public_names_exist_and_are_listed_once(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.{member}"
