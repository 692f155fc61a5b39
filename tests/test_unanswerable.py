"""Unanswerable rows made from QA data, the "not stated" metrics, and how DPO pairs are judged."""

import pytest
from datasets import Dataset

from benchmarks import fact_sheets
from qa_core.data import load_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.errors import QAError
from qa_core.evaluate import score_mode
from qa_core.metrics import says_not_stated
from qa_core.unanswerable import NOT_STATED_ANSWER, states, with_unanswerable, without_answer
from train_job.preference import is_right

SHEET = (
    "In fiscal 2023, Coho Motors reported revenue of $4.2 billion. That compares with $3.9 billion in 2022. "
    "Coho Motors employs 12,400 people worldwide. Its headquarters are in Lyon."
)


def facts() -> Dataset:
    rows = fact_sheets.build_rows(40)
    return Dataset.from_list(
        [{"question": r["question"], "answer": r["answer"], "context": r["evidence_text"], "title": ""} for r in rows]
    )


def test_the_sentences_stating_the_answer_are_cut_and_the_rest_kept():
    assert without_answer(SHEET, "$4.2 billion") == (
        "That compares with $3.9 billion in 2022. Coho Motors employs 12,400 people worldwide. "
        "Its headquarters are in Lyon."
    )
    assert without_answer(SHEET, "Lyon").endswith("worldwide.")
    # an answer written as a sentence is stated by the sentence holding its figures
    assert "12,400" not in without_answer(SHEET, "Coho Motors has 12400 employees.")
    assert without_answer(SHEET, "$5.1 billion") is None  # nothing states it: nothing to cut
    assert without_answer("Revenue was $4.2 billion.", "$4.2 billion") is None  # nothing would be left


def test_unanswerable_rows_are_the_share_asked_and_none_states_its_answer():
    data = facts()
    mixed = with_unanswerable(data, 0.2, seed=3)
    added = [row for row in mixed if row["answer"] == NOT_STATED_ANSWER]
    assert len(mixed) == 50 and len(added) == 10
    originals = {row["question"]: row for row in data}
    own = 0
    for row in added:
        original = originals[row["question"]]
        assert not states(row["context"], original["answer"]), row
        assert row["withheld_answer"] == original["answer"]
        own += row["context"] in original["context"] or original["context"].startswith(row["context"][:20])
    assert 0 < own < len(added)  # both kinds: its own sheet less the answer, and another sheet
    assert [r["context"] for r in with_unanswerable(data, 0.2, seed=3)] == [r["context"] for r in mixed]
    assert {r["question"] for r in mixed} == set(originals)  # every question kept, none invented
    assert all(r["withheld_answer"] == "" for r in mixed if r["answer"] != NOT_STATED_ANSWER)


def test_the_sample_data_makes_unanswerable_rows_too():
    data = load_qa_data(sample_data_path())
    mixed = with_unanswerable(data, 0.25, "Not in the context.")
    assert sum(r["answer"] == "Not in the context." for r in mixed) == round(len(data) / 3)


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(QAError, match=f"at least 0 and below 1, got {share}"):
        with_unanswerable(facts(), share)


def test_rows_without_context_cannot_be_made_unanswerable():
    data = Dataset.from_list([{"question": "Q?", "answer": "A", "context": "", "title": ""}] * 5)
    with pytest.raises(QAError, match="rows with a context"):
        with_unanswerable(data, 0.2)
    assert with_unanswerable(data, 0) is data


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (NOT_STATED_ANSWER, True),
        ("The documents do not state this (no source names Coho).", True),
        ("The context doesn't mention the dividend.", True),
        ("Not stated in the text.", True),
        ("There is no information about it.", True),
        ("$4.2 billion", False),
        ("It states revenue of $4.2 billion; the dividend is not known yet.", False),
    ],
)
def test_says_not_stated(answer, says):
    assert says_not_stated(answer) is says


def test_evaluation_reports_not_stated_on_unanswerable_rows_only():
    questions = ["What was Coho Motors' revenue in fiscal 2023?"] * 4
    references = ["$4.2 billion", "$4.2 billion", NOT_STATED_ANSWER, NOT_STATED_ANSWER]
    answers = ["$4.2 billion", NOT_STATED_ANSWER, "The context does not state this.", "$3.9 billion"]
    row, per_question = score_mode(answers, references, questions, [[SHEET]] * 4)
    assert [q["unanswerable"] for q in per_question] == [False, False, True, True]
    assert (row["not_stated"], row["figure_when_unanswerable"], row["not_stated_when_answerable"]) == (0.5, 0.5, 0.5)
    assert row["exact_figure"] == 0.5  # the unanswerable rows have no reference figure: not counted
    answerable_only, _ = score_mode(answers[:2], references[:2], questions[:2])
    assert answerable_only["not_stated"] is None and answerable_only["figure_when_unanswerable"] is None


@pytest.mark.parametrize(
    ("answer", "reference", "right"),
    [
        ("$4.2 billion", "$4.2 billion", True),
        ("Revenue was $4.2 billion in fiscal 2023.", "$4.2 billion", True),
        ("$3.9 billion", "$4.2 billion", False),  # the other year's figure
        ("$4.2 billion, up from $3.9 billion", "$4.2 billion", False),  # the other year's figure gets no ✓
        ("$4.2 billion and 12,400 employees", "$4.2 billion", False),  # a figure the question did not ask for
        ("$4.2 million", "$4.2 billion", False),
        (NOT_STATED_ANSWER, "$4.2 billion", False),  # the context does state it
        (NOT_STATED_ANSWER, NOT_STATED_ANSWER, True),
        ("The context does not state this; maybe $4.2 billion.", NOT_STATED_ANSWER, False),
        ("$4.2 billion", NOT_STATED_ANSWER, False),
        ("Lyon", NOT_STATED_ANSWER, False),
    ],
)
def test_how_a_sampled_answer_is_judged_for_preference_pairs(answer, reference, right):
    assert is_right(answer, "What was Coho Motors' revenue in fiscal 2023?", reference, SHEET) is right
