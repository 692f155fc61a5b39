import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import chromadb
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app import UNEXPECTED, create_app
from qa_core.config import load_settings
from qa_core.demo_model import random_adapter
from qa_core.errors import QAError
from qa_core.generation import GenerationSettings
from qa_core.hub.checkpoints import push_checkpoint
from qa_core.hub.client import push_folder
from qa_core.models import load_model
from qa_core.qa import ask, qa_prompt
from qa_core.serving import QAService, marked_sentences
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, free_port, write_pdf

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

ENDPOINTS = {
    "/qa",
    "/context_qa",
    "/rag",
    "/ingest",
    "/documents",
    "/delete_document",
    "/load_adapter",
    "/load_best",
    "/compare",
    "/results",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, hub_server):
    settings = load_settings(
        None,
        chroma_path=tmp_path_factory.mktemp("app-chroma"),
        hf_endpoint=hub_server.url,
        hf_token=HUB_TOKEN,
        max_uploads=3,
        results_dir=tmp_path_factory.mktemp("results"),
    )
    table = "# Answer quality by mode\n\n| mode | n |\n|---|---|\n| {} |\n"
    (settings.results_dir / "results.md").write_text(table.format("qa | 9"))
    (settings.results_dir / "facts").mkdir()  # as the walk-through writes it (--out results/facts), later
    (settings.results_dir / "facts" / "results.md").write_text(table.format("rag | 4"))
    os.utime(settings.results_dir / "results.md", (1e9, 1e9))
    service = QAService(settings, load_model("demo", settings=settings))  # its own model: tests swap adapters
    app = create_app(service)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_error=False)
    yield app.local_url, service
    app.close()
    service.close()


@pytest.fixture
def client(served):
    return Client(served[0], verbose=False)


@pytest.fixture
def docs(tmp_path):
    report = tmp_path / "harbor_q3.txt"
    report.write_text("Harbor Utilities achieved an operating margin of 18.4% in the third quarter of 2025.")
    faq = tmp_path / "faq.csv"
    faq.write_text("title,text\nCCTV,Keep CCTV footage for no longer than 30 days.\n")
    return report, faq


def test_every_action_is_a_named_endpoint(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) >= ENDPOINTS


def test_the_latest_evaluation_table_is_shown(client, served):
    shown = client.predict(api_name="/results")
    assert shown.startswith(f"*Latest evaluation: `{served[1].settings.results_dir.name}/facts/results.md`, written ")
    assert "| rag | 4 |" in shown and "| qa | 9 |" not in shown  # the newest, in a sub-folder


def test_qa_answers_and_streams(served, client):
    answer = client.predict("What is a bond?", 8, 0.0, api_name="/qa")
    # the library's greedy answer with the model the app serves: the same prompt and settings reach it
    assert answer == ask(served[1].loaded, "What is a bond?", settings=GenerationSettings(max_new_tokens=8)) != ""
    partials = list(client.submit("What is a bond?", 8, 0.0, api_name="/qa"))
    assert len(partials) > 1 and partials[-1] == answer
    penalised = client.predict("What is a bond?", 8, 0.0, 1.5, api_name="/qa")  # the penalty reaches the model
    assert penalised == ask(served[1].loaded, "What is a bond?", settings=GenerationSettings(8, repetition_penalty=1.5))


def test_context_qa_highlights_supporting_sentences(client, tmp_path):
    context = (
        "The board met in March. Breaches must be reported within 72 hours. "
        "Footage is kept for 30 days. The canteen opens at noon."
    )
    answer, highlighted, _, _ = client.predict(
        "How fast must breaches be reported?", context, None, 8, "generate", api_name="/context_qa"
    )
    assert answer
    supported = [item["token"] for item in highlighted if item["class_or_confidence"] == "support"]
    assert "Breaches must be reported within 72 hours." in supported and len(supported) <= 2
    # With the demo model the default is extractive: the context's own sentence, not the model's noise.
    answer, highlighted, report, checked = client.predict(
        "How fast must breaches be reported?", context, None, api_name="/context_qa"
    )
    assert answer == "Breaches must be reported within 72 hours."
    assert [item["token"] for item in highlighted if item["class_or_confidence"] == "support"] == [answer]
    stated = {"figure": "72", "source": 1, "sentence": answer, "why": "a duration"}
    assert checked == {
        "answer": answer,
        "model_answer": answer,
        "replaced": None,
        "not_stated": None,
        "supported_figures": [stated],
        "off_question_figures": [],
        "unsupported_figures": [],
    }
    assert report == f"- ✓ 72: [1] “{answer}” (a duration)"
    upload = tmp_path / "policy.md"
    upload.write_text("# Policy\n\nBreaches must be reported within 72 hours.")
    answer, *_ = client.predict("How fast?", "", handle_file(str(upload)), 8, api_name="/context_qa")
    assert answer


