"""Matching prompts against eval questions: 13-word n-grams and whole normalised questions."""

from __future__ import annotations

from app.kernel.decontamination import (
    EvalIndex,
    index_parts,
    match_prompt,
    normalised_question,
    questions_matching,
    user_texts,
    words,
)

EVAL_QUESTION = (
    "A bond with a face value of 1,000 pays an annual coupon of 5 percent and matures in "
    "ten years; what is its price if yields rise to 6 percent?"
)
# Thirteen consecutive words of EVAL_QUESTION, and the twelve that start them.
SPAN_13 = "pays an annual coupon of 5 percent and matures in ten years what"
SPAN_12 = "pays an annual coupon of 5 percent and matures in ten years"


def index_of(*questions: str) -> EvalIndex:
    index = EvalIndex()
    for question in questions:
        index.add(question)
    return index


def test_words_are_lowercased_runs_of_letters_and_digits() -> None:
    tokens = ["it", "s", "1", "000", "us", "ünïcode", "text"]
    assert words("It's 1,000 US$ — Ünïcode\tTEXT!") == tokens
    assert normalised_question("  What IS the\n\nDuration?? ") == "what is the duration"


def test_case_punctuation_and_whitespace_variants_match_as_the_same_question() -> None:
    index = index_of("What is the Macaulay duration of this bond?")
    for variant in (
        "what is the macaulay duration of this bond",
        "WHAT IS THE MACAULAY DURATION OF THIS BOND???",
        "  What   is the\nMacaulay duration, of this bond ?",
        "What is the Macaulay-duration of this bond?",
    ):
        match = match_prompt(index, [variant], variant)
        assert match.exact is not None, variant
        assert not match.ngrams  # eight words: too short for a 13-word n-gram
    different = "What is the modified duration of this bond?"
    assert not match_prompt(index, [different], different).flagged


def test_a_13_word_span_inside_a_long_prompt_matches_and_12_words_do_not() -> None:
    index = index_of(EVAL_QUESTION)
    long_prompt = (
        "You are a careful analyst. Consider the following. The issuer "
        f"{SPAN_13.upper()}, as the prospectus says; estimate the spread over treasuries."
    )
    match = match_prompt(index, [long_prompt], long_prompt)
    assert match.flagged and len(match.ngrams) == 1 and match.exact is None

    short_overlap = f"The note {SPAN_12}; how would you hedge it against rate moves?"
    assert not match_prompt(index, [short_overlap], short_overlap).flagged


def test_n_grams_do_not_run_across_two_messages() -> None:
    index = index_of(EVAL_QUESTION)
    halves = SPAN_13.split(" ")
    first, second = " ".join(halves[:7]), " ".join(halves[7:])
    assert not match_prompt(index, [first, second], "a question").flagged
    assert match_prompt(index, [f"{first} {second}"], "a question").flagged


def test_user_messages_are_the_text_matched() -> None:
    messages = [
        {"role": "system", "content": "Answer step by step."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "An example answer"},
        {"role": "user", "content": "Second question"},
        "not a message",
    ]
    assert user_texts(messages) == ["First question", "Second question"]


def test_a_punctuation_only_question_matches_nothing() -> None:
    index = index_of("???")
    assert not index.exact
    assert not match_prompt(index, ["!!!"], "...").flagged


def test_questions_matching_counts_eval_questions_a_pair_hit() -> None:
    other = "How does a rise in yields change a callable bond's negative convexity?"
    index = index_of(EVAL_QUESTION, other, "Never asked")
    hit = match_prompt(index, [SPAN_13], other)
    assert questions_matching(index, set(hit.ngrams), {hit.exact} if hit.exact else set()) == 2


def test_a_large_eval_set_is_indexed_in_parts() -> None:
    questions = [" ".join(f"q{n}w{i}" for i in range(20)) for n in range(10)]  # 8 n-grams each
    parts = list(index_parts(questions, max_ngrams=30))
    assert [len(part.questions) for part in parts] == [4, 4, 2]
    assert [len(part.ngrams) for part in parts] == [32, 32, 16]
    assert [q for part in parts for q in part.questions] == questions


def test_ascii_text_splits_into_the_same_words_as_the_regex() -> None:
    import re

    text = 'It\'s $1,000.50 (a_b) x-y\t"q"\r\n[z]{w}|v~u`t;s:r<p>o=n+m*l&k^j%i#h@g!f?e/d\\c'
    assert words(text) == re.findall(r"\w+", text.lower())
    assert words(text + " é") == re.findall(r"\w+", (text + " é").lower())
