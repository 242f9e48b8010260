"""The questions of an evaluation, from its one source: inline prompts, an eval file, a dataset."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError
from app.kernel.files import stored_file_path
from app.kernel.models import DatasetPair, PreferencePair, Prompt
from app.schemas.batch import PromptIn
from app.schemas.evaluation import EvaluationCreate
from app.schemas.training_file import EvalLine
from app.services.datasets import get_dataset
from app.services.training_files import get_training_file
from app.services.uploads import parse_line


def evaluation_questions(
    session: Session, request: EvaluationCreate, *, project_id: str, settings: Settings
) -> tuple[list[PromptIn], str, str | None]:
    """The questions, and the source's kind and id (file, dataset; None for inline prompts)."""
    if request.file_id is not None:
        return (
            file_questions(session, request.file_id, project_id, settings),
            "file",
            request.file_id,
        )
    if request.dataset_id is not None:
        prompts = dataset_questions(session, request.dataset_id, project_id)
        return prompts, "dataset", request.dataset_id
    assert request.prompts is not None  # EvaluationCreate holds exactly one source
    check_inline_prompts(request.prompts)
    return request.prompts, "prompts", None


def check_inline_prompts(prompts: list[PromptIn]) -> None:
    """An evaluation samples its own answers, and reads a task name per question."""
    for position, prompt in enumerate(prompts):
        if prompt.answers is not None:
            raise InvalidInputError(
                f"prompts[{position}].answers: an evaluation samples its answers from the model; "
                "leave them out"
            )
        task = (prompt.metadata or {}).get("task")
        if task is not None and not isinstance(task, str):
            raise InvalidInputError(f"prompts[{position}].metadata.task: must be a string")


def file_questions(
    session: Session, file_id: str, project_id: str, settings: Settings
) -> list[PromptIn]:
    """The lines of an uploaded file of purpose eval (checked again: cheap, and exact)."""
    row = get_training_file(session, file_id, project_id=project_id)
    if row.purpose != "eval":
        raise InvalidInputError(
            f"file_id: file {file_id} has purpose {row.purpose!r}; an evaluation reads a file "
            "of purpose 'eval' (question, reference_answer, optional id and metadata.task)"
        )
    prompts: list[PromptIn] = []
    path = stored_file_path(settings.files_dir, file_id)
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            line = parse_line(raw, line_number, EvalLine)
            prompt = PromptIn(
                id=line.id,
                question=line.question,
                reference_answer=line.reference_answer,
                metadata=line.metadata,
            )
            prompt._line = line_number
            prompts.append(prompt)
    if not prompts:
        raise InvalidInputError(f"file_id: file {file_id} holds no questions")
    return prompts


def dataset_questions(session: Session, dataset_id: str, project_id: str) -> list[PromptIn]:
    """The distinct questions (question and reference answer) behind a dataset's pairs, in the
    order their first prompt was stored."""
    get_dataset(session, dataset_id, project_id=project_id)
    first_of_each = (
        select(
            Prompt.id,
            Prompt.custom_id,
            Prompt.question,
            Prompt.reference_answer,
            Prompt.prompt_metadata,
        )
        .join(PreferencePair, PreferencePair.prompt_id == Prompt.id)
        .join(DatasetPair, DatasetPair.pair_id == PreferencePair.id)
        .where(DatasetPair.dataset_id == dataset_id, Prompt.reference_answer.is_not(None))
        .ext(distinct_on(Prompt.question, Prompt.reference_answer))
        .order_by(Prompt.question, Prompt.reference_answer, Prompt.id)
        .subquery()
    )
    rows = session.execute(select(first_of_each).order_by(first_of_each.c.id)).all()
    if not rows:
        raise InvalidInputError(
            f"dataset_id: dataset {dataset_id} has no questions with a reference answer"
        )
    seen_ids: set[str] = set()
    prompts = []
    for row in rows:
        # Two batches may have used the same id for different questions: keep the first.
        custom_id = row.custom_id if row.custom_id not in seen_ids else None
        if custom_id is not None:
            seen_ids.add(custom_id)
        prompts.append(
            PromptIn(
                id=custom_id,
                question=row.question,
                reference_answer=row.reference_answer,
                metadata=row.prompt_metadata,
            )
        )
    return prompts