def test_ingest_then_rag_with_citations_then_delete(client, docs):
    status, table = client.predict([handle_file(str(p)) for p in docs], api_name="/ingest")
    assert "2 chunks from 2 file(s) added" in status
    assert sorted(row[0] for row in table["data"]) == ["faq.csv", "harbor_q3.txt"]
    partials = list(
        client.submit(
            "What operating margin did Harbor Utilities achieve?", "retrieve-then-answer", 2, False, 8, api_name="/rag"
        )
    )
    answer, citations, chunks, _, checked = partials[-1]
    assert "supported_figures" in checked and checked["answer"] == answer  # the report comes with the last
    assert all(partial[4] == {} for partial in partials[:-1])  # and only then, once
    assert len(partials) > 1 and answer
    assert citations.startswith("Retrieved (the answer cites none of them):\n[1] harbor_q3.txt")  # demo noise
    assert chunks["data"][0][1] == "harbor_q3.txt" and "18.4%" in chunks["data"][0][4]
    status, table = client.predict("faq.csv", api_name="/delete_document")
    assert status == "faq.csv: 1 chunks deleted" and [row[0] for row in table["data"]] == ["harbor_q3.txt"]
    unknown = r"^no document 'harbor_q3.tx' among the 1 stored; did you mean 'harbor_q3.txt'\?$"
    with pytest.raises(AppError, match=unknown):
        client.predict("harbor_q3.tx", api_name="/delete_document")  # not the session's internal collection name


def test_offline_the_rag_tab_quotes_its_documents_with_a_citation(client, tmp_path):
    """With the untrained demo model, /rag defaults to the extractive mode: the answer is the
    retrieved chunk's best sentence, cited, instead of the model's noise."""
    report = tmp_path / "annual_report.txt"
    report.write_text(
        "Northwind Capital reports in pounds. The fiscal year ends on 31 March. "
        "Revenue grew by 12 percent to 1.24 billion. The board has nine members.\n\n"
        "Dividends are paid twice a year, in June and December."
    )
    client.predict([handle_file(str(report))], api_name="/ingest")
    answer, citations, _, report, checked = client.predict("When does the fiscal year end?", api_name="/rag")
    assert answer == "The fiscal year ends on 31 March. [1]"
    assert checked["unsupported_figures"] == [] and report == "- ✓ 31: [1] “The fiscal year ends on 31 March.” (a date)"
    assert citations.startswith("Sources:\n[1] annual_report.txt")


def test_uploads_are_visible_only_to_their_session(served, docs):
    owner, visitor = Client(served[0], verbose=False), Client(served[0], verbose=False)
    owner.predict([handle_file(str(docs[0]))], api_name="/ingest")
    assert owner.predict(api_name="/documents")["data"]
    assert visitor.predict(api_name="/documents")["data"] == []
    with pytest.raises(AppError, match="is empty: ingest documents first"):
        visitor.predict("What margin?", "retrieve-then-answer", 2, False, 8, api_name="/rag")
    owner.predict(docs[0].name, api_name="/delete_document")  # the collection is left, empty
    with pytest.raises(AppError, match=r"is empty: ingest documents first \(upload them in the RAG tab\)"):
        owner.predict("What margin?", "extractive", 2, True, 8, api_name="/rag")


