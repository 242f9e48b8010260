"""Dashboard pages (filled in by the dashboard work)."""

from fastapi import APIRouter

router = APIRouter(prefix="/dashboard", include_in_schema=False)
