"""Pure helpers over a sampled answer: its reasoning steps, its final answers, answer equality.

Final answers (``extract_final_answers``) are declared by an ``Answer: X`` line (also ``Final
answer:``, ``Correct answer:``, or ``… . Answer: X`` ending a paragraph), by ``the answer is X``
at the start of a sentence (not when hedged: ``the answer is likely between …``, ``… is not A``),
or by ``\\boxed{X}``. An explanation after the value (``B, because …``, ``C - at a premium``) is
not part of it.

Answer matching rules (``answers_match``):

* Multiple-choice: a letter A-J written as ``B``, ``(b)``, ``B.``, ``B)``, ``Option B``, or with
  its text, ``B. 4.5%`` / ``(B) 4.5%``. When both sides name a letter, the letters decide.
  When only one side does, the text after the letter is compared with the other side.
* Numbers: ``$1,234.50``, ``-3``, ``12.5%``, ``(1,234)`` (an accounting negative; a bare ``(2)``
  reads as an item number), ``USD 2,000``,
  ``about 4.5%`` are compared by the value *as written*, with currency and percent signs dropped
  (``50 bps`` is ``0.5``), within a relative tolerance (default 0.1%) or when the candidate
  rounds (half up) to a reference given with decimals (``4.52`` and ``4.45`` match ``4.5``; an
  integer reference is exact: ``2.4`` does not match ``2``). ``12.5%`` matches ``12.5``, but
  ``0.125`` does not match ``12.5%``. A unit after the number (``per share``, ``years``, ``x``)
  must agree when both sides have one; ``million`` / ``bn`` scale the value, and a side without
  a scale may also match the bare number (a table "in millions"). Ranges (``4%-5%``, ``3 to 5
  years``, ``between 4% and 5%``) match ranges with the same ends, never a single number.
* Anything else: equal after case folding, dropping punctuation (except inside numbers) and
  collapsing whitespace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# The segmentation lives in the kernel (the API checks gold step numbers with it); these names
# stay importable from here.
from app.kernel.steps import (  # noqa: F401
    _ANSWER_IS,
    _DECLARATION,
    _INLINE_DECLARATION,
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


@dataclass(frozen=True)
class _Quantity:
    """A number, or a range of two, as written, with its scale (10**scale) and unit."""

    low: Decimal
    high: Decimal | None
    scale: int
    unit: str


_BOXED = re.compile(r"\\boxed\s*\{")
_LATEX_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|textrm|mathrm|mathbf)\s*\{")
# Where the value of a declaration ends and its explanation starts.
# A comma only before a lower-case word: "A, C" names two options; "U.S. bonds" is one value.
_EXPLANATION = re.compile(
    r"(?i:,?\s+(?:because|since|as|which|due\s+to|given\s+that)\b)|[,;]\s+(?=[a-z]{2})"
    r"|(?<!\.[A-Z])\.\s+(?=[A-Z])|\s+[-–—]\s+(?![-+−$€£¥]?\d)"
)
_LETTER_IS_CORRECT = re.compile(
    r"^[*_]*(?:option\s+|choice\s+)?\(?([A-J])\)?[*_]*\s+is\s+(?:the\s+)?(?:correct|right)\b",
    re.IGNORECASE,
)
_PAREN_LETTER = re.compile(r"^\(([A-J])\)\s*[.:\-–]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_OPTION_LETTER = re.compile(
    r"^(?:option|choice)\s+\(?([A-J])\)?(?:\s*[.:)\-–]\s*|\s+|$)(.*)$", re.IGNORECASE | re.DOTALL
)
_BARE_LETTER = re.compile(r"^([A-J])(?:[.:)]\s*(.*))?$", re.IGNORECASE | re.DOTALL)
_CURRENCY = r"(?:us\$|usd|eur|gbp|jpy|chf|cad|aud|inr|rs\.?|[$€£¥₹])"
_POINT = re.compile(
    r"^(?:(?:approximately|approx\.?|about|around|roughly|circa|~|≈|\\approx|\\sim)\s*)?"
    r"(?P<s1>[-+−])?\s*" + _CURRENCY + r"?\s*(?P<s2>[-+−])?\s*"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)"
    r"\s*(?:(?P<bps>bps|basis\s+points?)\b|%|percent(?:age\s+points?)?\b|pct\b)?"
    r"\s*(?:(?P<scale>thousands?|k|millions?|mn|mm|m|billions?|bn|b|trillions?|tn)\b)?"
    r"(?P<unit>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_RANGE = re.compile(
    r"^(?:between|from)?\s*(?P<low>.+?)(?:\s*(?:\bto\b|\band\b|[–—])\s*|(?<=[\d%])\s*-\s*)"
    r"(?P<high>\S.*)$",
    re.IGNORECASE | re.DOTALL,
)
# (1,234) is an accounting negative; a bare (2) reads as an item number and stays positive.
_ACCOUNTING_NEGATIVE = re.compile(
    r"^\((?P<amount>\s*" + _CURRENCY + r"?\s*(?!\d{1,2}\s*\))[\d.,]+\s*%?\s*)\)$"
)
_SCALES = {"k": 3, "thousand": 3, "m": 6, "mm": 6, "mn": 6, "million": 6, "b": 9, "bn": 9}
_SCALES |= {"billion": 9, "tn": 12, "trillion": 12}
_UNIT_WORDS = {"yr": "years", "yrs": "years", "year": "years", "x": "times", "time": "times"}
_UNIT_WORDS |= {"mo": "months", "mos": "months", "month": "months", "day": "days"}
_CURRENCY_WORDS = {"usd", "eur", "gbp", "jpy", "dollar", "dollars", "euro", "euros", "pounds"}
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


def distinct_answers(answers: list[str]) -> list[str]:
    """Answers with later equivalents (same normalized form) removed, order kept."""
    seen: dict[str, str] = {}
    for answer in answers:
        seen.setdefault(normalize_answer(answer), answer)
    return list(seen.values())


def reference_final_answer(reference: str) -> str:
    """The final answer a reference states: its one declared answer ("Correct answer: C"), a
    leading "C is correct. …", else its first line (the rest explains it)."""
    finals = distinct_answers(extract_final_answers(reference))
    if len(finals) == 1:
        return finals[0]
    text = reference.strip()
    if finals:  # several different declared answers: nothing better than the whole reference
        return text
    letter = _LETTER_IS_CORRECT.match(text)
    if letter is not None:
        return letter[1].upper()
    return text.split("\n", 1)[0].strip()


def normalize_answer(text: str) -> str:
    """Canonical form of an answer: a choice letter, a plain number, or normalized text."""
    choice = parse_choice(text)
    if choice.letter is not None:
        return choice.letter
    quantity = parse_quantity(choice.value)
    if quantity is not None:
        return _format_quantity(quantity)
    return _normalize_text(choice.value)


def answers_match(candidate: str, reference: str, *, rel_tol: float = 1e-3) -> bool:
    """Whether a candidate final answer agrees with the reference answer (see module doc)."""
    cand, ref = parse_choice(candidate), parse_choice(reference)
    if cand.letter is not None and ref.letter is not None:
        return cand.letter == ref.letter
    return _values_match(cand.value, ref.value, rel_tol)


def _declared_values(line: str) -> list[tuple[int, str]]:
    """Offset in the line and raw value of each final-answer declaration the line makes."""
    body = _body(line)
    offset = len(line) - len(body)
    declaration = _DECLARATION.match(body)
    if declaration is not None:
        value = declaration["ans"]
        nested = _ANSWER_IS.match(_body(value))
        return [(offset, _cut_explanation(nested["ans"] if nested else value))]
    found = []
    inline = _INLINE_DECLARATION.search(body)
    before = body[: inline.start()] if inline else body
    answer_is = _ANSWER_IS.search(before)
    if answer_is is not None:
        found.append((offset + answer_is.start(), _cut_explanation(answer_is["ans"])))
    if inline is not None:
        found.append((offset + inline.start("decl"), _cut_explanation(inline["ans"])))
    return found


def _declarations(answer: str) -> list[tuple[int, int, str]]:
    """Span and raw value of each "Answer: X" / "the answer is X" declaration, line by line."""
    found = []
    spans = _line_spans(answer)
    index = 0
    while index < len(spans):
        start, end = spans[index]
        declared = _declared_values(answer[start:end])
        index += 1
        for number, (offset, value) in enumerate(declared, start=1):
            span_end = end if number == len(declared) else start + declared[number][0]
            if not value.strip() and number == len(declared):
                # "Answer:" alone: the answer is on the next non-blank line
                index = _next_nonblank(spans, index)
                if index < len(spans):
                    value, span_end = answer[spans[index][0] : spans[index][1]], spans[index][1]
                    index += 1
            found.append((start + offset, span_end, value))
    return found


def _next_nonblank(spans: list[tuple[int, int]], index: int) -> int:
    """Index of the first non-blank line at or after index (len(spans) if none)."""
    while index < len(spans) and spans[index][0] == spans[index][1]:
        index += 1
    return index


def _cut_explanation(value: str) -> str:
    """The answer part of a declared value: "B, because …" and "C - at a premium" give B and C."""
    end = _EXPLANATION.search(value)
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
    """Replace \\boxed{x}, \\text{x} and similar by x; unescape \\%, \\$ and {,}."""
    text = text.replace("{,}", ",")  # LaTeX's thousands separator: 12{,}500
    match = _LATEX_WRAPPERS.search(text)
    while match is not None:
        close = _closing_brace(text, match.end() - 1)
        if close == -1:
            break
        text = text[: match.start()] + text[match.end() : close] + text[close + 1 :]
        match = _LATEX_WRAPPERS.search(text)
    return text.replace("\\%", "%").replace("\\$", "$").replace("\\,", "")


def _strip_wrappers(text: str) -> str:
    """Remove one layer of surrounding $...$, quotes or parentheses; a number in parentheses is
    an accounting negative: (1,234) is -1,234."""
    for opening, closing in _WRAPPERS:
        wrapped = text.startswith(opening) and text.endswith(closing)
        if wrapped and len(text) > len(opening) + len(closing):
            return text[len(opening) : len(text) - len(closing)]
    negative = _ACCOUNTING_NEGATIVE.match(text)
    if negative is not None:
        return "-" + negative["amount"].strip()
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


def parse_choice(text: str) -> _Choice:
    """Split an answer into a multiple-choice letter and the text that follows it."""
    cleaned = _clean(text)
    for pattern in (_PAREN_LETTER, _OPTION_LETTER, _BARE_LETTER):
        match = pattern.match(cleaned)
        if match is not None:
            return _Choice(match[1].upper(), _clean(match[2] or ""))
    return _Choice(None, cleaned)


def parse_quantity(text: str) -> _Quantity | None:
    """A number or a range of two ("$1,234.5", "-3", "12.5%", "3 to 5 years"), or None."""
    text = text.strip()
    bounds = _RANGE.match(text)
    if bounds is not None:
        low, high = _parse_point(bounds["low"]), _parse_point(bounds["high"])
        if low is not None and high is not None and low.unit in ("", high.unit):
            scale = high.scale or low.scale
            return _Quantity(low.low, high.low, scale, high.unit)
    return _parse_point(text)


def _parse_point(text: str) -> _Quantity | None:
    """A single number with its scale and unit ("$2.5 million", "4.5 years", "50 bps")."""
    match = _POINT.match(text.strip())
    if match is None:
        return None
    try:
        value = Decimal(match["digits"].replace(",", ""))
    except InvalidOperation:
        return None
    unit = re.sub(r"\([^)]*\)", " ", match["unit"])  # "(compounded annually)" is a remark
    words = _normalize_text(unit.replace("/", " per ")).split()
    # Another number, or an alternative, after the value: not one quantity ("4.5% or 5%").
    if any(char.isdigit() for char in unit) or "or" in words:
        return None
    if any(sign in ("-", "−") for sign in (match["s1"], match["s2"])):
        value = -value
    if match["bps"]:
        value = value.scaleb(-2)  # basis points, as percent
    scale = _SCALES[match["scale"].lower().rstrip("s")] if match["scale"] else 0
    unit_words = [_UNIT_WORDS.get(w, w) for w in words if w not in _CURRENCY_WORDS]
    return _Quantity(value, None, scale, " ".join(unit_words))


def _format_quantity(quantity: _Quantity) -> str:
    """A quantity's canonical text: "2500000", "4 to 5", "4.5 years"."""
    text = _format_number(quantity.low.scaleb(quantity.scale))
    if quantity.high is not None:
        text += " to " + _format_number(quantity.high.scaleb(quantity.scale))
    return f"{text} {quantity.unit}" if quantity.unit else text


