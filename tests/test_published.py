"""A collection published as a Hub dataset: pushed to the test Hub with the real client, loaded
back with `datasets`, pulled into fresh Chroma folders; retrieval on both sides compared."""

import hashlib
import json
import re
from pathlib import Path

import chromadb
import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi

from qa_core.config import load_settings
from qa_core.embeddings import SentenceEmbedding
from qa_core.errors import CollectionError, StoreError
from qa_core.rag import published
from qa_core.rag.cli import main as rag_main
from qa_core.rag.ingest import ingest
from qa_core.rag.published import (
    MANIFEST,
    local_name,
    pin_collection,
    pull_collection,
    push_collection,
    sample_question,
)
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import RagStore
from tests.conftest import HUB_TOKEN
from tests.helpers import write_pdf

pytestmark = pytest.mark.slow  # an ingest of real licences, about 30 s for the module

LICENCES = Path("/usr/share/common-licenses")  # real documents no one here wrote (Debian's base-files)
QUESTIONS = [
    "What happens to the patent licence if you sue someone over a patent?",
    "Can I use the names of the contributors to endorse my product?",
    "Is the software provided with a warranty?",
    "How long does a data breach report have to wait?",
    "Which projects do green bond proceeds pay for?",
    "Must modified files carry a notice that they were changed?",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    for name in ("Apache-2.0", "MPL-2.0", "CC0-1.0"):
        (docs / f"{name}.txt").write_text((LICENCES / name).read_text())
    (docs / "faq.csv").write_text(
        "topic,text\nBreaches,Report a personal data breach within 72 hours.\n"
        "CCTV,Keep CCTV footage for no longer than 30 days.\n"
    )
    write_pdf(docs / "green.pdf", ["Proceeds fund renewable energy projects.", "", "Reports come yearly."])
    return docs


@pytest.fixture(scope="module")
def built(corpus, hub_server, tmp_path_factory):
    """The corpus ingested into a collection and pushed in shards of 40 chunks: (settings, store, commit)."""
    settings = load_settings(
        None, chroma_path=tmp_path_factory.mktemp("built"), hf_endpoint=hub_server.url, hf_token=HUB_TOKEN
    )
    store = RagStore(settings, "licences")
    ingest(store, [str(corpus)])
    store.record_keyword_weight(0.3)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(published, "SHARD_ROWS", 40)
        transfer = push_collection(store, "tester/licences", settings)
    assert transfer.changed and transfer.chunks == store.count() > 80
    return settings, store, transfer.commit


def elsewhere(settings, tmp_path: Path, **changes):
    """The same Hub seen from another machine: its own Chroma folder."""
    same = {"chroma_path": tmp_path / "elsewhere", "hf_endpoint": settings.hf_endpoint, "hf_token": HUB_TOKEN}
    return load_settings(None, **{**same, **changes})


def commits(settings) -> list[str]:
    api = HfApi(endpoint=settings.hf_endpoint, token=HUB_TOKEN)
    return [c.commit_id for c in api.list_repo_commits("tester/licences", repo_type="dataset")]


def test_the_dataset_loads_with_datasets_and_says_what_it_is(built, corpus):
    settings, store, commit = built
    api = HfApi(endpoint=settings.hf_endpoint, token=HUB_TOKEN)
    folder = Path(api.snapshot_download("tester/licences", repo_type="dataset", revision=commit))
    shards = sorted(folder.glob("data/*.parquet"))
    assert len(shards) == -(-store.count() // 40) and all(pq.ParquetFile(s).metadata.num_rows <= 40 for s in shards)
    chunks = datasets.load_dataset("parquet", data_files=[str(s) for s in shards], split="train")
    assert len(chunks) == store.count() and len(chunks[0]["embedding"]) == 384
    stored = store.collection.get(include=["documents"])
    assert sorted(chunks["text"]) == sorted(stored["documents"])
    assert sorted(chunks["id"]) == sorted(stored["ids"])
    assert {row for row in chunks["row"] if row is not None} == {1, 2}  # the CSV's rows
    assert {page for page in chunks["page"] if page is not None} == {1, 3}  # the PDF's pages with text
    assert set(chunks["source"]) == {"Apache-2.0.txt", "MPL-2.0.txt", "CC0-1.0.txt", "faq.csv", "green.pdf"}

    manifest = json.loads((folder / MANIFEST).read_text())
    apache = next(s for s in manifest["sources"] if s["source"] == "Apache-2.0.txt")
    content = (corpus / "Apache-2.0.txt").read_bytes()
    assert apache["bytes"] == len(content) and apache["sha256"] == hashlib.sha256(content).hexdigest()
    assert manifest["embedding_model"]["name"] == store.embedder.pinned.name and manifest["dimension"] == 384
    assert manifest["chunking"] == [{"chunk_tokens": 512, "overlap_tokens": 64}]
    assert manifest["chunks"] == store.count() and manifest["collection_metadata"] == {"keyword_weight": 0.3}
    card = (folder / "README.md").read_text()
    assert "data/*.parquet" in card and "pull tester/licences" in card
    everything = card + (folder / MANIFEST).read_text() + "".join(chunks["metadata"])
    assert str(corpus) not in everything  # no path of the building machine is published


def test_pulled_elsewhere_it_retrieves_the_same_chunks_without_embedding(built, tmp_path, monkeypatch):
    settings, store, commit = built
    here = elsewhere(settings, tmp_path)

    def embeds(self, texts):
        raise AssertionError("a pull must not embed anything")

    with monkeypatch.context() as patched:
        patched.setattr(SentenceEmbedding, "__call__", embeds)
        transfer = pull_collection("tester/licences", here, "licences")
    assert transfer.changed and transfer.commit == commit and transfer.chunks == store.count()
    pulled = RagStore(here, "licences")
    assert pulled.keyword_weight == 0.3 and pulled.collection.metadata["pulled_commit"] == commit
    for question in QUESTIONS:
        for hybrid in (False, True):
            original = Retriever(store).search(question, 5, hybrid)
            copy = Retriever(pulled).search(question, 5, hybrid)
            assert [hit.id for hit in copy] == [hit.id for hit in original], question
            assert [hit.score for hit in copy] == pytest.approx([hit.score for hit in original], abs=1e-4)
            assert {hit.source for hit in copy} <= {
                "Apache-2.0.txt",
                "MPL-2.0.txt",
                "CC0-1.0.txt",
                "faq.csv",
                "green.pdf",
            }

    again = pull_collection(f"tester/licences@{commit[:7]}", here, "licences")
    assert not again.changed and again.chunks == store.count()


def test_an_unchanged_collection_makes_no_commit(built, monkeypatch, capsys):
    settings, store, commit = built
    assert commits(settings)[0] == commit
    for name, value in {"QA_CHROMA_PATH": settings.chroma_path, "HF_ENDPOINT": settings.hf_endpoint}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    assert rag_main(["--collection", "licences", "push", "tester/licences"]) == 0
    assert f"unchanged since tester/licences@{commit[:7]}" in capsys.readouterr().out
    assert commits(settings)[0] == commit


def test_a_bad_collection_is_one_error_and_loads_nothing(built, tmp_path):
    settings, store, commit = built
    here = elsewhere(settings, tmp_path)
    pull_collection("tester/licences", here, "licences")
    api = HfApi(endpoint=settings.hf_endpoint, token=HUB_TOKEN)

    def damaged(repo: str, change) -> None:
        folder = Path(
            api.snapshot_download("tester/licences", repo_type="dataset", revision=commit, local_dir=tmp_path / repo)
        )
        change(folder)
        api.create_repo(f"tester/{repo}", repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=f"tester/{repo}", repo_type="dataset", folder_path=folder, commit_message="copy")

    def version(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))

    def shard(folder: Path) -> None:
        path = next(folder.glob("data/*.parquet"))
        path.write_bytes(path.read_bytes()[:-100])

    def dimension(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(json.dumps({**manifest, "dimension": 768}))

    def model(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(
            json.dumps({**manifest, "embedding_model": {"name": "acme/embedder", "revision": "1"}})
        )

    damaged("bad-version", version)
    damaged("other-model", model)
    damaged("bad-shard", shard)
    damaged("bad-dimension", dimension)
    api.create_repo("tester/not-a-collection", repo_type="dataset", exist_ok=True)
    api.upload_file(
        path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id="tester/not-a-collection", repo_type="dataset"
    )
    cases = {
        "tester/not-a-collection": "is not a published collection",
        "tester/bad-version": "format version 99",
        "tester/bad-shard": "is missing or damaged",
        "tester/bad-dimension": "384-dimensional embeddings; the manifest says",
        "tester/other-model": "embedded with acme/embedder@1 but queries here embed with all-MiniLM-L6-v2",
    }
    for repo, says in cases.items():
        with pytest.raises(CollectionError, match=says):
            pull_collection(repo, here, "fresh")
    client = chromadb.PersistentClient(path=str(here.chroma_path))
    assert sorted(c.name for c in client.list_collections()) == ["licences"]  # nothing loaded, no staging left
    assert RagStore(here, "licences").count() == store.count()  # the previous pull still answers

    reembedded = pull_collection("tester/other-model", here, "fresh", reembed=True)  # with this side's model
    assert reembedded.changed and RagStore(here, "fresh").count() == store.count()
    assert [h.id for h in Retriever(RagStore(here, "fresh")).search(QUESTIONS[0])] == [
        h.id for h in Retriever(store).search(QUESTIONS[0])
    ]


def test_a_pull_stopped_part_way_leaves_the_previous_collection(built, corpus, tmp_path, monkeypatch):
    settings, store, commit = built
    here = elsewhere(settings, tmp_path)
    mine = RagStore(here, "mine")
    assert ingest(mine, [str(corpus / "faq.csv")]).added
    with pytest.raises(StoreError, match="not pulled from tester/licences"):
        pull_collection("tester/licences", here, "mine")  # would replace chunks ingested here
    assert RagStore(here, "mine").count() == mine.count()

    pull_collection("tester/licences", here, "licences")
    calls = []
    real_upsert = chromadb.api.models.Collection.Collection.upsert

    def dies_on_the_third(self, **kwargs):
        calls.append(self.name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a Ctrl-C (or a kill) part-way would
        return real_upsert(self, **kwargs)

    monkeypatch.setattr(chromadb.api.models.Collection.Collection, "upsert", dies_on_the_third)
    client = chromadb.PersistentClient(path=str(here.chroma_path))
    client.get_collection("licences").modify(
        metadata={**client.get_collection("licences").metadata, "pulled_commit": "0" * 40}
    )
    with pytest.raises(KeyboardInterrupt):
        pull_collection("tester/licences", here, "licences")
    monkeypatch.undo()
    assert calls[:3] == ["licences-pull"] * 3
    names = sorted(c.name for c in client.list_collections())
    assert names == ["licences", "mine"]
    pulled = RagStore(here, "licences")
    assert pulled.count() == store.count() and Retriever(pulled).search(QUESTIONS[0], 3)


def test_the_app_serves_a_published_collection_read_only_beside_each_visitors_uploads(built, demo, tmp_path, caplog):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from app import create_app
    from qa_core.serving import QAService

    settings, store, commit = built
    here = elsewhere(settings, tmp_path, collection_repo="tester/licences")
    caplog.set_level("INFO", logger="qa_toolkit.published")
    service = QAService(here, demo)
    assert re.search(rf"published collection tester/licences@{commit[:7]}: \d+ chunks, pulled, in", caplog.text)
    assert "published collection **tester/licences@" in service.rag_scope() and "read-only" in service.rag_scope()
    app = create_app(service)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_error=False)
    try:
        visitor = Client(app.local_url, verbose=False)
        answer, citations, chunks, _, _ = visitor.predict("Is the software provided with a warranty?", api_name="/rag")
        assert "WARRANTY" in answer.upper() and re.search(r"\[\d\] \S+\.txt · tester/licences \(score", citations)
        assert all(row[1].endswith(" · tester/licences") for row in chunks["data"])
        with pytest.raises(
            AppError, match="'Apache-2.0.txt' is in the published collection tester/licences@.*read-only"
        ):
            visitor.predict("Apache-2.0.txt", api_name="/delete_document")
        own = tmp_path / "harbor.txt"
        own.write_text("Harbor Utilities achieved an operating margin of 18.4% in the third quarter of 2025.")
        visitor.predict([handle_file(str(own))], api_name="/ingest")
        _, citations, _, _, _ = visitor.predict("What operating margin did Harbor Utilities achieve?", api_name="/rag")
        assert citations.splitlines()[1].startswith("[1] harbor.txt · your upload")
        stranger = Client(app.local_url, verbose=False)
        assert stranger.predict(api_name="/documents")["data"] == []  # the visitor's upload is theirs only
        _, citations, _, _, _ = stranger.predict("What operating margin did Harbor Utilities achieve?", api_name="/rag")
        assert "harbor.txt" not in citations and "tester/licences" in citations
    finally:
        app.close()
        service.close()
    assert RagStore(here, local_name("tester/licences")).count() == store.count()  # nothing added or deleted

    caplog.clear()
    QAService(here, demo).close()  # restarted on the same volume: no second pull of the same commit
    assert "chunks, already here (that commit was pulled before)" in caplog.text
    offline = elsewhere(settings, tmp_path, collection_repo="tester/licences", hf_endpoint="http://127.0.0.1:9")
    with QAService(offline, demo) as service:  # the Hub down: the copy pulled before is served, with a warning
        assert service.collections.published.store.count() == store.count()
    assert "serving the copy pulled before (tester/licences@" in caplog.text


def test_the_rehearsals_question_is_a_sentence_of_a_published_chunk(built):
    settings, store, commit = built
    question, source = sample_question("tester/licences", settings)
    assert pin_collection("tester/licences", settings) == f"tester/licences@{commit}"
    stored = store.collection.get(include=["documents", "metadatas"])
    assert any(question in " ".join(text.split()) for text in stored["documents"]) and len(question.split()) >= 6
    assert source in {"Apache-2.0.txt", "MPL-2.0.txt", "CC0-1.0.txt", "faq.csv", "green.pdf"}
    assert Retriever(store).search(question, 1)[0].source.endswith(source)  # the collection answers it
