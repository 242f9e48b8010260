"""`findap wait ID`: attach to work that runs on the server and follow it to its end, as
`submit --wait` and `train --wait` do."""

from __future__ import annotations

from typing import Annotated

import typer

from app.client.batches import finish_batch
from app.client.common import UrlOption, open_connection, reports_errors
from app.client.errors import ClientError
from app.client.evaluations import finish_evaluation
from app.client.training import finish_training

WAITABLE = {"batch_": "a batch", "eval_": "an evaluation", "ftjob_": "a training job"}


def check_waitable(some_id: str) -> str:
    """The prefix of an id `findap wait` follows, or a ClientError saying what it takes."""
    for prefix in WAITABLE:
        if some_id.startswith(prefix):
            return prefix
    raise ClientError(f"ID: expected a batch_…, eval_… or ftjob_… id, got {some_id!r}")


@reports_errors
def wait(
    some_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="A batch (batch_…), evaluation (eval_…) or training job (ftjob_…)."
        ),
    ],
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.05,
            help="Seconds between polls (default: 1 for a batch or evaluation, 2 for a training "
            "job).",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Follow a running batch, evaluation or training job to its end (exit 3 if it fails or is
    cancelled); it keeps polling while the server restarts."""
    prefix = check_waitable(some_id)
    with open_connection(url) as connection:
        if prefix == "batch_":
            finish_batch(connection, some_id, interval_s=interval or 1.0)
        elif prefix == "eval_":
            finish_evaluation(connection, some_id, interval_s=interval or 1.0)
        else:
            finish_training(connection, some_id, interval_s=interval or 2.0)
