"""Reading prompts from an uploaded JSONL file, line by line, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from app.core.errors import InvalidInputError
from app.schemas.batch import PromptIn


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem: `field.path: message`."""
    problems = []
    for item in error.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        problems.append(f"{path or 'body'}: {item['msg']}")
    return "; ".join(problems)


def parse_prompt_lines(lines: Iterable[bytes]) -> list[PromptIn]:
    """Parse JSONL prompts; the first bad line raises with its line number and nothing is kept."""
    prompts: list[PromptIn] = []
    for line_number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidInputError(f"file line {line_number}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"file line {line_number}: expected a JSON object")
        try:
            prompts.append(PromptIn.model_validate(data))
        except ValidationError as error:
            raise InvalidInputError(
                f"file line {line_number}: {describe_validation_error(error)}"
            ) from None
    if not prompts:
        raise InvalidInputError("file: no prompts in the upload")
    return prompts
