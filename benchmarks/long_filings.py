"""A long-page retrieval corpus: 10-K-like pages that each take two to four chunks.

    python -m benchmarks.long_filings --out long.csv --pages-out long-pages.csv   # 10 companies x 4 years
    python -m qa_core.rag eval --csv long.csv --corpus long-pages.csv --title-col doc_name --hybrid

Real annual-report pages do not fit in one chunk of a small embedding model (256 word pieces for
all-MiniLM-L6-v2): a page is a running header, a section heading, a narrative or a table of twenty
rows whose column header ("2023 2022") is only at its top, notes, and a footer, all in the same
boilerplate for every company and year. The question's words ("capital expenditure", "FY2021")
are often in the heading, the column header or a neighbouring chunk, not in the chunk holding the
figure. Every filing has five such pages (discussion, income statement, balance sheet, cash flows,
risk factors); each question asks for one table cell or one sentence of its filing. Tables are
laid out as text extracted from a PDF is (label, then figures; negatives in parentheses).

The CSV has `question, answer, evidence_text, doc_name` (the evidence is the whole page), as
`benchmarks/filings.py` and the finance QA sets, so `python -m qa_core.rag eval` and
`train_job/retriever.py` read it as is; `--pages-out` writes every page (those no question is about
too) for `rag eval --corpus`. It is for measuring, not for tuning on alone.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from benchmarks.filings import COMPANIES, NOTES, RISKS, WRAPPERS, write_csv

BOILERPLATE = [
    "This report contains forward-looking statements within the meaning of the Private Securities Litigation "
    "Reform Act of 1995. Words such as expect, anticipate, intend, plan, believe and estimate identify such "
    "statements, which involve risks and uncertainties that could cause actual results to differ materially.",
    "The following discussion should be read together with the consolidated financial statements and the "
    "related notes included elsewhere in this Annual Report on Form 10-K.",
    "We manage our business as a single operating segment and evaluate performance on a consolidated basis. "
    "Our chief operating decision maker reviews financial information presented on a consolidated basis.",
    "Critical accounting estimates require management to make judgments about matters that are inherently "
    "uncertain, including revenue recognition, income taxes, goodwill and the useful lives of long-lived assets.",
    "Inflation, interest rates and exchange rates affected our costs during the year, and we expect them to "
    "continue to affect our results in the periods ahead.",
]


def _amount(value: float) -> str:
    """A figure as a filing prints it: thousands separators, negatives in parentheses."""
    return f"({abs(value):,.0f})" if value < 0 else f"{value:,.0f}"


def _page(company: str, year: int, number: int, heading: str, body: list[str]) -> str:
    header = f"{company} | Annual Report on Form 10-K for the fiscal year ended December 31, {year}"
    footer = f"{company} {year} Form 10-K | Page {number}"
    return "\n\n".join([header, heading, *body, footer])


def _statement(title: str, unit: str, year: int, rows: list[tuple[str, float, float]]) -> str:
    lines = [title, f"({unit})", f"Year ended December 31, {year} {year - 1}"]
    lines += [f"{label} {_amount(now)} {_amount(before)}" for label, now, before in rows]
    return "\n".join(lines)


def filing(company: str, year: int, rng: random.Random) -> tuple[dict[str, str], dict[str, tuple[str, str, str]]]:
    """The five pages of one filing, and its facts: name -> (question, answer, page name)."""
    scale = rng.uniform(0.5, 8.0) * 1000

    def pair(base: float) -> tuple[float, float]:
        return round(base * rng.uniform(0.9, 1.25)), round(base)

    def line(label: str, share: float) -> tuple[str, float, float]:
        return (label, *pair(scale * share * rng.uniform(0.7, 1.3)))

    revenue = pair(scale)
    cost = tuple(round(r * rng.uniform(0.45, 0.65)) for r in revenue)
    sga = tuple(round(r * rng.uniform(0.1, 0.2)) for r in revenue)
    rnd = tuple(round(r * rng.uniform(0.02, 0.08)) for r in revenue)
    operating = tuple(r - c - s - d for r, c, s, d in zip(revenue, cost, sga, rnd, strict=True))
    interest = pair(scale * 0.01)
    pretax = tuple(o - i for o, i in zip(operating, interest, strict=True))
    tax_rate = rng.uniform(0.17, 0.27)
    taxes = tuple(round(p * tax_rate) for p in pretax)
    net = tuple(p - t for p, t in zip(pretax, taxes, strict=True))
    shares = rng.uniform(80, 600)
    capex, dividends, buybacks = pair(scale * rng.uniform(0.03, 0.12)), pair(net[0] * 0.3), pair(net[0] * 0.2)
    assets, debt, cash = pair(scale * rng.uniform(1.5, 3.0)), pair(scale * 0.5), pair(scale * 0.2)
    employees = round(scale * rng.uniform(2, 6), -1)
    outlook = round(capex[0] * rng.uniform(1.0, 1.3), -1)
    growth = (revenue[0] / revenue[1] - 1) * 100

    def notes(count: int) -> list[str]:
        return [" ".join(rng.sample(NOTES, count))]

    income = (
        _statement(
            "CONSOLIDATED STATEMENTS OF OPERATIONS",
            "in millions, except per share amounts",
            year,
            [
                ("Net revenue", *revenue),
                ("Cost of revenue", *cost),
                ("Gross profit", *(r - c for r, c in zip(revenue, cost, strict=True))),
                ("Research and development", *rnd),
                ("Selling, general and administrative", *sga),
                ("Operating income", *operating),
                ("Interest expense, net", *(-i for i in interest)),
                ("Income before income taxes", *pretax),
                ("Provision for income taxes", *(-t for t in taxes)),
                ("Net income", *net),
                ("Basic weighted-average shares outstanding", round(shares), round(shares * 1.01)),
                ("Diluted weighted-average shares outstanding", round(shares * 1.02), round(shares * 1.03)),
            ],
        )
        + f"\nDiluted earnings per share {net[0] / shares / 1.02:.2f} {net[1] / shares / 1.03:.2f}"
    )
    balance = _statement(
        "CONSOLIDATED BALANCE SHEETS",
        "in millions",
        year,
        [
            ("Cash and cash equivalents", *cash),
            line("Short-term investments", 0.1),
            line("Accounts receivable, net", 0.15),
            line("Inventories", 0.12),
            line("Prepaid expenses and other current assets", 0.04),
            line("Property, plant and equipment, net", 0.6),
            line("Operating lease right-of-use assets", 0.08),
            line("Goodwill", 0.3),
            line("Intangible assets, net", 0.1),
            ("Total assets", *assets),
            line("Accounts payable", 0.1),
            line("Accrued liabilities", 0.08),
            line("Current portion of long-term debt", 0.03),
            ("Long-term debt", *debt),
            line("Other long-term liabilities", 0.06),
            ("Total shareholders' equity", *(round(a * 0.45) for a in assets)),
        ],
    )
    cash_flows = _statement(
        "CONSOLIDATED STATEMENTS OF CASH FLOWS",
        "in millions",
        year,
        [
            ("Net income", *net),
            line("Depreciation and amortization", 0.05),
            line("Stock-based compensation", 0.02),
            line("Deferred income taxes", 0.005),
            line("Changes in accounts receivable", -0.01),
            line("Changes in inventories", -0.01),
            line("Changes in accounts payable and accrued liabilities", 0.01),
            line("Net cash provided by operating activities", 0.16),
            ("Purchases of property and equipment", *(-c for c in capex)),
            line("Acquisitions, net of cash acquired", -0.02),
            line("Purchases of investments", -0.04),
            line("Net cash used in investing activities", -0.1),
            ("Repurchases of common stock", *(-b for b in buybacks)),
            ("Dividends paid", *(-d for d in dividends)),
            line("Proceeds from issuance of long-term debt", 0.03),
            line("Net cash used in financing activities", -0.05),
        ],
    )
    discussion = [
        BOILERPLATE[0],
        BOILERPLATE[1],
        f"Results of operations. Net revenue for {year} was ${revenue[0]:,} million, "
        f"{'an increase' if growth >= 0 else 'a decrease'} of {abs(growth):.1f}% from {year - 1}, driven by "
        "volume and pricing across our product lines. Gross margin was "
        f"{(revenue[0] - cost[0]) / revenue[0] * 100:.1f}% and operating income was ${operating[0]:,} million.",
        BOILERPLATE[2],
        f"Liquidity and capital resources. We ended the year with ${cash[0]:,} million of cash and cash "
        f"equivalents. For fiscal {year + 1} we expect capital expenditures of approximately ${outlook:,.0f} "
        "million, funded from operating cash flows.",
        f"Human capital. As of December 31, {year}, we had approximately {employees:,.0f} full-time employees.",
        BOILERPLATE[3],
        f"Our effective tax rate was {tax_rate * 100:.1f}% for {year}. " + BOILERPLATE[4],
    ]
    pages = {
        "discussion": _page(company, year, 38, "Item 7. Management's Discussion and Analysis", discussion),
        "income": _page(company, year, 61, "Item 8. Financial Statements", [income, *notes(6)]),
        "balance": _page(company, year, 62, "Item 8. Financial Statements", [balance, *notes(6)]),
        "cash flows": _page(company, year, 64, "Item 8. Financial Statements", [cash_flows, *notes(6)]),
        "risks": _page(company, year, 17, "Item 1A. Risk Factors", [" ".join(rng.sample(RISKS, 6)), *notes(5)]),
    }

    def money(value: float) -> str:
        return f"${value:,.0f} million"

    facts = {
        "revenue": (f"What was {company}'s net revenue in FY{year}?", money(revenue[0]), "income"),
        "net income": (f"What was the net income of {company} for fiscal year {year}?", money(net[0]), "income"),
        "research": (f"How much did {company} spend on research and development in FY{year}?", money(rnd[0]), "income"),
        "eps": (
            f"What were {company}'s diluted earnings per share in FY{year}?",
            f"${net[0] / shares / 1.02:.2f}",
            "income",
        ),
        "total assets": (f"What were {company}'s total assets at the end of FY{year}?", money(assets[0]), "balance"),
        "debt": (
            f"How much long-term debt did {company} carry at the end of fiscal {year}?",
            money(debt[0]),
            "balance",
        ),
        "capex": (
            f"What is the FY{year} capital expenditure amount (in USD millions) for {company}?",
            money(capex[0]),
            "cash flows",
        ),
        "buybacks": (
            f"How much did {company} spend on share repurchases in FY{year}?",
            money(buybacks[0]),
            "cash flows",
        ),
        "employees": (
            f"How many full-time employees did {company} have at the end of {year}?",
            f"{employees:,.0f}",
            "discussion",
        ),
        "outlook": (
            f"What capital spending did {company} expect for the year after FY{year}?",
            money(outlook),
            "discussion",
        ),
        "tax rate": (
            f"What was {company}'s effective tax rate in fiscal {year}?",
            f"{tax_rate * 100:.1f}%",
            "discussion",
        ),
    }
    return pages, facts


STATEMENT_NAMES = {
    "discussion": "management's discussion and analysis",
    "income": "statement of operations",
    "balance": "balance sheet",
    "cash flows": "cash flow statement",
}


def build(
    companies: int = 10, years: int = 4, per_filing: int = 3, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(questions, pages): QA rows over `companies` x `years` filings, `per_filing` questions each,
    shuffled; and every page of every filing (`evidence_text`, `doc_name`), those no question is
    about included, so that they can be wrongly found."""
    rng = random.Random(seed)
    rows, every_page = [], []
    for company in COMPANIES[:companies]:
        for year in range(2023 - years + 1, 2024):
            pages, facts = filing(company, year, rng)
            doc_name = f"{company.split()[0].upper()}_{year}_10K"
            every_page += [{"evidence_text": text, "doc_name": doc_name} for text in pages.values()]
            for metric in rng.sample(sorted(facts), per_filing):
                question, answer, page = facts[metric]
                wrapper = rng.choice(WRAPPERS)
                lower = question[0].lower() + question[1:]
                text = wrapper.format(q=question, q_lower=lower, statement=STATEMENT_NAMES[page])
                rows.append({"question": text, "answer": answer, "evidence_text": pages[page], "doc_name": doc_name})
    rng.shuffle(rows)
    return rows, every_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV of questions to write")
    parser.add_argument("--pages-out", type=Path, help="CSV of every page to write (for `rag eval --corpus`)")
    parser.add_argument("--companies", type=int, default=10, help=f"at most {len(COMPANIES)}")
    parser.add_argument("--years", type=int, default=4, help="fiscal years per company, ending in 2023")
    parser.add_argument("--per-filing", type=int, default=3, help="questions per filing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows, pages = build(args.companies, args.years, args.per_filing, args.seed)
    write_csv(args.out, rows)
    if args.pages_out:
        write_csv(args.pages_out, [{"question": "", "answer": "", **page} for page in pages])
    print(f"{args.out}: {len(rows)} questions over {args.companies * args.years} filings ({len(pages)} pages)")


if __name__ == "__main__":
    main()
