"""API shape of every error answer."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """An error: one message that names the field or the resource, e.g.
    `samples_per_prompt: must be between 1 and 64, got 0`."""

    detail: str
