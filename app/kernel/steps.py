"""An answer's reasoning steps as the service numbers them: pure text functions, shared by the
API (which checks gold step numbers against them) and the worker (which shows them to the judge).

Steps are `Step N:` labelled lines with the unlabelled lines (and numbered sub-lists) that follow
them; without labels, numbered items, else paragraphs, else lines. A line that declares the final
answer ("Answer: X", "… a premium. Answer: A") is never part of a step.
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
_STEP_WORD = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?(?:[*_]{1,2})?step[ \t]*\d", re.IGNORECASE)
_DECLARATION = re.compile(
    r"^(?:the\s+|my\s+|our\s+)?(?:final\s+|correct\s+|right\s+)?answer\s*[*_]*\s*(?:is\s*)?"
    r"[:：]\s*(?P<ans>.*)$",
    re.IGNORECASE | re.DOTALL,
)
# "… premium. Answer: A": a declaration that ends a paragraph, after a finished sentence.
_INLINE_DECLARATION = re.compile(
    r"(?<=[.!?)])\s+(?P<decl>[*_]*(?:the\s+)?(?:final\s+|correct\s+)?answer\s*[*_]*\s*"
    r"(?:is\s*)?[:：]\s*(?P<ans>.*))$",
    re.IGNORECASE | re.DOTALL,
)
# Hedged or negated, "the answer is …" is reasoning, not a final answer.
_HEDGE = (
    r"(?!\s*(?:likely|probably|possibly|perhaps|maybe|not|neither|either|between|somewhere|"
    r"unclear|one\s+of|among|in\s+the\s+range|close\s+to)\b)"
)
_ANSWER_IS = re.compile(
    r"(?:^|(?<=[.!?])\s+)[*_]*(?:(?:so|therefore|thus|hence|in conclusion)\s*,?\s+)?"
    r"(?:the|my|our)\s+(?:final\s+|correct\s+|right\s+)?answer\s+is\b" + _HEDGE + r"\s*:?\s*"
    r"(?P<ans>.*)$",
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
    """Character spans of the lines (or line ends) that declare a final answer (never a step)."""
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
    """Line spans and their kinds: "blank", "final", "marker" (starts a step) or "text". A
    line that ends in a declaration ("… a premium. Answer: A") gives two spans: text, "final"."""
    lines = _line_spans(answer)
    last = max((i for i, (s, e) in enumerate(lines) if e > s), default=-1)
    spans: list[tuple[int, int]] = []
    kinds: list[str] = []
    for i, (start, end) in enumerate(lines):
        line = answer[start:end]
        if start == end:
            spans.append((start, end))
            kinds.append("blank")
            continue
        if _is_final_line(line, is_last=i == last):
            spans.append((start, end))
            kinds.append("final")
            continue
        cut = _trailing_declaration(line, is_last=i == last)
        if cut is not None:
            text_end = start + len(line[:cut].rstrip())
            spans += [(start, text_end), (start + cut, end)]
            kinds += [_step_kind(line), "final"]
            continue
        spans.append((start, end))
        kinds.append(_step_kind(line))
    # Under "Step N:" labels a numbered list is a step's own sub-list; without them, its items
    # are the steps.
    item_kind = "text" if "marker" in kinds else "marker"
    return spans, [item_kind if kind == "item" else kind for kind in kinds]


def _step_kind(line: str) -> str:
    """ "marker" for a "Step N" label, "item" for a numbered-list label, else "text"."""
    if _STEP_WORD.match(line):
        return "marker"
    return "item" if _MARKER.match(line) else "text"


def _trailing_declaration(line: str, *, is_last: bool) -> int | None:
    """Where a declaration that ends the line starts ("… premium. Answer: A"; "… . So the
    answer is A" only on the last line), or None."""
    inline = _INLINE_DECLARATION.search(line)
    if inline is not None:
        return inline.start("decl")
    answer_is = _ANSWER_IS.search(line) if is_last else None
    if answer_is is not None and answer_is.start() > 0:
        return answer_is.start() + len(answer_is[0]) - len(answer_is[0].lstrip())
    return None


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


def max_correction_chars(wrong_step: str) -> int:
    """The longest correction accepted for a wrong step.

    A correction may add what the step missed, so it may well be longer than the step; one
    several times longer is the judge rewriting the rest of the solution, which is not one step
    and would pair a whole solution against a single step.
    """
    return 3 * len(wrong_step) + 300
