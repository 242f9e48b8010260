"""What every client command shares: the --url, --wait and --interval options, the connection,
and turning a ClientError into one line and an exit code."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from app.client.config import load_config
from app.client.connection import Connection, connect
from app.client.errors import ClientError
from app.client.output import err, show_error

P = ParamSpec("P")
R = TypeVar("R")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The findap server. Default: FINDAP_URL, the config file, http://127.0.0.1:8000.",
        show_default=False,
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Follow the progress until it ends; non-zero exit if failed.")
]
IntervalOption = Annotated[
    float, typer.Option("--interval", min=0.05, help="Seconds between polls while waiting.")
]
IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Sent as Idempotency-Key: the same key again returns the work it made, never a "
        "second one. Default: a new UUID (retries of this command's request reuse it).",
        show_default=False,
    ),
]


def open_connection(url: str | None) -> Connection:
    """A connection to the configured server (`url` overrides the configuration)."""
    return connect(load_config(url))


def new_idempotency_key(given: str | None) -> str:
    return given or str(uuid.uuid4())


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command; a ClientError becomes `error: …` on stderr and its exit code, and Ctrl-C
    while waiting leaves the work running."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as error:
            show_error(error.message)
            raise typer.Exit(code=error.exit_code) from None
        except KeyboardInterrupt:
            err.print("stopped waiting; the work goes on on the server (`findap status ID`)")
            raise typer.Exit(code=130) from None

    return run


def without_none(**values: Any) -> dict[str, Any]:
    """The options the user set; the server fills in the rest with its defaults."""
    return {name: value for name, value in values.items() if value is not None}
