"""A hard retrieval corpus: annual-report pages of many companies over several years, all alike.

    python -m benchmarks.filings --out filings.csv                  # 12 companies x 5 years
    python -m benchmarks.filings --out small.csv --companies 4 --years 2

Every filing has the same five pages (income statement, balance sheet, cash flow statement,
management's discussion, risk factors) with tables of figures that differ only in their numbers,
and every question names a company, a fiscal year and a metric, often wrapped in the long,
generic instructions of analyst benchmarks. A retriever must match company, year and statement at
once: this is where dense retrieval of short generic passages fails and where tuning, chunking
and fusion choices show. The CSV has `question, answer, evidence_text, doc_name` like the finance
QA sets it imitates, so `train_job/retriever.py` and `python -m qa_core.rag eval` read it as is.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

COMPANIES = [
    "Northwind Industrial", "Contoso Energy", "Fabrikam Foods", "Tailspin Airlines", "Litware Software",
    "Adventure Works Retail", "Proseware Health", "Woodgrove Bank", "Alpine Ski House", "Coho Shipping",
    "Fourth Coffee", "Wingtip Semiconductors", "Lucerne Publishing", "Margie Travel", "Trey Research",
]  # fmt: skip
WRAPPERS = [
    "{q}",
    "{q} Respond to the question by assuming the perspective of an investment analyst who can only use the "
    "details shown within the {statement}.",
    "Based on the information provided primarily in the {statement}, {q_lower}",
    "{q} Please base your judgement on the information provided in the {statement} and round to the nearest "
    "million where needed.",
]
RISKS = [
    "Our results depend on general economic conditions, interest rates and the availability of credit.",
    "Changes in tax law or its interpretation could adversely affect our effective tax rate and cash flows.",
    "We rely on information technology systems, and a cybersecurity incident could disrupt our operations.",
    "Competition could reduce our market share and pressure our pricing and margins.",
    "Fluctuations in foreign currency exchange rates could reduce our reported revenue and earnings.",
    "Supply chain disruptions could increase our costs or delay deliveries to customers.",
    "We are subject to litigation and regulatory proceedings whose outcomes are uncertain.",
    "Our ability to attract and retain qualified employees affects our ability to execute our strategy.",
]
NOTES = [
    "The accompanying notes are an integral part of these consolidated financial statements.",
    "Certain prior-year amounts have been reclassified to conform to the current-year presentation.",
    "Amounts may not sum due to rounding.",
    "See Note 2, Summary of Significant Accounting Policies, for a description of our revenue recognition.",
    "We adopted the new lease accounting standard using the modified retrospective transition method.",
    "Goodwill is tested for impairment annually in the fourth quarter, or more often if indicators arise.",
    "Cash equivalents consist of highly liquid investments with original maturities of three months or less.",
    "Property, plant and equipment are stated at cost less accumulated depreciation.",
    "Stock-based compensation is measured at the grant-date fair value of the awards.",
    "Income taxes are accounted for under the asset and liability method.",
    "Foreign currency translation adjustments are recorded in accumulated other comprehensive income.",
    "Inventories are stated at the lower of cost and net realizable value, cost determined on a first-in basis.",
]


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _table(title: str, company: str, year: int, rows: list[tuple[str, float, float]], unit: str) -> str:
    lines = [f"{company.upper()}", title, f"Fiscal years ended December 31 ({unit})", f"| | {year} | {year - 1} |"]
    lines += [f"| {label} | {_money(now)} | {_money(before)} |" for label, now, before in rows]
    return "\n".join(lines)


def _with_notes(page: str, rng: random.Random) -> str:
    """Pages of real filings run long: boilerplate notes push the figures into one of several chunks."""
    return page + "\n\n" + " ".join(rng.sample(NOTES, 7))


def filing(company: str, year: int, rng: random.Random) -> tuple[dict[str, str], dict[str, tuple[str, str, str]]]:
    """The five pages of one annual report, and the facts questions can ask about:
    metric -> (question, answer, page name)."""
    scale = rng.uniform(0.4, 6.0) * 1000

    def pair(base: float) -> tuple[float, float]:
        return round(base * rng.uniform(0.9, 1.25)), round(base)

    revenue, revenue_before = pair(scale)
    cost, cost_before = round(revenue * rng.uniform(0.45, 0.7)), round(revenue_before * rng.uniform(0.45, 0.7))
    opex, opex_before = round(revenue * rng.uniform(0.12, 0.25)), round(revenue_before * rng.uniform(0.12, 0.25))
    operating, operating_before = revenue - cost - opex, revenue_before - cost_before - opex_before
    net, net_before = round(operating * 0.76), round(operating_before * 0.76)
    shares = rng.uniform(80, 600)
    assets, assets_before = pair(scale * rng.uniform(1.2, 3.0))
    cash, cash_before = pair(scale * rng.uniform(0.05, 0.3))
    debt, debt_before = pair(assets * rng.uniform(0.1, 0.4))
    equity, equity_before = round(assets * rng.uniform(0.3, 0.6)), round(assets_before * rng.uniform(0.3, 0.6))
    ocf, ocf_before = pair(net * rng.uniform(1.1, 1.6))
    capex, capex_before = pair(scale * rng.uniform(0.03, 0.12))
    dividends, dividends_before = pair(net * rng.uniform(0.2, 0.5))
    growth = (revenue / revenue_before - 1) * 100
    pages = {
        "income statement": _table(
            "CONSOLIDATED STATEMENTS OF INCOME",
            company,
            year,
            [
                ("Net revenue", revenue, revenue_before),
                ("Cost of revenue", cost, cost_before),
                ("Gross profit", revenue - cost, revenue_before - cost_before),
                ("Selling, general and administrative", opex, opex_before),
                ("Operating income", operating, operating_before),
                ("Net income", net, net_before),
            ],
            "in millions, except per-share data",
        )
        + f"\n| Diluted earnings per share | {net / shares:.2f} | {net_before / shares:.2f} |",
        "balance sheet": _table(
            "CONSOLIDATED BALANCE SHEETS",
            company,
            year,
            [
                ("Cash and cash equivalents", cash, cash_before),
                ("Total assets", assets, assets_before),
                ("Long-term debt", debt, debt_before),
                ("Total liabilities", assets - equity, assets_before - equity_before),
                ("Total shareholders' equity", equity, equity_before),
            ],
            "in millions",
        ),
        "cash flow statement": _table(
            "CONSOLIDATED STATEMENTS OF CASH FLOWS",
            company,
            year,
            [
                ("Net income", net, net_before),
                ("Net cash provided by operating activities", ocf, ocf_before),
                ("Purchases of property, plant and equipment", -capex, -capex_before),
                ("Dividends paid", -dividends, -dividends_before),
            ],
            "in millions",
        ),
        "management's discussion": (
            f"Management's Discussion and Analysis of Financial Condition and Results of Operations. "
            f"In fiscal {year}, {company} reported net revenue of ${_money(revenue)} million, "
            f"{'an increase' if growth >= 0 else 'a decrease'} of {abs(growth):.1f}% compared with fiscal {year - 1}. "
            f"Operating income was ${_money(operating)} million and the operating margin was "
            f"{operating / revenue * 100:.1f}%. We continued to invest in our operations and returned "
            f"${_money(dividends)} million to shareholders through dividends. Our outlook depends on demand, "
            "pricing, input costs and the general economic environment in the markets we serve."
        ),
        "risk factors": "Risk Factors. " + " ".join(rng.sample(RISKS, 5)) + f" These risks apply to {company}.",
    }
    facts = {
        "revenue": (
            f"What was {company}'s net revenue in FY{year}?",
            f"${_money(revenue)} million",
            "income statement",
        ),
        "operating income": (
            f"What was the operating income of {company} for fiscal year {year}?",
            f"${_money(operating)} million",
            "income statement",
        ),
        "eps": (
            f"What were {company}'s diluted earnings per share in FY{year}?",
            f"${net / shares:.2f}",
            "income statement",
        ),  # fmt: skip
        "total assets": (
            f"What were {company}'s total assets at the end of FY{year}?",
            f"${_money(assets)} million",
            "balance sheet",
        ),
        "long-term debt": (
            f"How much long-term debt did {company} carry at the end of fiscal {year}?",
            f"${_money(debt)} million",
            "balance sheet",
        ),
        "capex": (
            f"What is the FY{year} capital expenditure amount (in USD millions) for {company}?",
            f"${_money(capex)} million",
            "cash flow statement",
        ),
        "dividends": (
            f"How much did {company} pay in dividends in fiscal {year}?",
            f"${_money(dividends)} million",
            "cash flow statement",
        ),
        "growth": (
            f"By what percentage did {company}'s net revenue change in FY{year} compared with the prior year?",
            f"{growth:.1f}%",
            "management's discussion",
        ),
    }
    return {name: _with_notes(page, rng) for name, page in pages.items()}, facts


def build_rows(companies: int = 12, years: int = 5, per_filing: int = 3, seed: int = 0) -> list[dict[str, str]]:
    """QA rows over `companies` x `years` filings, `per_filing` questions each, in a shuffled order."""
    rng = random.Random(seed)
    rows = []
    for company in COMPANIES[:companies]:
        for year in range(2023 - years + 1, 2024):
            pages, facts = filing(company, year, rng)
            doc_name = f"{company.split()[0].upper()}_{year}_10K"
            for metric in rng.sample(sorted(facts), per_filing):
                question, answer, page = facts[metric]
                wrapper = rng.choice(WRAPPERS)
                text = wrapper.format(q=question, q_lower=question[0].lower() + question[1:], statement=page)
                rows.append({"question": text, "answer": answer, "evidence_text": pages[page], "doc_name": doc_name})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["question", "answer", "evidence_text", "doc_name"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--companies", type=int, default=12, help=f"at most {len(COMPANIES)}")
    parser.add_argument("--years", type=int, default=5, help="fiscal years per company, ending in 2023")
    parser.add_argument("--per-filing", type=int, default=3, help="questions per filing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = build_rows(args.companies, args.years, args.per_filing, args.seed)
    write_csv(args.out, rows)
    print(f"{args.out}: {len(rows)} questions over {args.companies * args.years} filings")


if __name__ == "__main__":
    main()
