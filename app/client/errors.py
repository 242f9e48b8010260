"""What can go wrong for the client; each error is shown as one line and sets the exit code."""

from __future__ import annotations


class ClientError(Exception):
    """Root of the client's errors: `message` is the one line shown after `error: `."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerError(ClientError):
    """The server answered 4xx or 5xx; its `detail` names the field and the problem."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code} {detail}")
        self.status_code = status_code
        self.detail = detail


class UnreachableError(ClientError):
    """No answer: the server is down, the URL is wrong, or the connection broke."""


class WorkEndedBadly(ClientError):
    """A batch or training job that was waited on ended failed or cancelled."""

    exit_code = 3
