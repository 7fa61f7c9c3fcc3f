"""Metrics: hand-computed official VQA cases, GQA normalisation, fidelity, class vs functional vs reference."""

from __future__ import annotations

import random

import pytest
import torch

from adaptive_svdprune.metrics import (
    AnswerFidelity,
    GQAAccuracy,
    VQAAccuracy,
    answer_fidelity,
    gqa_accuracy,
    gqa_match,
    metric_for_task,
    normalize_gqa_answer,
    normalize_vqa_answer,
    vqa_accuracy,
    vqa_score,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Red", "red"),
        ("  yes \n", "yes"),
        ("two", "2"),
        ("None", "0"),
        ("ten apples", "10 apples"),
        ("a dog", "dog"),
        ("the man", "man"),
        ("an apple", "apple"),
        ("The two dogs!", "2 dogs"),
        ("yes.", "yes"),
        ("3.5", "3.5"),
        ("1,000", "1000"),
        ("hello, world", "hello world"),
        ("black-and-white", "black and white"),
        ("t-shirt", "t shirt"),
        ("what?", "what"),
        ("(left)", "left"),
        ("dont", "don't"),
        ("isnt", "isn't"),
        ("can't", "can't"),
        ("10:30", "10:30"),
        ("$2.50", "$2.50"),
    ],
    ids=[
        "lower", "whitespace", "number-word", "none-is-zero", "number-in-phrase", "article-a", "article-the",
        "article-an", "mixed", "trailing-period", "decimal-kept", "thousands-comma", "comma-space",
        "hyphen-splits", "hyphen-word", "question-mark", "parentheses", "contraction-dont", "contraction-isnt",
        "apostrophe-kept", "colon-kept", "dollar-kept",
    ],
)
def test_normalize_vqa_answer(raw: str, expected: str) -> None:
    assert normalize_vqa_answer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("Yes.", "yes"), (" Left ", "left"), ("a red car..", "a red car"), ("No", "no")],
    ids=["period", "strip", "periods-articles-kept", "lower"],
)
def test_normalize_gqa_answer(raw: str, expected: str) -> None:
    assert normalize_gqa_answer(raw) == expected


# k matching answers out of 10: k subsets of 9 lose a match (k-1 left), 10-k keep all k; each scores min(m/3, 1).
@pytest.mark.parametrize(
    ("k", "expected"),
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
    ids=["none", "one", "two", "three", "four", "all"],
)
def test_vqa_score_by_hand(k: int, expected: float) -> None:
    answers = ["cat"] * k + ["dog"] * (10 - k)
    assert vqa_score("cat", answers) == pytest.approx(expected)


def _reference_vqa_score(pred: str, answers: list[str]) -> float:
    """Literal transcription of the official loop: enumerate each leave-one-out subset explicitly."""
    pred = normalize_vqa_answer(pred)
    gts = [normalize_vqa_answer(a) for a in answers]
    accs = []
    for left_out in range(len(gts)):
        others = [a for j, a in enumerate(gts) if j != left_out]
        accs.append(min(1.0, sum(a == pred for a in others) / 3))
    return sum(accs) / len(accs)


def test_vqa_score_matches_reference_loop() -> None:
    rng = random.Random(0)
    vocab = ["two", "2", "the cat", "cat", "Cat.", "dog", "black-and-white", "black and white"]
    for _ in range(200):
        answers = [rng.choice(vocab) for _ in range(10)]
        pred = rng.choice(vocab)
        assert vqa_score(pred, answers) == pytest.approx(_reference_vqa_score(pred, answers))


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        ("Two", ["2"] * 10, 1.0),
        ("2 dogs", ["two dogs"] * 2 + ["dogs"] * 8, 0.6),
        ("the dog", ["dog"] * 3 + ["cat"] * 7, 0.9),
        ("yes!", ["yes"] * 10, 1.0),
        ("cat", ["cat"], 1.0),
        ("dog", ["cat"], 0.0),
    ],
    ids=["number-word-vs-digit", "number-word-in-gt", "article", "punctuation", "single-ref-hit", "single-ref-miss"],
)
def test_vqa_score_normalises_both_sides(pred: str, answers: list[str], expected: float) -> None:
    assert vqa_score(pred, answers) == pytest.approx(expected)


