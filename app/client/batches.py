"""`findap submit`: upload a file of prompts as a batch, and follow it to the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.client.common import (
    IdempotencyKeyOption,
    IntervalOption,
    UrlOption,
    WaitOption,
    new_idempotency_key,
    open_connection,
    reports_errors,
    without_none,
)
from app.client.connection import Connection
from app.client.errors import ClientError, WorkEndedBadly
from app.client.output import batch_table, out, show
from app.client.patient import patient
from app.client.progress import watch_batch
from app.client.tables import ColumnsOption, FormatOption, media_type, table_fields
from app.schemas.batch import PairingStrategy, ScpPromptVersion


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClientError(f"--metadata: not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise ClientError(f"--metadata: must be a JSON object, got {text!r}")
    return metadata


@reports_errors
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="The prompts: JSONL (one a line), CSV or Parquet, with fields or columns "
            "question, reference_answer, optional id and metadata (see --columns).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    policy: Annotated[
        str | None, typer.Option(help="The model to sample answers from.", show_default=False)
    ] = None,
    policy_engine: Annotated[
        str | None, typer.Option(help="hf, vllm or openai.", show_default=False)
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="The judge model, or `rule` for the final-answer verifier."),
    ] = None,
    judge_engine: Annotated[
        str | None, typer.Option(help="hf, vllm, openai or rule.", show_default=False)
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-n", help="Answers per prompt.", min=1)
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Tokens per answer.")] = None,
    seed: Annotated[int | None, typer.Option(help="Makes sampling reproducible.")] = None,
    judge_max_tokens: Annotated[int | None, typer.Option(help="Tokens per judge reply.")] = None,
    scp_prompt: Annotated[
        ScpPromptVersion | None, typer.Option(help="The first-error prompt of the judge.")
    ] = None,
    fap: Annotated[bool | None, typer.Option("--fap/--no-fap", help="Make FAP pairs.")] = None,
    scp: Annotated[bool | None, typer.Option("--scp/--no-scp", help="Make SCP pairs.")] = None,
    strategy: Annotated[
        PairingStrategy | None, typer.Option(help="How wrong answers pair with correct ones.")
    ] = None,
    max_pairs_per_prompt: Annotated[int | None, typer.Option(help="Cap of `all`.")] = None,
    max_pair_tokens: Annotated[int | None, typer.Option(help="Drop longer pairs.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Prompts per unit of work.")] = None,
    metadata: Annotated[
        str | None, typer.Option(help="JSON object kept with the batch, e.g. '{\"round\": 1}'.")
    ] = None,
    format_: FormatOption = None,
    columns: ColumnsOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    wait: WaitOption = False,
    interval: IntervalOption = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the batch id only.")] = False,
    url: UrlOption = None,
) -> None:
    """Submit a file of prompts (JSONL, CSV or Parquet) as a batch; with --wait, follow it to
    the end."""
    options = without_none(
        policy=without_none(
            model=policy,
            engine=policy_engine,
            samples_per_prompt=samples,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
        ),
        judge=without_none(
            model=judge,
            engine=judge_engine,
            max_tokens=judge_max_tokens,
            scp_prompt_version=scp_prompt,
        ),
        pairing=without_none(
            fap=fap,
            scp=scp,
            strategy=strategy,
            max_pairs_per_prompt=max_pairs_per_prompt,
            max_pair_tokens=max_pair_tokens,
        ),
        metadata=parse_metadata(metadata),
        chunk_size=chunk_size,
    )
    key = new_idempotency_key(idempotency_key)
    with open_connection(url) as connection, file.open("rb") as prompts:

        def request() -> dict[str, Any]:
            prompts.seek(0)  # a retry sends the whole file again
            return {
                "files": {"file": (file.name, prompts, media_type(file, format_))},
                "data": {**table_fields(format_, columns), "options": json.dumps(options)},
            }

        response = connection.post_idempotent("/v1/batches", key, request)
        batch = response.json()
        if quiet:
            print(batch["id"])
        else:
            out.print(submitted_line(batch, replayed="Idempotent-Replayed" in response.headers))
        if wait:
            finish_batch(connection, batch["id"], interval_s=interval)


def submitted_line(batch: dict[str, Any], *, replayed: bool) -> str:
    """What was made: the id, the size of the work, the models."""
    policy, judge = batch["policy"], batch["judge"]
    made = "already made with this Idempotency-Key:" if replayed else "submitted"
    return (
        f"{made} {batch['id']}: {batch['request_counts']['total']} prompts in "
        f"{batch['chunk_counts']['total']} chunks, {policy['samples_per_prompt']} samples each "
        f"from {policy['model']} ({policy['engine']}), judge {judge['model']} ({judge['engine']})"
    )


def finish_batch(connection: Connection, batch_id: str, *, interval_s: float) -> None:
    """Follow the batch to its end, then show its counts; a failed or cancelled end is an error."""
    batch = watch_batch(patient(connection), batch_id, interval_s=interval_s, console=out)
    show(batch_table(batch))
    if batch["status"] != "completed":
        reason = f": {batch['error']}" if batch["error"] else ""
        raise WorkEndedBadly(f"batch {batch_id} {batch['status']}{reason}")