def test_load_an_adapter_by_step_and_compare(served, client, tmp_path, demo_dir):
    url, service = served
    adapter = random_adapter(demo_dir, tmp_path / "adapter", seed=5)
    commit = push_checkpoint(adapter, "tester/app-run", {"step": 10, "loss": 1.5}, service.settings)
    with pytest.raises(AppError, match="no adapter is loaded"):
        client.predict("What is a bond?", 8, api_name="/compare")
    info = client.predict("tester/app-run", "10", api_name="/load_adapter")
    assert f"demo + adapter tester/app-run@{commit[:12]}" in info
    base, tuned = client.predict("What is a bond?", 8, "", api_name="/compare")
    assert base != tuned and base.endswith("unchecked)") and tuned.endswith("unchecked)")  # closed-book, said so
    sheet = "Harbor Utilities achieved an operating margin of 18.4% in the third quarter of 2025."
    with_context = client.predict("What operating margin did Harbor Utilities achieve?", 8, sheet, api_name="/compare")
    assert not any("closed-book" in answer for answer in with_context)
    with pytest.raises(AppError, match="no checkpoint at step 99"):
        client.predict("tester/app-run", "99", api_name="/load_adapter")
    with pytest.raises(AppError, match=r"no checkpoint records eval_exact_figure \(train with --score_questions"):
        client.predict("tester/app-run", api_name="/load_best")
    scored = {"step": 20, "eval_exact_figure": 0.8, "answer_scores": [{"step": 0, "eval_exact_figure": 0.4}]}
    best = push_checkpoint(
        random_adapter(demo_dir, tmp_path / "best", seed=6), "tester/app-run", scored, service.settings
    )
    push_checkpoint(adapter, "tester/app-run", {"step": 30, "eval_exact_figure": 0.7}, service.settings)
    info, revision = client.predict("tester/app-run", api_name="/load_best")
    assert f"demo + adapter tester/app-run@{best[:12]}" in info and revision == "best"


def test_the_operator_can_turn_adapter_loading_off(tmp_path):
    settings = load_settings(None, chroma_path=tmp_path, allow_adapter_load=False)
    with (
        QAService(settings, load_model("demo", settings=settings)) as service,
        pytest.raises(QAError, match=r"turned off on this server \(QA_ALLOW_ADAPTER_LOAD=0\)"),
    ):
        service.load_adapter("tester/app-run", "main")
    assert load_settings(None, allow_adapter_load=None).allow_adapter_load


def test_on_a_space_adapter_loading_is_off_unless_the_operator_turns_it_on(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/domain-qa")
    assert load_settings(None).allow_adapter_load is False
    monkeypatch.setenv("QA_ALLOW_ADAPTER_LOAD", "1")
    assert load_settings(None).allow_adapter_load is True


def test_visitors_may_name_hub_repos_only_never_a_server_path(client, tmp_path, demo_dir):
    """A path is refused with one message whether or not it exists, so the file system cannot be probed."""
    real_adapter = random_adapter(demo_dir, tmp_path / "adapter")
    for path in ("/etc", str(real_adapter), "../tester/app-run", "~/adapters/x", "a/b/c"):
        with pytest.raises(AppError, match="paths on the server are not accepted"):
            client.predict(path, "", api_name="/load_adapter")


def test_a_repo_that_is_not_an_adapter_or_too_large_is_refused_before_download(served, client, tmp_path):
    url, service = served
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"\0" * 4096)
    (tmp_path / "model" / "config.json").write_text("{}")
    push_folder(tmp_path / "model", "tester/not-an-adapter", service.settings, "a model, not an adapter")
    with pytest.raises(AppError, match=r"is not a PEFT adapter \(no adapter_config.json\); nothing was downloaded"):
        client.predict("tester/not-an-adapter", "", api_name="/load_adapter")
    cached = Path(os.environ["HF_HOME"]) / "hub" / "models--tester--not-an-adapter"
    assert not list(cached.rglob("model.safetensors"))

    with (
        QAService(replace(service.settings, max_adapter_mb=0.001), service.loaded) as small,
        pytest.raises(QAError, match=r"over this server's limit of 0.001 MB \(QA_MAX_ADAPTER_MB\)"),
    ):
        small.load_adapter("tester/app-run", "10")