def test_vqa_score_rejects_empty_answers() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        vqa_score("cat", [])


def test_gqa_match() -> None:
    assert gqa_match("Right.", "right")
    assert gqa_match("yes", ["yes"])
    assert not gqa_match("the table", "table")  # GQA does not drop articles


BATCHES_VQA = [
    (["cat", "two"], [["cat"] * 2 + ["dog"] * 8, ["2"] * 10]),
    (["no"], [["yes"] * 10]),
    (["Black and white."], [["black-and-white"] * 4 + ["white"] * 6]),
]


def test_vqa_class_matches_functional() -> None:
    metric = VQAAccuracy()
    preds, targets = [], []
    for p, t in BATCHES_VQA:
        metric.update(p, t)
        preds += p
        targets += t
    expected = vqa_accuracy(preds, targets)
    assert expected == pytest.approx((0.6 + 1.0 + 0.0 + 1.0) / 4)
    assert float(metric.compute()) == pytest.approx(expected)
    metric.reset()
    metric.update(*BATCHES_VQA[1])
    assert float(metric.compute()) == 0.0


def test_gqa_class_matches_functional() -> None:
    preds, targets = ["Yes.", "red", "Left", "table"], ["yes", "blue", "left", ["table"]]
    metric = GQAAccuracy()
    metric.update(preds[:2], targets[:2])
    metric.update(preds[2:], targets[2:])
    assert float(metric.compute()) == pytest.approx(gqa_accuracy(preds, targets)) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("normalize", "expected"), [("vqa", 0.75), ("gqa", 0.5), ("none", 0.25)], ids=["vqa", "gqa", "raw"]
)
def test_answer_fidelity(normalize: str, expected: float) -> None:
    preds, reference = ["Two", "cat.", "dog", "red"], ["2", "cat", "cat", "red"]
    metric = AnswerFidelity(normalize=normalize)  # type: ignore[arg-type]
    metric.update(preds, reference)
    assert float(metric.compute()) == pytest.approx(expected)
    assert answer_fidelity(preds, reference, normalize=normalize) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metric", [GQAAccuracy(), VQAAccuracy(), AnswerFidelity()], ids=["gqa", "vqa", "fidelity"]
)
def test_length_mismatch_names_both_lengths(metric: GQAAccuracy | VQAAccuracy | AnswerFidelity) -> None:
    with pytest.raises(ValueError, match=r"len\(preds\)=2.*=1"):
        metric.update(["a", "b"], [["a"]])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: vqa_accuracy(["a"], ["a"]), TypeError, r"targets\[0\] must be a list"),
        (lambda: gqa_accuracy([1], ["a"]), TypeError, r"preds\[0\] must be a str"),
        (lambda: gqa_accuracy("ab", ["a", "b"]), TypeError, "not a single string"),
        (lambda: AnswerFidelity(normalize="lower"), ValueError, "normalize must be one of"),  # type: ignore[arg-type]
        (lambda: metric_for_task("vqav2"), ValueError, "known tasks"),
    ],
    ids=["str-target-for-vqa", "non-str-pred", "string-not-list", "bad-normalize", "unknown-task"],
)
def test_bad_input(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_states_sum_across_processes() -> None:
    """Simulates the distributed reduction: merging states equals updating one metric with everything."""
    a, b, whole = VQAAccuracy(), VQAAccuracy(), VQAAccuracy()
    a.update(*BATCHES_VQA[0])
    b.update(*BATCHES_VQA[2])
    for p, t in (BATCHES_VQA[0], BATCHES_VQA[2]):
        whole.update(p, t)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(whole.compute()))
    assert a.total.dtype == torch.long and int(a.total) == 3


@pytest.mark.parametrize(("task", "cls"), [("gqa", GQAAccuracy), ("textvqa", VQAAccuracy), ("jsonl", VQAAccuracy)],
                         ids=["gqa", "textvqa", "jsonl"])
def test_metric_for_task(task: str, cls: type) -> None:
    assert isinstance(metric_for_task(task), cls)


def test_empty_compute_is_zero() -> None:
    with pytest.warns(UserWarning):  # torchmetrics warns when compute() runs before update()
        assert float(GQAAccuracy().compute()) == 0.0



