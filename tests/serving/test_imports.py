"""A serving worker imports what it serves with, not the build or the plots."""

from __future__ import annotations

import json

import pytest

from tests.conftest import fresh_python


def test_the_serving_app_leaves_feast_duckdb_and_matplotlib_unimported() -> None:
    code = (
        "import json, sys; import serving.app; "
        "heavy = ('feast', 'duckdb', 'matplotlib'); "
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = fresh_python(code)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_engineering_package_still_exports_the_build() -> None:
    import features.engineering as engineering
    from features.engineering import BuildResult, build_features, existing_days
    from features.engineering.build import build_features as direct

    assert build_features is direct
    assert BuildResult.__module__ == existing_days.__module__ == "features.engineering.build"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = engineering.nothing  # type: ignore[attr-defined]