def _format_number(value: Decimal) -> str:
    """A number without trailing zeros or exponent: 1234.50 -> "1234.5"."""
    text = f"{value.normalize():f}"
    return "0" if text == "-0" else text


def _normalize_text(text: str) -> str:
    """Case-folded text with punctuation (outside numbers) dropped and whitespace collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def rounds_to(candidate: Decimal, reference: Decimal) -> bool:
    """A more precise candidate matches a reference given to fewer decimals (4.52 vs 4.5),
    rounding half up (4.45 is 4.5); an integer reference is exact (2.4 is not 2)."""
    exponent = reference.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0:
        return False
    if candidate.as_tuple().exponent >= exponent:  # type: ignore[operator]
        return False
    return candidate.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP) == reference


def _numbers_match(candidate: Decimal, reference: Decimal, rel_tol: float) -> bool:
    """Equal within rel_tol, or the candidate rounds to the reference."""
    close = math.isclose(float(candidate), float(reference), rel_tol=rel_tol)
    return close or rounds_to(candidate, reference)


def _quantities_match(cand: _Quantity, ref: _Quantity, rel_tol: float) -> bool:
    """Same kind (number or range), agreeing units, and each end matching (see module doc)."""
    if (cand.high is None) != (ref.high is None):
        return False
    if cand.unit and ref.unit and cand.unit != ref.unit:
        return False
    ends = [(cand.low, ref.low)]
    if cand.high is not None and ref.high is not None:
        ends.append((cand.high, ref.high))
    for cand_value, ref_value in ends:
        scaled = cand_value.scaleb(cand.scale), ref_value.scaleb(ref.scale)
        same = _numbers_match(*scaled, rel_tol)
        # A bare number may be in the other side's scale ("2.5" in a table "in millions").
        bare = (cand.scale, cand.unit) == (0, "") or (ref.scale, ref.unit) == (0, "")
        if bool(cand.scale) != bool(ref.scale) and bare:
            same = same or _numbers_match(cand_value, ref_value, rel_tol)
        if not same:
            return False
    return True


def _values_match(candidate: str, reference: str, rel_tol: float) -> bool:
    """Compare two answer values as quantities when both are, else as normalized text."""
    cand_quantity, ref_quantity = parse_quantity(candidate), parse_quantity(reference)
    if cand_quantity is not None and ref_quantity is not None:
        return _quantities_match(cand_quantity, ref_quantity, rel_tol)
    cand_text = _normalize_text(candidate)
    return bool(cand_text) and cand_text == _normalize_text(reference)
