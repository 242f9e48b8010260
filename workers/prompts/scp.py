"""First-error analysis (SCP): the judge finds the first wrong step of a wrong answer.

Two versions:

* ``scp-v1`` quotes: the judge copies the correct reasoning before the first wrong step and that
  step, and writes a corrected step; the quotes are checked against the answer text.
* ``scp-steps-v1`` numbers: the answer is segmented into steps first and shown whole with its
  steps numbered; the judge picks the first wrong step by number (constrained to that answer's
  step numbers) and writes the correction; prefix and wrong step come from the segmentation and
  cannot be misquoted.

In both, the judge justifies before it decides (the paper's order), and may find no wrong step
(every step is right, only the final answer is not): that is recorded as ``no_step_error`` and
makes no pair, rather than forcing the judge to blame a step that is right.

In both, when the wrong step carries a label ("Step 3: ") and the correction does not, the label
is put in front of the correction so that chosen and rejected steps share one format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from app.kernel.answers import Step, final_answer_spans, segment_steps, split_step_marker
from app.kernel.steps import max_correction_chars
from workers.engines.base import Message
from workers.prompts.json_reply import JUSTIFICATION_MAX_CHARS, extract_json_object, text_field

SCP_PROMPT_VERSION = "scp-v1"
SCP_STEPS_PROMPT_VERSION = "scp-steps-v1"
SCP_PROMPT_VERSIONS = (SCP_PROMPT_VERSION, SCP_STEPS_PROMPT_VERSION)

SCP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "justification": {"type": "string", "maxLength": JUSTIFICATION_MAX_CHARS},
        "correct_prefix": {"type": "string"},
        "first_wrong_step": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "correction": {"type": "string"},
    },
    "required": ["justification", "correct_prefix", "first_wrong_step", "correction"],
    "additionalProperties": False,
}

_SYSTEM = (
    "You review worked answers to exam questions. Given a response whose final answer "
    "disagrees with the reference answer, you find the first step of its reasoning that is "
    "wrong and write a corrected version of that one step."
)

_QUOTE_INSTRUCTIONS = """\
Instructions:
1. Read the response step by step and find the first step that is wrong: a wrong fact,
   formula, number or conclusion. It must be a reasoning step, never the final "Answer:" line.
2. "justification": say which step is the first wrong one and what is wrong in it, in one or
   two sentences.
3. "correct_prefix": copy, character for character, all of the response that comes before that
   step. Write "" if the very first step is wrong.
4. "first_wrong_step": copy, character for character, that one wrong step, with its label
   (such as "Step 3:").
5. "correction": write one corrected step to replace it, in the same style, leading towards the
   reference answer. It must differ from the wrong step.
If every reasoning step is right and only the final answer is wrong, say so in
"justification", write null for "first_wrong_step" and "" for "correct_prefix" and "correction".

Reply with one JSON object and nothing else, in this shape:
{"justification": "<why the step is wrong>", \
"correct_prefix": "<exact copy of the response before the wrong step>", \
"first_wrong_step": "<exact copy of the wrong step, or null>", \
"correction": "<the corrected step>"}"""

_STEPS_INSTRUCTIONS = """\
The reasoning steps of the response are labelled "Step 1:" to "Step {last}:". Any other text,
such as its final "Answer:" line, is not a step.

Instructions:
1. "justification": say which step is the first wrong one (a wrong fact, formula, number or
   conclusion) and why, in one or two sentences; or that every step is right and only the final
   answer is wrong.
2. "first_wrong_step": the number of that step, or null if no step is wrong.
3. "correction": the corrected step that replaces it, leading towards the reference answer,
   without the "Step N:" label. It must differ from the wrong step. Write "" if no step is wrong.

