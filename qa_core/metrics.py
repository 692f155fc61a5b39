"""Answer-quality metrics: each compares generated answers with reference answers.

- semantic similarity: cosine of all-MiniLM-L6-v2 embeddings (as the context-QA project reports);
- BLEU (sacrebleu, 0-1; n-gram orders longer than an answer are left out, so a two-word answer can
  score, but BLEU still says little about short answers: read exact figure and contains answer) and
  ROUGE-1, ROUGE-2 and ROUGE-L F1 (rouge-score; the QnA recipes report all three);
- BERTScore F1, only when its model is already available locally (never downloaded);
- numeric match: the share of the reference's figures found in the answer, however they are written
  ("$1,200" = "1200", "5%" = "5 percent", "1.24 billion" = "1,240 million"; a scale word on one side
  only is the unit left out, so "$1,706" = "$1,706 million"); figures the question itself states
  ("in 2023", "100%") are not counted, since copying them proves nothing;
- exact figure: every figure of the reference is in the answer (numeric match of 1);
- contains answer: the whole reference, normalised (case, punctuation, thousands separators), is in
  the answer: the measure for short answers ("$4.2 billion", "Rotterdam");
- refusal: whether the answer declines to answer.

    >>> numbers("Revenue was $1,240 million, up 12.2%.")
    [1240000000.0, 12.2]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from huggingface_hub import try_to_load_from_cache
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from qa_core.embeddings import DEFAULT_EMBEDDING_MODEL, load_sentence_model

SCALES = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "mn": 1e6,
    "m": 1e6,
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "trillion": 1e12,
    "tn": 1e12,
}
# Signs are ignored: "a 5% fall" and "-5%" state the same number. Digits glued to letters are names,
# not figures ("Rule 10b-18", "Q3", "FY2023", "COVID-19"), and a scale letter must end the figure
# ("10b-18" is no 10 billion).
NUMBER = re.compile(
    r"(?<![\w.])(?<![A-Za-z]-)[$€£]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(%|percent|per cent)?"
    r"(?:\s*(thousand|million|billion|trillion|bn|mn|tn|k|m|b)\b(?!-))?(?![A-Za-z\d])",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(i don'?t know|i do not know|cannot answer|can't answer|unable to answer|not (?:enough|sufficient) "
    r"information|does not (?:contain|provide|mention)|no information|i'?m sorry|i am sorry|not able to)\b",
    re.IGNORECASE,
)
# "The context does not state this", as taught (qa_core.unanswerable) and as models put it otherwise.
NOT_STATED = re.compile(
    r"\b(?:does|do|did)\s*n[o']t (?:state|say|mention|specify|give|include|provide|contain)\b"
    r"|\bnot (?:stated|mentioned|specified|given|provided)\b|\bno (?:information|mention)\b",
    re.IGNORECASE,
)
BERTSCORE_MODEL = "roberta-large"


@dataclass(frozen=True)
class Figure:
    """A number as written (`digits`, separators dropped) and the factor of its scale word (1 if none)."""

    digits: float
    scale: float = 1.0

    @property
    def value(self) -> float:
        return self.digits * self.scale

    def same_as(self, other: Figure) -> bool:
        """The same value, or the same digits where one side leaves its scale word out (the unit is
        then the question's: "$1,706" answers "in millions" as "$1,706 million" does)."""
        if math.isclose(self.value, other.value, rel_tol=1e-9):
            return True
        return 1.0 in (self.scale, other.scale) and math.isclose(self.digits, other.digits, rel_tol=1e-9)


def figure_mentions(text: str) -> list[tuple[str, Figure]]:
    """The numbers in `text`, each as written ("$1,150,000", "3.86%", "90 days" reads "90") and as a `Figure`."""
    found = []
    for match in NUMBER.finditer(text):
        integer, fraction, _percent, scale = match.groups()
        digits = float(integer.replace(",", "") + (fraction or ""))
        found.append((match.group(0).strip(), Figure(digits, SCALES[scale.lower()] if scale else 1.0)))
    return found


def figures(text: str) -> list[Figure]:
    """The numbers in `text`: separators dropped, % kept as the number, scale words recorded."""
    return [figure for _, figure in figure_mentions(text)]


def numbers(text: str) -> list[float]:
    """The numbers in `text` as values: separators dropped, scale words applied, % kept as the number."""
    return [figure.value for figure in figures(text)]


def numeric_match(answer: str, reference: str, question: str = "") -> float | None:
    """Share of the reference's figures that the answer states, leaving out those the `question`
    states itself (None when no figure is left to check)."""
    asked = figures(question)
    wanted = [w for w in figures(reference) if not any(math.isclose(w.value, q.value) for q in asked)]
    if not wanted:
        return None
    given = figures(answer)
    return sum(any(w.same_as(g) for g in given) for w in wanted) / len(wanted)


def exact_figure(answer: str, reference: str, question: str = "") -> bool | None:
    """True when every figure of the reference (those the question states left out) is in the
    answer; None when the reference has no other figure."""
    share = numeric_match(answer, reference, question)
    return None if share is None else share == 1.0


def normalise(text: str) -> str:
    """Lower case; thousands separators and punctuation dropped (decimal points, % and currency signs kept)."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.casefold())
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return " ".join(re.sub(r"[^\w%.$€£]+", " ", text).split())


def contains_answer(answer: str, reference: str) -> bool:
    """True when the normalised reference appears in the normalised answer as whole words."""
    wanted = normalise(reference)
    return bool(wanted) and f" {wanted} " in f" {normalise(answer)} "


def is_refusal(answer: str) -> bool:
    """True when the answer declines ("I don't know", "the context does not contain ...") or is empty."""
    return not answer.strip() or bool(REFUSAL.search(answer)) or says_not_stated(answer)


def says_not_stated(answer: str) -> bool:
    """True when the answer says its context (or the documents) does not state what was asked."""
    return bool(NOT_STATED.search(answer))


def semantic_similarity(answers: Sequence[str], references: Sequence[str], model: str | None = None) -> list[float]:
    """Cosine similarity of each answer's and reference's sentence embeddings."""
    encoder = load_sentence_model(model or DEFAULT_EMBEDDING_MODEL)
    a = encoder.encode(list(answers), normalize_embeddings=True)
    r = encoder.encode(list(references), normalize_embeddings=True)
    return [float(x @ y) for x, y in zip(a, r, strict=True)]


# Without effective order, an answer shorter than four words has no 4-grams and scores 0 however right it is.
_BLEU = BLEU(effective_order=True)


def bleu(answer: str, reference: str) -> float:
    """Sentence BLEU between 0 and 1."""
    return _BLEU.sentence_score(answer, [reference]).score / 100


def corpus_bleu(answers: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU between 0 and 1 (n-gram counts pooled over all answers)."""
    return _BLEU.corpus_score(list(answers), [list(references)]).score / 100


ROUGE_KEYS = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL"}
_ROUGE = rouge_scorer.RougeScorer(list(ROUGE_KEYS.values()), use_stemmer=True)


def rouge(answer: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 between 0 and 1, keyed rouge_1, rouge_2, rouge_l."""
    scores = _ROUGE.score(reference, answer)
    return {name: scores[key].fmeasure for name, key in ROUGE_KEYS.items()}


def bertscore(answers: Sequence[str], references: Sequence[str], model: str = BERTSCORE_MODEL) -> list[float] | None:
    """BERTScore F1 per answer, or None when the model is not in the local cache (nothing is downloaded)."""
    if not isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    from bert_score import score

    _, _, f1 = score(list(answers), list(references), model_type=model, verbose=False)
    return [float(x) for x in f1]
