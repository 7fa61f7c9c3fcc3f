"""Answer metrics for VQA-style evaluation: GQA exact match, official VQA accuracy, fidelity to the unpruned model.

Each metric is a pure function (usable on plain lists) plus a torchmetrics ``Metric`` that calls the same private
``_*_update`` helper and keeps distributed-safe ``sum`` states, so the maths exists once.

Example:
    >>> vqa_score("Two", ["2"] * 3 + ["3"] * 7)  # 3 of the 10 leave-one-out subsets hold only 2 matches
    0.9
    >>> metric = VQAAccuracy()
    >>> metric.update(["red"], [["red", "red", "blue", "red", "red", "red", "red", "red", "red", "red"]])
    >>> round(float(metric.compute()), 4)
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torchmetrics import Metric

# The tables below reproduce the official VQA evaluation script (vqaEval.py, VQA v2 / TextVQA / EvalAI), keys as
# written there: a few keys are capitalised ("Im", "Ive") and so can never match the lower-cased words; kept as is.
_CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip
# NOTE: the official pattern is literally "(?!<=\d)(\.)(?!\d)" (a mistyped look-behind, so in effect: remove every
# period not followed by a digit); reproduced verbatim so "3.5" survives and "yes." becomes "yes". The official call
# is `PERIOD_STRIP.sub("", text, re.UNICODE)`, whose third positional argument is `count`: at most re.UNICODE (32)
# periods are removed. Reproduced too.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_STRIP_COUNT = int(re.UNICODE)
_COMMA_BETWEEN_DIGITS = re.compile(r"(?<=\d)(\,)+(?=\d)")

Normalization = Literal["vqa", "gqa", "none"]


def _word_tokenize(text: str) -> str:
    # The official processor's first step: lower case, every comma and question mark removed, "'s" split off.
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


def _process_punctuation(text: str) -> str:
    out = text
    has_digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in _PUNCTUATION:
        # Official rule: drop the mark when it touches a space (or the text has "1,000"-style numbers), else it
        # separates words ("black-and-white" -> "black and white"). The test looks at the text before this step.
        drop = f"{p} " in text or f" {p}" in text or has_digit_comma
        out = out.replace(p, "" if drop else " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digits_articles(text: str) -> str:
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_vqa_answer(answer: str) -> str:
    """Normalise an answer as the official TextVQA / VQA evaluator (EvalAI's answer processor) does.

    The steps of ``EvalAIAnswerProcessor``, which the TextVQA challenge and LLaVA's TextVQA evaluation apply to the
    prediction and to every human answer: lower case, remove every comma and question mark, split off ``'s``
    ("man's" -> "man 's"); newlines/tabs to spaces and strip; punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` !``
    dropped where it touches a space, else replaced by a space; periods not followed by a digit removed (at most
    32, as the official call does); number words to digits ("two" -> "2", "none" -> "0"); articles removed;
    contractions fixed ("dont" -> "don't").

    Example:
        >>> normalize_vqa_answer("The two dogs!")
        '2 dogs'
        >>> normalize_vqa_answer("black-and-white")
        'black and white'
        >>> normalize_vqa_answer("1,000."), normalize_vqa_answer("a,b"), normalize_vqa_answer("Man's")
        ('1000', 'ab', "man 's")
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}: {answer!r}")
    text = _word_tokenize(answer).replace("\n", " ").replace("\t", " ").strip()
    return _process_digits_articles(_process_punctuation(text))


def normalize_gqa_answer(answer: str) -> str:
    """Normalise an answer as LLaVA-1.5's GQA protocol does: strip, lower case, trailing periods removed.

    Example:
        >>> normalize_gqa_answer(" Yes. ")
        'yes'
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}: {answer!r}")
    return answer.strip().lower().rstrip(".").strip()


_NORMALIZERS = {"vqa": normalize_vqa_answer, "gqa": normalize_gqa_answer, "none": lambda a: a}


def gqa_match(pred: str, target: str | Sequence[str]) -> bool:
    """Whether a prediction equals the GQA answer (or any of several) after :func:`normalize_gqa_answer`.

    Example:
        >>> gqa_match("Left.", "left"), gqa_match("right", ["left"])
        (True, False)
    """
    targets = [target] if isinstance(target, str) else list(target)
    pred_n = normalize_gqa_answer(pred)
    return any(pred_n == normalize_gqa_answer(t) for t in targets)


def vqa_score(pred: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the human answers (normally 10).

    The score averages, over the n leave-one-out subsets of n-1 human answers, ``min(#matches / 3, 1)``; both the
    prediction and the answers are normalised with :func:`normalize_vqa_answer` (as LLaVA's TextVQA evaluator
    does). With a single reference answer the leave-one-out rule is undefined (it would always give 0), so the
    score is then exact match after the same normalisation.

    Example:
        >>> vqa_score("cat", ["cat", "cat"] + ["dog"] * 8)  # 8 subsets hold 2 cats, 2 subsets hold 1
        0.6
        >>> vqa_score("cat", ["cat"])
        1.0
    """
    if isinstance(answers, str) or len(answers) == 0:
        raise ValueError(f"answers must be a non-empty list of strings, got {answers!r}")
    pred_n = normalize_vqa_answer(pred)
    matches = sum(normalize_vqa_answer(a) == pred_n for a in answers)
    n = len(answers)
    if n == 1:
        return float(matches)
    # Leaving out a matching answer leaves matches-1 in the subset (happens `matches` times), otherwise `matches`.
    total = matches * min((matches - 1) / 3, 1.0) + (n - matches) * min(matches / 3, 1.0)
    return total / n


def _check_pairs(preds: Sequence[str], targets: Sequence[Any], targets_name: str) -> None:
    if isinstance(preds, str) or isinstance(targets, str):
        raise TypeError(f"preds and {targets_name} must be lists, not a single string")
    if len(preds) != len(targets):
        raise ValueError(f"preds and {targets_name} must have the same length, got {len(preds)=} and "
                         f"len({targets_name})={len(targets)}")
    for i, p in enumerate(preds):
        if not isinstance(p, str):
            raise TypeError(f"preds[{i}] must be a str, got {type(p).__name__}: {p!r}")


def _gqa_update(preds: Sequence[str], targets: Sequence[str | Sequence[str]]) -> tuple[float, int]:
    _check_pairs(preds, targets, "targets")
    return float(sum(gqa_match(p, t) for p, t in zip(preds, targets, strict=True))), len(preds)


def _vqa_update(preds: Sequence[str], targets: Sequence[Sequence[str]]) -> tuple[float, int]:
    _check_pairs(preds, targets, "targets")
    for i, t in enumerate(targets):
        if isinstance(t, str):
            raise TypeError(f"targets[{i}] must be a list of answer strings, got the str {t!r}")
    return sum(vqa_score(p, t) for p, t in zip(preds, targets, strict=True)), len(preds)


def _fidelity_update(preds: Sequence[str], reference_preds: Sequence[str], normalize: str) -> tuple[float, int]:
    _check_pairs(preds, reference_preds, "reference_preds")
    norm = _NORMALIZERS[normalize]
    return float(sum(norm(p) == norm(r) for p, r in zip(preds, reference_preds, strict=True))), len(preds)


def _check_normalize(normalize: str) -> str:
    if normalize not in _NORMALIZERS:
        raise ValueError(f"normalize must be one of {sorted(_NORMALIZERS)}, got {normalize!r}")
    return normalize


def gqa_accuracy(preds: Sequence[str], targets: Sequence[str | Sequence[str]]) -> float:
    """Mean GQA exact match (see :func:`gqa_match`); 0.0 for empty input.

    Example:
        >>> gqa_accuracy(["Yes.", "red"], ["yes", "blue"])
        0.5
    """
    hits, n = _gqa_update(preds, targets)
    return hits / n if n else 0.0


def vqa_accuracy(preds: Sequence[str], targets: Sequence[Sequence[str]]) -> float:
    """Mean official VQA accuracy (see :func:`vqa_score`); 0.0 for empty input.

    Example:
        >>> vqa_accuracy(["2"], [["two"] * 10])
        1.0
    """
    score, n = _vqa_update(preds, targets)
    return score / n if n else 0.0


def answer_fidelity(preds: Sequence[str], reference_preds: Sequence[str], normalize: Normalization = "vqa") -> float:
    """Fraction of answers equal to the reference (unpruned) model's answers after normalisation; no labels needed.

    Example:
        >>> answer_fidelity(["Two", "cat"], ["2", "dog"])
        0.5
    """
    hits, n = _fidelity_update(preds, reference_preds, _check_normalize(normalize))
    return hits / n if n else 0.0


class _MeanMetric(Metric):
    """Sum of per-sample scores and sample count, both reduced with ``sum`` across processes."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    score: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("score", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, score: float, n: int) -> None:
        self.score += score
        self.total += n

    def compute(self) -> torch.Tensor:
        """Mean score over all samples seen (0.0 before any sample)."""
        return (self.score / self.total.clamp(min=1)).float()


class GQAAccuracy(_MeanMetric):
    """GQA exact-match accuracy after :func:`normalize_gqa_answer`.

    Example:
        >>> m = GQAAccuracy()
        >>> m.update(["Yes.", "red"], ["yes", "blue"])
        >>> float(m.compute())
        0.5
    """

    def update(self, preds: Sequence[str], targets: Sequence[str | Sequence[str]]) -> None:
        """Add a batch: one prediction and one target answer (or list of answers) per sample."""
        self._add(*_gqa_update(preds, targets))


class VQAAccuracy(_MeanMetric):
    """Official VQA/TextVQA accuracy (leave-one-out ``min(#matches / 3, 1)``, see :func:`vqa_score`).

    Example:
        >>> m = VQAAccuracy()
        >>> m.update(["cat"], [["cat", "cat"] + ["dog"] * 8])
        >>> round(float(m.compute()), 4)
        0.6
    """

    def update(self, preds: Sequence[str], targets: Sequence[Sequence[str]]) -> None:
        """Add a batch: one prediction and one list of human answers per sample."""
        self._add(*_vqa_update(preds, targets))


class AnswerFidelity(_MeanMetric):
    """Agreement of the pruned model's answers with the unpruned model's answers on the same samples.

    Args:
        normalize: answer normalisation applied to both sides: ``"vqa"`` (official VQA rules, default),
            ``"gqa"`` (lower case, strip, trailing period) or ``"none"`` (raw strings).

    Example:
        >>> m = AnswerFidelity()
        >>> m.update(["Two", "cat"], ["2", "dog"])
        >>> float(m.compute())
        0.5
    """

    def __init__(self, normalize: Normalization = "vqa", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.normalize = _check_normalize(normalize)

    def update(self, preds: Sequence[str], reference_preds: Sequence[str]) -> None:
        """Add a batch of pruned answers and the unpruned answers to the same questions."""
        self._add(*_fidelity_update(preds, reference_preds, self.normalize))


def metric_for_task(task: str) -> GQAAccuracy | VQAAccuracy:
    """The accuracy metric of a task's protocol: GQA exact match for ``"gqa"``, VQA accuracy otherwise.

    Example:
        >>> type(metric_for_task("textvqa")).__name__
        'VQAAccuracy'
    """
    if task == "gqa":
        return GQAAccuracy()
    if task in ("textvqa", "jsonl"):
        return VQAAccuracy()
    raise ValueError(f"unknown task {task!r}; known tasks: ['gqa', 'jsonl', 'textvqa']")


__all__ = [
    "AnswerFidelity",
    "GQAAccuracy",
    "VQAAccuracy",
    "answer_fidelity",
    "gqa_accuracy",
    "gqa_match",
    "metric_for_task",
    "normalize_gqa_answer",
    "normalize_vqa_answer",
    "vqa_accuracy",
    "vqa_score",
]
