"""Pure helpers over a sampled answer: its reasoning steps, its final answers, answer equality.

Answer matching rules (``answers_match``):

* Multiple-choice: a letter A-J written as ``B``, ``(b)``, ``B.``, ``B)``, ``Option B``, or with
  its text, ``B. 4.5%`` / ``(B) 4.5%``. When both sides name a letter, the letters decide.
  When only one side does, the text after the letter is compared with the other side.
* Numbers: ``$1,234.50``, ``-3``, ``12.5%`` are compared by the value *as written*, with
  currency and percent signs dropped, within a relative tolerance (default 0.1%) or when the
  candidate rounds to a reference given with fewer decimals (``4.52`` matches ``4.5``):
  ``12.5%`` matches ``12.5``, but ``0.125`` does not match ``12.5%``.
* Anything else: equal after case folding, dropping punctuation (except inside numbers) and
  collapsing whitespace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# The segmentation lives in the kernel (the API checks gold step numbers with it); these names
# stay importable from here.
from app.kernel.steps import (  # noqa: F401
    _ANSWER_IS,
    _DECLARATION,
    Step,
    _body,
    _line_spans,
    final_answer_spans,
    segment_steps,
    split_step_marker,
)


@dataclass(frozen=True)
class _Choice:
    """An answer split into its multiple-choice letter (if any) and the remaining value text."""

    letter: str | None
    value: str


_BOXED = re.compile(r"\\boxed\s*\{")
_LATEX_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|textrm|mathrm|mathbf)\s*\{")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|,\s|;|\s(?:because|since|as|which)\s", re.IGNORECASE)
_PAREN_LETTER = re.compile(r"^\(([A-J])\)\s*[.:\-–]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_OPTION_LETTER = re.compile(
    r"^(?:option|choice)\s+\(?([A-J])\)?(?:\s*[.:)\-–]\s*|\s+|$)(.*)$", re.IGNORECASE | re.DOTALL
)
_BARE_LETTER = re.compile(r"^([A-J])(?:[.:)]\s*(.*))?$", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(
    r"^(?P<s1>[-+−])?\s*(?:us\$|usd|eur|gbp|[$€£¥])?\s*(?P<s2>[-+−])?\s*"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)\s*(?:%|percent)?$",
    re.IGNORECASE,
)
_PUNCTUATION = re.compile(r"(?<!\d)[^\w\s]|[^\w\s](?!\d)|_")
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ('"', '"'), ("'", "'"))


def extract_final_answers(answer: str) -> list[str]:
    """Every final answer the text declares, cleaned, in order of appearance."""
    declarations = _declarations(answer)
    found = [(start, value) for start, _, value in declarations]
    for position, inner in _boxed_values(answer):
        if not any(start <= position < end for start, end, _ in declarations):
            found.append((position, inner))
    cleaned = (_clean(value) for _, value in sorted(found, key=lambda item: item[0]))
    return [value for value in cleaned if value]


def normalize_answer(text: str) -> str:
    """Canonical form of an answer: a choice letter, a plain number, or normalized text."""
    choice = _parse_choice(text)
    if choice.letter is not None:
        return choice.letter
    number = _parse_number(choice.value)
    if number is not None:
        return _format_number(number)
    return _normalize_text(choice.value)


def answers_match(candidate: str, reference: str, *, rel_tol: float = 1e-3) -> bool:
    """Whether a candidate final answer agrees with the reference answer (see module doc)."""
    cand, ref = _parse_choice(candidate), _parse_choice(reference)
    if cand.letter is not None and ref.letter is not None:
        return cand.letter == ref.letter
    return _values_match(cand.value, ref.value, rel_tol)


def _declared_value(line: str) -> tuple[int, str] | None:
    """Offset in the line and raw value of a final-answer declaration, if the line has one."""
    body = _body(line)
    offset = len(line) - len(body)
    declaration = _DECLARATION.match(body)
    if declaration is not None:
        value = declaration["ans"]
        nested = _ANSWER_IS.match(_body(value))
        return offset, _cut_sentence(nested["ans"]) if nested else value
    answer_is = _ANSWER_IS.search(body)
    if answer_is is not None:
        return offset + answer_is.start(), _cut_sentence(answer_is["ans"])
    return None


def _declarations(answer: str) -> list[tuple[int, int, str]]:
    """Span and raw value of each "Answer: X" / "the answer is X" declaration, line by line."""
    found = []
    spans = _line_spans(answer)
    index = 0
    while index < len(spans):
        start, end = spans[index]
        declared = _declared_value(answer[start:end])
        index += 1
        if declared is None:
            continue
        offset, value = declared
        if not value.strip():  # "Answer:" alone: the answer is on the next non-blank line
            index = _next_nonblank(spans, index)
            if index < len(spans):
                value, end = answer[spans[index][0] : spans[index][1]], spans[index][1]
                index += 1
        found.append((start + offset, end, value))
    return found


def _next_nonblank(spans: list[tuple[int, int]], index: int) -> int:
    """Index of the first non-blank line at or after index (len(spans) if none)."""
    while index < len(spans) and spans[index][0] == spans[index][1]:
        index += 1
    return index


def _cut_sentence(value: str) -> str:
    """The answer part of "the answer is X. Because ..." (up to the end of the sentence)."""
    end = _SENTENCE_END.search(value)
    return value[: end.start()] if end else value


def _closing_brace(text: str, opening: int, pair: str = "{}") -> int:
    """Index of the bracket closing the one at ``opening``, or -1 if unbalanced."""
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == pair[0]:
            depth += 1
        elif text[index] == pair[1]:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _boxed_values(text: str) -> list[tuple[int, str]]:
    """Position and content of every balanced \\boxed{...}."""
    values = []
    for match in _BOXED.finditer(text):
        close = _closing_brace(text, match.end() - 1)
        if close != -1:
            values.append((match.start(), text[match.end() : close]))
    return values


def _unwrap_latex(text: str) -> str:
    """Replace \\boxed{x}, \\text{x} and similar by x; unescape \\% and \\$."""
    match = _LATEX_WRAPPERS.search(text)
    while match is not None:
        close = _closing_brace(text, match.end() - 1)
        if close == -1:
            break
        text = text[: match.start()] + text[match.end() : close] + text[close + 1 :]
        match = _LATEX_WRAPPERS.search(text)
    return text.replace("\\%", "%").replace("\\$", "$").replace("\\,", "")


def _strip_wrappers(text: str) -> str:
    """Remove one layer of surrounding $...$, quotes or parentheses."""
    for opening, closing in _WRAPPERS:
        wrapped = text.startswith(opening) and text.endswith(closing)
        if wrapped and len(text) > len(opening) + len(closing):
            return text[len(opening) : len(text) - len(closing)]
    if text.startswith("(") and _closing_brace(text, 0, "()") == len(text) - 1:
        return text[1:-1]
    return text


def _clean(value: str) -> str:
    """An extracted answer without markdown, LaTeX wrappers, trailing period or parentheses."""
    text = _unwrap_latex(value).replace("**", "").replace("__", "").replace("`", "")
    previous = None
    while text != previous:
        previous = text
        text = _strip_wrappers(text.strip().rstrip(".").strip().strip("*").strip())
    return text


def _parse_choice(text: str) -> _Choice:
    """Split an answer into a multiple-choice letter and the text that follows it."""
    cleaned = _clean(text)
    for pattern in (_PAREN_LETTER, _OPTION_LETTER, _BARE_LETTER):
        match = pattern.match(cleaned)
        if match is not None:
            return _Choice(match[1].upper(), _clean(match[2] or ""))
    return _Choice(None, cleaned)


def _parse_number(text: str) -> Decimal | None:
    """The value of a plain number ("$1,234.5", "-3", "12.5%"), or None."""
    match = _NUMBER.match(text.strip())
    if match is None:
        return None
    try:
        value = Decimal(match["digits"].replace(",", ""))
    except InvalidOperation:
        return None
    negative = any(sign in ("-", "−") for sign in (match["s1"], match["s2"]))
    return -value if negative else value


def _format_number(value: Decimal) -> str:
    """A number without trailing zeros or exponent: 1234.50 -> "1234.5"."""
    text = f"{value.normalize():f}"
    return "0" if text == "-0" else text


def _normalize_text(text: str) -> str:
    """Case-folded text with punctuation (outside numbers) dropped and whitespace collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def rounds_to(candidate: Decimal, reference: Decimal) -> bool:
    """A more precise candidate matches a reference given to fewer decimals (4.52 vs 4.5)."""
    exponent = reference.as_tuple().exponent
    if not isinstance(exponent, int) or candidate.as_tuple().exponent >= exponent:  # type: ignore[operator]
        return False
    return candidate.quantize(Decimal(1).scaleb(exponent)) == reference


def _values_match(candidate: str, reference: str, rel_tol: float) -> bool:
    """Compare two answer values as numbers when both are numbers, else as normalized text."""
    cand_number, ref_number = _parse_number(candidate), _parse_number(reference)
    if cand_number is not None and ref_number is not None:
        return math.isclose(float(cand_number), float(ref_number), rel_tol=rel_tol) or rounds_to(
            cand_number, ref_number
        )
    cand_text = _normalize_text(candidate)
    return bool(cand_text) and cand_text == _normalize_text(reference)
