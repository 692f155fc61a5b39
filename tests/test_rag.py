import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import numpy as np
import pytest
import torch

from qa_core.chunking import chunk_documents, chunk_header
from qa_core.config import load_settings
from qa_core.demo_model import sample_data_path
from qa_core.documents import Document, safe_source_name
from qa_core.embeddings import SentenceEmbedding, resolve_embedding_model
from qa_core.errors import DataError, EmbeddingError, QAError, StoreError
from qa_core.extractive import best_sentences, split_sentences
from qa_core.rag.answer import RagAnswer, RagOptions, answer, quoted
from qa_core.rag.chroma import ChromaEmbedding, open_client, store_failure
from qa_core.rag.cli import main as rag_main
from qa_core.rag.evaluate import KEYWORD_WEIGHTS, evaluate_retrieval
from qa_core.rag.ingest import ingest
from qa_core.rag.retrieval import KEYWORD_WEIGHT, Hit, Retriever
from qa_core.rag.store import RagStore
from qa_core.visitors import VisitorCollections
from tests.helpers import ROOT, free_port, write_pdf


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    (docs / "minutes").mkdir(parents=True)
    (docs / "harbor.txt").write_text(
        "In the third quarter of 2025 Harbor Utilities achieved an operating margin of 18.4%.\n\n"
        "Management reaffirmed its 2025 capital expenditure plan of $620 million."
    )
    (docs / "minutes" / "board.md").write_text("# Board minutes\n\nThe board approved a budget of $4.2 million.")
    (docs / "faq.csv").write_text(
        "topic,text\nBreaches,Report a personal data breach within 72 hours.\n"
        "CCTV,Keep CCTV footage for no longer than 30 days.\n"
    )
    write_pdf(
        docs / "green.pdf",
        ["Proceeds are allocated to renewable energy projects.", "", "Allocation reports are published annually."],
        title="Green Bond Framework",
    )
    return docs


@pytest.fixture
def settings(tmp_path):
    return load_settings(None, chroma_path=tmp_path / "db")


def test_ingest_every_type_with_locations_and_titles(corpus, settings):
    store = RagStore(settings)
    report = ingest(store, [str(corpus)])
    assert report.problems == []
    assert set(report.added) == {str(corpus / n) for n in ("harbor.txt", "minutes/board.md", "faq.csv", "green.pdf")}
    assert report.added[str(corpus / "faq.csv")] == 2  # one document per row
    assert report.added[str(corpus / "green.pdf")] == 2  # the page without text has no chunk
    titles = {entry["source"].rsplit("/", 1)[-1]: entry["title"] for entry in store.sources()}
    assert titles == {
        "harbor.txt": "harbor",
        "board.md": "Board minutes",
        "faq.csv": "faq",
        "green.pdf": "Green Bond Framework",
    }
    retriever = Retriever(store)
    assert retriever.search("How long can CCTV footage be kept?", 1)[0].label == f"{corpus / 'faq.csv'}, row 2"
    assert retriever.search("When are allocation reports published?", 1)[0].label == f"{corpus / 'green.pdf'}, page 3"
    top = retriever.search("What operating margin did Harbor Utilities achieve?", 1)[0]
    assert top.source == str(corpus / "harbor.txt") and "18.4%" in top.text and 0 < top.score <= 1


def test_reingest_is_idempotent_and_a_changed_file_replaces_its_chunks(corpus, settings):
    store = RagStore(settings)
    ingest(store, [str(corpus)])
    count = store.count()
    again = ingest(store, [str(corpus)])
    assert again.added == {} and len(again.unchanged) == 4 and store.count() == count
    (corpus / "harbor.txt").write_text("Harbor Utilities now reports an operating margin of 21.0%.")
    changed = ingest(store, [str(corpus)])
    assert changed.replaced == [str(corpus / "harbor.txt")] and len(changed.unchanged) == 3
    harbor = store.collection.get(where={"source": str(corpus / "harbor.txt")}, include=["documents"])
    assert harbor["documents"] == ["Harbor Utilities now reports an operating margin of 21.0%."]
    assert store.count() == count  # one old chunk out, one new chunk in