Reply with one JSON object and nothing else, in this shape:
{{"justification": "<why that step is wrong>", "first_wrong_step": <step number, or null>, \
"correction": "<the corrected step>"}}"""

_FOLDS = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)
"""Typographic quotes and dashes, as a judge may retype them plainly (or the other way)."""

_NO_STEP = ("none", "null")
"""A step number written as text that means "no step is wrong" (replies without a schema)."""


@dataclass(frozen=True)
class ScpResult:
    """A first-error analysis checked against the answer, or why it was rejected."""

    outcome: str  # "parsed" | "no_step_error" | "unparseable" | "failed_validation"
    reason: str | None
    correct_prefix: str | None
    wrong_step: str | None
    correction: str | None
    justification: str | None
    wrong_step_number: int | None


def build_scp_messages(question: str, reference_answer: str, answer: str) -> list[Message]:
    """The quote-based judge conversation for one wrong answer."""
    return _messages(question, reference_answer, answer, _QUOTE_INSTRUCTIONS)


def parse_scp(raw: str, answer: str) -> ScpResult:
    """Read a quote-based reply and check its quotes against the answer text."""
    data = extract_json_object(raw)
    if data is None:
        return _unparseable("no JSON object in the reply")
    justification = text_field(data.get("justification"), JUSTIFICATION_MAX_CHARS)
    if "first_wrong_step" in data and _means_no_step(data["first_wrong_step"]):
        return _no_step_error(justification)
    prefix = data.get("correct_prefix")
    if prefix is None and "correct_prefix" in data:
        prefix = ""  # null: the very first step is wrong
    wrong, correction = data.get("first_wrong_step"), data.get("correction")
    if not (isinstance(prefix, str) and isinstance(wrong, str) and isinstance(correction, str)):
        fields = (
            ("correct_prefix", prefix),
            ("first_wrong_step", wrong),
            ("correction", correction),
        )
        name, value = next((n, v) for n, v in fields if not isinstance(v, str))
        return _unparseable(_field_problem(name, value), justification=justification)
    return _check_quotes(answer, prefix, wrong, correction, justification)


def scp_steps_schema(step_numbers: list[int]) -> dict[str, Any]:
    """JSON schema for the step-number version: one of this answer's step_numbers, or null."""
    if not step_numbers:
        raise ValueError("step_numbers: must not be empty, got []")
    return {
        "type": "object",
        "properties": {
            # Bounded, so a small judge under constrained decoding gets to its decision.
            "justification": {"type": "string", "maxLength": JUSTIFICATION_MAX_CHARS},
            "first_wrong_step": {
                "anyOf": [{"type": "integer", "enum": list(step_numbers)}, {"type": "null"}]
            },
            # Not bounded here: a correction cut at a fixed length is a broken chosen answer.
            # The judge's max_tokens bounds it (a reply cut there does not parse), and
            # parse_scp_steps refuses one longer than one step's worth (max_correction_chars).
            "correction": {"type": "string"},
        },
        "required": ["justification", "first_wrong_step", "correction"],
        "additionalProperties": False,
    }


def build_scp_steps_messages(
    question: str, reference_answer: str, answer: str, steps: list[Step]
) -> list[Message]:
    """The step-number judge conversation; the whole answer is shown, its steps renumbered."""
    instructions = _STEPS_INSTRUCTIONS.format(last=len(steps))
    return _messages(question, reference_answer, numbered_answer(answer, steps), instructions)


def numbered_answer(answer: str, steps: list[Step]) -> str:
    """The answer with each step's own label replaced by "Step N: "; other text kept as is."""
    parts, position = [], 0
    for step in steps:
        parts += [answer[position : step.start], f"Step {step.number}: "]
        parts.append(split_step_marker(step.text)[1])
        position = step.end
    parts.append(answer[position:])
    return "".join(parts).strip()


def parse_scp_steps(raw: str, answer: str, steps: list[Step]) -> ScpResult:
    """Read a step-number reply; prefix and wrong step come from the segmentation."""
    data = extract_json_object(raw)
    if data is None:
        return _unparseable("no JSON object in the reply")
    justification = text_field(data.get("justification"), JUSTIFICATION_MAX_CHARS)
    if "first_wrong_step" in data and _means_no_step(data["first_wrong_step"]):
        return _no_step_error(justification)
    number = _step_number(data.get("first_wrong_step"))
    correction = data.get("correction")
    if number is None:
        problem = _field_problem("first_wrong_step", data.get("first_wrong_step"), "step number")
        return _unparseable(problem, justification=justification)
    if not isinstance(correction, str):
        return _unparseable(_field_problem("correction", correction), justification=justification)
    step = next((s for s in steps if s.number == number), None)
    if step is None:
        reason = f"first_wrong_step {number} is not one of the steps 1..{len(steps)}"
        return _failed(reason, None, None, correction, justification)
    return _checked_correction(
        answer[: step.start], step.text, correction, justification, step.number
    )


