"""A real browser (Debian's chromium, driven by Playwright) uses every tab of the app."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from app import APP_CSS, build_app
from qa_core.config import load_settings
from qa_core.demo_model import random_adapter
from qa_core.generation import GenerationSettings
from qa_core.hub.checkpoints import push_checkpoint
from qa_core.models import load_model
from qa_core.qa import ask
from qa_core.reports import write_results
from qa_core.serving import QAService
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, hub_server, demo_dir):
    settings = load_settings(
        None,
        chroma_path=tmp_path_factory.mktemp("browser-chroma"),
        hf_endpoint=hub_server.url,
        hf_token=HUB_TOKEN,
        results_dir=tmp_path_factory.mktemp("results"),
    )
    row = {"mode": "finetuned", "n": 24, **dict.fromkeys(EVALUATION_COLUMNS, 0.938)}
    write_results([row], [{"question": "q", "answer": "a"}], settings.results_dir, "Answer quality by mode", [])
    for step, loss in ((10, 2.5), (20, 1.5)):
        adapter = random_adapter(demo_dir, tmp_path_factory.mktemp(f"adapter{step}"), seed=step)
        push_checkpoint(adapter, "tester/browser-run", {"step": step, "loss": loss, "eval_loss": loss + 0.2}, settings)
    service = QAService(settings, load_model("demo", settings=settings))
    app = build_app(service).queue()
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=APP_CSS)
    yield app.local_url, service
    app.close()
    service.close()


# An evaluation's columns, as `qa_core.evaluate` writes them
EVALUATION_COLUMNS = [
    *("exact_figure", "contains_answer", "semantic_similarity", "bleu", "rouge_1", "rouge_2", "rouge_l"),
    *("bertscore", "numeric_match", "refusal_rate", "figures_supported", "unsupported_figure", "not_stated"),
    *("figure_when_unanswerable", "not_stated_when_answerable", "answer_words", "perplexity", "latency_s"),
]
# The cells whose text (one word each) the browser laid out on more than one line.
WRAPPED = """cells => cells.filter(cell => {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim() || node.textContent.trim() === "⋮") continue;  // Gradio's column menu
        const range = document.createRange(); range.selectNodeContents(node);
        for (const rect of range.getClientRects()) tops.add(Math.round(rect.top));
    }
    return tops.size > 1;
}).map(cell => cell.textContent.replace("⋮", "").trim())"""


def within_table(page, table: str, column: str) -> bool:
    """Whether the header cell `column` of `table` lies inside the table's visible box."""
    inside = page.locator(table).evaluate(
        """(table, column) => {
            const named = th => th.textContent.replace("⋮", "").trim() === column;  // less Gradio's column menu
            const cell = [...table.querySelectorAll("th")].find(named);
            const frame = table.querySelector("table").parentElement.getBoundingClientRect();
            return !!cell && cell.getBoundingClientRect().right <= frame.right + 1;
        }""",
        column,
    )
    return bool(inside)


def visitor_collections(service: QAService) -> set[str]:
    return {c.name for c in service.collections.chroma.list_collections() if c.name.startswith("session-")}