def test_bad_files_are_reported_and_the_rest_ingested(corpus, settings, tmp_path):
    (corpus / "empty.txt").write_text("   ")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 prices".encode("latin-1"))
    (corpus / "slides.pptx").write_bytes(b"PK")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    write_pdf(corpus / "scan.pdf", ["", ""])
    (corpus / "leak.txt").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("secret outside the folder")
    report = ingest(RagStore(settings), [str(corpus), str(tmp_path / "missing.md")])
    problems = "\n".join(report.problems)
    for expected in (
        "empty.txt: no text",
        "latin1.txt: not UTF-8",
        "slides.pptx: skipped, unsupported type",
        "broken.pdf: not a readable PDF",
        "scan.pdf: the PDF has no extractable text",
        "leak.txt: skipped, it links outside",
        "missing.md: no such file",
    ):
        assert expected in problems, problems
    assert len(report.added) == 4  # the good files still go in


def test_files_over_the_size_limit_are_skipped(corpus, settings):
    (corpus / "huge.txt").write_text("Very long filing. " * 100)
    small_limit = load_settings(None, chroma_path=settings.chroma_path, max_file_mb=0.0015)
    report = ingest(RagStore(small_limit), [str(corpus)])
    assert report.problems == [f"{corpus / 'huge.txt'}: 1,800 bytes is over the limit of 1,500 bytes (QA_MAX_FILE_MB)"]
    assert len(report.added) == 4


def test_upload_names_lose_path_tricks(tmp_path, settings):
    upload = tmp_path / "tmp123.txt"
    upload.write_text("Uploaded content about bonds.")
    store = RagStore(settings)
    report = ingest(store, [str(upload)], names=["../../etc/passwd.txt"])
    assert list(report.added) == ["passwd.txt"]
    assert safe_source_name("a\\b\\c\x00.md") == "c.md" and safe_source_name("../") == "unnamed"


def test_documents_without_location_get_distinct_ids(settings):
    from qa_core.documents import Document

    store = RagStore(settings)
    docs = [Document("First note on bonds.", "notes", "Notes"), Document("Second note on equities.", "notes", "Notes")]
    assert store.add_documents("notes", docs, "v1") == 2
    assert store.count() == 2
    assert store.add_documents("notes", docs, "v1") == 2 and store.count() == 2  # same ids: upserted, not doubled


def test_list_delete_reset_and_errors(corpus, settings):
    store = RagStore(settings)
    ingest(store, [str(corpus)])
    assert store.delete(str(corpus / "faq.csv")) == 2
    assert str(corpus / "faq.csv") not in [e["source"] for e in store.sources()]
    with pytest.raises(StoreError, match="no document 'nope.txt' among the 3 stored$"):
        store.delete("nope.txt")
    misspelt = str(corpus / "harbour.txt")
    with pytest.raises(StoreError, match=f"among the 3 stored; did you mean '{corpus / 'harbor.txt'}'\\?$"):
        store.delete(misspelt)
    store.reset()
    assert store.count() == 0 and RagStore(settings).count() == 0
    with pytest.raises(StoreError, match="collection name 'x'"):
        RagStore(settings, "x")


def test_collection_with_another_embedding_model_is_a_clear_error(settings):
    client = chromadb.PersistentClient(path=str(settings.chroma_path))
    client.create_collection(
        "legacy",
        metadata={"embedding_model": "bge-large", "embedding_dim": 1024},
        configuration={"hnsw": {"space": "cosine"}},
    )
    with pytest.raises(EmbeddingError, match="'legacy' was built with another embedding function \\(default\\)"):
        RagStore(settings, "legacy", client=client)
    client.create_collection(
        "other-dim",
        embedding_function=ChromaEmbedding(),
        metadata={"embedding_model": "bge-large", "embedding_dim": 1024},
    )
    with pytest.raises(EmbeddingError, match="built with bge-large but this run embeds with all-MiniLM.*reindex"):
        RagStore(settings, "other-dim", client=client)