def test_the_operators_token_is_sent_only_for_the_operators_repos(served, tmp_path, demo_dir, monkeypatch):
    """With a token the Hub rejects (in HF_TOKEN, as on a Space, where the client would pick it up by
    itself), a repo outside QA_ADAPTER_REPOS still loads (fetched with no token at all, as public),
    and a repo inside it uses the token (and fails with it)."""
    url, service = served
    push_checkpoint(
        random_adapter(demo_dir, tmp_path / "a", seed=6), "tester/public-run", {"step": 1}, service.settings
    )
    monkeypatch.setenv("HF_TOKEN", "hf_notTheServersToken0000000000")
    settings = replace(service.settings, hf_token="hf_notTheServersToken0000000000", adapter_repos=("tester/own-*",))
    with QAService(settings, load_model("demo", settings=settings)) as visitor_facing:
        assert "adapter tester/public-run@" in visitor_facing.load_adapter("tester/public-run", "1")
        with pytest.raises(QAError, match="rejected the token"):
            visitor_facing.load_adapter("tester/own-run", "1")


def test_overlong_input_is_refused_before_tokenising(client):
    with pytest.raises(AppError, match=r"the question is 2,001 characters; this server takes at most 2,000"):
        client.predict("x" * 2001, 8, 0.0, api_name="/qa")
    with pytest.raises(AppError, match=r"QA_MAX_CONTEXT_CHARS"):
        client.predict("Why?", "word " * 50_000, None, 8, api_name="/context_qa")


def test_an_unexpected_error_reaches_the_visitor_as_a_generic_message(served, client, monkeypatch, caplog):
    url, service = served

    def broken(session: str, user: str | None) -> list:
        raise RuntimeError("disk /srv/private/chroma is full")

    monkeypatch.setattr(service.collections, "documents", broken)
    with pytest.raises(AppError) as failure:
        client.predict(api_name="/documents")
    assert str(failure.value) == UNEXPECTED and "/srv/private" not in str(failure.value)
    assert "disk /srv/private/chroma is full" in caplog.text  # logged on the server


def test_the_queue_turns_away_requests_beyond_its_size(served):
    assert create_app(served[1])._queue.max_size == served[1].settings.queue_max_size == 64


def test_bad_input_is_a_friendly_message(client, docs, tmp_path):
    with pytest.raises(AppError, match="the question is empty"):
        client.predict("   ", 8, 0.0, api_name="/qa")
    with pytest.raises(AppError, match="paste a context or upload a file"):
        client.predict("Why?", "", None, 8, api_name="/context_qa")
    with pytest.raises(AppError, match="the limit is 3"):
        client.predict([handle_file(str(docs[0]))] * 4, api_name="/ingest")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 nothing")
    status, _ = client.predict([handle_file(str(broken))], api_name="/ingest")
    assert "skipped: broken.pdf: not a readable PDF" in status
    columns = tmp_path / "prices.csv"
    columns.write_text("ticker,price\nACME,12.5\n")
    status, _ = client.predict([handle_file(str(columns))], api_name="/ingest")
    # advice the page can follow: the app has no --text-column
    assert "skipped: prices.csv: no text column found (columns: ticker, price); name the text column text or" in status
    assert "--text-column" not in status
    with pytest.raises(AppError, match="limit of 2048 tokens"):  # the model's limit, when the model writes
        client.predict("Why?", "word " * 3000, None, 8, "generate", api_name="/context_qa")


def test_twenty_simultaneous_visitors_are_batched_and_each_gets_their_own_answer(served):
    url, service = served

    def ask(i: int) -> str:
        return Client(url, verbose=False).predict(f"Question {i}?", 6, 0.0, api_name="/qa")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))
    loaded = service.loaded
    alone = [loaded.backend.generate(qa_prompt(loaded, f"Question {i}?"), GenerationSettings(6)) for i in range(20)]
    assert answers == alone
    assert service.batcher.largest_batch > 1  # they were answered together, not one after another


def test_the_token_never_reaches_the_page(served):
    url, _ = served
    for path in ("/", "/config", "/gradio_api/info"):
        with urllib.request.urlopen(url.rstrip("/") + path) as response:
            assert HUB_TOKEN not in response.read().decode()
    assert HUB_TOKEN not in json.dumps(Client(url, verbose=False).view_api(return_format="dict", print_info=False))


