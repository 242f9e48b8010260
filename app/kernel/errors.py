"""Domain errors raised by services; app.main maps each to an HTTP status in one table."""

from __future__ import annotations


class FindapError(Exception):
    """Root of every error findap raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(FindapError):
    """The id names nothing."""


class InvalidInputError(FindapError):
    """The caller sent something unusable; detail names the field and the problem."""


class ConflictError(FindapError):
    """The request is valid but the resource's state does not allow it."""


class ServiceUnavailableError(FindapError):
    """A backing service (Postgres, Redis) cannot be reached right now."""


class UnauthorizedError(FindapError):
    """No API key, or one that names no key."""


class ForbiddenError(FindapError):
    """A key that exists but may not be used (revoked)."""


class TooManyRequestsError(FindapError):
    """A per-project limit on work in flight is reached; retry when some of it finishes."""

    def __init__(self, detail: str, *, retry_after_s: int = 30) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        """Seconds the caller is told to wait (the response's Retry-After)."""


class QuotaExceededError(FindapError):
    """Storing this would take a project past a quota on what it keeps (uploaded bytes)."""


class ServicesNotConfiguredError(FindapError):
    """DATABASE_URL or REDIS_URL is unset where a process needs the real server."""
