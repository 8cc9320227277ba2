"""Where the items of a JSON body's one array are, without building the whole document.

A batch body is one object with one array of thousands of items. Validating it in a single
call holds the GIL for the whole body (about 0.6–0.8 s for 100,000 decisions), and the event
loop of the same process, which answers single decisions, waits that long.
:func:`array_item_spans` finds where each item starts and ends with the standard library's
scanner, item by item, so that the caller can validate the body a slice of items at a time.

Only the exact shape ``{"<key>": [item, …]}`` (any JSON whitespace, any escaping of the key)
is recognised; anything else gives ``None`` and the caller validates the body whole, which is
also where every error message comes from.

>>> text = '{"decisions": [{"a": 1}, {"b": [2, 3]} ]}'
>>> [text[start:end] for start, end in array_item_spans(text, "decisions")]
['{"a": 1}', '{"b": [2, 3]}']
>>> array_item_spans('{"decisions": [], "extra": 1}', "decisions") is None
True
"""

from __future__ import annotations

import json

__all__ = ["array_item_spans"]

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"  # JSON's own (RFC 8259), nothing else


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    """The position after ``char`` at ``i`` (whitespace skipped first); ValueError if absent."""
    i = _skip(text, i)
    if i >= len(text) or text[i] != char:
        raise ValueError(f"expected {char!r} at {i}")
    return i + 1


def array_item_spans(text: str, key: str) -> list[tuple[int, int]] | None:
    """``(start, end)`` of every item of the array under ``key`` when ``text`` is exactly an
    object with that one key holding an array, else ``None``.

    Each item is parsed once by :class:`json.JSONDecoder` to find its end (and then dropped);
    the spans say nothing of whether an item is valid for the caller's model.
    """
    try:
        i = _expect(text, 0, "{")
        i = _skip(text, i)
        name, i = _DECODER.raw_decode(text, i)
        if name != key:
            return None
        i = _expect(text, _expect(text, i, ":"), "[")
        spans: list[tuple[int, int]] = []
        i = _skip(text, i)
        if i < len(text) and text[i] == "]":
            i += 1
        else:
            while True:
                start = _skip(text, i)
                _, i = _DECODER.raw_decode(text, start)
                spans.append((start, i))
                i = _skip(text, i)
                if i < len(text) and text[i] == ",":
                    i += 1
                    continue
                i = _expect(text, i, "]")
                break
        i = _expect(text, i, "}")
        return spans if _skip(text, i) == len(text) else None
    except ValueError:  # json.JSONDecodeError included: not the shape, or not JSON
        return None
