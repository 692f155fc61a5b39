"""Split documents into chunks by tokens, on paragraph and sentence boundaries, with overlap.

Chunks are measured in the embedding model's own word pieces and are never longer than what it
reads (256 for all-MiniLM-L6-v2) once the document header is added, so no chunk is silently cut
off at embedding time; `chunk_tokens` (default 512) caps them further for models with longer windows.
Each chunk is embedded with a header naming its document, because questions name companies,
reports and periods that the chunk's own text rarely repeats; a chunk that starts under a heading
or inside a table also carries the headings above it ("Item 8. Financial Statements > CONSOLIDATED
STATEMENTS OF CASH FLOWS") and the table's column header ("Year ended December 31, 2023 2022"),
which a long page states once, at its top (benchmarks/README.md measures what each part buys).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import semchunk

from qa_core.documents import Document
from qa_core.embeddings import SentenceEmbedding, counting_tokenizer

DEFAULT_CHUNK_TOKENS = 512
DEFAULT_OVERLAP_TOKENS = 64  # benchmarks/chunking.py: 64 found more than 0 or 32 on long pages
MIN_CHUNK_TOKENS = 32

# Headings, by level: Markdown's (1-6 by their #s), a filing's "Item 7." / "Part II" / "Note 3" (1),
# and lines in capitals ("CONSOLIDATED BALANCE SHEETS", 7: below any other heading).
MARKDOWN_HEADING = re.compile(r"(#{1,6})\s+\S.*")
NUMBERED_HEADING = re.compile(r"(?:item|part|note)\s+[0-9ivx]+[a-z]?\b.{0,80}", re.I)
CAPITALS_HEADING = re.compile(r"(?=.*[A-Z]{2,}.*\s.*[A-Z]{2,})(?!.*\d\)?$)[A-Z0-9 ,.;:'&()/-]{4,80}")
YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
DAY = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b", re.I)
TABLE_RULE = re.compile(r"\|?\s*:?-{3,}.*")


@dataclass(frozen=True)
class ChunkOptions:
    """How documents are cut: most tokens per chunk, tokens shared by neighbours, and whether each
    chunk's header repeats the headings and column header it falls under."""

    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    context: bool = True


@dataclass
class Chunk:
    """A piece of a document: `text` is shown and cited, `header + text` is embedded and indexed."""

    id: str
    text: str
    header: str
    metadata: dict

    @property
    def indexed_text(self) -> str:
        return self.header + self.text


def document_header(title: str) -> str:
    """The line that names a chunk's document in what gets embedded and keyword-indexed."""
    return f"Document: {title}\n" if title else ""


def chunk_header(metadata: dict) -> str:
    """What is embedded and keyword-indexed before a stored chunk's text: its document's name, and
    the headings and column header it falls under (metadata `context`)."""
    return document_header(metadata.get("title", "")) + metadata.get("context", "")


def _heading_level(line: str) -> int | None:
    if match := MARKDOWN_HEADING.fullmatch(line):
        return len(match.group(1))
    if NUMBERED_HEADING.fullmatch(line):
        return 1
    if CAPITALS_HEADING.fullmatch(line):
        return 7
    return None


def _is_column_header(line: str, next_line: str) -> bool:
    """A table's header row: two years or more and no other figure (as statements print them),
    or a Markdown table's first row."""
    years = YEAR.findall(line)
    if len(years) >= 2 and len(line) <= 120 and not re.search(r"\d", YEAR.sub("", DAY.sub("", line))):
        return True
    return line.startswith("|") and bool(TABLE_RULE.fullmatch(next_line))


def _structure(text: str) -> Iterator[tuple[int, list[str], str]]:
    """At each heading, column header or end of a table (a blank line) in `text`: the offset just
    after its line, the path of headings above that point, and the current table's column header
    ("" outside a table)."""
    path: list[tuple[int, str]] = []  # (level, heading)
    columns = ""
    offset = 0
    lines = text.split("\n")
    for number, raw in enumerate(lines):
        offset += len(raw) + 1
        line = raw.strip()
        level = _heading_level(line) if line else None
        if level is not None:
            path = [(lvl, heading) for lvl, heading in path if lvl < level] + [(level, line)]
            columns = ""
        elif line and _is_column_header(line, lines[number + 1].strip() if number + 1 < len(lines) else ""):
            columns = line
        elif not line and columns and number + 1 < len(lines):  # the last "" only ends the text
            columns = ""
        else:
            continue
        yield offset, [heading for _, heading in path], columns


def context_lines(text: str) -> list[tuple[int, str]]:
    """For each place in `text` where the context changes, its offset and what a chunk starting
    after it falls under: the path of headings above it, then the current table's column header,
    each on a line of its own."""
    return [
        (offset, (f"Section: {' > '.join(path)}\n" if path else "") + (f"{columns}\n" if columns else ""))
        for offset, path, columns in _structure(text)
    ]


def column_header(text: str) -> str:
    """The column header of the table that `text` ends in ("" when it ends in none)."""
    return next((columns for _, _, columns in reversed(list(_structure(text)))), "")


def _context_at(changes: list[tuple[int, str]], start: int) -> str:
    """The context of a chunk that starts at offset `start` (headings it does not itself contain)."""
    context = ""
    for offset, lines in changes:
        if offset > start:
            break
        context = lines
    return context


@lru_cache(maxsize=64)
def _chunker(location: str, size: int) -> semchunk.Chunker:
    return semchunk.chunkerify(counting_tokenizer(location), size)


def chunk_documents(
    docs: list[Document],
    embedder: SentenceEmbedding,
    fingerprint: str,
    options: ChunkOptions = ChunkOptions(),
) -> list[Chunk]:
    """Chunk every document as `options` say; ids are derived from source, `fingerprint` and
    position (of the document in `docs`, of the chunk in the document), so the same file chunked
    the same way always gets the same ids."""
    chunks: list[Chunk] = []
    for doc_index, doc in enumerate(docs):
        changes = context_lines(doc.text) if options.context else []
        longest = max((embedder.count_tokens(lines) for _, lines in changes), default=0)
        room = embedder.max_tokens - 2 - embedder.count_tokens(document_header(doc.title)) - longest  # 2: [CLS], [SEP]
        size = max(MIN_CHUNK_TOKENS, min(options.chunk_tokens, room))
        texts, offsets = _chunker(embedder.pinned.location, size)(
            doc.text, overlap=min(options.overlap_tokens, size // 2), offsets=True
        )
        location = {key: value for key, value in (("page", doc.page), ("row", doc.row)) if value is not None}
        for index, (text, (start, end)) in enumerate(zip(texts, offsets, strict=True)):
            if not text.strip():
                continue
            key = f"{doc.source}\0{fingerprint}\0{doc_index}\0{index}"
            metadata = {
                "source": doc.source,
                "title": doc.title,
                "context": _context_at(changes, start),
                **location,
                "chunk": index,
                "start": start,
                "end": end,
                "file_hash": fingerprint,
                "text_hash": hashlib.sha256(text.encode()).hexdigest()[:16],
            }
            chunks.append(Chunk(hashlib.sha256(key.encode()).hexdigest()[:32], text, chunk_header(metadata), metadata))
    return chunks