def test_every_tab_in_a_real_browser(served, tmp_path):
    """Screenshots go to SCREENSHOTS_DIR (default: the test's temporary folder), to look at."""
    url, service = served
    greedy = ask(service.loaded, "What is a bond?", settings=GenerationSettings(max_new_tokens=256))  # the defaults
    assert Path(CHROMIUM).exists(), "install Debian's chromium: bash tests/setup.sh"
    screenshots = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    document = tmp_path / "harbor_utilities_quarterly_report_q3_2025_final_version.txt"  # a name as long as real ones
    document.write_text("Harbor Utilities achieved an operating margin of 18.4% in the third quarter of 2025.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        expect(page.locator("#demo-banner")).to_contain_text("offline demo model")

        page.locator("#qa-question textarea").fill("What is a bond?")
        page.locator("#qa-button").click()
        expect(page.locator("#qa-answer textarea")).to_have_value(greedy, timeout=30_000)  # streamed to the end

        page.get_by_role("tab", name="Context QA").click()
        page.locator("#cqa-question textarea").fill("How fast must breaches be reported?")
        page.locator("#cqa-context textarea").fill(
            "Breaches must be reported within 72 hours. Lunch is at noon. Staff park in lot B."
        )
        page.locator("#cqa-button").click()  # offline, the default is to quote the context
        expect(page.locator("#cqa-answer textarea")).to_have_value(
            "Breaches must be reported within 72 hours.", timeout=30_000
        )
        expect(page.locator("#cqa-support")).to_contain_text("72 hours", timeout=30_000)
        # the context whole, spaces between sentences included (before: "Lunch is at noon.Staff park")
        expect(page.locator("#cqa-support")).to_contain_text("Lunch is at noon. Staff park in lot B.")
        expect(page.locator("#cqa-figures")).to_contain_text("✓ 72: [1] “Breaches must be reported within 72 hours.”")
        page.screenshot(path=str(screenshots / "context-qa.png"), full_page=True)

        page.get_by_role("tab", name="RAG").click()
        page.locator("#rag-files input[type=file]").set_input_files(str(document))
        page.locator("#rag-ingest").click()
        expect(page.locator("#rag-status")).to_contain_text("1 file(s) added", timeout=60_000)
        expect(page.locator("#rag-docs")).to_contain_text(document.name)
        assert within_table(page, "#rag-docs", "chunks"), "the My documents table hides its chunks column"
        assert page.locator("#rag-docs th").evaluate_all(WRAPPED) == [], "My documents' headers wrapped"
        page.locator("#rag-question textarea").fill("What operating margin did Harbor Utilities achieve?")
        page.locator("#rag-button").click()
        expect(page.locator("#rag-sources textarea")).to_have_value(
            re.compile(rf"^Sources:\n\[1\] {document.name} \(score"), timeout=30_000
        )
        expect(page.locator("#rag-chunks")).to_contain_text("operating margin of 18.4%")
        expect(page.locator("#rag-answer textarea")).to_have_value(re.compile(r"operating margin of 18\.4%.*\[1\]$"))
        expect(page.locator("#rag-figures")).to_contain_text("✓ 18.4%: [1]")  # each figure with its sentence
        page.screenshot(path=str(screenshots / "rag.png"), full_page=True)
        answered = page.locator("#rag-answer textarea").input_value()
        page.locator("#rag-files").get_by_label("Clear").click()
        page.locator("#rag-ingest").click()  # no file chosen: a toast, and every output keeps what it showed
        expect(page.get_by_text("choose one or more .txt, .md, .pdf or .csv files")).to_be_visible(timeout=30_000)
        page.locator("#rag-question textarea").fill(" ")
        page.locator("#rag-button").click()
        expect(page.get_by_text("the question is empty")).to_be_visible(timeout=30_000)
        for output in ("#rag-docs", "#rag-status", "#rag-answer", "#rag-sources", "#rag-chunks"):
            expect(page.locator(output).get_by_text("Error", exact=True)).to_be_hidden()
        expect(page.locator("#rag-docs")).to_contain_text(document.name)  # before: hidden under the badge
        expect(page.locator("#rag-answer textarea")).to_have_value(answered)
        page.screenshot(path=str(screenshots / "rag-after-errors.png"), full_page=True)

        page.get_by_role("tab", name="Model").click()
        page.locator("#cmp-question textarea").fill("What is a bond?")
        page.locator("#cmp-button").click()
        expect(page.get_by_text("no adapter is loaded")).to_be_visible(timeout=30_000)

        page.locator("#repo textarea").fill("tester/browser-run")
        page.locator("#list-checkpoints").click()
        expect(page.locator("#checkpoints")).to_contain_text("1.5", timeout=30_000)
        page.locator("#checkpoints").get_by_text("10", exact=True).first.click()  # pick the step-10 row
        expect(page.get_by_label("Revision: step, best, commit or branch")).to_have_value("10")
        page.locator("#load-adapter").click()
        expect(page.get_by_text("adapter tester/browser-run@")).to_be_visible(timeout=30_000)
        page.get_by_label("Revision: step, best, commit or branch").fill("99")  # no such step: the model line stays
        page.locator("#load-adapter").click()
        expect(page.get_by_text("no checkpoint at step 99")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("adapter tester/browser-run@")).to_be_visible()
        badges = page.get_by_text("Error", exact=True).all()  # every error so far, in both tabs
        assert len(badges) >= 8 and all(not badge.is_visible() for badge in badges)
        page.locator("#cmp-button").click()
        expect(page.locator("#cmp-tuned textarea")).not_to_have_value("", timeout=30_000)

        page.get_by_text("Latest evaluation").click()
        expect(page.locator("#results")).to_contain_text("figure_when_unanswerable")
        wrapped = page.locator("#results th, #results td").evaluate_all(WRAPPED)
        assert wrapped == [], f"evaluation table cells wrapped mid-word: {wrapped}"
        page.screenshot(path=str(screenshots / "model.png"), full_page=True)
        browser.close()


def test_a_visitor_who_closes_the_page_leaves_no_documents_behind(served, tmp_path):
    url, service = served
    document = tmp_path / "notes.txt"
    document.write_text("The fiscal year ends on 31 March.")
    before = visitor_collections(service)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("tab", name="RAG").click()
        page.locator("#rag-files input[type=file]").set_input_files(str(document))
        page.locator("#rag-ingest").click()
        expect(page.locator("#rag-status")).to_contain_text("1 file(s) added", timeout=60_000)
        assert len(visitor_collections(service) - before) == 1
        page.close()  # the session ends: Gradio's unload event deletes the visitor's collection
        deadline = time.monotonic() + 30
        while visitor_collections(service) != before and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    assert visitor_collections(service) == before


def test_a_signed_in_visitor_keeps_their_documents_across_visits(hub_server, tmp_path):
    """QA_LOGIN=1: "Sign in with Hugging Face" (Gradio mocks the OAuth flow off a Space, as the owner of
    HF_TOKEN on the test Hub); the documents outlive the page."""
    port = free_port()
    env = {
        **os.environ,
        "QA_LOGIN": "1",
        "QA_BASE_MODEL": "demo",
        "QA_CHROMA_PATH": str(tmp_path / "chroma"),
        "HF_ENDPOINT": hub_server.url,
        "HF_TOKEN": HUB_TOKEN,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
    }
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    document = tmp_path / "notes.txt"
    document.write_text("The fiscal year ends on 31 March.")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            visitor = browser.new_context()  # one browser profile: its sign-in cookie outlives the page
            page = visitor.new_page()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert app.poll() is None, app.stderr.read()[-3000:]
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except PlaywrightError:
                    time.sleep(0.5)
            page.locator("#login").click()
            expect(page.locator("#login")).to_contain_text("tester", timeout=30_000)  # "Logout (tester)"
            page.get_by_role("tab", name="RAG").click()
            page.locator("#rag-files input[type=file]").set_input_files(str(document))
            page.locator("#rag-ingest").click()
            expect(page.locator("#rag-status")).to_contain_text("1 file(s) added", timeout=60_000)
            page.close()  # the session ends; a signed-in visitor's documents stay

            again = visitor.new_page()
            again.goto(f"http://127.0.0.1:{port}/")
            again.get_by_role("tab", name="RAG").click()
            expect(again.locator("#rag-docs")).to_contain_text("notes.txt", timeout=30_000)
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
