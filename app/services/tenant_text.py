"""What tenants see of the text workers and trainers record (errors, event messages): no folder
of the host and no internal URL. The operator's logs keep the full text."""

from __future__ import annotations

import re

MODEL_SERVER = "<model server>"

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:.,;)]", re.IGNORECASE)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(?:~|\.{1,2})?/(?!v1/)[^\s'\",;:()\[\]{}<>]+")
"""A path from the root, home or a dot folder; the API's own routes (/v1/…) are no host paths."""


def without_host_details(text: str) -> str:
    """`text` with each URL replaced by `<model server>` and each absolute (or home, or dotted)
    path cut to its last part (`…/checkpoint-200`)."""
    text = _URL.sub(MODEL_SERVER, text)
    return _ABSOLUTE_PATH.sub(lambda match: last_part(match.group()), text)


def last_part(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f"…/{name}" if name not in ("", ".", "..", "~") else "…"


def shown(text: str | None) -> str | None:
    """without_host_details, for an optional text."""
    return None if text is None else without_host_details(text)
