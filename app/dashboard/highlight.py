"""Cutting an answer into the spans the sample viewer marks: the correct prefix, the first
wrong step, and the text around them."""

from __future__ import annotations

from dataclasses import dataclass

from app.schemas.sample import VerdictOut


@dataclass(frozen=True)
class Span:
    role: str
    """"prefix" (the correct reasoning), "wrong-step", or "plain"."""
    text: str


def answer_spans(answer: str, scp: VerdictOut | None) -> list[Span] | None:
    """The answer as prefix, wrong step and the rest; None when the analysis does not sit in
    the answer (no SCP verdict, or one whose quotes failed their check)."""
    if scp is None or scp.outcome != "parsed" or not scp.wrong_step:
        return None
    prefix = scp.correct_prefix or ""
    if not answer.startswith(prefix):
        return None
    # Only whitespace may sit between the prefix and the wrong step (see workers/prompts/scp.py).
    rest = answer[len(prefix) :]
    gap = len(rest) - len(rest.lstrip())
    if not rest.startswith(scp.wrong_step, gap):
        return None
    wrong_end = len(prefix) + gap + len(scp.wrong_step)
    spans = [
        Span("prefix", prefix),
        Span("plain", rest[:gap]),
        Span("wrong-step", scp.wrong_step),
        Span("plain", answer[wrong_end:]),
    ]
    return [span for span in spans if span.text or span.role == "prefix"]
