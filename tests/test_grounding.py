"""The figure check of grounded answers: a ✓ only beside a figure that answers the question, "the
documents do not state this" when none can, and what QA_UNSUPPORTED does."""

from collections.abc import Iterator

import pytest

from qa_core.config import load_settings
from qa_core.documents import Document
from qa_core.errors import SettingsError
from qa_core.grounding import check_figures, settle, unrepeated, unstated
from qa_core.quantities import quantities
from qa_core.questions import asked_kind, subjects
from qa_core.rag.answer import RagOptions, answer, answer_stream
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import RagStore
from qa_core.serving import with_check

LEASE = (
    "Northwind leases its Dayton plant for 90 days at a time. The loan is $1,150,000 at 3.5% a year.\n\n"
    "Under SEC Rule 10b-18 an issuer may repurchase up to 25% of the average daily volume."
)
REPURCHASE = "Under SEC Rule 10b-18, how much of the average daily volume may an issuer repurchase?"


def test_figures_are_found_in_any_form_the_metrics_read():
    check = check_figures("A loan of 1.15 million at 3.5 percent, for 90 days.", [LEASE])
    assert [(f.figure, f.source) for f in check.supported] == [("1.15 million", 1), ("3.5 percent", 1), ("90", 1)]
    assert check.supported[0].sentence == "The loan is $1,150,000 at 3.5% a year."
    assert check.unsupported == [] and check.off_question == [] and check.warning is None


def test_a_figure_in_no_source_is_named_and_the_questions_own_figures_do_not_count():
    check = check_figures("1. Up to 10% of the average daily volume [1], within 12 months.", ["x", LEASE], REPURCHASE)
    assert check.unsupported == ["10%", "12"]  # not the list number, the citation or the rule's 10b-18
    assert check.warning == "10% and 12 are in none of the sources"
    wrong = check_figures("It is $1.500 billion for 9 days.", [LEASE])
    assert wrong.unsupported == ["$1.500 billion", "9"] and wrong.supported == []
    right = check_figures("25% [2]", ["x", LEASE], REPURCHASE).supported[0]
    assert (right.source, right.why) == (2, "a percentage, in a source that names SEC Rule 10b-18")


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        ("10%", "Sections 9(a)(2) and 10(b) of the Securities Exchange Act apply; the limit is 25%."),
        ("10%", "Rule 10b-18 sets the limit; see § 10 and clause 10 of Exhibit 10."),
        ("$546 million", "Net income was $259 million. The company has 546 employees."),
        ("12%", "The company sells in 12 countries and holds 9.5% of its market."),
        ("1", "Share repurchases (report.pdf:1) were $2.2 billion."),
        ("2", "See page 2 and Note 2 for the repurchase of $2.2 billion."),
        ("2", "Home 2.2Accelerated Share Repurchase; faq.csv, row 2; a buyback of $2.2 billion."),
        ("90 days", "The plant employs 90 people."),
        ("25,000 square feet", "Rent is $25,000 a month."),
    ],
)
def test_unit_confusions_are_never_supported(answer, source):
    check = check_figures(answer, [source])
    assert check.supported == [] and check.unsupported == [quantities(answer)[0].text]


def test_numbers_are_read_as_the_quantity_they_state():
    text = "Sections 9(a)(2) and 10(b): 25% of $1.2 billion, 546 employees, 90 days, 25,000 square feet, in 2023."
    assert [(q.text, q.kind, q.unit) for q in quantities(text)] == [
        ("25%", "percent", ""),
        ("$1.2 billion", "money", "USD"),
        ("546", "count", "person"),
        ("90", "duration", "day"),
        ("25,000", "area", "square feet"),
        ("2023", "year", ""),
    ]


