"""API shapes of API keys (the admin routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.batch import StrictModel


class ApiKeyCreate(StrictModel):
    project: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\w.\-]+$",
        description="The project's name; made if it does not exist.",
    )
    name: str = Field(default="default", min_length=1, max_length=128)


class ApiKeyOut(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    project: str
    project_id: str
    name: str
    prefix: str = Field(description="The key's first characters.")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKeyOut]
