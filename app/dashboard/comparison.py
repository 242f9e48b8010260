"""The evaluations comparison page's data: the project's completed evaluations, and for the
chosen ones the accuracy per task side by side (a table and a bar chart)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.dashboard.charts import BarChart, BarValue, bar_chart
from app.kernel.models import Batch, Evaluation
from app.kernel.models.statuses import BatchStatus
from app.schemas.evaluation import Score
from app.services.eval_report import evaluation_report

LISTED = 100
"""Completed evaluations offered for comparison, newest first."""
DEFAULT_CHOSEN = 6
"""With none chosen: the newest completed evaluation of up to this many models."""
OVERALL = "overall"


@dataclass(frozen=True)
class Column:
    evaluation: Evaluation
    label: str
    scores: dict[str, Score | None]
    """Accuracy per task, and OVERALL."""


@dataclass(frozen=True)
class Comparison:
    completed: list[Evaluation]
    chosen: list[Column]
    tasks: list[str]
    """OVERALL first, then the tasks by name."""
    chart: BarChart | None


def completed_evaluations(session: Session, project_id: str) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .join(Batch, Batch.id == Evaluation.batch_id)
            .where(Evaluation.project_id == project_id, Batch.status == BatchStatus.COMPLETED)
            .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
            .limit(LISTED)
        )
    )


def unfinished_evaluations(session: Session, project_id: str) -> list[tuple[Evaluation, str]]:
    """The project's evaluations that did not complete (running, waiting, failed, cancelled),
    newest first, with their status: where a running one can be cancelled."""
    return [
        (evaluation, status)
        for evaluation, status in session.execute(
            select(Evaluation, Batch.status)
            .join(Batch, Batch.id == Evaluation.batch_id)
            .where(Evaluation.project_id == project_id, Batch.status != BatchStatus.COMPLETED)
            .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
            .limit(LISTED)
        )
    ]


def latest_per_model(evaluations: list[Evaluation]) -> list[Evaluation]:
    """The newest of each model (the list is newest first), up to DEFAULT_CHOSEN models."""
    seen: dict[str, Evaluation] = {}
    for evaluation in evaluations:
        seen.setdefault(evaluation.model, evaluation)
    return list(seen.values())[:DEFAULT_CHOSEN]


def column(session: Session, evaluation: Evaluation, label: str) -> Column:
    report = evaluation_report(session, evaluation.batch_id, samples=evaluation.samples)
    scores = {task: scores.accuracy for task, scores in report.by_task.items()}
    return Column(evaluation, label, {OVERALL: report.overall.accuracy, **scores})


def labels(evaluations: list[Evaluation]) -> list[str]:
    """The model's name; with its evaluation's id where one model appears twice."""
    models = [evaluation.model for evaluation in evaluations]
    return [
        e.model if models.count(e.model) == 1 else f"{e.model} ({e.id[-6:]})" for e in evaluations
    ]


def as_bar(score: Score | None) -> BarValue | None:
    return None if score is None else (score.value, score.low, score.high)


def compare(session: Session, project_id: str, ids: list[str]) -> Comparison:
    """The chosen evaluations of the project (ids not among its completed ones are ignored);
    none chosen: the newest of each model."""
    completed = completed_evaluations(session, project_id)
    by_id = {evaluation.id: evaluation for evaluation in completed}
    picked = [by_id[i] for i in dict.fromkeys(ids) if i in by_id] or latest_per_model(completed)
    chosen = [column(session, e, label) for e, label in zip(picked, labels(picked), strict=True)]
    tasks = sorted({task for c in chosen for task in c.scores if task != OVERALL})
    tasks = [OVERALL, *tasks] if chosen else []
    chart = bar_chart(
        "Accuracy per task (95 % interval)",
        tasks,
        {c.label: {task: as_bar(c.scores.get(task)) for task in tasks} for c in chosen},
    )
    return Comparison(completed=completed, chosen=chosen, tasks=tasks, chart=chart)