@pytest.mark.parametrize(
    ("question", "kind", "named"),
    [
        ("At what yearly rate does interest accrue on the loan to Kestrel Robotics?", "percent", ["Kestrel Robotics"]),
        (REPURCHASE, "percent", ["SEC Rule 10b-18"]),
        ("What was the CET1 ratio?", "percent", ["CET1"]),
        ("How much notice must Acme give before it ends the lease?", "duration", ["Acme"]),
        ("What is the floor area of the Dayton plant?", "area", ["Dayton"]),
        ("How large was Redfern Mining's 2021 profit after tax?", "money", ["Redfern Mining", "2021"]),
        ("How many people does Northwind Motors employ?", "count", ["Northwind Motors"]),
        ("In which year was Harbor Point Foods founded?", "year", ["Harbor Point Foods"]),
        ("Who is the CEO of Fabrikam Toys Inc.?", None, ["Fabrikam Toys Inc"]),
    ],
)
def test_what_a_question_asks_is_read_from_its_wording(question, kind, named):
    assert (asked_kind(question), subjects(question)) == (kind, named)


def test_a_figure_found_but_not_answering_the_question_gets_no_tick():
    other_loan = "Acme Textiles borrowed $475 million from Westbank at 6.5% a year, repayable over 60 months."
    rate = "At what yearly rate does interest accrue on the loan to Kestrel Robotics?"
    wrong_company = check_figures("$475 million", [other_loan], rate)
    assert wrong_company.supported == [] and wrong_company.off_question[0].why == (
        "that source does not name Kestrel Robotics"
    )
    wrong_kind = check_figures("$475 million", [other_loan], "At what yearly rate does Acme Textiles pay interest?")
    assert wrong_kind.off_question[0].why == "as money, and the question asks for a percentage"
    assert check_figures("6.5%", [other_loan], "At what rate does Acme Textiles pay interest?").supported
    sheet = "In fiscal 2023, Contoso reported revenue of $4.2 billion. That compares with $3.1 billion in 2022."
    other_year = check_figures("$3.1 billion", [sheet], "What was Contoso's revenue in fiscal 2023?")
    assert other_year.off_question[0].why == "for 2022, and the question asks about 2023"
    assert "$3.1 billion is stated in [1] but for 2022" in other_year.warning
    assert check_figures("$4.2 billion", [sheet], "What was Contoso's revenue in fiscal 2023?").supported


def test_a_year_dating_a_figure_in_its_own_sentence_is_no_second_answer_to_flag():
    source = "Harbor Utilities achieved an operating margin of 18.4% in the third quarter of 2025."
    question = "What operating margin did Harbor Utilities achieve?"
    quoted = check_figures(source + " [1]", [source], question)
    assert [f.figure for f in quoted.supported] == ["18.4%"] and not quoted.flagged
    assert check_figures("18.4% in the third quarter of 2024.", [source], question).unsupported == ["2024"]
    sheet = "In fiscal 2023, Contoso reported revenue of $4.2 billion. That compares with $3.1 billion in 2022."
    other_sentence = check_figures("$4.2 billion, against 2022.", [sheet], "What was Contoso's revenue in fiscal 2023?")
    assert other_sentence.supported and [f.figure for f in other_sentence.off_question] == ["2022"]
    two_years = "Contoso's revenue was $4.2 billion in 2023, up from $3.1 billion in 2022."
    misdated = check_figures("$4.2 billion in 2022.", [two_years], "What was Contoso's revenue?")
    assert misdated.supported and [f.figure for f in misdated.off_question] == ["2022"]  # either year may be wrong
    when = check_figures("In 2025.", [source], "In which year did Harbor Utilities achieve an 18.4% margin?")
    assert [f.figure for f in when.supported] == ["2025"]  # asked for, a year is the answer


