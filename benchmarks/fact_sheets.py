"""Short company fact sheets with one question each: context QA whose answer is a figure.

    python -m benchmarks.fact_sheets --out facts.csv                       # 240 rows, names and wordings of set a
    python -m benchmarks.fact_sheets --out facts-b.csv --variant b --rows 60  # other companies, other wordings

Each company has one fact sheet of five to seven sentences (revenue this year and last, net income,
employees, founding year, headquarters, chief executive, dividend, market share …); each row is
a question about one of its facts, with the fact sheet as context and the short answer ("$4.2
billion", "12,400", "3.5%"). Companies are unique, so retrieving over every fact sheet is well posed.
The two variants share no company, person, city or wording of a question, so a model trained on
one and asked the other shows what it learnt about answering, not the names. The CSV has the
columns `question, answer, evidence_text, doc_name`, as `train_job/run.py`, `qa_core.evaluate`
and `python -m qa_core.rag` read them.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from benchmarks.filings import write_csv

# Company names are a first word and a second word of the variant's own lists.
NAMES = {
    "a": {
        "first": [
            "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware", "Woodgrove",
            "Blue Yonder", "Coho", "Humongous", "Wide World", "Southridge", "Lakeshore", "Relecloud", "Datum",
        ],
        "second": [
            "Traders", "Pharmaceuticals", "Motors", "Toys", "Systems", "Logistics", "Insurance", "Financial",
            "Airlines", "Vineyards", "Media", "Importers",
        ],
        "people": ["Maria Lopez", "James Okafor", "Anna Schmidt", "Kenji Watanabe", "Priya Raman", "Thomas Berg"],
        "cities": ["Rotterdam", "Denver", "Lyon", "Osaka", "Porto", "Calgary", "Leeds", "Adelaide"],
    },
    "b": {
        "first": [
            "Bellows", "Harbor Point", "Quartzline", "Redfern", "Silverleaf", "Ironbridge", "Meadowlark",
            "Copperfield", "Stonegate", "Brightwater", "Evergreen", "Lanternfish",
        ],
        "second": ["Chemical", "Foods", "Semiconductors", "Mining", "Hotels", "Construction", "Dairy", "Telecom",
                   "Retail", "Utilities"],
        "people": ["Sofia Marchetti", "David Mensah", "Elena Petrova", "Rahul Iyer", "Grace Thompson"],
        "cities": ["Gothenburg", "Tucson", "Bilbao", "Nagoya", "Winnipeg", "Bristol"],
    },
}  # fmt: skip
QUESTIONS_PER_COMPANY = 2

# fact -> per variant: (the fact sheet's sentence, the question); {c} company, {y} year, {v} value
FACTS = {
    "revenue": {
        "a": ("In fiscal {y}, {c} reported revenue of {v}.", "What was {c}'s revenue in fiscal {y}?"),
        "b": ("{c} booked total sales of {v} for the {y} financial year.", "How much did {c} sell in {y}?"),
    },
    "net income": {
        "a": ("Net income for {y} came to {v}.", "What was the net income of {c} in {y}?"),
        "b": ("The company earned a profit after tax of {v} in {y}.", "How large was {c}'s {y} profit after tax?"),
    },
    "employees": {
        "a": ("{c} employs {v} people worldwide.", "How many people does {c} employ?"),
        "b": ("Its workforce numbers {v} staff.", "What is the size of {c}'s workforce?"),
    },
    "founded": {
        "a": ("The company was founded in {v}.", "In which year was {c} founded?"),
        "b": ("{c} has been in business since {v}.", "Since when has {c} been in business?"),
    },
    "headquarters": {
        "a": ("Its headquarters are in {v}.", "Where is {c} headquartered?"),
        "b": ("The head office is located in {v}.", "In which city is {c}'s head office?"),
    },
    "chief executive": {
        "a": ("{v} has been chief executive officer since {y0}.", "Who is the chief executive officer of {c}?"),
        "b": ("The business is led by managing director {v}.", "Who leads {c} as managing director?"),
    },
    "dividend": {
        "a": (
            "The board declared a dividend of {v} per share for {y}.",
            "What dividend per share did {c} declare for {y}?",
        ),  # noqa: E501
        "b": ("Shareholders received {v} per share for {y}.", "How much per share did {c} pay shareholders for {y}?"),
    },
    "market share": {
        "a": ("{c} holds a market share of {v} in its home market.", "What is {c}'s market share?"),
        "b": ("Its slice of the domestic market stands at {v}.", "How big is {c}'s slice of the domestic market?"),
    },
    "sites": {
        "a": ("The company operates {v} stores.", "How many stores does {c} operate?"),
        "b": ("{c} runs {v} branches across the country.", "How many branches does {c} run?"),
    },
}
PREVIOUS_YEAR = {
    "a": "That compares with {v} in {y}.",
    "b": "A year earlier the figure was {v}.",
}


def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.uniform(1.1, 9.9):.1f} billion"
    return f"${rng.randrange(120, 990):,} million"


def _values(rng: random.Random, names: dict[str, list[str]]) -> dict[str, str]:
    return {
        "revenue": _money(rng),
        "net income": f"${rng.randrange(12, 480):,} million",
        "employees": f"{rng.randrange(800, 60000):,}",
        "founded": str(rng.randrange(1890, 2012)),
        "headquarters": rng.choice(names["cities"]),
        "chief executive": rng.choice(names["people"]),
        "dividend": f"${rng.randrange(5, 250) / 100:.2f}",
        "market share": f"{rng.uniform(2, 40):.1f}%",
        "sites": str(rng.randrange(12, 900)),
    }


def fact_sheet(company: str, variant: str, rng: random.Random) -> tuple[str, dict[str, tuple[str, str]]]:
    """One company's fact sheet (five to seven sentences in a random order) and the facts it states:
    fact -> (question, answer)."""
    year = rng.randrange(2019, 2025)
    values = _values(rng, NAMES[variant])
    chosen = rng.sample(sorted(FACTS), rng.randrange(5, 8))
    fields = {"c": company, "y": year, "y0": year - rng.randrange(2, 9)}
    sentences = [FACTS[fact][variant][0].format(v=values[fact], **fields) for fact in chosen]
    rng.shuffle(sentences)
    if "revenue" in chosen:  # a second figure of the same kind right after it: the answer must be read, not guessed
        revenue = FACTS["revenue"][variant][0].format(v=values["revenue"], **fields)
        sentences.insert(sentences.index(revenue) + 1, PREVIOUS_YEAR[variant].format(v=_money(rng), y=year - 1))
    facts = {fact: (FACTS[fact][variant][1].format(**fields), values[fact]) for fact in chosen}
    # titled, as fact sheets are: a sheet whose sentences all say "the company" still names it
    return f"{company} fact sheet. " + " ".join(sentences), facts


def build_rows(rows: int = 240, variant: str = "a", seed: int = 0) -> list[dict[str, str]]:
    """`rows` QA rows about the fact sheets of companies named from `variant`'s lists: one fact sheet
    per company, up to QUESTIONS_PER_COMPANY questions on different facts of it.

    Raises:
        ValueError: more rows than the variant has companies for.
    """
    names = NAMES[variant]
    companies = [f"{first} {second}" for first in names["first"] for second in names["second"]]
    if rows > len(companies) * QUESTIONS_PER_COMPANY:
        raise ValueError(f"variant {variant} makes at most {len(companies) * QUESTIONS_PER_COMPANY} rows")
    rng = random.Random(f"{variant}-{seed}")
    rng.shuffle(companies)
    out = []
    for company in companies[: -(-rows // QUESTIONS_PER_COMPANY)]:
        text, facts = fact_sheet(company, variant, rng)
        for fact in rng.sample(sorted(facts), QUESTIONS_PER_COMPANY):
            question, answer = facts[fact]
            out.append(
                {"question": question, "answer": answer, "evidence_text": text, "doc_name": f"{company} fact sheet"}
            )
    rng.shuffle(out)
    return out[:rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--variant", choices=sorted(NAMES), default="a", help="the set of names and wordings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_csv(args.out, build_rows(args.rows, args.variant, args.seed))
    print(f"{args.out}: {args.rows} fact-sheet questions (variant {args.variant})")


if __name__ == "__main__":
    main()
