"""Reading prompts from an uploaded JSONL file, line by line, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from app.kernel.errors import InvalidInputError
from app.schemas.batch import PromptIn

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(error: ValidationError, prefix: str = "", whole: str = "body") -> str:
    """One line per problem: `field.path: message` (`whole` names a problem of the whole value)."""
    problems = []
    for item in error.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        path = path or whole
        problems.append(f"{path}: {item['msg']}" if path else item["msg"])
    return "; ".join(problems)


def parse_line(raw: bytes, line_number: int, model: type[ModelT]) -> ModelT:
    """One JSONL line as `model`; a problem raises naming the line number and the field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"file line {line_number}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"file line {line_number}: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInputError(
            f"file line {line_number}: {describe_validation_error(error, whole='')}"
        ) from None


def parse_prompt_lines(lines: Iterable[bytes]) -> list[PromptIn]:
    """Parse JSONL prompts; the first bad line raises with its line number and nothing is kept."""
    prompts = [
        parse_line(raw, line_number, PromptIn)
        for line_number, raw in enumerate(lines, start=1)
        if raw.strip()
    ]
    if not prompts:
        raise InvalidInputError("file: no prompts in the upload")
    return prompts