def _messages(
    question: str, reference_answer: str, response: str, instructions: str
) -> list[Message]:
    """System and user turns around a response whose final answer was judged wrong."""
    user = (
        f"Question:\n{question}\n\n"
        f"Reference answer:\n{reference_answer}\n\n"
        "Response (its final answer disagrees with the reference):\n"
        f"<response>\n{response}\n</response>\n\n"
        f"{instructions}"
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _check_quotes(
    answer: str, prefix: str, wrong: str, correction: str, justification: str | None
) -> ScpResult:
    """Validate the quoted prefix and wrong step and turn them into exact answer substrings."""
    located = _locate_quotes(answer, prefix, wrong)
    if isinstance(located, str):
        return _failed(located, prefix, wrong, correction, justification)
    prefix_end, wrong_start, wrong_end = located
    if any(start <= wrong_start < end for start, end in final_answer_spans(answer)):
        reason = "first_wrong_step is the final-answer line, not an intermediate step"
        return _failed(reason, prefix, wrong, correction, justification)
    quoted = answer[wrong_start:wrong_end]
    touched = [s for s in segment_steps(answer) if s.start < wrong_end and wrong_start < s.end]
    if not touched:  # text outside the steps (a preamble): the quotes as they are
        return _checked_correction(answer[:prefix_end], quoted, correction, justification, None)
    # A quote that starts or ends inside a step stands for that whole step: the pair's prompt
    # then ends between two steps, and chosen and rejected each replace one whole step.
    start, end = touched[0].start, touched[-1].end
    result = _checked_correction(
        answer[:start],
        answer[start:end],
        correction,
        justification,
        touched[0].number,
        head=answer[start : max(start, wrong_start)],
        quoted=quoted,
    )
    if result.outcome != "parsed":  # a rejected reply keeps the judge's own quotes
        return replace(result, correct_prefix=prefix, wrong_step=wrong)
    return result


def _locate_quotes(answer: str, prefix: str, wrong: str) -> tuple[int, int, int] | str:
    """End of the prefix and span of the wrong step in the answer, or why they do not fit.

    Quotes are compared after _fold: judges retype curly quotes, dashes and line breaks."""
    folded, origin = _fold(answer)
    quoted_prefix, quoted_wrong = _fold(prefix.strip())[0], _fold(wrong.strip())[0]
    lead = 1 if folded.startswith(" ") else 0
    if not folded.startswith(quoted_prefix, lead):
        return "correct_prefix is not a prefix of the answer"
    prefix_end = lead + len(quoted_prefix)
    if not quoted_wrong:
        return "first_wrong_step is empty"
    wrong_start = prefix_end + (1 if folded.startswith(" ", prefix_end) else 0)
    if folded.startswith(quoted_wrong, wrong_start):
        wrong_end = wrong_start + len(quoted_wrong)
    else:
        # Judges often quote a step without its "Step 3:" label; the label is kept in the quote.
        label = split_step_marker(folded[wrong_start:])[0]
        if not (label and folded.startswith(quoted_wrong, wrong_start + len(label))):
            return "first_wrong_step does not follow correct_prefix in the answer"
        wrong_end = wrong_start + len(label) + len(quoted_wrong)
    # Back to the answer's own offsets: an empty prefix ends where the wrong step starts.
    prefix_stop = origin[prefix_end - 1] + 1 if quoted_prefix else origin[lead]
    return prefix_stop, origin[wrong_start], origin[wrong_end - 1] + 1


def _fold(text: str) -> tuple[str, list[int]]:
    """The text with curly quotes, dashes and each whitespace run made plain, and the offset in
    text of every character of it."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isspace():
            if chars and chars[-1] == " ":
                continue
            char = " "
        chars.append(char.translate(_FOLDS))
        origin.append(index)
    return "".join(chars), origin


def _checked_correction(
    prefix: str,
    wrong: str,
    correction: str,
    justification: str | None,
    number: int | None,
    *,
    head: str = "",
    quoted: str | None = None,
) -> ScpResult:
    """The parsed result, unless the correction is empty, the same as the wrong step, or longer
    than one step. `head` is the start of the wrong step that the judge kept out of its quote
    (`quoted`): it stays in front of the correction, so that both sides are one whole step."""
    body = correction.strip()
    if not body:
        return _failed("correction is empty", prefix, wrong, correction, justification)
    if len(body) > max_correction_chars(wrong):
        reason = (
            f"correction is {len(body)} characters, more than one step's worth "
            f"({max_correction_chars(wrong)} for a step of {len(wrong)})"
        )
        return _failed(reason, prefix, wrong, correction, justification)
    label = split_step_marker(wrong)[0]
    if not split_step_marker(body)[0]:  # a correction with its own label is a whole step
        head_body = head[len(label) :]
        restated = _comparable(body).startswith(_comparable(head_body))
        body = label + body if restated else label + head_body + body
    if _comparable(body) == _comparable(wrong) or (
        quoted is not None and _comparable(correction) == _comparable(quoted)
    ):
        reason = "correction is the same as first_wrong_step"
        return _failed(reason, prefix, wrong, correction, justification)
    return ScpResult("parsed", None, prefix, wrong, body, justification, number)


def _comparable(step: str) -> str:
    """A step without its label, whitespace collapsed and case folded."""
    return " ".join(split_step_marker(step.strip())[1].split()).casefold()


def _step_number(value: object) -> int | None:
    """A step number given as an integer, "3" or "Step 3"; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("step").strip().rstrip(":.")
        return int(digits) if digits.isdigit() else None
    return None


def _field_problem(name: str, value: object, expected: str = "string") -> str:
    """Why a field of the reply is unusable."""
    if value is None:
        return f"missing field: {name}"
    return f"{name} is not a {expected}: {value!r}"


def _means_no_step(value: object) -> bool:
    """Whether a first_wrong_step value says that no step is wrong (null, "none")."""
    return value is None or (isinstance(value, str) and value.strip().lower() in _NO_STEP)


def _no_step_error(justification: str | None) -> ScpResult:
    """The judge found every step right: nothing to correct, so no pair."""
    return ScpResult("no_step_error", None, None, None, None, justification, None)


def _unparseable(reason: str, *, justification: str | None = None) -> ScpResult:
    """A reply that could not be read."""
    return ScpResult("unparseable", reason, None, None, None, justification, None)


def _failed(
    reason: str,
    prefix: str | None,
    wrong: str | None,
    correction: str | None,
    justification: str | None,
) -> ScpResult:
    """A readable reply whose content did not pass validation; the judge's values are kept."""
    return ScpResult("failed_validation", reason, prefix, wrong, correction, justification, None)
