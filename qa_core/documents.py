"""Read files into documents: .txt, .md, .pdf (one document per page) and .csv (one per row).

A file that cannot be used (unsupported type, too large, empty, not UTF-8, a PDF without text,
a link pointing outside the folder being ingested) is reported as a problem with its name and the
reason, and the other files still go in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from qa_core.data import read_csv_rows
from qa_core.errors import DataError, IngestError

SUPPORTED = (".txt", ".md", ".pdf", ".csv")
TEXT_COLUMNS = ("text", "content", "body", "evidence_text", "document")
NO_TEXT_COLUMN = "no text column found"
TITLE_COLUMNS = ("title", "doc_name", "document_name", "name")


@dataclass
class Document:
    """Text from one file, page or row, with what a citation needs to point back at it."""

    text: str
    source: str
    title: str
    page: int | None = None
    row: int | None = None


@dataclass
class SourceFile:
    """A file to ingest and the name it is stored and cited under."""

    path: Path
    source: str
    options: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Hash of the file's bytes and of the options that shape its chunks."""
        digest = hashlib.sha256(self.path.read_bytes())
        digest.update(repr(sorted(self.options.items())).encode())
        return digest.hexdigest()


def safe_source_name(name: str) -> str:
    """A display name for an uploaded file: no folders, no control characters.

    >>> safe_source_name("../../etc/passwd")
    'passwd'
    """
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return cleaned or "unnamed"


def _display_name(path: Path) -> str:
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def discover(paths: Iterable[str | Path], problems: list[str]) -> Iterator[Path]:
    """Yield the supported files among `paths`, walking folders; append a line to `problems` for
    each path skipped (missing, unsupported type, or a link leading outside its folder)."""
    for given in map(Path, paths):
        if given.is_dir():
            root = given.resolve()
            for path in sorted(given.rglob("*")):
                if path.name.startswith(".") or path.is_dir():
                    continue
                if not path.resolve().is_relative_to(root):
                    problems.append(f"{path}: skipped, it links outside {given}")
                elif path.suffix.lower() not in SUPPORTED:
                    problems.append(f"{path}: skipped, unsupported type (supported: {', '.join(SUPPORTED)})")
                else:
                    yield path
        elif not given.is_file():
            problems.append(f"{given}: no such file or folder")
        elif given.suffix.lower() not in SUPPORTED:
            problems.append(f"{given}: unsupported type {given.suffix or '(none)'} (supported: {', '.join(SUPPORTED)})")
        else:
            yield given


def source_files(
    paths: Iterable[str | Path], problems: list[str], names: Iterable[str] | None = None
) -> list[SourceFile]:
    """The files to ingest, each with the name it is cited under: `names` (uploads keep their
    original name), else the path relative to the working directory."""
    if names is not None:
        return [SourceFile(Path(p), safe_source_name(n)) for p, n in zip(paths, names, strict=True)]
    return [SourceFile(p, _display_name(p)) for p in discover(paths, problems)]


def _title_from_name(source: str) -> str:
    return re.sub(r"[_-]+", " ", Path(source).stem).strip() or source


# Titles that PDF producers fill in by themselves ("Enscript Output", "Microsoft Word - q3.docx",
# "untitled"): they name the tool, not the document.
GENERATED_TITLE = re.compile(
    r"^(enscript output|untitled.*|microsoft (word|powerpoint|excel) - .*|powerpoint presentation|document\d*"
    r"|slide \d+|title|.*\.(docx?|pptx?|xlsx?|pdf|tex|txt|ps|dvi))$",
    re.IGNORECASE,
)


def _pdf_title(metadata_title: str | None, first_page: str, source: str) -> str:
    """The PDF's own title when it has a real one, else its first line when that reads as a heading
    (short, no full stop at the end), else its file name."""
    title = (metadata_title or "").strip()
    if title and not GENERATED_TITLE.match(title):
        return title
    first_line = next((line.strip() for line in first_page.splitlines() if line.strip()), "")
    if 3 <= len(first_line) <= 80 and first_line[0].isalpha() and not first_line.endswith("."):
        return first_line
    return _title_from_name(source)


