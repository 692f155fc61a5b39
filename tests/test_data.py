import json

import pytest

from qa_core.data import load_qa_data, parse_columns, split_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.errors import DataError
from qa_core.hub.publish import adapter_card
from qa_core.hub.refs import is_hub_dataset


def test_sample_csv_loads_with_evidence_as_context():
    data = load_qa_data(sample_data_path())
    assert len(data) >= 30
    assert data.column_names == ["question", "answer", "context", "title"]
    assert all(data["context"])
    assert data[0]["question"] == "What was Northwind Capital's total revenue in fiscal 2024?"


def test_csv_extra_columns_ignored_and_context_optional(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('id,question,answer,notes\n1,What is EBITDA?,"Earnings before interest, taxes...",x\n')
    data = load_qa_data(path)
    assert data[0] == {
        "question": "What is EBITDA?",
        "answer": "Earnings before interest, taxes...",
        "context": "",
        "title": "",
    }


def test_jsonl_and_json_array(tmp_path):
    rows = [{"question": "Q1?", "answer": "A1", "context": "C1"}, {"question": "Q2?", "answer": 42}]
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    array = tmp_path / "qa.json"
    array.write_text(json.dumps(rows))
    for path in (jsonl, array):
        data = load_qa_data(path)
        assert data["context"] == ["C1", ""]
        assert data["answer"] == ["A1", "42"]


def make_dataset_folder(tmp_path, rows):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder


def test_dataset_with_dolly_columns(tmp_path):
    folder = make_dataset_folder(
        tmp_path,
        [
            {"instruction": "Who wrote it?", "context": "Ann wrote it.", "response": "Ann", "category": "closed_qa"},
            {"instruction": "Name a bond type.", "context": "", "response": "Gilt", "category": "open_qa"},
        ],
    )
    data = load_qa_data(str(folder), "question=instruction,context=context,answer=response")
    assert data[0] == {"question": "Who wrote it?", "answer": "Ann", "context": "Ann wrote it.", "title": ""}
    assert data[1]["context"] == ""


def test_dataset_with_alpaca_columns_finds_input_as_context(tmp_path):
    folder = make_dataset_folder(tmp_path, [{"instruction": "Define yield.", "input": "Bonds.", "output": "Income."}])
    data = load_qa_data(str(folder), {"question": "instruction", "answer": "output"})
    assert data[0] == {"question": "Define yield.", "answer": "Income.", "context": "Bonds.", "title": ""}


def test_split_is_reproducible():
    data = load_qa_data(sample_data_path())
    a, b = split_qa_data(data, 0.2, seed=7), split_qa_data(data, 0.2, seed=7)
    assert a["test"]["question"] == b["test"]["question"]
    assert len(a["test"]) == round(len(data) * 0.2) and len(a["train"]) + len(a["test"]) == len(data)
    assert split_qa_data(data, 0.2, seed=8)["test"]["question"] != a["test"]["question"]


def test_split_keeps_one_row_on_each_side(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("question,answer\nQ1,A1\nQ2,A2\n")
    parts = split_qa_data(load_qa_data(path), 0.01)
    assert (len(parts["train"]), len(parts["test"])) == (1, 1)
    with pytest.raises(DataError, match="cannot split 1 row"):
        split_qa_data(load_qa_data(path).select([0]))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "missing.csv",
            "question,reply\nQ,A\n",
            r"missing\.csv: missing column 'answer' .*question, reply.*answer=COLUMN",
        ),
        (
            "empty_answer.csv",
            "question,answer\nQ1,A1\nQ2,  \n",
            r"empty_answer\.csv, line 3, column 'answer': empty value",
        ),
        ("fields.csv", "question,answer\nQ1,A1,extra\n", r"fields\.csv, line 2: 3 fields, the header has 2"),
        ("empty.csv", "", r"empty\.csv: empty file"),
        ("header_only.csv", "question,answer\n", r"header_only\.csv: no question-answer rows"),
        ("quote.csv", 'question,answer\n"Q1,A1\n', r"quote\.csv, line \d+: malformed CSV"),
        (
            "bad.jsonl",
            '{"question": "Q", "answer": "A"}\n{"question": "Q2", answer}\n',
            r"bad\.jsonl, line 2: invalid JSON",
        ),
        ("list.jsonl", '["Q", "A"]\n', r"list\.jsonl, line 1: expected a JSON object"),
        (
            "nested.jsonl",
            '{"question": "Q", "answer": ["A"]}\n',
            r"nested\.jsonl, line 1, column 'answer': expected text, got list",
        ),
        ("blank.jsonl", "\n\n", r"blank\.jsonl: no records"),
    ],
)
def test_malformed_files_name_file_row_and_column(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_qa_data(path)


def test_non_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("question,answer\nQué?,Sí\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not UTF-8 text \(bad byte at offset \d+\)"):
        load_qa_data(path)
    with pytest.raises(DataError, match=r"nothere\.csv: no such file"):
        load_qa_data(tmp_path / "nothere.csv")


def test_missing_dataset_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot load dataset"):
        load_qa_data(str(tmp_path / "no-such-dataset-folder"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("question", "expected FIELD=COLUMN"), ("doc=name", "unknown field"), ("answer=", "expected FIELD=COLUMN")],
)
def test_bad_column_mapping(spec, message):
    with pytest.raises(DataError, match=message):
        parse_columns(spec)


def test_one_answer_to_file_or_hub_dataset(tmp_path):
    """data, text_data and the model card ask the same function (they decided three ways)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("Breaches must be reported within 72 hours.")
    assert not is_hub_dataset(str(notes)) and not is_hub_dataset(str(tmp_path / "missing.csv"))
    assert not is_hub_dataset(str(tmp_path)) and is_hub_dataset("databricks/databricks-dolly-15k")
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        load_qa_data(str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match=r"notes\.txt: not a QA data file"):  # was a failed Hub download
        load_qa_data(str(notes))
    record = {"step": 1, "base_model": "demo", "dataset": "databricks/databricks-dolly-15k"}
    assert "datasets:\n- databricks/databricks-dolly-15k" in adapter_card("me/run", record)
    assert "datasets:" not in adapter_card("me/run", {**record, "dataset": "sample_qa.csv"})  # a local file's name
