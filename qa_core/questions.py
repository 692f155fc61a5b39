"""What a question asks: the kind of quantity it wants, and the subjects it names.

A figure answers a question only when it is the kind of quantity asked for ("at what rate" wants a
percentage, "how much notice" a duration) and is stated in a source that speaks of what the
question names: its company, person, instrument, rule or year. Both are read from the wording
alone, so they stay explainable; a question whose wording names no kind accepts any.

    >>> asked_kind("At what yearly rate does interest accrue on the loan to Kestrel Robotics?")
    'percent'
    >>> subjects("Under SEC Rule 10b-18, how much of the average daily volume may an issuer repurchase in 2023?")
    ['SEC Rule 10b-18', '2023']
    >>> names("Rule 10b-18 lets an issuer buy back up to 25% of the ADTV in 2023.", "SEC Rule 10b-18")
    True
"""

from __future__ import annotations

import re

from qa_core.quantities import AREA, COUNT, DATE, DURATION, MONEY, PERCENT, YEAR

# The first pattern that matches says the kind; percentages first ("how much of the volume" is a share).
KIND_PATTERNS = (
    (PERCENT, r"\b(at what (\w+ )?rate|what( [\w'’-]+){0,3} (rate|ratio|percentage|percent|proportion|fraction"
              r"|margin|yield)|how (much|many) percent|what share of|market share|by what percent"
              r"|how much of (the|its|their)\b"
              r"|what (portion|part) of)"),
    (DURATION, r"\b(how long|how much (notice|time)|how (soon|quickly)|how many (\w+ )?(hours|days|weeks|months|years"
               r"|quarters|minutes)|what( [\w'’-]+){0,3} (term|period|duration|notice period|maturity)\b)"),
    (AREA, r"\b(what( [\w'’-]+){0,3} (area|floor ?space|size of the (site|premises|plant|building|office))"
           r"|how many square|square (feet|metres|meters))"),
    (YEAR, r"\b(in (what|which) year|what year|since when|when|what date|by what date|which year)\b"),
    (MONEY, r"\b(how much|what( [\w'’-]+){0,3} (amount|price|fee|cost|sum|dividend|revenue|sales|income|profit"
            r"|salary|budget|fine|penalty|principal|loan|payment|rent)"
            r"|how (large|big|high) (was|is|were|are) .*\b(revenue|sales|income|profit|earnings"
            r"|dividend|loan|fine|payment|budget|cost)s?\b)"),
    (COUNT, r"\bhow many\b"),
)  # fmt: skip
KINDS = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in KIND_PATTERNS]
# Capitalised words that do not open the question, identifiers ("10b-18", "CET1") and years; runs
# of them are one subject ("Kestrel Robotics", "SEC Rule 10b-18").
TOKEN = r"(?:[A-Z][\w&'’.-]*[\w&]|[A-Z]|\d+[A-Za-z][\w-]*|[A-Z]+\d\w*|(?:19|20)\d{2})"
SUBJECT = re.compile(rf"{TOKEN}(?:\s+{TOKEN})*")
# Words that do not say which company, rule or year: they name a role, a currency or a kind of thing.
_GENERIC_TEXT = """
sec rule rules section act inc inc. corp corp. corporation co co. ltd ltd. llc plc company group holdings
    the fiscal fy ceo cfo coo cto cio usd eur gbp us u.s u.s. uk u.k u.k. eu gdp ipo esg i"""
GENERIC = frozenset(_GENERIC_TEXT.split())
# A question's first word is capitalised because it opens the question, not because it names something.
_QUESTION_WORDS_TEXT = """
what which who whom whose when where why how under at in on for by to according within since during after
    before is are was were does do did can could should would will may must has have had if as from between
    among given per with list name give describe explain tell"""
QUESTION_WORDS = frozenset(_QUESTION_WORDS_TEXT.split())


def asked_kind(question: str) -> str | None:
    """The kind of quantity `question` asks for (a `qa_core.quantities` kind), or None when its
    wording does not say."""
    return next((kind for kind, pattern in KINDS if pattern.search(question)), None)


def accepts(asked: str | None, kind: str) -> bool:
    """Whether a quantity of `kind` can answer a question asking for `asked`: the same kind, a date
    for a year, and a bare number for money, a count or a year (units are often left out)."""
    if asked is None or kind == asked or {asked, kind} == {YEAR, DATE}:
        return True
    return kind == "number" and asked in (MONEY, COUNT, YEAR)


def _words(text: str) -> list[str]:
    # Underscores part words: a file's title ("CONTOSO_2023_10K") names Contoso and 2023.
    return re.findall(r"[^\W_]+(?:[-.&][^\W_]+)*", text.lower().replace("’", "'").replace("'s ", " "))


def subjects(question: str) -> list[str]:
    """The names `question` asks about — companies, people, instruments, rules, years — as written,
    in order; a name's generic words alone ("SEC", "CEO", "Inc.") are no subject."""
    found = []
    question = re.sub(r"(?<=\w)['’]s?\b", " ,", question)  # a possessive ends a name: "Redfern Mining's 2021 profit"
    for match in SUBJECT.finditer(question):
        words = match.group(0).split()
        if match.start() == len(question) - len(question.lstrip()) and words[0].lower() in QUESTION_WORDS:
            words = words[1:]  # "What", "Under": the question's own first word
        words = [w.rstrip(".") for w in words]
        if any(w.lower() not in GENERIC for w in words):
            found.append(" ".join(words))
    return list(dict.fromkeys(found))


def _core(subject: str) -> list[str]:
    """The subject's words without generic ones at either end ("SEC Rule 10b-18" -> ["10b-18"])."""
    words = _words(subject)
    while words and words[0] in GENERIC:
        words = words[1:]
    while words and words[-1] in GENERIC:
        words = words[:-1]
    return words


def names(text: str, subject: str) -> bool:
    """Whether `text` names `subject`: its words in a row, generic ones at either end optional, case
    and punctuation aside."""
    core = " ".join(_core(subject))
    return bool(core) and f" {core} " in f" {' '.join(_words(text))} "


def unnamed(question: str, text: str) -> list[str]:
    """The subjects of `question` that `text` does not name."""
    return [subject for subject in subjects(question) if not names(text, subject)]
