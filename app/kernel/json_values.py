"""Values that Postgres and strict JSON can hold: no NUL character in a text or a key (Postgres
text and JSONB refuse it), no NaN or Infinity (Python's json reads them; JSON has no such
numbers and JSONB refuses them)."""

from __future__ import annotations

import math
from typing import Any

NUL = "\x00"
NUL_PROBLEM = "must not contain NUL (\\u0000) characters"
JSON_SPELLING = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def unstorable_part(value: Any) -> str | None:
    """Where in `value` (a text, a number, or a JSON tree of them) lies the first part Postgres
    or strict JSON cannot hold, and why: `at ['a'][2]: NaN is not a JSON number; …`.
    None when every part can be stored. Validated models inside are left to their own checks."""
    if not isinstance(value, dict | list | tuple):  # a text or a number: the common case, fast
        return problem_of(value)
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, part = stack.pop()
        problem = problem_of(part)
        if problem is not None:
            return f"at {path}: {problem}" if path else problem
        if isinstance(part, dict):
            for key in part:
                if isinstance(key, str) and NUL in key:
                    where = f"at {path}: " if path else ""
                    return f"{where}key {key!r} {NUL_PROBLEM}"
            stack.extend((f"{path}[{key!r}]", item) for key, item in reversed(part.items()))
        elif isinstance(part, list | tuple):
            items = list(enumerate(part))
            stack.extend((f"{path}[{index}]", item) for index, item in reversed(items))
    return None


def problem_of(value: Any) -> str | None:
    """Why this one text or number cannot be stored, or None."""
    if isinstance(value, str) and NUL in value:
        return NUL_PROBLEM
    if isinstance(value, float) and not math.isfinite(value):
        spelled = JSON_SPELLING[repr(value)]
        return f"{spelled} is not a JSON number; send a finite number, null or a text"
    return None