def test_hybrid_finds_exact_numbers_and_keyword_search_works(corpus, settings):
    store = RagStore(settings)
    ingest(store, [str(corpus)])
    retriever = Retriever(store)
    keyword = retriever.keyword("$4.2 million budget", 3)
    assert keyword[0].source.endswith("board.md") and keyword[0].score > 0
    hybrid = retriever.search("$4.2 million budget", 3, hybrid=True)
    assert hybrid[0].source.endswith("board.md") and len(hybrid) == 3
    similarity = {hit.id: hit.score for hit in retriever.dense("$4.2 million budget", 20)}
    # the best keyword match gets the whole keyword weight on top of its cosine similarity
    assert hybrid[0].score == pytest.approx(similarity[hybrid[0].id] + KEYWORD_WEIGHT)


def test_keyword_index_is_kept_until_the_chunks_change(corpus, settings, tmp_path):
    store = RagStore(settings, "kept")
    ingest(store, [str(corpus)])
    retriever = Retriever(store)
    first = retriever.index()
    counted = []
    count = store.count
    store.count = lambda: counted.append(1) or count()  # observes Chroma's count, which grows with the chunks
    retriever.search("$4.2 million budget", 3, hybrid=True)
    assert retriever.index() is first and len(first.ids) == count()  # not rebuilt per query
    assert counted == []  # nothing written since: the database file is unchanged, so nothing is counted
    RagStore(settings, "elsewhere").add_documents("other.txt", [Document("Unrelated.", "other.txt", "Other")], "v1")
    assert retriever.index() is first and counted == [1]  # the folder's file changed: counted once, same chunks
    store.delete(next(entry["source"] for entry in store.sources() if entry["source"].endswith("board.md")))
    after_delete = retriever.index()
    assert after_delete is not first and len(after_delete.ids) == store.count()
    assert not any(hit.source.endswith("board.md") for hit in retriever.keyword("$4.2 million budget", 5))
    extra = tmp_path / "extra.txt"
    extra.write_text("The harbour authority approved a dredging budget of $9.9 million.")
    ingest(RagStore(settings, "kept"), [str(extra)])  # another writer: this store counted no change
    assert retriever.keyword("dredging budget", 1)[0].source.endswith("extra.txt")


def test_a_query_is_embedded_as_the_collection_is(settings):
    embedder = RagStore(settings, "vectors").embedder
    for text in ("What was the operating margin?", "revenue " * 400):  # the second is cut at the model's length
        assert torch.allclose(embedder.embed_query(text), torch.from_numpy(embedder([text])[0]), atol=1e-6)


def test_keyword_and_hybrid_search_of_an_empty_collection_find_nothing(settings):
    retriever = Retriever(RagStore(settings, "empty"))
    assert retriever.keyword("budget", 3) == [] and retriever.search("budget", 3, hybrid=True) == []


def test_answer_modes_cite_the_retrieved_chunks(corpus, settings, demo):
    store = RagStore(settings)
    ingest(store, [str(corpus)])
    retriever = Retriever(store)
    first = answer(demo, retriever, "What operating margin did Harbor Utilities achieve?", RagOptions(k=2))
    assert first.hits[0].source.endswith("harbor.txt") and first.draft is None
    assert "[1] " + first.hits[0].label in first.prompt and first.answer
    second = answer(
        demo, retriever, "What operating margin did Harbor Utilities achieve?", RagOptions("answer-then-retrieve", k=2)
    )
    assert (
        second.draft is not None and second.query.startswith("What operating margin") and second.draft in second.query
    )
    with pytest.raises(QAError, match="unknown RAG mode"):
        answer(demo, retriever, "Why?", RagOptions(mode="retrieve-twice"))


