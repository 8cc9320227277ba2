"""The commands silence exactly the known library warnings, not their categories."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from inboxlab.library_warnings import QUIET, quiet_library_warnings
from tests.conftest import fresh_python


@pytest.mark.parametrize(("message", "category"), [(m, c) for m, c, _ in QUIET])
def test_a_known_warning_is_silenced_and_its_category_still_shows(
    message: str, category: type[Warning]
) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # this test's own view, not pytest's configuration
        quiet_library_warnings()
        warnings.warn(f"{message} and the rest of the library's text", category, stacklevel=1)
        warnings.warn("something else entirely", category, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else entirely"]


def test_they_stay_silenced_after_feast_puts_its_filters_in_front(tmp_path: Path) -> None:
    code = f"""
import warnings
from pathlib import Path
from inboxlab.library_warnings import quiet_library_warnings
from inboxlab.settings import Settings
quiet_library_warnings()  # as the command's callback does, before Feast is imported
from features.store import feature_store
feature_store(Settings(data_dir=Path({str(tmp_path)!r})))
warnings.warn("On demand feature view is an experimental feature. (Feast)", RuntimeWarning)
warnings.warn("still shown", RuntimeWarning)
"""
    out = fresh_python(code)
    assert "experimental feature" not in out.stderr
    assert "still shown" in out.stderr
