"""`findap datasets`: freeze the pairs of batches into a named, versioned dataset; list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.client.common import UrlOption, open_connection, reports_errors
from app.client.connection import Connection
from app.client.output import dataset_table, datasets_table, show
from app.client.training import upload
from app.schemas.dataset import SignalKind

datasets = typer.Typer(help="Datasets: frozen, versioned selections of preference pairs.")


@datasets.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Option(help="The dataset's name; each create makes a version.")],
    batch: Annotated[
        list[str], typer.Option("--batch", help="A batch whose pairs to take (repeatable).")
    ],
    kind: Annotated[
        list[SignalKind] | None,
        typer.Option("--kind", help="Pair kinds to take (repeatable). Default: fap and scp."),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Keep pairs whose prompt plus longer side fit.")
    ] = None,
    drop_duplicates: Annotated[
        bool,
        typer.Option(help="Keep one of pairs with the same kind, prompt, chosen and rejected."),
    ] = True,
    decontaminate_against: Annotated[
        list[str] | None,
        typer.Option(
            "--decontaminate-against",
            help="An eval file to check the pairs against: a file id, or a local JSONL file of "
            "questions (uploaded with purpose eval). Repeatable.",
        ),
    ] = None,
    decontaminate: Annotated[
        bool, typer.Option(help="Drop the pairs that match the eval files.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Freeze the pairs of one or more batches as the next version of a dataset."""
    body: dict[str, object] = {
        "name": name,
        "batch_ids": batch,
        "filters": {"max_tokens": max_tokens, "drop_duplicates": drop_duplicates},
    }
    if kind:
        body["kinds"] = [one.value for one in kind]
    with open_connection(url) as connection:
        if decontaminate_against or decontaminate:
            body["decontaminate_against"] = eval_file_ids(connection, decontaminate_against or [])
            body["decontaminate"] = decontaminate
        dataset = connection.post("/v1/datasets", json=body)
    show(dataset_table(dataset))


def eval_file_ids(connection: Connection, values: list[str]) -> list[str]:
    """Each --decontaminate-against as a file id: local files are uploaded as eval files."""
    return [
        upload(connection, Path(value), "eval") if Path(value).is_file() else value
        for value in values
    ]


@datasets.command("list")
@reports_errors
def list_(
    name: Annotated[str | None, typer.Option(help="Only the versions of this dataset.")] = None,
    url: UrlOption = None,
) -> None:
    """The project's datasets, newest first."""
    with open_connection(url) as connection:
        found = connection.get_all("/v1/datasets", name=name)
    show(datasets_table(found))
