"""Find the JSON object in a judge's reply, whatever text or code fences surround it."""

from __future__ import annotations

import json
from typing import Any

# strict=False accepts raw newlines inside strings, which judges write often.
_DECODER = json.JSONDecoder(strict=False)


def extract_json_object(raw: str) -> dict[str, Any] | None:
    """The first balanced {...} in the text that parses as a JSON object, or None."""
    start = raw.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(raw, start)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        start = raw.find("{", start + 1)
    return None


JUSTIFICATION_MAX_CHARS = 400
"""A judge's justification is one or two sentences: the schemas bound it (a small judge under
constrained decoding must reach its decision) and parsers cut longer ones, for every engine."""


def text_field(value: object, max_chars: int | None = None) -> str | None:
    """The value when it is a string, cut to max_chars; None otherwise."""
    if not isinstance(value, str):
        return None
    return value if max_chars is None else value[:max_chars]
