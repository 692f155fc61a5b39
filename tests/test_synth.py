"""From documents to a domain model: pairs generated from documents (qa_core.synth), continued
pretraining on the raw text (--task pretrain), an SFT run started from that adapter
(--init-adapter), perplexity on the text (qa_core.evaluate --perplexity-text), loss curves."""

import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

import qa_core.hub.client
from benchmarks.filings import COMPANIES, filing
from qa_core.chunking import Chunk
from qa_core.embeddings import SentenceEmbedding
from qa_core.errors import QAError
from qa_core.evaluate import main as evaluate_main
from qa_core.generation import GenerationSettings
from qa_core.synth import (
    COLUMNS,
    PairFile,
    SynthOptions,
    SynthStats,
    judge,
    parse_pairs,
    question_key,
    synth_prompt,
)
from qa_core.synth import main as synth_main
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT
from train_job.run import main as train_main
from train_job.run import parse_args

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

PRETRAIN = str(ROOT / "configs" / "tiny-cpu-pretrain.yaml")
TINY = str(ROOT / "configs" / "tiny-cpu.yaml")
CHUNK = (
    "Northwind Capital reported total revenue of $1,240 million in fiscal 2024, up from $1,105 million "
    "in fiscal 2023. The board declared a dividend of $0.84 per share."
)


def write_articles(folder: Path, count: int) -> Path:
    """`count` annual-report pages (income statements, balance sheets, MD&A ...) as .txt files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    pages = [text for company in COMPANIES for text in filing(company, 2021, rng)[0].values()]
    for n, text in enumerate(pages[:count]):
        (folder / f"page-{n:02d}.txt").write_text(text)
    return folder


def last_line(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.strip().splitlines()[-1].split() if "=" in part)


def test_parse_pairs_reads_the_format_and_the_usual_variants():
    output = (
        "Here are the pairs:\n"
        "1. Q: What was Northwind Capital's revenue in fiscal 2024?\n"
        "A: $1,240 million.\n"
        "**Question 2:** What dividend did the board declare?\n"
        "**Answer 2:** $0.84 per share,\n"
        "paid in cash.\n"
        "Q: A question the model never answered\n"
        "Q: \n"
        "A: an answer to an empty question\n"
    )
    assert parse_pairs(output, 5) == [
        ("What was Northwind Capital's revenue in fiscal 2024?", "$1,240 million."),
        ("What dividend did the board declare?", "$0.84 per share, paid in cash."),
    ]
    assert parse_pairs(output, 1) == [("What was Northwind Capital's revenue in fiscal 2024?", "$1,240 million.")]
    assert parse_pairs("lis their noun310 purually net quarter ### sec", 3) == []
    # forms smollm2 writes: the answer on the question's line, list numbers inside the fields, bold labels
    inline = "Q1: 2. What is the CET1 ratio? A: 13.8% at year end.\n**Q:** Who audits it? **A:** Contoso LLP."
    assert parse_pairs(inline, 5) == [
        ("What is the CET1 ratio?", "13.8% at year end."),
        ("Who audits it?", "Contoso LLP."),
    ]
    assert question_key("1. What was the revenue?") == question_key("What was the revenue")


def test_judge_keeps_new_supported_pairs_and_counts_the_rest():
    chunk = Chunk("c1", CHUNK, "Document: Northwind Capital annual report\n", {"source": "nw.pdf", "title": "NW"})
    chunk.metadata["page"] = 3
    seen = {"what is a bond"}
    output = (
        "Q: What was Northwind Capital's total revenue in fiscal 2024?\nA: $1,240 million.\n"
        "Q: What is a bond?\nA: A debt security.\n"  # a question already written
        "Q: What dividend per share did Northwind Capital declare?\nA: $0.91 per share.\n"  # not the chunk's figure
        "Q: Who painted the Mona Lisa?\nA: Leonardo da Vinci.\n"  # nothing to do with the chunk
    )
    rows, stats = judge(output, chunk, seen, SentenceEmbedding(), SynthOptions(per_chunk=5))
    assert (stats.kept, stats.duplicates, stats.unsupported, stats.malformed) == (1, 1, 2, 1)
    assert rows == [
        {
            "question": "What was Northwind Capital's total revenue in fiscal 2024?",
            "answer": "$1,240 million.",
            "evidence_text": CHUNK,
            "doc_name": "NW",
            "source": "nw.pdf p.3",
        }
    ]
    assert "what was northwind capital s total revenue in fiscal 2024" in seen
    # the same output again: every parsed pair is now a duplicate, nothing is kept twice
    assert judge(output, chunk, seen, SentenceEmbedding(), SynthOptions(per_chunk=5))[1].kept == 0


def chunk_entries(progress: Path) -> list[dict]:
    """The progress file's entries for chunks done (its first line is the recipe)."""
    entries = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    return [entry for entry in entries if "chunk" in entry]


