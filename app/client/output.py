"""What the client prints: errors as one line on stderr, batches, jobs, datasets and models as
tables on stdout."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
UNBOUNDED = 100_000
"""A width no table reaches: measuring with it gives a table's natural width."""
err = Console(stderr=True, highlight=False, soft_wrap=True)


def show_error(message: str) -> None:
    """`error: <message>` on one line of stderr, never wrapped, never read as markup."""
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def show_warning(message: str) -> None:
    """`warning: <message>` on one line of stderr."""
    err.print(Text("warning: ", style="bold yellow") + Text(message), soft_wrap=True)


def show(table: Table) -> None:
    """A table on stdout; off a terminal (a pipe, a CI log) at its full width, so that ids and
    values are never cut or folded into two lines."""
    if out.is_terminal:
        out.print(table)
        return
    natural = out.measure(table, options=out.options.update_width(UNBOUNDED)).maximum
    # A console of that width: print(width=…) is capped at the console's own.
    Console(file=out.file, width=max(out.width, natural), highlight=False).print(table)


def when(stamp: str | None) -> str:
    """An API timestamp to the second, without its timezone noise."""
    return stamp[:19].replace("T", " ") if stamp else ""


def number(value: float | None) -> str | None:
    """A loss or metric to four decimals."""
    return None if value is None else f"{value:.4f}"


def fields_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    """Two columns, name and value; rows whose value is None or empty are left out."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for name, value in rows:
        if value not in (None, "", [], {}):
            table.add_row(name, str(value))
    return table


def batch_table(batch: dict[str, Any]) -> Table:
    """Status, progress, verdicts, pairs and tokens of a batch."""
    requests, chunks = batch["request_counts"], batch["chunk_counts"]
    fap, scp = batch["verdict_counts"]["fap"], batch["verdict_counts"]["scp"]
    pairs, dropped = batch["pair_counts"], batch["pairs_dropped"]
    return fields_table(
        f"batch {batch['id']}",
        [
            ("status", batch["status"]),
            ("policy", f"{batch['policy']['model']} ({batch['policy']['engine']})"),
            ("judge", f"{batch['judge']['model']} ({batch['judge']['engine']})"),
            (
                "prompts",
                f"{requests['completed']}/{requests['total']} done, {requests['failed']} failed",
            ),
            ("chunks", f"{chunks_done(batch)}/{chunks['total']} done, {chunks['failed']} failed"),
            ("samples", batch["sample_count"]),
            ("fap verdicts", ", ".join(f"{count} {name}" for name, count in fap.items())),
            ("scp verdicts", ", ".join(f"{count} {name}" for name, count in scp.items())),
            ("pairs", f"{pairs['total']} (fap {pairs['fap']}, scp {pairs['scp']})"),
            ("pairs dropped", ", ".join(f"{n} {why}" for why, n in dropped.items() if n)),
            ("tokens", batch["usage"].get("total_tokens", 0)),
            ("created", when(batch["created_at"])),
            ("ended", when(batch["completed_at"] or batch["failed_at"] or batch["cancelled_at"])),
            ("error", batch["error"]),
            ("notes", "\n".join(batch["notes"])),
        ],
    )


def chunks_done(batch: dict[str, Any]) -> int:
    """Chunks that will not run again: succeeded, failed or cancelled."""
    chunks = batch["chunk_counts"]
    return int(chunks["succeeded"] + chunks["failed"] + chunks["cancelled"])


def job_table(job: dict[str, Any]) -> Table:
    """Status, data, settings, last checkpoint and result of a training job."""
    hp = job["hyperparameters"]
    length = f"{hp['max_steps']} steps" if hp.get("max_steps") else f"{hp['epochs']} epochs"
    checkpoint = job["last_checkpoint"]
    result = job["result"] or {}
    return fields_table(
        f"training job {job['id']}",
        [
            ("status", job["status"] + (" (cancel requested)" if job["cancel_requested"] else "")),
            ("method", job["method"]),
            ("base model", job["base_model"]),
            ("output model", job["output_model"]),
            ("datasets", ", ".join(job["data"].get("datasets", []))),
            ("files", ", ".join(job["data"].get("files", []))),
            ("training", f"{length}, batch {hp['batch_size']}, lr {hp['learning_rate']:g}"),
            ("lora", job["lora"] and f"r {job['lora']['r']}, alpha {job['lora']['alpha']}"),
            ("progress", None if job["status"] == "succeeded" else progress_text(job)),
            (
                "last checkpoint",
                checkpoint and f"step {checkpoint['step']} (loss {number(checkpoint['loss'])})",
            ),
            ("steps", result.get("steps")),
            ("train loss", number(result.get("train_loss"))),
            ("weights changed", yes_no(result.get("weights_changed"))),
            ("created", when(job["created_at"])),
            ("started", when(job["started_at"])),
            ("finished", when(job["finished_at"])),
            ("error", job["error"]),
        ],
    )


def yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def progress_text(job: dict[str, Any]) -> str | None:
    """`step 12/20, loss 0.6931` once the trainer has counted its steps."""
    progress = job.get("progress")
    if not progress:
        return None
    step = f"step {progress['step'] or 0}/{progress['total_steps']}"
    return step if progress["loss"] is None else f"{step}, loss {number(progress['loss'])}"


def dataset_table(dataset: dict[str, Any]) -> Table:
    """One dataset: name, version, its pairs and where they came from."""
    counts = dataset["counts"]
    return fields_table(
        f"dataset {dataset['id']}",
        [
            ("name", f"{dataset['name']} v{dataset['version']}"),
            ("pairs", f"{counts['total']} (fap {counts['fap']}, scp {counts['scp']})"),
            ("filtered out", counts.get("filtered_out")),
            ("eval overlap", contamination_summary(dataset.get("contamination"))),
            ("batches", ", ".join(dataset["selection"].get("batch_ids", []))),
            ("created", when(dataset["created_at"])),
        ],
    )


def contamination_summary(found: dict[str, Any] | None) -> str | None:
    """`4 of 12 pairs match 2 eval questions (13-gram 0, same question 4); 4 dropped`."""
    if not found:
        return None
    return (
        f"{found['pairs_flagged']} of {found['pairs_checked']} pairs match "
        f"{found['questions_matching']} eval questions ({found['ngram_size']}-gram "
        f"{found['ngram']}, same question {found['exact_question']}); "
        f"{found['pairs_dropped']} dropped"
    )


def datasets_table(datasets: list[dict[str, Any]]) -> Table:
    """Datasets, one per row."""
    table = Table(Column("id", no_wrap=True), "name", "version", "pairs", "fap", "scp", "created")
    for dataset in datasets:
        counts = dataset["counts"]
        table.add_row(
            dataset["id"],
            dataset["name"],
            str(dataset["version"]),
            str(counts["total"]),
            str(counts["fap"]),
            str(counts["scp"]),
            when(dataset["created_at"]),
        )
    return table


def models_table(models: list[dict[str, Any]]) -> Table:
    """Models, one per row: registered, configured, then the project's trained ones."""
    table = Table(
        Column("id", no_wrap=True), "source", "method", "base model", "path or description"
    )
    for model in models:
        table.add_row(
            model["id"],
            model["source"],
            model["method"] or "",
            model["base_model"] or "",
            model["path"] or model["description"] or "",
        )
    return table
