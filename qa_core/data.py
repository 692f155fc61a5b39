"""Load question-answer data from CSV, JSONL/JSON or a Hugging Face dataset, and split it.

Every source becomes a `datasets.Dataset` with the columns `question`, `answer`, `context` and
`title` (the context's document; "" where a row has none). A column mapping says which source
column feeds each of them:

    question=instruction,context=input,answer=output,title=doc_name

CSV and JSONL files default to `question`, `answer`, `evidence_text` (or `context`) and
`doc_name` (or `title`); known
Hub datasets (dolly, alpaca) have their mapping built in. Extra columns are ignored. Every row is
checked, and a bad one raises `DataError` naming the file, the line or row, and the column.

    python -c "from qa_core.data import load_qa_data; print(load_qa_data('data.csv'))"
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from qa_core.errors import DataError
from qa_core.hub.refs import is_hub_dataset

REQUIRED = ("question", "answer")
OPTIONAL = ("context", "title")
DEFAULT_COLUMNS = {"question": "question", "answer": "answer"}
FALLBACKS = {"context": ("evidence_text", "context", "input"), "title": ("doc_name", "title")}
KNOWN_DATASETS: dict[str, dict[str, str]] = {
    "databricks/databricks-dolly-15k": {"question": "instruction", "context": "context", "answer": "response"},
    "gbharti/finance-alpaca": {"question": "instruction", "context": "input", "answer": "output"},
    "tatsu-lab/alpaca": {"question": "instruction", "context": "input", "answer": "output"},
}
FILE_SUFFIXES = (".csv", ".jsonl", ".json")


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse a mapping like `question=instruction,answer=response` (or pass a dict through).

    Raises:
        DataError: a part is not `name=column` or names a field other than question, answer, context.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        pairs = dict(spec)
    else:
        pairs = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            target, sep, source = part.partition("=")
            if not sep or not target.strip() or not source.strip():
                raise DataError(f"column mapping {part!r}: expected FIELD=COLUMN, e.g. answer=response")
            pairs[target.strip()] = source.strip()
    unknown = set(pairs) - set(REQUIRED + OPTIONAL)
    if unknown:
        raise DataError(
            f"column mapping names unknown field(s) {sorted(unknown)}; fields are question, answer, context, title"
        )
    return pairs


def _resolve_columns(available: Iterable[str], where: str, mapping: dict[str, str]) -> dict[str, str]:
    available = list(available)
    columns = {**DEFAULT_COLUMNS, **mapping}
    for field, fallbacks in FALLBACKS.items():
        if field not in mapping:
            columns[field] = next((c for c in fallbacks if c in available), "")
    for field in [*REQUIRED, *(f for f in OPTIONAL if f in mapping)]:
        if columns[field] not in available:
            raise DataError(
                f"{where}: missing column {columns[field]!r} for the {field} "
                f"(columns found: {', '.join(available) or 'none'}); map another with {field}=COLUMN"
            )
    return {field: source for field, source in columns.items() if source}


def _text(value: object, where: str, column: str, required: bool) -> str:
    if value is None:
        value = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}, column {column!r}: expected text, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}, column {column!r}: empty value")
    return value.strip()


def _records(rows: Iterable[tuple[str, Mapping]], columns: dict[str, str]) -> Iterator[dict[str, str]]:
    for where, row in rows:
        yield {
            "question": _text(row.get(columns["question"]), where, columns["question"], required=True),
            "answer": _text(row.get(columns["answer"]), where, columns["answer"], required=True),
            **{
                field: _text(row.get(columns.get(field, "")), where, columns.get(field, ""), required=False)
                for field in OPTIONAL
            },
        }


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """Read a UTF-8 CSV with a header row, checking every row's shape.

    Returns:
        (header, rows), each row paired with its location ("FILE, line N") for error messages.
        Blank rows are dropped.

    Raises:
        DataError: unreadable or non-UTF-8 file, no header, malformed CSV, or a row with more
            fields than the header.
    """
    reader = csv.DictReader(_read_text(path).splitlines(keepends=True), strict=True)
    rows: list[tuple[str, dict[str, str]]] = []
    try:
        header = reader.fieldnames
        if not header:
            raise DataError(f"{path}: empty file, expected a header row")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row:
                raise DataError(f"{where}: {len(header) + len(row[None])} fields, the header has {len(header)}")
            if any((v or "").strip() for v in row.values()):  # blank lines between rows are harmless
                rows.append((where, row))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc
    return list(header), rows


def _csv_rows(path: Path, mapping: dict[str, str]) -> list[dict[str, str]]:
    header, rows = read_csv_rows(path)
    return list(_records(rows, _resolve_columns(header, str(path), mapping)))


def _json_rows(path: Path, mapping: dict[str, str]) -> list[dict[str, str]]:
    text = _read_text(path)
    located: list[tuple[str, Mapping]] = []
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from exc
        located = [(f"{path}, item {i}", item) for i, item in enumerate(items, start=1)]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                located.append((f"{path}, line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg})") from exc
    for where, item in located:
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object with question and answer, got {type(item).__name__}")
    if not located:
        raise DataError(f"{path}: no records")
    keys = dict.fromkeys(key for _, item in located for key in item)
    return list(_records(located, _resolve_columns(keys, str(path), mapping)))


def _hub_rows(name: str, mapping: dict[str, str], split: str, token: str | bool | None) -> list[dict[str, str]]:
    try:
        dataset = load_dataset(name, split=split, token=token)
    except Exception as exc:  # datasets raises many kinds; the user needs one line
        raise DataError(f"{name}: cannot load dataset split {split!r}: {type(exc).__name__}: {exc}") from exc
    columns = _resolve_columns(dataset.column_names, name, {**KNOWN_DATASETS.get(name, {}), **mapping})
    located = ((f"{name}, row {i}", row) for i, row in enumerate(dataset, start=1))
    return list(_records(located, columns))


def load_qa_data(
    source: str | Path,
    columns: str | Mapping[str, str] | None = None,
    split: str = "train",
    token: str | bool | None = None,
) -> Dataset:
    """Load QA pairs from a CSV / JSONL / JSON file or a Hugging Face dataset id (or folder).

    Args:
        source: a file path, or anything `datasets.load_dataset` accepts.
        columns: mapping of question / answer / context to source columns (see `parse_columns`).
        split: the split to read from a dataset (files have one).
        token: Hugging Face token for private datasets.

    Returns:
        A Dataset with string columns question, answer, context, title.

    Raises:
        DataError: unreadable source, missing column, empty or malformed row; the message
            names the file or dataset, the line or row, and the column.
    """
    mapping = parse_columns(columns)
    path = Path(source)
    if is_hub_dataset(str(source)) or path.is_dir():  # a Hub id, or a dataset saved in a folder
        records = _hub_rows(str(source), mapping, split, token)
    elif path.suffix.lower() not in FILE_SUFFIXES:
        raise DataError(f"{path}: not a QA data file (give a {', '.join(FILE_SUFFIXES)} file, or a dataset)")
    elif not path.is_file():
        raise DataError(f"{path}: no such file")
    else:
        reader = _csv_rows if path.suffix.lower() == ".csv" else _json_rows
        records = reader(path, mapping)
    if not records:
        raise DataError(f"{source}: no question-answer rows")
    return Dataset.from_list(records)


def split_qa_data(dataset: Dataset, test_size: float = 0.1, seed: int = 42) -> DatasetDict:
    """Split into `train` and `test`; the same seed always gives the same split.

    At least one row goes to each side.

    Raises:
        DataError: fewer than two rows, or `test_size` not in (0, 1).
    """
    if not 0 < test_size < 1:
        raise DataError(f"test_size must be between 0 and 1, got {test_size}")
    if len(dataset) < 2:
        raise DataError(f"cannot split {len(dataset)} row(s) into train and test")
    n_test = min(len(dataset) - 1, max(1, round(len(dataset) * test_size)))
    return dataset.train_test_split(test_size=n_test, seed=seed)