def test_document_requests_do_not_wait_behind_generation(served):
    generating = Client(served[0], verbose=False).submit("Tell me everything.", 1024, 0.0, api_name="/qa")
    deadline = time.monotonic() + 60
    while generating.status().code.name not in ("PROCESSING", "ITERATING") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Client(served[0], verbose=False).predict(api_name="/documents")["data"] == []
    assert not generating.done()  # the document listing was answered while the answer was still being generated
    generating.cancel()


def session_collections(service: QAService) -> set[str]:
    return {c.name for c in service.collections.chroma.list_collections() if c.name.startswith("session-")}


def test_looking_creates_no_collection_only_an_upload_does(served, docs):
    url, service = served
    before = session_collections(service)
    stranger = Client(url, verbose=False)
    assert stranger.predict(api_name="/documents")["data"] == []
    with pytest.raises(AppError, match="is empty: ingest documents first"):
        stranger.predict("What margin?", "extractive", 2, False, 8, api_name="/rag")
    # Other tests' visitors may leave meanwhile (their collections go): nothing may have been added.
    own = service.collections.collection_for(stranger.session_hash)
    assert session_collections(service) <= before and own not in before
    assert own not in service.collections._last_seen  # nor any memory of it
    stranger.predict([handle_file(str(docs[0]))], api_name="/ingest")
    assert own in session_collections(service)


def test_idle_sessions_are_swept_and_active_ones_kept(tmp_path, docs):
    settings = load_settings(None, chroma_path=tmp_path / "chroma", session_ttl_s=1.0)
    service = QAService(settings, load_model("demo", settings=settings))
    service.collections.ingest("idle-visitor", [str(docs[0])], [docs[0].name])
    time.sleep(1.3)
    service.collections.ingest("active-visitor", [str(docs[0])], [docs[0].name])
    service.collections.sweep()  # the sweeper thread may have run already: the end state is what counts
    assert session_collections(service) == {service.collections.collection_for("active-visitor")}
    assert service.collections.documents("idle-visitor") == []  # and looking did not bring it back
    assert session_collections(service) == {service.collections.collection_for("active-visitor")}
    service.close()


def test_the_per_visitor_quota_refuses_an_upload_says_how_much_is_stored_and_keeps_it(tmp_path, docs):
    """One quota, QA_MAX_SESSION_MB of stored text: a text file is refused before it is read, a PDF
    (whose bytes are mostly not text) once read; either way what was stored stays."""
    report = docs[0]
    settings = load_settings(None, chroma_path=tmp_path / "chroma", max_session_mb=len(report.read_bytes()) * 1.5e-6)
    pdf = write_pdf(tmp_path / "minutes.pdf", ["The board approved a budget of $4.2 million for the new substation."])
    quota = (
        r"^your documents hold 8\.4e-05 MB of text and this upload would bring them to 0\.000[0-9]+ MB, over this "
        r"server's limit of 0\.0001[0-9]+ MB per visitor; it was not added\. "
        r"Delete documents first \(or, running the server yourself, raise QA_MAX_SESSION_MB\)$"
    )
    with QAService(settings, load_model("demo", settings=settings)) as service:
        service.collections.ingest("visitor", [str(report)], [report.name])
        stored = service.collections.documents("visitor")
        for doomed in (docs[1], pdf):
            with pytest.raises(QAError, match=quota):
                service.collections.ingest("visitor", [str(doomed)], [doomed.name])
            assert service.collections.documents("visitor") == stored


