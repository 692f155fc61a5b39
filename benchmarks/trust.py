"""Can a reader trust a ✓, and "the documents do not state this"? Grounded answers on questions the
documents answer, on questions they do not, and on answers built to fool the figure check.

    python -m benchmarks.trust                                  # the check alone (seconds)
    python -m benchmarks.trust --model smollm2                  # and the model's answers (minutes)
    python -m benchmarks.trust --model smollm2 --adapter tester/facts-qa

Three corpora, none of which the check was tuned on: fact sheets of variant b
(`benchmarks/fact_sheets.py`, seed 1: companies, people and wordings the walk-through never
trains on), loan and lease sheets (`benchmarks/agreements.py`: rates, terms, notice periods,
floor areas), and a real public-domain text, 17 CFR 240.10b-18 abridged (`benchmarks/data/`),
which cites "sections 9(a)(2) and 10(b)" a few words from its 25 percent.

The check alone (`qa_core.grounding`):
- answerable: each reference answer, in a sentence and written another way, against its own
  sheet: the share flagged is the false alarm;
- built to fool it: the figure moved by a factor the sheet does not state, the sheet's other
  figures (another year, another kind: the amount where a rate is asked), the same question's
  figure from another borrower's or company's sheet (RAG over three), and planted unit confusions
  (10 % vs 10(b), $546 million vs 546 employees, 12 % vs 12 countries, page markers);
  `tick_precision` is the share of ✓ figures that are the reference's, over all of them;
- unanswerable: each question with a sheet of the other kind as its context, and by retrieval
  over three such sheets: the share answered "not stated".

With `--model`: context QA with its own sheet (exact figure of the answer shown, share flagged),
with a sheet of another kind (share "not stated" or flagged, ✓ given), and RAG over the 17 fact
sheets in each mode (exact figure, invented figures flagged, right answers flagged) and with
questions no sheet answers (share "not stated"). The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from tqdm import tqdm

from benchmarks import agreements, fact_sheets
from benchmarks.figure_check import planted, written_otherwise
from qa_core.grounding import check_figures, unstated
from qa_core.metrics import contains_answer, exact_figure
from qa_core.quantities import quantities

RULE = (Path(__file__).parent / "data" / "rule_10b18.txt").read_text(encoding="utf-8")
RULE_ROWS = [
    ("Under Rule 10b-18, how much of the ADTV may an issuer purchase on a single day?", "25 percent"),
    ("Under Rule 10b-18, how many minutes before the close must purchases of a large security stop?", "10 minutes"),
    ("Under Rule 10b-18, how many minutes before the close must purchases of other securities stop?", "30 minutes"),
    ("What public float value makes a security eligible for the 10-minute window under Rule 10b-18?", "$150 million"),
]
# (question, answer, source): the figure is in the source, as another quantity or as no figure at all.
CONFUSIONS = [
    ("Under Rule 10b-18, how much of the ADTV may an issuer buy?", "10%", RULE),
    ("Under Rule 10b-18, how much of the ADTV may an issuer buy?", "9%", RULE),
    ("What was the net income of Redfern Mining?", "$546 million", "Redfern Mining employs 546 people."),
    ("What is Redfern Mining's market share?", "12%", "Redfern Mining sells in 12 countries."),
    ("How much did Redfern Mining spend on buybacks?", "$1", "Redfern Mining (report.pdf:1) bought back $2.2 billion."),
    ("How long is the notice period at Redfern Mining?", "90 days", "Redfern Mining employs 90 lawyers."),
    ("What floor area does Redfern Mining lease?", "25,000 square feet", "Redfern Mining pays $25,000 a month."),
    ("What was Redfern Mining's revenue growth?", "3%", "See Note 3 and page 3 of Redfern Mining's report."),
]  # fmt: skip


def corpus(rows: int) -> list[dict]:
    """Fact-sheet and agreement rows (half each) and the rule's, each with its kind."""
    facts = [{**row, "kind": "fact"} for row in fact_sheets.build_rows(rows // 2, "b", seed=1)]
    loans = [{**row, "kind": "loan"} for row in agreements.build_rows(min(rows // 2, 60), seed=1)]
    rule = [{"question": q, "answer": a, "evidence_text": RULE, "kind": "rule"} for q, a in RULE_ROWS]
    return facts + loans + rule


def check_alone(rows: list[dict], rng: random.Random) -> dict[str, float]:
    ticks = {"right": 0, "wrong": 0}
    right = flagged_right = fooled = fooled_flagged = unanswerable = not_stated = 0
    for row in rows:
        source, question, reference = row["evidence_text"], row["question"], row["answer"]
        stated = quantities(reference)
        if len(stated) != 1 or row["kind"] == "fact" and reference.isdigit() and len(reference) == 4:
            continue  # figures, not names or founding years
        forms = [reference, f"According to the document, it is {reference}."]
        forms += [form] if (form := written_otherwise(stated[0].text, stated[0].figure)) else []
        for answer in forms:
            check = check_figures(answer, [source], question)
            right, flagged_right, ticks["right"] = (
                right + 1,
                flagged_right + check.flagged,
                ticks["right"] + len(check.supported),
            )
        others = [r["evidence_text"] for r in rows if r["kind"] == row["kind"] and r["evidence_text"] != source]
        foolers = [planted(reference, stated[0].figure, source, rng)]
        foolers += [q.text for q in quantities(source) if not q.figure.same_as(stated[0].figure)]  # the sheet's others
        two = rng.sample(others, 2) if len(set(others)) >= 2 else []
        foolers_rag = [q.text for other in two for q in quantities(other) if q.kind == stated[0].kind][:2]
        for answer, sources in [*((a, [source]) for a in foolers), *((a, [*two, source]) for a in foolers_rag)]:
            check = check_figures(answer, sources, question)
            if any(contains_answer(f.figure, reference) or exact_figure(f.figure, reference) for f in check.supported):
                continue  # the same figure by chance: a right answer after all
            fooled, fooled_flagged, ticks["wrong"] = (
                fooled + 1,
                fooled_flagged + check.flagged,
                ticks["wrong"] + len(check.supported),
            )
        other_kind = [r["evidence_text"] for r in rows if r["kind"] != row["kind"]]
        for sources in ([rng.choice(other_kind)], rng.sample(other_kind, 3)):
            unanswerable, not_stated = unanswerable + 1, not_stated + bool(unstated(question, sources))
    confusions_ticked = sum(bool(check_figures(a, [s], q).supported) for q, a, s in CONFUSIONS)
    return {
        "right_answers": right,
        "right_flagged": flagged_right / right,
        "fooling_answers": fooled,
        "fooling_flagged": fooled_flagged / fooled,
        "tick_precision": ticks["right"] / (ticks["right"] + ticks["wrong"]),
        "unanswerable": unanswerable,
        "not_stated": not_stated / unanswerable,
        "unit_confusions_ticked": confusions_ticked,
    }


def model_answers(model: str, adapter: str | None, rows: list[dict], rag_rows: int) -> dict[str, float]:
    """Context QA and RAG answers of `model`, settled as the app and the CLIs settle them."""
    from qa_core.config import load_settings
    from qa_core.documents import Document
    from qa_core.generation import GenerationSettings
    from qa_core.grounding import settle_from_context
    from qa_core.models import load_model
    from qa_core.qa import qa_prompt
    from qa_core.rag import MODES
    from qa_core.rag.answer import RagOptions, answer
    from qa_core.rag.retrieval import Retriever
    from qa_core.rag.store import temporary_store

    settings = load_settings(None)
    loaded = load_model(model, adapter, settings=settings)
    generation = GenerationSettings(max_new_tokens=48)
    rng = random.Random(2)
    facts = [row for row in rows if row["kind"] == "fact"]
    others = {kind: [r["evidence_text"] for r in rows if r["kind"] != kind] for kind in ("fact", "loan", "rule")}
    pairs = [(row, row["evidence_text"]) for row in rows] + [(row, rng.choice(others[row["kind"]])) for row in rows]
    prompts = [qa_prompt(loaded, r["question"], c) for r, c in pairs]
    written = loaded.backend.generate_many(prompts, generation, show_progress=True)
    out: dict[str, float] = {}
    own, other = written[: len(rows)], written[len(rows) :]
    shown = [settle_from_context(r["question"], a, r["evidence_text"], "warn") for r, a in zip(rows, own, strict=True)]
    out["context_exact"] = sum(
        bool(exact_figure(g.answer, r["answer"], r["question"])) for g, r in zip(shown, rows, strict=True)
    ) / len(rows)
    out["context_flagged"] = sum(g.check.flagged for g in shown) / len(rows)
    wrong_context = [
        settle_from_context(r["question"], a, c, "warn") for (r, c), a in zip(pairs[len(rows) :], other, strict=True)
    ]
    out["other_context_not_stated_or_flagged"] = sum(
        bool(g.not_stated) or g.check.flagged for g in wrong_context
    ) / len(rows)
    out["other_context_ticks"] = sum(len(g.check.supported) for g in wrong_context)
    sheets = sorted({row["evidence_text"] for row in facts[:rag_rows]})
    with temporary_store(settings) as store:
        for n, sheet in enumerate(sheets):
            store.add_documents(f"sheet-{n}", [Document(sheet, f"sheet-{n}", "")], f"sheet-{n}")
        retriever = Retriever(store)
        asked = [row for row in facts if row["evidence_text"] in sheets][:rag_rows]
        unanswerable = [row for row in rows if row["kind"] == "loan"][: len(asked) // 2]
        for mode in MODES:
            for policy in ("warn", "quote") if mode != "extractive" else ("quote",):
                key = f"rag_{mode.split('-')[0]}" + (f"_{policy}" if mode != "extractive" else "")
                options = RagOptions(mode, k=3, generation=generation)
                results = [answer(loaded, retriever, r["question"], options, policy) for r in tqdm(asked, desc=key)]
                stated = list(zip(results, asked, strict=True))
                exact = [exact_figure(r.answer, row["answer"], row["question"]) for r, row in stated]
                invented = [r for r, _ in stated if check_figures(r.grounded.stated, sheets, r.question).unsupported]
                right = [r for r, row in stated if contains_answer(r.grounded.stated, row["answer"])]
                off = [answer(loaded, retriever, r["question"], options, policy) for r in unanswerable]
                out |= {
                    f"{key}_exact": sum(map(bool, exact)) / len(asked),
                    f"{key}_invented": len(invented),
                    f"{key}_invented_flagged": _flagged(invented),
                    f"{key}_right": len(right),
                    f"{key}_right_flagged": _flagged(right),
                    f"{key}_unanswerable_not_stated": sum(bool(r.grounded.not_stated) for r in off) / len(off),
                }
    return out


def _flagged(results: list) -> float:
    """The share of RAG results told not to rely on: a figure without a ✓, or "not stated" (0 of none)."""
    return sum(r.grounded.check.flagged or bool(r.grounded.not_stated) for r in results) / max(len(results), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=120, help="fact-sheet and loan questions, half each")
    parser.add_argument("--model", help="also ask this model (e.g. smollm2)")
    parser.add_argument("--adapter", help="with --model: a LoRA adapter folder or Hub REPO[@REV]")
    parser.add_argument("--rag-rows", type=int, default=34, help="with --model: fact-sheet questions asked by RAG")
    args = parser.parse_args()
    rows = corpus(args.rows)
    figures = check_alone(rows, random.Random(0))
    if args.model:
        figures |= model_answers(args.model, args.adapter, rows, args.rag_rows)
    for key, value in figures.items():
        print(f"{key:45} {value:.3f}" if isinstance(value, float) else f"{key:45} {value}")
    print(
        " ".join(
            f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}" for key, value in figures.items()
        )
    )


if __name__ == "__main__":
    main()
