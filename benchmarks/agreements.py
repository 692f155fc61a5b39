"""Loan and lease term sheets: documents of another kind than the fact sheets, whose figures are
rates, amounts, terms, notice periods and floor areas.

    python -m benchmarks.agreements --out agreements.csv --rows 60

Each borrower has one sheet of five sentences (the loan's amount and lender, its yearly rate, its
term in months, the notice to end it, the office space it leases and the rent). Every question
asks for one kind of quantity ("at what rate" a percentage, "how much notice" a duration, "what
floor area" an area), so a figure of the wrong kind, or of another borrower, answers nothing. Asked
with a fact sheet as context (or a fact-sheet question with one of these), the right answer is
that the context does not state it: `benchmarks/trust.py` measures both. Same CSV columns as the
fact sheets.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from benchmarks.filings import write_csv

BORROWERS = [
    "Osprey Instruments", "Juniper Freight", "Marlowe Textiles", "Calder Biotech", "Fenwick Paper",
    "Halcyon Shipping", "Ashford Ceramics", "Tamsin Robotics", "Vantor Steel", "Quillon Optics",
    "Elmstead Farms", "Norrow Glass", "Pellham Audio", "Rushmere Plastics", "Sorrel Pharma",
]  # fmt: skip
LENDERS = ["Westgate Bank", "Harlow Credit Union", "First Meridian", "Baystone Capital"]
CITIES = ["Utrecht", "Boise", "Turin", "Sendai", "Halifax", "Dundee"]
# fact -> (the sheet's sentence, the question); {b} borrower, {l} lender, {c} city
FACTS = {
    "amount": ("{b} borrowed {v} from {l} under a term loan.", "How much did {b} borrow from {l}?"),
    "rate": ("Interest on the loan accrues at {v} a year.", "At what yearly rate does interest accrue on {b}'s loan?"),
    "term": ("The loan is repayable over {v}.", "Over how many months is {b}'s loan repayable?"),
    "notice": (
        "Either party may end the agreement with {v}' notice.",
        "How much notice must be given to end {b}'s loan agreement?",
    ),
    "area": ("{b} leases {v} of office space in {c}.", "What floor area does {b} lease in {c}?"),
    "rent": ("The rent is {v} a month.", "What monthly rent does {b} pay for its office in {c}?"),
}


def _values(rng: random.Random) -> dict[str, str]:
    return {
        "amount": f"${rng.randrange(20, 900)} million",
        "rate": f"{rng.randrange(30, 95) / 10:.1f}%",
        "term": f"{rng.choice([24, 36, 48, 60, 84, 120])} months",
        "notice": f"{rng.choice([30, 45, 60, 90, 120])} days",
        "area": f"{rng.randrange(8, 95) * 1000:,} square feet",
        "rent": f"${rng.randrange(40, 900) * 100:,}",
    }


def build_rows(rows: int = 60, seed: int = 0) -> list[dict[str, str]]:
    """`rows` QA rows, up to four per borrower's sheet, in a shuffled order.

    Raises:
        ValueError: more rows than the borrowers make.
    """
    if rows > len(BORROWERS) * 4:
        raise ValueError(f"at most {len(BORROWERS) * 4} rows")
    rng = random.Random(f"agreements-{seed}")
    out = []
    for borrower in BORROWERS[: -(-rows // 4)]:
        values, fields = _values(rng), {"b": borrower, "l": rng.choice(LENDERS), "c": rng.choice(CITIES)}
        sheet = " ".join(sentence.format(v=values[fact], **fields) for fact, (sentence, _) in FACTS.items())
        for fact in rng.sample(sorted(FACTS), 4):
            answer = values[fact]
            question = FACTS[fact][1].format(**fields)
            out.append({"question": question, "answer": answer, "evidence_text": sheet, "doc_name": f"{borrower} loan"})
    rng.shuffle(out)
    return out[:rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--rows", type=int, default=60)
    args = parser.parse_args()
    write_csv(args.out, build_rows(args.rows))
    print(f"{args.out}: {args.rows} loan and lease questions")


if __name__ == "__main__":
    main()
