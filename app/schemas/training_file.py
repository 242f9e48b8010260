"""API shapes of training files, and the line formats each purpose accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kernel.json_values import unstorable_part
from app.schemas.page import ListPage

FilePurpose = Literal["cpt", "sft", "preference", "eval"]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class LineModel(BaseModel):
    model_config = ConfigDict(extra="ignore")  # ids, sources and other metadata may ride along

    @model_validator(mode="before")
    @classmethod
    def _strict_json(cls, line: Any) -> Any:
        # The whole line, what rides along too: the trainer and other readers of the file
        # expect JSON, which has no NaN or Infinity, and text without NUL characters.
        problem = unstorable_part(line)
        if problem is not None:
            raise ValueError(problem)
        return line


class CptLine(LineModel):
    """Continual pretraining: raw domain text."""

    text: str = Field(min_length=1)


class SftLine(LineModel):
    """Instruction tuning: a conversation with an assistant turn, or a prompt and completion."""

    messages: list[Message] | None = None
    prompt: str | None = None
    completion: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> SftLine:
        if self.messages is not None:
            if not any(m.role == "assistant" for m in self.messages):
                raise ValueError("messages: needs at least one assistant message to train on")
        elif self.prompt is None or self.completion is None:
            raise ValueError('expected "messages", or "prompt" and "completion"')
        return self


class PreferenceLine(LineModel):
    """DPO: a prompt with a chosen and a rejected answer, as text or as messages."""

    prompt: str | list[Message]
    chosen: str | list[Message]
    rejected: str | list[Message]


class EvalLine(LineModel):
    """Evaluation: a question with the reference answer a model's answer is checked against,
    optionally its id and `metadata.task` (accuracy is reported per task)."""

    id: str | None = Field(default=None, max_length=256)
    question: str = Field(min_length=1, max_length=100_000)
    reference_answer: str = Field(min_length=1, max_length=100_000)
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _task_is_text(self) -> EvalLine:
        task = (self.metadata or {}).get("task")
        if task is not None and not isinstance(task, str):
            raise ValueError("metadata.task: must be a string")
        return self


LINE_MODELS: dict[str, type[LineModel]] = {
    "cpt": CptLine,
    "sft": SftLine,
    "preference": PreferenceLine,
    "eval": EvalLine,
}


class EvalOverlap(BaseModel):
    """How an eval file overlapped the project's datasets when it was uploaded."""

    ngram_size: int = Field(description="Words per n-gram (13).")
    datasets_checked: int = Field(description="The project's datasets at upload.")
    pairs_checked: int = Field(description="Distinct pairs in those datasets.")
    pairs_matching: int = Field(
        description="Pairs sharing an n-gram or a whole normalised question with the file."
    )
    questions_matching: int = Field(description="Questions of the file some pair matched.")


class TrainingFileOut(BaseModel):
    id: str
    object: Literal["file"] = "file"
    purpose: str
    filename: str
    bytes: int
    lines: int
    sha256: str
    overlap: EvalOverlap | None = Field(
        default=None, description="Purpose `eval` only: overlap with the project's datasets."
    )
    created_at: datetime


class TrainingFileList(ListPage):
    data: list[TrainingFileOut]
    first_id: str | None
    last_id: str | None


class TrainingFileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
