"""Raw domain text, for continued pretraining and for measuring perplexity on it.

Files and folders are read with the readers RAG ingestion uses (.txt and .md whole, .pdf one
document per page, .csv one per row of its text column); any other source is a Hugging Face
dataset id whose text column is read. A file that cannot be read is reported, not fatal.

    python -c "from qa_core.config import load_settings; from qa_core.text_data import load_texts; \
        print(len(load_texts(['reports/'], load_settings())))"
"""

from __future__ import annotations

from collections.abc import Sequence

import semchunk
from datasets import load_dataset

from qa_core.config import Settings
from qa_core.documents import read_sources
from qa_core.errors import DataError
from qa_core.hub.refs import is_hub_dataset

# Passages are what gets held out for evaluation and shuffled before packing; a few thousand
# characters keeps one long file (a book) splittable while most pages stay whole.
PASSAGE_CHARS = 4000


def load_texts(
    sources: Sequence[str],
    settings: Settings,
    text_column: str | None = None,
    problems: list[str] | None = None,
) -> list[str]:
    """The texts of every document in `sources` (files, folders or dataset ids), in order; files
    over QA_MAX_FILE_MB are skipped, private datasets read with HF_TOKEN.

    Args:
        text_column: the column holding the text in CSV files and datasets (default: the first
            of text, content, body, evidence_text, document; `text` for datasets).
        problems: receives one line per file skipped and why (missing, unsupported, too large, unreadable).

    Returns:
        One string per document (file, PDF page, CSV row or dataset row), blank ones dropped.

    Raises:
        DataError: a dataset cannot be loaded or has no such column, or no text was found at all.
    """
    problems = [] if problems is None else problems
    texts: list[str] = []
    files = [source for source in sources if not is_hub_dataset(source)]
    for _, docs in read_sources(files, settings.max_file_bytes, problems, options={"text_column": text_column}):
        texts += [doc.text for doc in docs]
    for name in (source for source in sources if is_hub_dataset(source)):
        texts += _dataset_texts(name, text_column or "text", settings.hub_token)
    texts = [text.strip() for text in texts if text.strip()]
    if not texts:
        why = f" ({'; '.join(problems)})" if problems else ""
        raise DataError(f"no text found in {', '.join(sources)}{why}")
    return texts


def _dataset_texts(name: str, column: str, token: str | bool | None) -> list[str]:
    try:
        dataset = load_dataset(name, split="train", token=token)
    except Exception as exc:  # datasets raises many kinds; the user needs one line
        raise DataError(f"{name}: no such file or folder, and not a loadable dataset ({type(exc).__name__})") from exc
    if column not in dataset.column_names:
        raise DataError(
            f"{name}: no text column {column!r} (columns: {', '.join(dataset.column_names)}); "
            "choose one with --text-column"
        )
    return [value for value in dataset[column] if isinstance(value, str)]


def passages(texts: Sequence[str], max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Split each text at paragraph, line and sentence boundaries into pieces of at most
    `max_chars` characters, in order; nothing is dropped but the whitespace between pieces."""
    chunker = semchunk.chunkerify(len, max_chars)
    return [piece for text in texts for piece in chunker(text) if piece.strip()]