def test_citations_map_numbers_to_sources():
    hits = [Hit(str(i), f"text {i}", 0.5, {"source": f"doc{i}.pdf", "page": i}) for i in (1, 2, 3)]
    cited = RagAnswer("q", "p", hits, "q", answer="Margin was 18.4% [2], see also [1][2] and [7].")
    assert cited.cited == [2, 1]
    assert [(n, hit.label) for n, hit in cited.sources()] == [(2, "doc2.pdf, page 2"), (1, "doc1.pdf, page 1")]
    assert [n for n, _ in RagAnswer("q", "p", hits, "q", answer="No citation.").sources()] == [1, 2, 3]


def test_too_many_sources_are_trimmed_to_fit(settings, tmp_path, demo):
    docs = tmp_path / "long"
    docs.mkdir()
    for n in range(8):
        (docs / f"d{n}.txt").write_text(f"Filing {n}. " + "Revenue grew strongly in every region. " * 40)
    store = RagStore(settings)
    ingest(store, [str(docs)])
    from qa_core.generation import GenerationSettings
    from qa_core.rag.answer import prepare

    options = RagOptions(k=8, generation=GenerationSettings(max_new_tokens=1200))
    result = prepare(demo, Retriever(store), "How did revenue grow?", options)
    assert 1 <= len(result.hits) < 8
    assert len(demo.tokenizer(result.prompt)["input_ids"]) <= 2048 - 1200


def test_empty_collection_says_to_ingest_first(settings, demo):
    with pytest.raises(QAError, match="is empty: ingest documents first"):
        answer(demo, Retriever(RagStore(settings)), "What is a bond?")


def test_eval_on_the_sample_csv(settings):
    with_titles, _ = evaluate_retrieval(settings, sample_data_path(), title_col="doc_name")
    assert with_titles["n"] == 36
    assert with_titles["recall@5"] >= 0.95 and with_titles["recall@1"] >= 0.9
    assert with_titles["recall@1"] <= with_titles["recall@5"] <= with_titles["recall@10"]
    assert with_titles["recall@1"] <= with_titles["mrr"] <= with_titles["recall@10"]