def _read_text(file: SourceFile) -> list[Document]:
    try:
        text = file.path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{file.source}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    title = _title_from_name(file.source)
    if file.path.suffix.lower() == ".md":
        heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        title = heading.group(1).strip() if heading else title
    return [Document(text, file.source, title)]


def _read_pdf(file: SourceFile) -> list[Document]:
    try:
        reader = PdfReader(file.path)
        if reader.is_encrypted:
            raise IngestError(f"{file.source}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = _pdf_title(reader.metadata.title if reader.metadata else None, pages[0] if pages else "", file.source)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise IngestError(f"{file.source}: not a readable PDF ({exc})") from exc
    docs = [Document(text, file.source, title, page=n) for n, text in enumerate(pages, start=1) if text.strip()]
    if not docs:
        raise IngestError(f"{file.source}: the PDF has no extractable text (scanned? run OCR first)")
    return docs


def _pick(requested: str | None, candidates: tuple[str, ...], header: list[str], source: str, what: str) -> str | None:
    if requested:
        if requested not in header:
            raise IngestError(f"{source}: no {what} column {requested!r} (columns: {', '.join(header)})")
        return requested
    return next((c for c in candidates if c in header), None)


def _read_csv(file: SourceFile) -> list[Document]:
    try:
        header, rows = read_csv_rows(file.path)
    except DataError as exc:
        raise IngestError(str(exc).replace(str(file.path), file.source)) from exc
    text_col = _pick(file.options.get("text_column"), TEXT_COLUMNS, header, file.source, "text")
    faq = text_col is None and {"question", "answer"} <= set(header)  # a FAQ: index question and answer
    if text_col is None and not faq:
        raise IngestError(  # no option to name: the app has none (the CLI adds its --text-column)
            f"{file.source}: {NO_TEXT_COLUMN} (columns: {', '.join(header)}); name the text column "
            f"{' or '.join(TEXT_COLUMNS)}, or give the file question and answer columns"
        )
    title_col = _pick(file.options.get("title_column"), TITLE_COLUMNS, header, file.source, "title")
    fallback = _title_from_name(file.source)
    docs = []
    for n, (_, row) in enumerate(rows, start=1):
        if faq:
            question, answer = (row.get("question") or "").strip(), (row.get("answer") or "").strip()
            text = f"Question: {question}\nAnswer: {answer}" if question and answer else ""
        else:
            text = row.get(text_col) or ""
        if text.strip():
            docs.append(Document(text, file.source, (row.get(title_col) or "").strip() or fallback, row=n))
    return docs


READERS = {".txt": _read_text, ".md": _read_text, ".pdf": _read_pdf, ".csv": _read_csv}


def read_sources(
    paths: Iterable[str | Path],
    max_bytes: int,
    problems: list[str],
    names: Iterable[str] | None = None,
    options: dict | None = None,
) -> Iterator[tuple[SourceFile, list[Document]]]:
    """Read every supported file under `paths` (see `source_files`) with reader `options`
    (text_column, title_column ...); a file that cannot be read adds its line to `problems`
    and the others are read all the same.

    Yields:
        (the file, its documents), in the order found.
    """
    for file in source_files(paths, problems, names):
        file.options = {k: v for k, v in (options or {}).items() if v is not None}
        try:
            yield file, read_documents(file, max_bytes)
        except IngestError as exc:
            problems.append(str(exc))


def read_documents(file: SourceFile, max_bytes: int) -> list[Document]:
    """Read `file` into documents.

    Raises:
        IngestError: unsupported type, over `max_bytes`, unreadable, or no text in it.
    """
    suffix = file.path.suffix.lower()
    if suffix not in READERS:
        raise IngestError(f"{file.source}: unsupported type {suffix or '(none)'} (supported: {', '.join(SUPPORTED)})")
    try:
        size = file.path.stat().st_size
    except OSError as exc:
        raise IngestError(f"{file.source}: cannot read ({exc.strerror})") from exc
    if size > max_bytes:
        raise IngestError(f"{file.source}: {size:,} bytes is over the limit of {max_bytes:,} bytes (QA_MAX_FILE_MB)")
    docs = READERS[suffix](file)
    if not any(doc.text.strip() for doc in docs):
        raise IngestError(f"{file.source}: no text in the file")
    return docs