def test_pair_file_refuses_to_overwrite_and_resumes(tmp_path):
    out = tmp_path / "pairs.csv"
    first = PairFile(out, resume=False, overwrite=False)
    first.start({"model": "demo", "per_chunk": 3})
    row = dict(zip(COLUMNS, ["What is CET1?", "Common equity tier 1.", "CET1 is ...", "Bank", "b.txt"], strict=True))
    first.append([row], [("chunk-a", SynthStats(chunks=1, kept=1, malformed=2))])
    with pytest.raises(Exception, match="exists: --resume"):
        PairFile(out, resume=False, overwrite=False)
    again = PairFile(out, resume=True, overwrite=False)
    assert again.done == {"chunk-a"} and again.seen == {"what is cet1"}
    assert (again.totals.chunks, again.totals.kept, again.totals.malformed) == (1, 1, 2)
    assert list(csv.DictReader(out.open()))[0]["question"] == "What is CET1?"  # nothing lost
    again.start({"model": "demo", "per_chunk": 3})  # the same recipe goes on
    progress = out.with_name("pairs.csv.progress.jsonl").read_text()
    with pytest.raises(QAError, match=r"another recipe \(model 'demo', now 'other'\): resume with the same"):
        PairFile(out, resume=True, overwrite=False).start({"model": "other", "per_chunk": 3})
    assert out.with_name("pairs.csv.progress.jsonl").read_text() == progress  # nothing written
    other = tmp_path / "other.csv"
    other.write_text("q,a\nx,y\n")
    with pytest.raises(Exception, match="not a file this command wrote"):
        PairFile(other, resume=True, overwrite=False)


def test_synth_runs_end_to_end_with_the_demo_model(tmp_path, capsys):
    docs = write_articles(tmp_path / "articles", 2)
    out = tmp_path / "pairs.csv"
    args = ["--docs", str(docs), "--model", "demo", "--out", str(out), "--per-chunk", "2", "--max-new-tokens", "24"]
    assert synth_main(args) == 0
    captured = capsys.readouterr()
    totals = last_line(captured.out)
    chunks = int(totals["chunks"])
    assert chunks >= 2
    # the untrained model writes no pair in the format: all counted, none kept, no crash
    assert (int(totals["kept"]), int(totals["malformed"])) == (0, 2 * chunks)
    assert "no pair kept; the model wrote, for example" in captured.err
    assert next(csv.reader(out.open())) == list(COLUMNS)
    assert len(chunk_entries(tmp_path / "pairs.csv.progress.jsonl")) == chunks
    # a second run neither overwrites the file nor redoes a chunk
    assert synth_main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert synth_main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert f"{chunks} done before" in captured.err and last_line(captured.out) == totals
    assert synth_main([*args, "--resume", "--per-chunk", "1"]) == 2  # another recipe: refused, nothing added
    assert "per_chunk 2, now 1" in capsys.readouterr().err
    assert len(chunk_entries(tmp_path / "pairs.csv.progress.jsonl")) == chunks


def test_synth_killed_midway_loses_nothing(tmp_path):
    docs = write_articles(tmp_path / "articles", 12)
    out = tmp_path / "pairs.csv"
    progress = tmp_path / "pairs.csv.progress.jsonl"
    command = [sys.executable, "-m", "qa_core.synth", "--docs", str(docs), "--model", "demo", "--out", str(out)]
    command += ["--batch-size", "1", "--per-chunk", "1", "--max-new-tokens", "48"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if progress.is_file() and len(chunk_entries(progress)) >= 2:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    done = len(chunk_entries(progress))
    resumed = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} done before" in resumed.stderr
    chunk_ids = [entry["chunk"] for entry in chunk_entries(progress)]
    assert len(chunk_ids) == len(set(chunk_ids)) == int(last_line(resumed.stdout)["chunks"]) > done
    assert out.read_text().count("question,answer") == 1  # one header, the file appended to


