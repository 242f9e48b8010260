"""An answer's reasoning steps as the service numbers them: pure text functions, shared by the
API (which checks gold step numbers against them) and the worker (which shows them to the judge).

Steps are `Step N:` / `N.` labelled lines with the unlabelled lines that follow them, else
paragraphs, else lines; the final-answer line ("Answer: X") is never a step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One reasoning step of an answer; ``text == answer[start:end]``."""

    number: int
    text: str
    start: int
    end: int


_MARKER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:[*_]{1,2})?"
    r"(?:step[ \t]*\d+[ \t]*(?:[*_]{1,2})?[ \t]*(?:[:.)\-–—]|$)|\d{1,2}[.)](?=\s|$))"
    r"(?:[ \t]*[*_]{1,2})?[ \t]*",
    re.IGNORECASE,
)
_DECLARATION = re.compile(
    r"^(?:the\s+)?(?:final\s+answer|answer)\s*[*_]*\s*(?:is\s*)?[:：]\s*(?P<ans>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_ANSWER_IS = re.compile(
    r"(?:^|(?<=[.!?])\s+)[*_]*(?:(?:so|therefore|thus|hence|in conclusion)\s*,?\s+)?"
    r"the\s+(?:final\s+|correct\s+|right\s+)?answer\s+is\b\s*:?\s*(?P<ans>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_BOXED_LINE = re.compile(r"^(?:\$\$?|\\\[|\\\()?\s*\\boxed\s*\{")


def split_step_marker(text: str) -> tuple[str, str]:
    """Split a step into its leading label ("Step 3: ", "2. ") and its body."""
    match = _MARKER.match(text)
    if match is None:
        return "", text
    return text[: match.end()], text[match.end() :]


def segment_steps(answer: str) -> list[Step]:
    """Split an answer into its reasoning steps, numbered 1..n, without the final-answer line."""
    spans, kinds = _classify_lines(answer)
    split = _marked_ranges if "marker" in kinds else _unmarked_ranges
    ranges = split(spans, kinds)
    return [Step(n, answer[s:e], s, e) for n, (s, e) in enumerate(ranges, start=1)]


def final_answer_spans(answer: str) -> list[tuple[int, int]]:
    """Character spans of the lines that declare a final answer (never part of a step)."""
    spans, kinds = _classify_lines(answer)
    return [span for span, kind in zip(spans, kinds, strict=True) if kind == "final"]


def _line_spans(text: str) -> list[tuple[int, int]]:
    """Span of each line's whitespace-stripped content; blank lines give start == end."""
    spans = []
    position = 0
    for raw in text.split("\n"):
        start = position + len(raw) - len(raw.lstrip())
        spans.append((start, start + len(raw.strip())))
        position += len(raw) + 1
    return spans


def _classify_lines(answer: str) -> tuple[list[tuple[int, int]], list[str]]:
    """Line spans and their kinds: "blank", "final", "marker" or "text"."""
    spans = _line_spans(answer)
    last = max((i for i, (s, e) in enumerate(spans) if e > s), default=-1)
    kinds = []
    for i, (start, end) in enumerate(spans):
        line = answer[start:end]
        if start == end:
            kinds.append("blank")
        elif _is_final_line(line, is_last=i == last):
            kinds.append("final")
        elif _MARKER.match(line):
            kinds.append("marker")
        else:
            kinds.append("text")
    return spans, kinds


def _body(line: str) -> str:
    """A line without its step label and leading markdown."""
    return split_step_marker(line)[1].lstrip(" \t>#*_-")


def _is_final_line(line: str, *, is_last: bool) -> bool:
    """Whether a line declares the final answer ("The answer is X" only as the last line)."""
    body = _body(line)
    if _DECLARATION.match(body):
        return True
    if not is_last:
        return False
    answer_is = _ANSWER_IS.search(body)
    return bool((answer_is and answer_is.start() == 0) or _BOXED_LINE.match(body))


def _marked_ranges(spans: list[tuple[int, int]], kinds: list[str]) -> list[tuple[int, int]]:
    """Steps when labels exist: a label starts a step, unlabelled lines continue it."""
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for (start, end), kind in zip(spans, kinds, strict=True):
        if kind in ("marker", "final") and current is not None:
            ranges.append(current)
            current = None
        if kind == "marker":
            current = (start, end)
        elif kind == "text" and current is not None:
            current = (current[0], end)
    if current is not None:
        ranges.append(current)
    return ranges


def _unmarked_ranges(spans: list[tuple[int, int]], kinds: list[str]) -> list[tuple[int, int]]:
    """Steps without labels: paragraphs when there are several, else single lines."""
    paragraphs: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    for span, kind in zip(spans, kinds, strict=True):
        if kind == "text":
            current.append(span)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    if len(paragraphs) > 1:
        return [(lines[0][0], lines[-1][1]) for lines in paragraphs]
    return [span for lines in paragraphs for span in lines]
