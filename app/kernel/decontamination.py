"""Decontamination: does a training prompt share a 13-word n-gram, or its whole normalised
question, with an evaluation question? Pure logic on text; the services feed it rows.

Tokens are words, not a model tokenizer's pieces: the text is lowercased and cut into runs of
letters, digits and underscores (`\\w+`, Unicode-aware), so punctuation and whitespace only
separate words. A normalised question is its words joined by single spaces. Hashes are Python's
own (of word tuples): they are compared within one process only and never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

NGRAM_SIZE = 13
"""Words per n-gram, as GPT-3's and the OLMo/Tulu decontamination use; shorter eval questions
can only match whole."""

MAX_INDEX_NGRAMS = 1_000_000
"""N-gram hashes one index part holds (tens of MB); a larger eval set is checked in parts."""

WORD = re.compile(r"\w+")
ASCII_NON_WORD_TO_SPACE = str.maketrans(
    {chr(code): " " for code in range(128) if not re.fullmatch(r"\w", chr(code))}
)


def words(text: str) -> list[str]:
    """The text's word tokens, lowercased; punctuation and whitespace dropped."""
    text = text.lower()
    if text.isascii():  # the same tokens as the regex, in half the time
        return text.translate(ASCII_NON_WORD_TO_SPACE).split()
    return WORD.findall(text)


def normalised_question(text: str) -> str:
    """Lowercase, punctuation stripped, whitespace collapsed: the form exact matches compare."""
    return " ".join(words(text))


def ngram_hashes(tokens: list[str], size: int = NGRAM_SIZE) -> list[int]:
    """A hash of every run of `size` consecutive tokens; none when there are fewer."""
    runs = len(tokens) - size + 1
    if runs < 1:
        return []
    # Tuples of the words, built and hashed in C: each word's own hash is computed once.
    shifted = [tokens[offset : offset + runs] for offset in range(size)]
    return list(map(hash, zip(*shifted, strict=True)))


@dataclass
class EvalIndex:
    """The n-gram and whole-question hashes of some eval questions, and the questions."""

    questions: list[str] = field(default_factory=list)
    ngrams: set[int] = field(default_factory=set)
    exact: set[int] = field(default_factory=set)

    def add(self, question: str) -> None:
        self.questions.append(question)
        tokens = words(question)
        if tokens:  # a question of punctuation only would match every such prompt
            self.exact.add(hash(tuple(tokens)))
        self.ngrams.update(ngram_hashes(tokens))


@dataclass(frozen=True)
class PromptMatch:
    """What a prompt shares with an index: n-gram hashes, and its question's hash if whole."""

    ngrams: frozenset[int]
    exact: int | None

    @property
    def flagged(self) -> bool:
        return bool(self.ngrams) or self.exact is not None


def match_prompt(index: EvalIndex, texts: Iterable[str], question: str) -> PromptMatch:
    """Match the prompt's texts (each its own run of n-grams) and its question against `index`."""
    shared: set[int] = set()
    for text in texts:
        shared.update(index.ngrams.intersection(ngram_hashes(words(text))))
    tokens = words(question)
    whole = hash(tuple(tokens)) if tokens else None
    return PromptMatch(frozenset(shared), whole if whole in index.exact else None)


def questions_matching(index: EvalIndex, ngrams: set[int], exact: set[int]) -> int:
    """How many of the index's questions have an n-gram in `ngrams` or a hash in `exact`."""
    count = 0
    for question in index.questions:
        tokens = words(question)
        if (tokens and hash(tuple(tokens)) in exact) or not ngrams.isdisjoint(ngram_hashes(tokens)):
            count += 1
    return count


def index_parts(
    questions: Iterable[str], max_ngrams: int = MAX_INDEX_NGRAMS
) -> Iterator[EvalIndex]:
    """The questions indexed in parts of at most about `max_ngrams` n-gram hashes each, so a
    large eval set never sits in memory whole; every part holds at least one question."""
    part = EvalIndex()
    for question in questions:
        if part.questions and len(part.ngrams) >= max_ngrams:
            yield part
            part = EvalIndex()
        part.add(question)
    if part.questions:
        yield part


def user_texts(messages: list[object]) -> list[str]:
    """The contents of a chat prompt's user messages (what Tulu's decontamination indexes)."""
    texts = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
    return texts