def test_eval_of_a_csv_without_rows_is_a_clear_error(settings, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("question,evidence_text\n")
    with pytest.raises(DataError, match=r"empty\.csv: no rows to evaluate"):
        evaluate_retrieval(settings, empty)
    corpus = tmp_path / "corpus.csv"  # a corpus row needs no question, but its evidence
    corpus.write_text("question,evidence_text,doc_name\n,Some page.,A\n,,B\n")
    with pytest.raises(DataError, match=r"corpus\.csv, line 3: empty evidence_text"):
        evaluate_retrieval(settings, sample_data_path(), corpus_csv=[str(corpus)])


@pytest.mark.slow
def test_eval_cli_prints_json_last(tmp_path, corpus):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QA_CHROMA_PATH": str(tmp_path / "db")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa_core.rag",
            "eval",
            "--csv",
            str(sample_data_path()),
            "--title-col",
            "doc_name",
            "--distractors",
            str(corpus),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr", "n"} and metrics["n"] == 36
    assert not (tmp_path / "db").exists()  # evaluation never touches the user's database


def test_cli_ingest_query_list_delete(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QA_CHROMA_PATH", str(tmp_path / "db"))
    assert rag_main(["--collection", "cli-test", "ingest", str(corpus)]) == 0
    assert "4 file(s) added" in capsys.readouterr().out
    assert rag_main(["--collection", "cli-test", "query", "CCTV footage retention", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["label"].endswith("faq.csv, row 2") and hits[0]["row"] == 2
    assert rag_main(["--collection", "cli-test", "list"]) == 0
    assert "faq.csv\t2 chunks" in capsys.readouterr().out
    assert rag_main(["--collection", "cli-test", "delete", "--source", "nope"]) == 2
    assert "error: no document 'nope'" in capsys.readouterr().err
    assert rag_main(["--collection", "cli-test", "ingest", str(tmp_path / "nothing")]) == 1
    capsys.readouterr()
    (tmp_path / "prices.csv").write_text("ticker,price\nACME,12.5\n")
    assert rag_main(["--collection", "cli-test", "ingest", str(tmp_path / "prices.csv")]) == 1
    assert capsys.readouterr().err.endswith("tip: name a CSV's text column with --text-column\n")
    # Quoting needs no language model: a model that cannot be loaded is never asked for.
    ask = ["ask", "How long may CCTV footage be kept?", "--mode", "extractive", "--collection", "cli-test"]
    assert rag_main([*ask, "--model", "nobody/no-such-model", "--json"]) == 0
    answered = json.loads(capsys.readouterr().out)
    assert answered["answer"] == "Keep CCTV footage for no longer than 30 days. [1]" and answered["cited"] == [1]


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """`chroma run` on `path` and `port`, once it answers."""
    chroma = Path(sys.executable).parent / "chroma"
    argv = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            return process
        except Exception:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("chroma run did not start")
            time.sleep(0.3)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    process = start_chroma(tmp_path_factory.mktemp("chroma-server"), port)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_a_chroma_server_that_dies_and_comes_back(tmp_path, corpus):
    """Killed while the app serves: visitors get one clear line, not the generic error; restarted on
    the same folder, the same service works again and nothing acknowledged before is missing."""
    port = free_port()
    server = start_chroma(tmp_path / "db", port)
    settings = load_settings(None, chroma_url=f"http://127.0.0.1:{port}")
    collections = VisitorCollections(settings, open_client(settings), resolve_embedding_model(None, settings))
    collections.ingest("visitor", [str(corpus / "faq.csv")], ["faq.csv"])
    stored = collections.documents("visitor")
    server.kill()
    server.wait()
    down = rf"the Chroma server at http://127.0.0.1:{port} does not answer \(ConnectError\): try again in a moment"
    with pytest.raises(StoreError, match=down):
        collections.documents("visitor")
    with pytest.raises(StoreError, match=down):
        collections.ingest("visitor", [str(corpus / "harbor.txt")], ["harbor.txt"])
    server = start_chroma(tmp_path / "db", port)
    assert collections.documents("visitor") == stored and stored[0]["chunks"] == 2
    collections.ingest("visitor", [str(corpus / "harbor.txt")], ["harbor.txt"])
    assert len(collections.documents("visitor")) == 2
    collections.close()
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_server_mode(chroma_server, corpus):
    settings = load_settings(None, chroma_url=chroma_server)
    store = RagStore(settings, "server-test")
    assert len(ingest(store, [str(corpus)]).added) == 4
    assert ingest(RagStore(settings, "server-test"), [str(corpus)]).added == {}
    retriever = Retriever(RagStore(settings, "server-test"))
    top = retriever.search("How long can CCTV footage be kept?", 1)[0]
    assert top.label.endswith("faq.csv, row 2")
    assert (
        len(retriever.search("CCTV footage", 500)) == len(retriever.search("CCTV footage", 500, True)) == store.count()
    )
    store.add_documents(
        "dredging.txt", [Document("Dredging will cost $9.9 million.", "dredging.txt", "Dredging")], "v1"
    )
    assert retriever.keyword("dredging", 1)[0].source == "dredging.txt"  # another store's write, seen by counting


def test_server_unreachable_is_a_clear_error():
    with pytest.raises(StoreError, match=r"cannot reach the Chroma server at http://127.0.0.1:9"):
        RagStore(load_settings(None, chroma_url="http://127.0.0.1:9"))


def test_a_full_disk_is_told_in_one_line_whatever_the_store_says():
    """The CLI prints one `error:` line; a database message over several lines must not split it
    (the rest of the message, "nothing of this upload was kept", would fall off that line)."""
    error = OSError("Query error: Database error:\n  error returned from database: (code: 13)\n  disk full")
    what = store_failure(error, load_settings(None))
    assert what == (
        "the store's disk is full or over a file size limit "
        "(Query error: Database error: error returned from database: (code: 13) disk full)"
    )


class Interleaved:
    """A fast tokenizer's Rust backend that runs `interleave` once, just before the next encoding:
    what another thread may run there when the interpreter switches threads (seen under load)."""

    def __init__(self, backend, interleave) -> None:
        self.__dict__.update(_backend=backend, _interleave=interleave)

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def encode_batch(self, *args, **kwargs):
        interleave, self.__dict__["_interleave"] = self._interleave, lambda: None
        interleave()
        return self._backend.encode_batch(*args, **kwargs)


def test_counting_and_chunking_in_another_thread_cannot_unpad_the_encoder():
    embedder = SentenceEmbedding()
    tokenizer = embedder.model.tokenizer
    backend = tokenizer._tokenizer
    texts = ["short", "a much longer text that needs padding next to the short one " * 3]
    expected = embedder(texts)
    embedder.count_tokens("loads what counting uses before the backend is wrapped")
    for other_thread in (
        lambda: embedder.count_tokens("a question being counted"),
        lambda: chunk_documents([Document("A page. " * 50, "page.txt", "")], embedder, "v1"),
    ):
        tokenizer._tokenizer = Interleaved(backend, other_thread)
        try:
            vectors = embedder(texts)
        finally:
            tokenizer._tokenizer = backend
        assert np.allclose(np.stack(vectors), np.stack(expected), atol=1e-5)


def long_page() -> str:
    """A page of a filing three or more chunks long: a heading, a table under its column header, notes."""
    rows = "\n".join(f"Line item number {n} of the statement {100 + n:,} {90 + n:,}" for n in range(40))
    return (
        "Contoso Energy | Annual Report on Form 10-K\n\nItem 8. Financial Statements\n\n"
        "CONSOLIDATED STATEMENTS OF CASH FLOWS\n(in millions)\nYear ended December 31, 2023 2022\n"
        f"{rows}\nPurchases of property and equipment (515) (488)\nDividends paid (512) (440)\n\n"
        + "Amounts may not sum due to rounding. "
        * 30
    )


def test_every_chunk_of_a_long_page_carries_its_headings_and_column_header(settings):
    store = RagStore(settings)
    chunks = chunk_documents([Document(long_page(), "cf.txt", "CONTOSO_2023_10K")], store.embedder, "v1")
    assert len(chunks) >= 3
    first, later = chunks[0], chunks[1:]
    assert first.header == "Document: CONTOSO_2023_10K\n"  # its text starts above every heading
    section = (
        "Document: CONTOSO_2023_10K\nSection: Item 8. Financial Statements > CONSOLIDATED STATEMENTS OF CASH FLOWS\n"
    )
    table_end = long_page().index("\n\n", long_page().index("Dividends paid"))  # a blank line ends the table
    in_table = [chunk for chunk in later if chunk.metadata["start"] < table_end]
    assert in_table and len(in_table) < len(later)  # chunks that start in the table, and in the notes after it
    for chunk in later:
        assert "CASH FLOWS" not in chunk.text and "Year ended" not in chunk.text
        columns = "Year ended December 31, 2023 2022\n" if chunk in in_table else ""
        assert chunk.header == section + columns
        assert store.embedder.count_tokens(chunk.indexed_text) <= store.embedder.max_tokens - 2
    assert [c.header for c in chunks] == [chunk_header(c.metadata) for c in chunks]  # what reindex and BM25 rebuild
    store.add_documents("cf.txt", [Document(long_page(), "cf.txt", "CONTOSO_2023_10K")], "v1")
    found = Retriever(store, per_page=False).keyword("cash flows dividends", 1)[0]  # words of the heading and a row
    assert "Dividends paid" in found.text and "CASH FLOWS" not in found.text


def test_results_keep_the_best_chunk_of_each_page(settings):
    store = RagStore(settings)
    store.add_documents("cf.txt", [Document(long_page(), "cf.txt", "CONTOSO_2023_10K")], "v1")
    others = [Document(f"Fabrikam's board met in month {n} to discuss the weather.", f"m{n}.txt", "") for n in range(3)]
    for doc in others:
        store.add_documents(doc.source, [doc], "v1")
    question = "What were Contoso's cash flow statement line items?"
    per_chunk = Retriever(store, per_page=False).search(question, 3)
    per_page = Retriever(store).search(question, 3)
    assert [hit.source for hit in per_chunk] == ["cf.txt"] * 3  # the long page takes every place
    assert per_page[0] == per_chunk[0] and len({hit.label for hit in per_page}) == 3
    alone = RagStore(settings, "one-file")  # one long file, no pages: its k best chunks, as per chunk
    alone.add_documents("cf.txt", [Document(long_page(), "cf.txt", "CONTOSO_2023_10K")], "v1")
    assert Retriever(alone).search(question, 3) == Retriever(alone, per_page=False).search(question, 3)
    assert len(Retriever(alone).search(question, 3)) == 3


def test_tune_hybrid_picks_a_keyword_weight_on_held_out_questions_and_keeps_it_on_the_collection(
    settings, tmp_path, capsys, monkeypatch
):
    codes = ["QX7", "ZB4", "KM9", "TR2", "HL5", "WD8"]  # exact tokens: what keywords catch and embeddings blur
    evidence = "Reference {}. The committee met on Tuesday and reviewed the quarterly facilities report."
    held_out, corpus = tmp_path / "held_out.csv", tmp_path / "corpus.csv"
    for path, rows in (
        (held_out, [(f"Was contract {code} approved by the board?", evidence.format(code)) for code in codes]),
        (corpus, [("", f"The board approved contract number {n} for the new office.") for n in range(12)]),
    ):
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([("question", "evidence_text"), *rows])
    monkeypatch.setenv("QA_CHROMA_PATH", str(settings.chroma_path))
    RagStore(settings, "contracts")  # the user's collection, built with the same (default) model
    tune = ["eval", "--csv", str(held_out), "--corpus", str(corpus), "--tune-hybrid", "--collection", "contracts"]
    assert rag_main([*tune, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^keyword weight [\d.]+: recall@1=", out, re.MULTILINE)) == len(KEYWORD_WEIGHTS)
    chosen = json.loads(out.strip().splitlines()[-1])
    dense = re.search(r"^keyword weight 0: recall@1=([\d.]+)", out, re.MULTILINE).group(1)
    assert chosen["keyword_weight"] > 0 and chosen["recall@1"] > float(dense)  # keywords win here...
    assert f"contracts: hybrid search now weighs keywords {chosen['keyword_weight']:g}" in out
    assert Retriever(RagStore(settings, "contracts")).keyword_weight == chosen["keyword_weight"]  # ...and are kept
    assert Retriever(RagStore(settings, "others")).keyword_weight == KEYWORD_WEIGHT  # untuned: the default


def test_an_extractive_answer_quotes_one_table_row_with_its_column_header(settings):
    store = RagStore(settings)
    store.add_documents("cf.txt", [Document(long_page(), "cf.txt", "CONTOSO_2023_10K")], "v1")
    result = answer(None, Retriever(store), "How much did Contoso pay in dividends?", RagOptions(mode="extractive"))
    assert result.answer.startswith("Dividends paid (512) (440) (columns: Year ended December 31, 2023 2022) [")
    page = Hit("1", long_page(), 1.0, {"source": "cf.txt"})
    assert quoted("Dividends paid (512) (440)", page).endswith(" (columns: Year ended December 31, 2023 2022)")
    assert quoted("Amounts may not sum due to rounding.", page) == "Amounts may not sum due to rounding."  # after it
    header = "Contoso Energy | Annual Report on Form 10-K for fiscal 2023"  # on top of every page
    pages = [f"{header}\n\nRevenue grew on higher prices.", f"{header}\n\nWe paid dividends of $512 million."]
    asked = "What does Contoso Energy's annual report on Form 10-K for fiscal 2023 say?"
    assert best_sentences(asked, pages, pages=["p1", "p1"])[0].text == header  # one page: the header may answer
    assert best_sentences(asked, pages, pages=["p1", "p2"])[0].text != header  # two pages repeat it: boilerplate
    rows = split_sentences("Cash flows\nNet income 1,466 1,632\nDividends paid (512) (440)\n\nIt rose. It fell.")
    assert rows == ["Cash flows", "Net income 1,466 1,632", "Dividends paid (512) (440)", "It rose.", "It fell."]
    assert split_sentences("Net income 1,466 1,632\nDividends paid (512) (440)", table_rows=False) == [
        "Net income 1,466 1,632\nDividends paid (512) (440)"  # before: a table was one "sentence"
    ]


def test_an_extractive_answer_quotes_a_sentence_whole_across_abbreviations(settings):
    text = (
        "Long-run returns were studied by Dr. Smith of Contoso Inc. in 2006. "
        "The average annual return for U.S. stocks from 1900 to 2005 is 14 percent. "
        "Bonds, No. 2 in the ranking, returned approx. 5 percent."
    )
    store = RagStore(settings)
    store.add_documents("returns.txt", [Document(text, "returns.txt", "returns")], "v1")
    asked = "What is the average annual return for U.S. stocks from 1900 to 2005?"
    result = answer(None, Retriever(store), asked, RagOptions(mode="extractive"))
    assert result.answer.startswith("The average annual return for U.S. stocks from 1900 to 2005 is 14 percent. [")
    assert split_sentences(text)[0] == "Long-run returns were studied by Dr. Smith of Contoso Inc. in 2006."
    assert split_sentences(text)[2] == "Bonds, No. 2 in the ranking, returned approx. 5 percent."


def test_a_pdf_without_a_real_title_is_named_by_its_heading_or_file_name(settings, tmp_path):
    heading = write_pdf(tmp_path / "q3.pdf", ["Harbor Utilities Q3 Report", "Margin was 18.4%."], "Enscript Output")
    sentence = write_pdf(tmp_path / "board_memo-2024.pdf", ["The board met in March."], "Microsoft Word - memo.docx")
    store = RagStore(settings)
    assert ingest(store, [str(heading), str(sentence)]).problems == []
    titles = {Path(entry["source"]).name: entry["title"] for entry in store.sources()}
    assert titles == {"q3.pdf": "Harbor Utilities Q3 Report", "board_memo-2024.pdf": "board memo 2024"}


def test_equal_scores_come_in_chunk_id_order(settings, tmp_path):
    """The same text in two files scores the same; Chroma returns such ties in an order of its own,
    which differs between a collection and its published copy (benchmarks/collection_transfer.py)."""
    for folder in ("c", "a", "b"):  # one title ("report"), so one embedded text
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "report.txt").write_text("Harbor Utilities achieved an operating margin of 18.4% in 2025.")
    store = RagStore(settings, "ties")
    ingest(store, [str(tmp_path / folder / "report.txt") for folder in ("c", "a", "b")])
    for hybrid in (False, True):
        hits = Retriever(store).search("What operating margin did Harbor Utilities achieve?", 3, hybrid)
        assert len({round(hit.score, 6) for hit in hits}) == 1 and [h.id for h in hits] == sorted(h.id for h in hits)
