"""Final-answer verdict (FAP): the judge compares a response's final answer with the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.engines.base import Message
from workers.prompts.json_reply import JUSTIFICATION_MAX_CHARS, extract_json_object, text_field

FAP_PROMPT_VERSION = "fap-v1"

EXTRACTED_ANSWER_MAX_CHARS = 120

# The verdict comes last so that a model decoding left to right reasons before it decides (the
# paper's order). Bounded strings: under constrained decoding a small judge otherwise rambles to
# max_tokens and the JSON never closes. Servers that refuse length bounds (OpenAI's strict mode)
# get the schema without them, and parse_fap cuts longer strings, so every engine records the same.
FAP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "extracted_answer": {"type": "string", "maxLength": EXTRACTED_ANSWER_MAX_CHARS},
        "justification": {"type": "string", "maxLength": JUSTIFICATION_MAX_CHARS},
        "verdict": {"type": "string", "enum": ["correct", "wrong"]},
    },
    "required": ["extracted_answer", "justification", "verdict"],
    "additionalProperties": False,
}

_VERDICTS = {"correct": "correct", "wrong": "wrong", "incorrect": "wrong"}

_SYSTEM = (
    "You check answers to exam questions against a reference answer. You decide only whether "
    "the final answer of a response agrees with the final answer of the reference; you do not "
    "grade the reasoning."
)

_INSTRUCTIONS = """\
Instructions:
1. Find the final answer that the response declares (for example a last line "Answer: ...").
   Copy it into "extracted_answer"; write "" if the response declares none.
2. Find the final answer of the reference answer.
3. Compare the two final answers. They agree when they name the same option letter or the same
   value; numbers may differ only in rounding, formatting, or a currency or percent sign.
4. "justification": state both final answers and why they agree or not, in one or two
   sentences.
5. "verdict": "wrong" when the response declares no final answer, declares more than one
   different final answer, or its final answer disagrees with the reference; otherwise
   "correct".

Reply with one JSON object and nothing else, in this shape:
{"extracted_answer": "<final answer of the response, or empty>", \
"justification": "<one or two sentences>", "verdict": "<correct or wrong>"}"""


@dataclass(frozen=True)
class FapResult:
    """A parsed final-answer verdict, or the reason it could not be read."""

    outcome: str  # "parsed" | "unparseable"
    verdict: str | None
    justification: str | None
    extracted_answer: str | None
    reason: str | None


def build_fap_messages(question: str, reference_answer: str, answer: str) -> list[Message]:
    """The judge conversation for one sampled answer."""
    user = (
        f"Question:\n{question}\n\n"
        f"Reference answer:\n{reference_answer}\n\n"
        f"Response to check:\n<response>\n{answer}\n</response>\n\n"
        f"{_INSTRUCTIONS}"
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def parse_fap(raw: str) -> FapResult:
    """Read the judge's reply; anything unreadable becomes an "unparseable" result."""
    data = extract_json_object(raw)
    if data is None:
        return FapResult("unparseable", None, None, None, "no JSON object in the reply")
    fields = {str(key).strip().lower(): value for key, value in data.items()}
    justification = text_field(fields.get("justification"), JUSTIFICATION_MAX_CHARS)
    extracted = text_field(fields.get("extracted_answer"), EXTRACTED_ANSWER_MAX_CHARS)
    verdict, reason = _read_verdict(fields.get("verdict"))
    outcome = "parsed" if verdict is not None else "unparseable"
    return FapResult(outcome, verdict, justification, extracted, reason)


def _read_verdict(value: object) -> tuple[str | None, str | None]:
    """The canonical verdict, or None and the reason it is not usable."""
    if value is None:
        return None, "missing verdict"
    if not isinstance(value, str):
        return None, f"verdict is not a string: {value!r}"
    verdict = _VERDICTS.get(value.strip().strip(".!\"'").lower())
    if verdict is None:
        return None, f"invalid verdict: {value!r}"
    return verdict, None
