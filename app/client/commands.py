"""The client commands of `findap`, talking HTTP to a findap server: login, submit, status,
cancel, download, datasets, train, models, wait."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from app.client.batches import submit
from app.client.common import UrlOption, open_connection, reports_errors
from app.client.config import DEFAULT_URL, KEY_VARIABLES, save_config
from app.client.connection import Connection
from app.client.datasets import datasets
from app.client.errors import ClientError
from app.client.evaluations import evaluate, report_table
from app.client.output import (
    batch_table,
    dataset_table,
    job_table,
    models_table,
    out,
    show,
    show_warning,
)
from app.client.training import train
from app.client.wait import wait

ROUTES = {
    "batch_": "/v1/batches",
    "ftjob_": "/v1/training-jobs",
    "ds_": "/v1/datasets",
    "eval_": "/v1/evaluations",
}
"""Where each kind of id lives, by its prefix."""
BATCH_STATUS_HEADER = "X-Findap-Batch-Status"
"""The status of a batch when its pairs download began."""
JSON_LINE_FORMATS = ("jsonl", "trl")
"""Download formats whose lines carry each pair's `kind`."""

JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON as it is.")]
IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="A batch_…, ftjob_…, ds_… or eval_… id.")
]


def route_of(some_id: str, allowed: tuple[str, ...] = tuple(ROUTES)) -> str:
    """The collection an id belongs to, from its prefix."""
    for prefix in allowed:
        if some_id.startswith(prefix):
            return ROUTES[prefix]
    expected = ", ".join(f"{prefix}…" for prefix in allowed)
    raise ClientError(f"ID: expected one of {expected}, got {some_id!r}")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


@reports_errors
def login(
    key: Annotated[str, typer.Option(prompt=True, hide_input=True, help="An API key, fdp_… .")],
    url: Annotated[str, typer.Option(help="The findap server.")] = DEFAULT_URL,
    check: Annotated[bool, typer.Option(help="Try the key on the server first.")] = True,
) -> None:
    """Save the server's URL and your API key to the config file (readable by you only)."""
    if check:
        with Connection(url=url, key=key, key_source="--key") as connection:
            connection.get("/v1/models")
    path = save_config(url, key)
    out.print(f"saved {url} and the key to {path}")
    if set_in := [name for name in KEY_VARIABLES if os.environ.get(name)]:
        out.print(f"note: {set_in[0]} is set and wins over the file")


