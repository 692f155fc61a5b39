"""What a number in a text states: a percentage, money in a currency, a count of something, a
duration, an area, a year or date, a bare number — or nothing at all.

The figure check (`qa_core.grounding`) needs this because the same digits are not the same figure:
"$546 million" is not "546 employees", "12%" is not "12 countries", and the 10 of "Section 10(b)"
is no figure at all. A number is read with the words around it: a currency sign or word, a scale
word ("million"), a unit ("days", "square feet") or the noun it counts ("employees"). Section, rule,
clause, page and item numbers, identifiers such as "9(a)(2)", and page markers (":1") are left out.

    >>> [q.describe() for q in quantities("Sections 9(a)(2) and 10(b): 25% of $1.2 billion, 546 employees, 90 days")]
    ['25%: a percentage', '$1.2 billion: money (USD)', '546: a count of person', '90: a duration in day']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa_core.metrics import NUMBER, SCALES, Figure

PERCENT, MONEY, COUNT, DURATION, AREA, YEAR, DATE, NUMBER_KIND = (
    "percent", "money", "count", "duration", "area", "year", "date", "number",
)  # fmt: skip
KIND_NAMES = {
    PERCENT: "a percentage",
    MONEY: "money",
    COUNT: "a count",
    DURATION: "a duration",
    AREA: "an area",
    YEAR: "a year",
    DATE: "a date",
    NUMBER_KIND: "a number",
}
# A number right after one of these words names a part of a text, not a quantity.
_REFERENCE_WORDS_TEXT = """
section sections sec § §§ rule rules clause clauses article articles art paragraph paragraphs para
    page pages p pp item items note notes footnote footnotes chapter chapters part parts schedule schedules
    exhibit exhibits annex appendix no nos number figure fig table title regulation form line step tier
    version question questions row rows"""
REFERENCE_WORDS = frozenset(_REFERENCE_WORDS_TEXT.split())
CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "£": "GBP"}
CURRENCY_WORDS = {
    "usd": "USD", "us$": "USD", "dollar": "USD", "dollars": "USD", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "sterling": "GBP", "jpy": "JPY", "yen": "JPY",
    "chf": "CHF", "francs": "CHF", "cad": "CAD", "aud": "AUD", "cny": "CNY", "yuan": "CNY", "inr": "INR",
    "rupees": "INR",
}  # fmt: skip
DURATION_UNITS = {
    "hour": "hour", "hours": "hour", "hr": "hour", "hrs": "hour", "minute": "minute", "minutes": "minute",
    "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month", "months": "month",
    "year": "year", "years": "year", "quarter": "quarter", "quarters": "quarter",
}  # fmt: skip
AREA_UNITS = re.compile(
    r"^\s*(square\s+(?:feet|foot|metres|meters|metre|meter|miles|kilometres|kilometers)|sq\.?\s*(?:ft|m|km)\.?"
    r"|m2|m²|acres?|hectares?)",
    re.IGNORECASE,
)
_MONTHS_TEXT = """
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
"""
MONTHS = frozenset(_MONTHS_TEXT.split())
# Words that say where or when, not what a number counts ("12 in 2023", "5 of the 40").
_NOT_NOUNS_TEXT = """
a an the of in on at to for by with from and or is are was were be been it its this that as per than
    than then into about over under up down out each every all both more less fewer most least which who
    whom what when where while since until before after during through between among against
    compared respectively"""
NOT_NOUNS = frozenset(_NOT_NOUNS_TEXT.split())
_MODIFIERS_TEXT = "full-time part-time new additional other active total own more fewer"
MODIFIERS = frozenset(_MODIFIERS_TEXT.split())
# Nouns a count may use for the same thing.
SAME_NOUN = {
    "people": "person", "employee": "person", "staff": "person", "worker": "person", "personnel": "person",
    "headcount": "person", "member": "person", "individual": "person", "shop": "store", "outlet": "store",
}  # fmt: skip
WORD_AFTER = re.compile(r"^\s*([A-Za-z][A-Za-z'-]*)")
WORD_BEFORE = re.compile(r"([A-Za-z§$€£]+\$?)\.?\s*$")
IDENTIFIER_AFTER = re.compile(r"^\([a-zA-Z0-9]{1,4}\)")  # 9(a)(2), 10(b): a provision, not a figure


@dataclass(frozen=True)
class Quantity:
    """A number as written (`text`), its value (`figure`), what kind of quantity it states and its
    unit: the currency of money, the noun of a count, the unit of a duration or area."""

    text: str
    figure: Figure
    kind: str
    unit: str = ""

    def describe(self) -> str:
        """ "546 employees: a count of employee" — the figure as read, for a report."""
        unit = {
            MONEY: f" ({self.unit})",
            COUNT: f" of {self.unit}",
            DURATION: f" in {self.unit}",
            AREA: f" in {self.unit}",
        }.get(self.kind, "")
        return f"{self.text}: {KIND_NAMES[self.kind]}{unit if self.unit else ''}"

    def same_as(self, other: Quantity) -> bool:
        """The same value stated as the same kind of quantity (a bare number agrees with any kind but
        a percentage; two units or currencies must agree where both are stated)."""
        return self.figure.same_as(other.figure) and kinds_agree(self, other)


def kinds_agree(a: Quantity, b: Quantity) -> bool:
    """Whether `a` and `b` can state the same quantity, their values aside."""
    if NUMBER_KIND in (a.kind, b.kind):
        return PERCENT not in (a.kind, b.kind)
    if {a.kind, b.kind} == {YEAR, DATE}:
        return True
    if a.kind != b.kind:
        return False
    return not (a.unit and b.unit) or a.unit == b.unit


def singular(noun: str) -> str:
    noun = noun.lower().strip("'-")
    if noun.endswith("ies") and len(noun) > 4:
        noun = noun[:-3] + "y"
    elif noun.endswith("s") and not noun.endswith("ss") and len(noun) > 3:
        noun = noun[:-1]
    return SAME_NOUN.get(noun, noun)


def _counted_noun(after: str) -> str:
    """The noun a number counts, from the words after it ("" when they do not name one)."""
    for raw in after.split()[:3]:
        word = raw.strip(",.;:()\"'").lower()
        if raw[0] in ",.;:()" or word in NOT_NOUNS or not word.replace("-", "").isalpha():
            return ""  # the phrase ends, or the next word is no noun
        if word not in MODIFIERS:
            return singular(word)
        if raw[-1] in ",.;:)":
            return ""
    return ""


def _is_reference(before: str, after: str) -> bool:
    """A section, rule, page or list number, an identifier like 10(b), or a page marker like ":1"."""
    if IDENTIFIER_AFTER.match(after) or re.search(r"(?<![\d\s]):$", before) or re.search(r"\)\($", before):
        return True
    word = WORD_BEFORE.search(before)
    return bool(word) and word.group(1).lower().rstrip(".") in REFERENCE_WORDS


def _read(text: str, match: re.Match) -> Quantity | None:
    """The quantity a NUMBER match states, read with the words around it (None: no quantity)."""
    integer, fraction, percent, scale = match.groups()
    figure = Figure(float(integer.replace(",", "") + (fraction or "")), SCALES[scale.lower()] if scale else 1.0)
    written = match.group(0).strip()
    before, after = text[max(0, match.start() - 24) : match.start()], text[match.end() : match.end() + 40]
    if _is_reference(before, after) or re.match(r"\.\d", after):
        return None  # a reference, or the head of "2.2Accelerated" (a page's menu): no figure
    if percent:
        return Quantity(written, figure, PERCENT)
    sign = next((code for mark, code in CURRENCY_SIGNS.items() if written.startswith(mark)), "")
    code = re.search(r"([A-Za-z]{2}\$|[A-Za-z]{3})\s*$", before)
    word = WORD_AFTER.match(after)
    following = word.group(1).lower() if word else ""
    currency = (
        sign or (CURRENCY_WORDS.get(code.group(1).lower(), "") if code else "") or CURRENCY_WORDS.get(following, "")
    )
    if currency:
        return Quantity(written, figure, MONEY, currency)
    if area := AREA_UNITS.match(after):
        return Quantity(written, figure, AREA, " ".join(area.group(1).lower().split()))
    unit = DURATION_UNITS.get(
        re.sub(r"^-", "", after.split(None, 1)[0]).lower().strip(",.;:'’") if after.strip() else ""
    )
    if unit and (following or after.startswith("-")):
        return Quantity(written, figure, DURATION, unit)
    if not fraction and not scale and "," not in integer and _is_date(before, following):
        return Quantity(written, figure, DATE)
    plural = following.endswith("s") and following not in NOT_NOUNS  # "2000 employees" counts; "2023 revenue" is a year
    if not fraction and not scale and "," not in integer and 1800 <= figure.digits <= 2100 and not plural:
        return Quantity(written, figure, YEAR)
    noun = _counted_noun(after)
    if noun:
        return Quantity(written, figure, COUNT, noun)
    return Quantity(written, figure, NUMBER_KIND)


def _is_date(before: str, following: str) -> bool:
    """A day of a month: "31 March", "March 31"."""
    previous = before.split()[-1].strip(",.").lower() if before.split() else ""
    return following in MONTHS or previous in MONTHS


def quantities(text: str) -> list[Quantity]:
    """The quantities `text` states, in order (section, rule and page numbers left out)."""
    return [quantity for match in NUMBER.finditer(text) if (quantity := _read(text, match))]