def test_the_model_tab_lists_checkpoints_to_pick_from(served, client, tmp_path, demo_dir):
    url, service = served
    for step, loss in ((10, 2.5), (20, 1.75)):
        adapter = random_adapter(demo_dir, tmp_path / f"s{step}", seed=step)
        push_checkpoint(
            adapter, "tester/curve-run", {"step": step, "loss": loss, "eval_loss": loss + 0.25}, service.settings
        )
    table, plot, scores = client.predict("tester/curve-run", api_name="/checkpoints")
    assert table["headers"] == ["step", "loss", "eval loss", "exact figure", "date", "commit"]
    assert [row[:4] for row in table["data"]] == [[20, 1.75, 2.0, None], [10, 2.5, 2.75, None]]
    assert scores["data"] == []  # a run that scored no answers
    assert plot["columns"] == ["step", "loss", "series"]
    series = {(step, name): loss for step, loss, name in plot["data"]}
    assert series == {(20, "loss"): 1.75, (20, "eval loss"): 2.0, (10, "loss"): 2.5, (10, "eval loss"): 2.75}
    with pytest.raises(AppError, match="paths on the server are not accepted"):
        client.predict("/etc", api_name="/checkpoints")
    # With the trainer's log in the checkpoint (as train_job pushes it): every logged loss, not one per checkpoint
    adapter = random_adapter(demo_dir, tmp_path / "s30", seed=30)
    history = [{"step": s, "loss": 3.0 - s / 20} for s in range(5, 35, 5)] + [{"step": 30, "eval_loss": 1.6}]
    (adapter / "trainer_state.json").write_text(json.dumps({"global_step": 30, "log_history": history}))
    answer_scores = [{"step": 0, "eval_exact_figure": 0.5}, {"step": 30, "eval_exact_figure": 0.75}]
    record = {"step": 30, "loss": 1.9, "eval_loss": 1.6, "eval_exact_figure": 0.75, "answer_scores": answer_scores}
    push_checkpoint(adapter, "tester/curve-run", record, service.settings)
    table, plot, scores = client.predict("tester/curve-run", api_name="/checkpoints")
    assert table["data"][0][:4] == [30, 1.9, 1.6, 0.75]
    assert scores["data"] == [
        [30, 0.75, "exact figure"],
        [30, 0.5, "exact figure (base)"],
        [30, 0.5, "exact figure (base)"],
    ]
    assert [(step, loss) for step, loss, name in plot["data"] if name == "loss"] == [
        (s, 3.0 - s / 20) for s in range(5, 35, 5)
    ]
    assert [(step, loss) for step, loss, name in plot["data"] if name == "eval loss"] == [(30, 1.6)]


def test_an_app_that_cannot_start_says_why_in_one_line(hub_server, tmp_path):
    """`python app.py` against an endpoint that lacks the default model: one `error:` line, exit 2."""
    env = {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "QA_CHROMA_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Qwen/Qwen2.5-0.5B-Instruct: repository not found")
    assert "QA_BASE_MODEL" in result.stderr and HUB_TOKEN not in result.stderr + result.stdout


def test_sigterm_stops_the_app_cleanly_and_ends_the_visitors_sessions(tmp_path, docs):
    """A Space or container being stopped sends SIGTERM: the app stops taking requests, deletes the
    browser sessions' collections and exits 0 (it used to die with the signal, leaving them)."""
    port = free_port()
    env = {**os.environ, "QA_BASE_MODEL": "demo", "QA_CHROMA_PATH": str(tmp_path / "db")}
    env["GRADIO_SERVER_PORT"] = str(port)
    log = tmp_path / "app.log"
    with log.open("w") as stderr:
        app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            visitor = Client(url, verbose=False)
            break
        except Exception:
            assert app.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.5)
    visitor.predict([handle_file(str(docs[0]))], api_name="/ingest")
    for _ in range(3):  # expected errors: one log line each, no traceback (there were 30 lines each)
        with pytest.raises(AppError, match="the question is empty"):
            visitor.predict(" ", 8, 0.0, api_name="/qa")
    database = chromadb.PersistentClient(path=str(tmp_path / "db"))
    assert [c.name for c in database.list_collections() if c.name.startswith("session-")]
    app.send_signal(signal.SIGTERM)
    assert app.wait(timeout=30) == 0
    logged = log.read_text()
    assert logged.count("refused: the question is empty\n") == 3 and "Traceback" not in logged
    database = chromadb.PersistentClient(path=str(tmp_path / "db"))
    assert not [c.name for c in database.list_collections() if c.name.startswith("session-")]


def test_supporting_sentences_keep_the_context_whole():
    context = "Revenue was £38.2 million.  The company employs\n400 people.\n\nNo. 2 plant, Dr. Smith."
    pieces = marked_sentences(context, {"Revenue was £38.2 million."})
    assert "".join(text for text, _ in pieces) == context  # before: "million.The company"
    assert [text for text, mark in pieces if mark] == ["Revenue was £38.2 million."]
    assert [text for text, _ in pieces if text.strip()][-1] == "No. 2 plant, Dr. Smith."