# Each case written down from the official TextVQA/VQA answer processor (EvalAI's, used by the TextVQA challenge
# and LLaVA's TextVQA evaluation): word_tokenize, then punctuation, then periods, then digits/articles/contractions.
OFFICIAL_NORMALISATION = [
    pytest.param("a,b", "ab", id="comma-removed-before-punctuation"),
    pytest.param("a b", "b", id="article-a-removed"),
    pytest.param("1,000", "1000", id="comma-between-digits"),
    pytest.param("1, 2", "1 2", id="comma-space"),
    pytest.param("man's", "man 's", id="possessive-split"),
    pytest.param("man 's", "man 's", id="possessive-already-split"),
    pytest.param("It's", "it 's", id="its-split"),
    pytest.param("What?", "what", id="question-mark-removed"),
    pytest.param("why ?", "why", id="question-mark-after-space"),
    pytest.param("hello!", "hello", id="exclamation-to-space"),
    pytest.param("black - white", "black white", id="hyphen-touching-space-dropped"),
    pytest.param("black-and-white", "black and white", id="hyphen-inside-word-splits"),
    pytest.param("Dont", "don't", id="contraction-after-lower-case"),
    pytest.param("I'm", "i'm", id="capitalised-contraction-keys-never-match"),
    pytest.param("Im", "im", id="capitalised-key-im"),
    pytest.param("one two three", "1 2 3", id="number-words"),
    pytest.param("eleven", "eleven", id="only-zero-to-ten"),
    pytest.param("The Cat", "cat", id="article-the"),
    pytest.param("an a the", "", id="only-articles"),
    pytest.param("3.5", "3.5", id="decimal-kept"),
    pytest.param("3.5.", "3.5", id="final-period-of-decimal"),
    pytest.param(".5", ".5", id="leading-period-before-digit"),
    pytest.param("e.g.", "eg", id="abbreviation-periods"),
    pytest.param("x" + "." * 40, "x" + "." * 8, id="at-most-32-periods"),
    pytest.param("red\nblue\tgreen", "red blue green", id="newline-tab"),
    pytest.param("10%", "10%", id="percent-kept"),
    pytest.param("5:30", "5:30", id="colon-kept"),
    pytest.param("(left)", "left", id="parentheses"),
    pytest.param("a/b", "b", id="slash-splits-then-article"),
    pytest.param("x / y", "x y", id="slash-touching-space"),
]


@pytest.mark.parametrize(("raw", "expected"), OFFICIAL_NORMALISATION)
def test_normalisation_follows_the_official_rules(raw: str, expected: str) -> None:
    assert normalize_vqa_answer(raw) == expected


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        pytest.param("a b", ["a,b"] * 10, 0.0, id="a-comma-b-vs-a-space-b"),
        pytest.param("man 's", ["man's"] * 10, 1.0, id="possessive-gt-processed"),
        pytest.param("Two", ["2"] * 10, 1.0, id="number-word-pred"),
        pytest.param("2", ["two"] * 10, 1.0, id="number-word-gt"),
        pytest.param("1000", ["1,000"] * 3 + ["1 000"] * 7, 0.9, id="digit-comma-gt-3-of-10"),
        pytest.param("yes", ["Yes."] * 2 + ["no"] * 8, 0.6, id="two-matches"),
        pytest.param("yes", ["yes"] * 1 + ["no"] * 9, 0.3, id="one-match"),
        pytest.param("yes", ["yes"] * 4 + ["no"] * 6, 1.0, id="four-matches"),
        pytest.param("no", ["yes"] * 10, 0.0, id="no-match"),
    ],
)
def test_vqa_score_equals_the_official_leave_one_out(pred: str, answers: list[str], expected: float) -> None:
    # official: for each of the 10 human answers, min(1, matches among the other 9 / 3); averaged
    gts = [normalize_vqa_answer(a) for a in answers]
    p = normalize_vqa_answer(pred)
    loo = [min(1.0, sum(g == p for j, g in enumerate(gts) if j != i) / 3) for i in range(len(gts))]
    assert vqa_score(pred, answers) == pytest.approx(sum(loo) / len(loo)) == pytest.approx(expected)