def test_compared_answers_say_what_the_check_makes_of_their_figures():
    sheet = "In fiscal 2023, Contoso reported revenue of $4.2 billion. That compares with $3.1 billion in 2022."
    question = "What was Contoso's revenue in fiscal 2023?"
    assert with_check("$4.2 billion", question, sheet) == "$4.2 billion\n\n✓ $4.2 billion: stated in the context"
    assert with_check("$1.1 billion", question, sheet).endswith("\n\n⚠ $1.1 billion is in none of the sources")
    assert "⚠ $3.1 billion is stated in [1] but for 2022" in with_check("$3.1 billion", question, sheet)
    assert with_check("$1.1 billion", question, None).endswith(
        "(closed-book: no context given, so its figures are the model's own and unchecked)"
    )


def test_the_sentence_shown_is_the_cited_sources_one_stating_that_quantity():
    sources = ["The fund returned 25% over the decade.", LEASE]
    check = check_figures("Up to 25% [2].", sources, "How much of the daily volume may an issuer repurchase?", [2])
    assert check.supported[0].source == 2 and "average daily volume" in check.supported[0].sentence


def test_the_documents_do_not_state_what_no_source_names_or_states():
    assert unstated("What was the CET1 ratio?", [LEASE]) == "no source names CET1"
    notice = "How much notice must Northwind give before it ends the Dayton lease?"
    assert unstated(notice, ["Northwind pays $4,000 a month for its Dayton plant."]) == (
        "no source about Northwind and Dayton states a duration"
    )
    assert unstated(notice, [LEASE]) is None
    assert unstated(REPURCHASE, [LEASE]) is None
    assert unstated("Who founded Northwind?", ["Contoso was founded in 1990."]) == "no source names Northwind"


def test_the_policy_keeps_quotes_or_refuses_an_answer_whose_figures_lack_a_tick():
    def settled(answer, policy, question="At what rate does Northwind borrow?"):
        return settle(question, answer, [LEASE], policy, lambda: "quoted")

    assert settled("About 3.86% a year.", "warn").answer == "About 3.86% a year."
    quoted = settled("About 3.86% a year.", "quote")
    assert (quoted.answer, quoted.stated, quoted.replaced) == ("quoted", "About 3.86% a year.", "quote")
    assert quoted.to_dict()["unsupported_figures"] == ["3.86%"]  # the check of what the model stated
    assert "the model's answer 'About 3.86% a year.' was replaced (QA_UNSUPPORTED=quote)" in quoted.warning
    assert settled("About 3.86% a year.", "refuse").answer == (
        "I cannot answer this from the sources: the answer written stated figures they do not "
        "(3.86% is in none of the sources)."
    )
    assert settled("3.5% a year.", "refuse").answer == "3.5% a year."
    unasked = settled("3.5% a year.", "warn", "What was the CET1 ratio of Northwind?")
    assert unasked.answer == "The documents do not state this (no source names CET1)."
    assert (unasked.stated, unasked.not_stated, unasked.replaced) == (
        "3.5% a year.",
        "no source names CET1",
        "not stated",
    )
    with pytest.raises(SettingsError, match="QA_UNSUPPORTED"):
        load_settings(None, unsupported="silence")


def test_a_looping_answer_is_cut_where_it_starts_to_repeat():
    assert unrepeated("The answer is: 40%" * 25) == "The answer is: 40%"
    assert unrepeated("It is 25%. The rule says so. It is 25%. The rule") == "It is 25%. The rule says so."
    assert unrepeated("Revenue was $4.2 billion. Net income was $259 million.") == (
        "Revenue was $4.2 billion. Net income was $259 million."
    )


class Scripted:
    """Stands in for the model only: writes a given answer token by token, and counts what was read."""

    def __init__(self, text: str) -> None:
        self.text, self.read = text, 0

    def generate(self, prompt: str, settings=None) -> str:
        return self.text

    def stream(self, prompt: str, settings=None) -> Iterator[str]:
        for end in range(4, len(self.text) + 4, 4):
            self.read = end
            yield self.text[:end]


@pytest.fixture
def lease_retriever(tmp_path):
    store = RagStore(load_settings(None, chroma_path=tmp_path / "db"))
    store.add_documents("lease.txt", [Document(LEASE, "lease.txt", "lease")], "v1")
    return Retriever(store)