@reports_errors
def status(some_id: IdArgument, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Where a batch, training job, dataset or evaluation stands."""
    route = route_of(some_id)
    with open_connection(url) as connection:
        found = connection.get(f"{route}/{some_id}")
    if as_json:
        print_json(found)
    elif route == ROUTES["batch_"]:
        show(batch_table(found))
    elif route == ROUTES["ftjob_"]:
        show(job_table(found))
    elif route == ROUTES["eval_"]:
        show(report_table(found))
    else:
        show(dataset_table(found))


@reports_errors
def cancel(
    some_id: Annotated[str, typer.Argument(metavar="ID", help="A batch_…, eval_… or ftjob_… id.")],
    url: UrlOption = None,
) -> None:
    """Cancel a batch or evaluation (queued chunks never start) or a training job (stops at
    its next step)."""
    route = route_of(some_id, ("batch_", "eval_", "ftjob_"))
    with open_connection(url) as connection:
        found = connection.post(f"{route}/{some_id}/cancel")
    pending = " (stops at its next step)" if found.get("cancel_requested") else ""
    out.print(f"{some_id} {found['status']}{pending}")


@reports_errors
def download(
    some_id: Annotated[str, typer.Argument(metavar="ID", help="A batch_… or ds_… id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Batch: jsonl (default) or parquet. Dataset: trl (default), openai or parquet.",
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Only pairs of this kind, fap or scp (a batch: any format, filtered by the "
            "server; a dataset: jsonl and trl, filtered here)."
        ),
    ] = None,
    samples: Annotated[
        bool,
        typer.Option(
            "--samples",
            help="A batch's answers instead of its pairs: every one, with its verdicts and "
            "first-error analyses (jsonl or parquet).",
        ),
    ] = False,
    partial: Annotated[
        bool,
        typer.Option(
            "--partial", help="Download the pairs of a batch that is still running, so far."
        ),
    ] = False,
    url: UrlOption = None,
) -> None:
    """Stream the pairs of a batch, or a dataset, to a file (--samples: a batch's answers);
    prints how many were written.

    A batch that has not ended is refused (exit 1) unless --partial."""
    route = route_of(some_id, ("batch_", "ds_"))
    is_batch = route == ROUTES["batch_"]
    chosen = format_ or ("jsonl" if is_batch else "trl")
    if samples and not is_batch:
        raise ClientError(f"--samples: a batch's answers; {some_id} is a dataset")
    if samples and kind is not None:
        raise ClientError("--kind: selects pairs, not answers (--samples)")
    if kind is not None and not is_batch and chosen not in JSON_LINE_FORMATS:
        raise ClientError(f"--kind: works with jsonl and trl downloads, not {chosen}")
    what = "samples" if samples else "pairs"
    path = f"{route}/{some_id}/{what}" if is_batch else f"{route}/{some_id}/download"
    server_kind, local_kind = (kind, None) if is_batch else (None, kind)
    # Written beside the target and renamed at the end: a broken download leaves no half file.
    part_file = output.with_name(output.name + ".part")
    try:
        with (
            open_connection(url) as connection,
            connection.stream(path, format=chosen, kind=server_kind) as body,
        ):
            batch_status = body.headers.get(BATCH_STATUS_HEADER) if is_batch else None
            if not samples:
                check_batch_ended(some_id, batch_status, partial=partial)
            with open_output(part_file, output) as file:
                lines = write_body(body.iter_bytes(), file, local_kind)
        part_file.replace(output)
    finally:
        part_file.unlink(missing_ok=True)
    if chosen == "parquet":
        import pyarrow.parquet as pq

        lines = pq.ParquetFile(output).metadata.num_rows
        out.print(f"wrote {lines} {what} to {output}")
    else:
        out.print(f"wrote {lines} lines to {output}")


def check_batch_ended(batch_id: str, status: str | None, *, partial: bool) -> None:
    """A batch still making pairs is an error unless --partial; then, and for a batch that
    stopped early, a warning says the file holds the pairs made so far."""
    if status is None or status == "completed":
        return
    if status in ("failed", "cancelled"):
        show_warning(f"batch {batch_id} {status}: these are the pairs it made before it stopped")
        return
    if not partial:
        raise ClientError(
            f"batch {batch_id} is {status}: its pairs are not all made yet; wait until it "
            f"completes (`findap status {batch_id}`), or add --partial for the pairs so far"
        )
    show_warning(f"batch {batch_id} is {status}: these are the pairs made so far")


def open_output(part_file: Path, output: Path) -> BinaryIO:
    """The file a download streams into, or a ClientError naming the -o that cannot be written."""
    try:
        return part_file.open("wb")
    except OSError as error:
        raise ClientError(f"--output {output}: {error.strerror}") from None


def write_body(chunks: Any, file: Any, kind: str | None) -> int:
    """Copy a streamed body to `file`, keeping only lines of `kind` if given; lines written."""
    if kind is None:
        count = 0
        for chunk in chunks:
            file.write(chunk)
            count += chunk.count(b"\n")
        return count
    count, rest = 0, b""
    for chunk in chunks:
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            if line.strip() and json.loads(line).get("kind") == kind:
                file.write(line + b"\n")
                count += 1
    if rest.strip() and json.loads(rest).get("kind") == kind:
        file.write(rest + b"\n")
        count += 1
    return count


@reports_errors
def models(as_json: JsonOption = False, url: UrlOption = None) -> None:
    """The models batches can sample from and training jobs can start from."""
    with open_connection(url) as connection:
        found = connection.get_all("/v1/models")
    if as_json:
        print_json({"object": "list", "data": found})
    else:
        show(models_table(found))


def register(cli: typer.Typer) -> None:
    """Add the client commands (submit, eval, status, download, datasets, train, models) to
    `cli`."""
    cli.command(rich_help_panel="Client")(login)
    cli.command(rich_help_panel="Client")(submit)
    cli.command("eval", rich_help_panel="Client")(evaluate)
    cli.command(rich_help_panel="Client")(status)
    cli.command(rich_help_panel="Client")(cancel)
    cli.command(rich_help_panel="Client")(download)
    cli.add_typer(datasets, name="datasets", rich_help_panel="Client")
    cli.command(rich_help_panel="Client")(train)
    cli.command(rich_help_panel="Client")(models)
    cli.command(rich_help_panel="Client")(wait)
