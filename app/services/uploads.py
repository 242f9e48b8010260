"""Reading prompts from an uploaded file (JSONL, CSV or Parquet), row by row, all or nothing."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from app.kernel.errors import InvalidInputError
from app.schemas.batch import PromptIn
from app.services.table_rows import Rows, TableFormat, json_object, row_reader

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(
    error: ValidationError,
    prefix: str = "",
    whole: str = "body",
    model: type[BaseModel] | None = None,
) -> str:
    """One line per problem: `field.path: message` (`whole` names a problem of the whole value);
    an unknown field of `model` gets the closest known name."""
    problems = []
    for item in error.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        path = path or whole
        message = item["msg"] + unknown_field_hint(item, model)
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(problems)


def unknown_field_hint(item: Mapping[str, Any], model: Any) -> str:
    """` (did you mean 'learning_rate'?)` for a misspelt field of `model`, else nothing."""
    loc = tuple(item["loc"])
    if item["type"] != "extra_forbidden" or model is None or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), field_names_at(model, loc[:-1]), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def field_names_at(annotation: Any, path: Sequence[str | int]) -> list[str]:
    """The fields of the model that `path` leads to inside `annotation`, through nested models,
    lists, dicts and optional values; [] where it leads to no model."""
    for part in path:
        annotation = next(
            (inner for option in type_options(annotation) if (inner := step(option, part))),
            None,
        )
        if annotation is None:
            return []
    models = [option for option in type_options(annotation) if is_model(option)]
    return list(models[0].model_fields) if models else []


def type_options(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may have: a union's members, Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_options(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [member for arg in get_args(annotation) for member in type_options(arg)]
    return [annotation]


def step(annotation: Any, part: str | int) -> Any:
    """The type of `annotation`'s field or item named `part`, or None."""
    if is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and isinstance(part, str) and len(args) == 2:
        return args[1]
    return None


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def parse_line(raw: bytes, line_number: int, model: type[ModelT]) -> ModelT:
    """One JSONL line as `model`; a problem raises naming the line number and the field."""
    place = f"file line {line_number}"
    return validate_row(json_object(raw, place), place, model)


def validate_row(data: dict[str, Any], place: str, model: type[ModelT]) -> ModelT:
    """One row's fields as `model`; a problem raises naming the row's place and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInputError(
            f"{place}: {describe_validation_error(error, whole='', model=model)}"
        ) from None


class PromptLines:
    """Prompts parsed from an upload (JSONL, CSV or Parquet, with a column mapping) fed in
    pieces of any size: each row is checked as it arrives, so the first bad row, or the first
    prompt past `max_prompts`, is refused before the rest of the upload is read (a Parquet
    file: once it is in, from its index, before a row is read)."""

    def __init__(
        self,
        *,
        max_prompts: int,
        table: TableFormat = "jsonl",
        columns: Mapping[str, str] | None = None,
    ) -> None:
        self.max_prompts = max_prompts
        self.prompts: list[PromptIn] = []
        rows = Rows(columns or {}, list(PromptIn.model_fields), self.add_row)
        self.reader = row_reader(
            table, rows, before_row=self.check_room, max_rows=max_prompts, unit="prompts"
        )

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def check_room(self, place: str) -> None:
        if len(self.prompts) == self.max_prompts:
            raise InvalidInputError(
                f"prompts: at most {self.max_prompts} per batch; the file has more "
                f"({place.removeprefix('file ')} holds prompt {self.max_prompts + 1})"
            )

    def add_row(self, data: dict[str, Any], place: str) -> None:
        prompt = validate_row(data, place, PromptIn)
        unit, number = place.removeprefix("file ").split(" ")
        prompt._line, prompt._unit = int(number), unit  # later checks name the row too
        self.prompts.append(prompt)

    def finish(self) -> list[PromptIn]:
        """The prompts, once the whole file has been fed; an empty file raises."""
        self.reader.finish()
        if not self.prompts:
            raise InvalidInputError("file: no prompts in the upload")
        return self.prompts