def rag(demo, retriever, written, policy):
    return answer_stream(demo, retriever, REPURCHASE, RagOptions(k=2), policy, Scripted(written))


def test_one_rag_pipeline_settles_the_answer_once_and_reports_what_was_replaced(lease_retriever, demo):
    reports = [(result.answer, result.grounded) for result in rag(demo, lease_retriever, "Up to 10% [1].", "quote")]
    assert [grounded for _, grounded in reports[:-1]] == [None] * (len(reports) - 1)  # made once, when complete
    assert reports[-2][0] == "Up to 10% [1]."  # the whole answer was streamed before it was settled
    *_, final = rag(demo, lease_retriever, "Up to 10% [1].", "quote")
    assert final.answer == "Under SEC Rule 10b-18 an issuer may repurchase up to 25% of the average daily volume. [1]"
    report = final.to_dict()
    assert (report["model_answer"], report["replaced"], report["unsupported_figures"]) == (
        "Up to 10% [1].",
        "quote",
        ["10%"],
    )
    assert report["supported_figures"] == []  # the check is of what the model stated, not of the quote


def test_a_looping_answer_stops_its_generation(lease_retriever, demo):
    writer = Scripted("Up to 25% [1]. " * 40)
    *_, final = answer_stream(demo, lease_retriever, REPURCHASE, RagOptions(k=2), "warn", writer)
    assert final.answer == "Up to 25% [1]." and writer.read < len(writer.text) / 4
    assert [f.figure for f in final.grounded.check.supported] == ["25%"]


def test_extractive_answers_say_when_the_documents_do_not_state_it(lease_retriever):
    unasked = answer(None, lease_retriever, "What was the CET1 ratio?", RagOptions(mode="extractive", k=2))
    assert unasked.answer == "The documents do not state this (no source names CET1)."
    assert unasked.citations.startswith("Closest passages (none states what was asked):\n[1] lease.txt")
    elsewhere = answer(None, lease_retriever, "What is photosynthesis?", RagOptions(mode="extractive", k=2))
    assert elsewhere.answer.startswith("The documents do not state this (the closest passage scores 0.")
    asked = answer(None, lease_retriever, "At what rate is the loan?", RagOptions(mode="extractive", k=2))
    assert asked.answer.startswith("The loan is $1,150,000 at 3.5% a year.")  # the sentence stating a rate
    report = asked.to_dict()
    assert report["replaced"] is None and report["model_answer"] == asked.answer  # a quote is never replaced
    assert [f["figure"] for f in report["supported_figures"]] == ["3.5%"]
    assert [f["figure"] for f in report["off_question_figures"]] == ["$1,150,000"]  # money, where a rate is asked


def test_retrieved_chunks_come_in_score_order(lease_retriever):
    paragraphs = [f"Issuers may repurchase shares up to a share of the daily volume, rule {n}. " * 12 for n in range(6)]
    long = Document("\n\n".join(paragraphs), "volume.txt", "volume")
    lease_retriever.store.add_documents("volume.txt", [long], "v1")
    hits = lease_retriever.search("how much of the daily volume may issuers repurchase", 4)
    assert len({hit.source for hit in hits}) == 2 and len(hits) == 4  # a page's second chunk among others' best
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


@pytest.mark.slow
def test_the_tick_is_precise_on_sheets_it_was_not_tuned_on():
    """benchmarks/trust.py's check-alone figures on a few of its rows: fact and loan sheets with
    wrong figures, other years', other kinds' and other companies' figures, and unit confusions."""
    import random

    from benchmarks.trust import check_alone, corpus

    figures = check_alone(corpus(16), random.Random(0))
    assert figures["unit_confusions_ticked"] == 0 and figures["right_flagged"] == 0.0, figures
    assert figures["tick_precision"] >= 0.95 and figures["fooling_flagged"] >= 0.85, figures
    assert figures["not_stated"] == 1.0, figures
