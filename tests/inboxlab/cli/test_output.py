from __future__ import annotations

import io

from rich.console import Console

from inboxlab.cli.output import listing


def _render(width: int, **kwargs: object) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(listing(**kwargs))  # type: ignore[arg-type]
    return out.getvalue()


def test_whole_columns_are_never_cut_on_a_narrow_terminal() -> None:
    rows = [
        (
            "inboxlab-engagement",
            "12",
            "@challenger\n@champion",
            "a long free-text description that has to give way to the identifiers",
        ),
        ("inboxlab-send-time", "3", "-", "short"),
    ]
    columns = ("model", "version", "aliases", "description")
    text = _render(60, title="t", columns=columns, rows=rows, whole=("model", "aliases"))
    assert "…" not in text
    lines = text.splitlines()
    assert any("inboxlab-engagement" in line and "@challenger" in line for line in lines)
    assert any(line.strip().startswith("@champion") or " @champion" in line for line in lines)
    assert max(len(line) for line in lines) <= 60
    # the description wrapped instead of being cut
    assert "identifiers" in text


def test_other_columns_are_cut_when_nothing_else_fits_and_whole_ones_are_not() -> None:
    rows = [("experiment-with-a-rather-long-identifier", "averyveryverylongwordwithoutspaces")]
    text = _render(50, title="t", columns=("id", "note"), rows=rows, whole=("id",))
    assert "experiment-with-a-rather-long-identifier" in text
    assert "averyveryverylongwordwithoutspaces" not in text
