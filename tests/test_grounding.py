"""The figure check of grounded answers: which figures their sources state, and what QA_UNSUPPORTED does."""

import pytest

from qa_core.config import load_settings
from qa_core.documents import Document
from qa_core.errors import SettingsError
from qa_core.grounding import check_figures, settle
from qa_core.rag.answer import RagOptions, enforce, prepare
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import RagStore

LEASE = (
    "Northwind leases its Dayton plant for 90 days at a time. The loan is $1,150,000 at 3.5% a year.\n\n"
    "Under SEC Rule 10b-18 an issuer may repurchase up to 25% of the average daily volume."
)


def test_figures_are_found_in_any_form_the_metrics_read():
    check = check_figures("A loan of 1.15 million at 3.5 percent, for 90 days.", [LEASE])
    assert [(f.figure, f.source) for f in check.supported] == [("1.15 million", 1), ("3.5 percent", 1), ("90", 1)]
    assert check.supported[0].sentence == "The loan is $1,150,000 at 3.5% a year."
    assert check.unsupported == [] and check.warning is None


def test_a_figure_in_no_source_is_named_and_the_questions_own_figures_do_not_count():
    question = "Under SEC Rule 10b-18, how much of the average daily volume may an issuer repurchase?"
    check = check_figures("1. Up to 10% of the average daily volume [1], within 12 months.", ["x", LEASE], question)
    assert check.unsupported == ["10%", "12"]  # not the list number, the citation or the rule's 10b-18
    assert check.warning == "10% and 12 are in none of the sources"
    wrong = check_figures("It is $1.500 billion for 9 days.", [LEASE])
    assert wrong.unsupported == ["$1.500 billion", "9"] and wrong.supported == []
    assert check_figures("25% [2]", ["x", LEASE], question).supported[0].source == 2


def test_the_policy_keeps_quotes_or_refuses_an_answer_with_an_unsupported_figure():
    check = check_figures("About 3.86% a year.", [LEASE])
    assert settle("About 3.86% a year.", check, "warn", lambda: "quoted") == "About 3.86% a year."
    assert settle("About 3.86% a year.", check, "quote", lambda: "quoted") == "quoted"
    assert settle("About 3.86% a year.", check, "refuse", lambda: "quoted") == (
        "I cannot answer this from the sources: the answer written stated figures they do not "
        "(3.86% is in none of the sources)."
    )
    supported = check_figures("3.5% a year.", [LEASE])
    assert settle("3.5% a year.", supported, "refuse", lambda: "quoted") == "3.5% a year."
    with pytest.raises(SettingsError, match="QA_UNSUPPORTED"):
        load_settings(None, unsupported="silence")


def test_a_rag_answer_carries_its_check_and_quote_replaces_a_wrong_figure(tmp_path, demo):
    store = RagStore(load_settings(None, chroma_path=tmp_path / "db"))
    store.add_documents("lease.txt", [Document(LEASE, "lease.txt", "lease")], "v1")
    retriever = Retriever(store)
    question = "How much of the average daily volume may an issuer repurchase?"
    result = prepare(demo, retriever, question, RagOptions(k=1))
    result.answer = "Up to 10% [1]."  # what smollm2 wrote where the filing says 25%
    assert result.to_dict()["unsupported_figures"] == ["10%"] and result.to_dict()["supported_figures"] == []
    enforce(result, retriever, "quote")
    assert result.answer == "Under SEC Rule 10b-18 an issuer may repurchase up to 25% of the average daily volume. [1]"
    assert result.figure_check.to_dict()["supported_figures"][0]["figure"] == "25%"
