"""`findap eval MODEL FILE`: upload a file of held-out questions, evaluate a model on it, and
with --wait follow it and print the report: accuracy per task with 95 % intervals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from app.client.common import (
    IntervalOption,
    UrlOption,
    WaitOption,
    open_connection,
    reports_errors,
    without_none,
)
from app.client.connection import Connection
from app.client.errors import WorkEndedBadly
from app.client.output import out, show
from app.client.patient import patient
from app.client.tables import ColumnsOption, FormatOption, media_type, table_fields

EVALUATION_ENDED = frozenset({"completed", "failed", "cancelled"})


@reports_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="The model to evaluate (GET /v1/models).")],
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL (one question a line), CSV or Parquet: question, reference_answer, "
            "optional id and metadata.task (see --columns).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    mode: Annotated[
        Literal["cot", "direct"],
        typer.Option(help="cot: step by step, then the answer; direct: the answer only."),
    ] = "cot",
    samples: Annotated[
        int,
        typer.Option("--samples", "-k", min=1, max=64, help="Answers per question (1: greedy)."),
    ] = 1,
    judge: Annotated[
        str | None,
        typer.Option(help="The judge model, or `rule` for the final-answer verifier."),
    ] = None,
    judge_engine: Annotated[
        str | None, typer.Option(help="hf, vllm, openai or rule.", show_default=False)
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="hf, vllm or openai.", show_default=False)
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Default: 0 for one sample, else 0.8.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Tokens per answer.")] = None,
    seed: Annotated[int | None, typer.Option(help="Makes sampling reproducible.")] = None,
    format_: FormatOption = None,
    columns: ColumnsOption = None,
    wait: WaitOption = False,
    interval: IntervalOption = 1.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the evaluation id only.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Evaluate MODEL on the questions of FILE; with --wait, follow it and print the report."""
    body = without_none(
        model=model,
        engine=engine,
        mode=mode,
        samples=samples,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        judge=without_none(model=judge, engine=judge_engine) or None,
    )
    with open_connection(url) as connection:
        with file.open("rb") as questions:
            uploaded = connection.post(
                "/v1/files",
                files={"file": (file.name, questions, media_type(file, format_))},
                data={"purpose": "eval", **table_fields(format_, columns)},
            )
        evaluation = connection.post("/v1/evaluations", json={**body, "file_id": uploaded["id"]})
        if quiet:
            print(evaluation["id"])
        else:
            out.print(
                f"evaluating {evaluation['model']} ({evaluation['engine']}) as "
                f"{evaluation['id']}: {evaluation['request_counts']['total']} questions, "
                f"{evaluation['mode']}, {evaluation['samples']} sample(s) each, judge "
                f"{evaluation['judge']['model']}",
                soft_wrap=True,
            )
        if wait:
            finish_evaluation(connection, evaluation["id"], interval_s=interval)


def finish_evaluation(connection: Connection, evaluation_id: str, *, interval_s: float) -> None:
    """Follow the evaluation to its end, then print its report; a failed or cancelled end is
    an error."""
    evaluation = watch_evaluation(patient(connection), evaluation_id, interval_s=interval_s)
    show(report_table(evaluation))
    if evaluation["status"] != "completed":
        reason = f": {evaluation['error']}" if evaluation["error"] else ""
        raise WorkEndedBadly(f"evaluation {evaluation_id} {evaluation['status']}{reason}")


def watch_evaluation(
    connection: Connection, evaluation_id: str, *, interval_s: float, console: Console = out
) -> dict[str, Any]:
    """Poll until the evaluation ends; a line each time its status or its count of questions
    scored changes."""
    shown: tuple[str, int] | None = None
    while True:
        evaluation: dict[str, Any] = connection.get(f"/v1/evaluations/{evaluation_id}")
        now = (evaluation["status"], evaluation["questions"])
        if now != shown:
            total = evaluation["request_counts"]["total"]
            console.print(f"{now[0]}: {now[1]}/{total} questions scored", soft_wrap=True)
            shown = now
        if evaluation["status"] in EVALUATION_ENDED:
            return evaluation
        time.sleep(interval_s)


def score_text(score: dict[str, Any] | None) -> str:
    """`61.5 % [52.1, 70.1]`: the share and its 95 % Wilson interval, in percent."""
    if score is None:
        return "-"
    return f"{100 * score['value']:.1f} % [{100 * score['low']:.1f}, {100 * score['high']:.1f}]"


def report_table(evaluation: dict[str, Any]) -> Table:
    """One row per task and one for all: questions, accuracy (pass@k and majority for k > 1)
    with 95 % intervals, truncated and unparseable answers."""
    several = evaluation["samples"] > 1
    table = Table(
        title=f"{evaluation['id']} · {evaluation['model']} · {evaluation['mode']} · "
        f"{evaluation['status']}",
        title_justify="left",
    )
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("questions", justify="right")
    table.add_column("accuracy (95 % CI)", no_wrap=True)
    if several:
        table.add_column(f"pass@{evaluation['samples']}", no_wrap=True)
        table.add_column("majority", no_wrap=True)
    table.add_column("truncated", justify="right")
    table.add_column("unparseable", justify="right")
    rows = [*sorted(evaluation["by_task"].items()), ("all", evaluation)]
    for task, report in rows:
        cells = [task, str(report["questions"]), score_text(report["accuracy"])]
        if several:
            cells += [score_text(report["pass_at_k"]), score_text(report["majority"])]
        cells += [str(report["truncated"]), str(report["unparseable"])]
        table.add_row(*cells)
    usage = evaluation["usage"]
    table.caption = (
        f"tokens: {usage['prompt_tokens']} prompt, {usage['completion_tokens']} completion, "
        f"{usage['judge_tokens']} judge"
    )
    return table