def test_synth_refuses_what_it_cannot_read(tmp_path, capsys):
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    assert synth_main(["--docs", str(tmp_path), "--model", "demo", "--out", str(tmp_path / "p.csv")]) == 2
    assert "no text to generate pairs from" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, hub_server):
    """40 steps of continued pretraining on 48 articles, pushed every 20 steps to the test Hub."""
    qa_core.hub.client.BACKOFF_SECONDS = 0.01
    root = tmp_path_factory.mktemp("pretrain")
    articles = write_articles(root / "articles", 48)
    hub = ["--push-to-hub", "--hub-repo", "tester/pretrain", "--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    args = ["--config", PRETRAIN, "--data", str(articles), "--output_dir", str(root / "run"), *hub]
    record = train_main(*parse_args(args))
    return root, record


def test_pretraining_lowers_the_perplexity_of_the_text(pretrained, capsys):
    root, record = pretrained
    assert (record["task"], record["batching"], record["step"], record["push_failures"]) == (
        "pretrain",
        "wrapped",
        40,
        0,
    )
    assert record["prompt_style"] is None
    args = ["--perplexity-text", str(root / "articles"), "--model", "demo", "--adapter", str(root / "run" / "final")]
    assert evaluate_main([*args, "--out", str(root / "ppl")]) == 0
    figures = last_line(capsys.readouterr().out)
    base, tuned = float(figures["perplexity_base"]), float(figures["perplexity_finetuned"])
    assert tuned < 0.8 * base, figures
    written = json.loads((root / "ppl" / "perplexity.json").read_text())
    assert (round(written["perplexity_base"], 4), written["texts"]) == (base, 48)


def test_every_run_draws_its_loss_curve_and_pushes_it(pretrained, hub_settings):
    root, record = pretrained
    png = b"\x89PNG\r\n\x1a\n"
    for folder in (root / "run", root / "run" / "final", root / "run" / "checkpoint-40"):
        assert (folder / "loss.png").read_bytes().startswith(png), folder
    assert record["loss_curve"] == "loss.png"
    kwargs = {"endpoint": hub_settings.hf_endpoint, "token": HUB_TOKEN}
    assert Path(hf_hub_download("tester/pretrain", "loss.png", **kwargs)).read_bytes().startswith(png)
    card = Path(hf_hub_download("tester/pretrain", "README.md", **kwargs)).read_text()
    assert "![training and eval loss](loss.png)" in card and "continued pretraining" in card


def test_sft_starts_from_the_pretrained_adapter_on_the_hub(pretrained, hub_server, tmp_path):
    """pretrain -> SFT is two commands: the SFT run continues the adapter pushed at step 40 (its
    rank and target modules, which differ from the tiny SFT preset's)."""
    hub = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    args = ["--config", TINY, "--init-adapter", "tester/pretrain@40", "--output_dir", str(tmp_path), *hub]
    record = train_main(*parse_args([*args, "--max_steps", "4", "--eval_strategy", "no", "--save_strategy", "no"]))
    assert record["init_adapter"].startswith("tester/pretrain@") and record["prompt_style"] == "qa"
    config = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
    assert "gate_proj" in config["target_modules"]  # the pretrained adapter's, not tiny-cpu.yaml's q/k/v/o
    assert record["lora"]["target_modules"] == sorted(config["target_modules"])  # the card says what was trained
    assert (tmp_path / "final" / "loss.png").is_file()


def test_init_adapter_that_is_not_an_adapter_is_refused_before_training(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(Exception, match="--init-adapter .*not a PEFT adapter"):
        train_main(
            *parse_args(
                ["--config", TINY, "--init-adapter", str(tmp_path / "notes"), "--output_dir", str(tmp_path / "o")]
            )
        )
    assert not (tmp_path / "o").exists()


def test_pretrain_reports_a_folder_without_text(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(Exception, match="no text found in .*unsupported type"):
        train_main(
            *parse_args(["--config", PRETRAIN, "--data", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "o")])
        )


def test_synth_prompt_is_rendered_in_the_chat_template(demo):
    chunk = Chunk("c", CHUNK, "Document: NW annual report\n", {})
    prompt = synth_prompt(demo, chunk, SynthOptions(per_chunk=2, generation=GenerationSettings()))
    assert prompt.startswith("<|system|>") and prompt.endswith("<|assistant|>\n")
    assert "Write 2 question-answer pairs" in prompt and "Document: NW annual report" in prompt and CHUNK in prompt
