"""The error answers of the API as the OpenAPI schema documents them: `{"detail": str}`, the
shape of app.main's one table of handlers."""

from __future__ import annotations

from typing import Any

from app.schemas.error import ErrorOut

ERROR_DESCRIPTIONS = {
    400: "The body cannot be parsed: not UTF-8, or broken multipart.",
    401: "No API key, or one that names no key.",
    403: "A revoked key (or, on /v1/admin, a wrong admin token or the admin API off).",
    404: "An id names nothing in this project.",
    409: "The resource's state does not allow this.",
    413: "The request body is larger than MAX_UPLOAD_BYTES, or would take the project past "
    "its quota of stored bytes.",
    422: "A field is invalid; the message names it.",
    429: "A per-project limit on work in flight is reached; retry when some finishes.",
    503: "Postgres or Redis is unavailable; retry shortly.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a router or route: each code answered with ErrorOut."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


# Every /v1 route checks a key, validates its input, may look up an id and needs Postgres and
# Redis. Listing 422 here also replaces FastAPI's default 422 (a list of errors), which is not
# what the validation handler answers.
V1_ERRORS = error_responses(401, 403, 404, 422, 503)
# Routes with a body: it may not parse (FastAPI's and Starlette's 400) or be too large (413,
# app.api.body_limit).
BODY_ERRORS = error_responses(400, 413)
