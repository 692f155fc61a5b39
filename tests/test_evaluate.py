import csv
import json

import pytest

from qa_core import metrics
from qa_core.demo_model import random_adapter
from qa_core.evaluate import main as evaluate_main


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("It cost 1200 dollars.", "The price was $1,200.", 1.0),
        ("Growth was 5 percent.", "Growth was 5%.", 1.0),
        ("Revenue reached 1.24 billion.", "Revenue was $1,240 million.", 1.0),
        ("Capex is $620m.", "Capex of $620 million.", 1.0),
        ("Margin 18.4% in 2025.", "The margin was 18.4% in Q3 2025, up from 16.9%.", 2 / 3),
        ("No figures here.", "It was 72 hours.", 0.0),
        ("Anything.", "A bond is a debt security.", None),
    ],
)
def test_numeric_match_reads_numbers_however_written(answer, reference, expected):
    got = metrics.numeric_match(answer, reference)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_numbers_parses_separators_scales_and_percent():
    assert metrics.numbers("Revenue was $1,240 million, up 12.2%.") == [1.24e9, 12.2]
    assert metrics.numbers("5 per cent of 3.5bn and 2k staff") == [5.0, 3.5e9, 2000.0]
    assert metrics.numbers("Q3 and v2 are labels") == []


def test_bleu_rouge_and_similarity_known_values():
    assert metrics.bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert metrics.bleu("completely different words", "the cat sat on the mat") == pytest.approx(0.0)
    rouge = metrics.rouge("the cat sat", "the cat sat on the mat")
    assert rouge["rouge_1"] == rouge["rouge_l"] == pytest.approx(2 / 3)  # words (and their sequence): P 1, R 3/6
    assert rouge["rouge_2"] == pytest.approx(4 / 7)  # bigrams: P 2/2, R 2/5
    assert metrics.corpus_bleu(["a b c d"], ["a b c d"]) == pytest.approx(1.0)
    same, related, unrelated = metrics.semantic_similarity(
        ["A bond is a debt security.", "Bonds are loans to an issuer.", "The canteen opens at noon."],
        ["A bond is a debt security."] * 3,
    )
    assert same == pytest.approx(1.0, abs=1e-5) and related > unrelated


def test_refusals_and_bertscore_without_its_model():
    assert metrics.is_refusal("I'm sorry, the context does not contain that.")
    assert metrics.is_refusal("I don't know.") and metrics.is_refusal("  ")
    assert not metrics.is_refusal("The margin was 18.4%.")
    assert metrics.bertscore(["a"], ["a"]) is None  # roberta-large is not cached here: skipped, not downloaded


def run_evaluate(out, *args: str) -> int:
    """`python -m qa_core.evaluate` on the bundled sample with the demo model and short answers."""
    sample = ["--data", "qa_core/resources/sample_qa.csv", "--model", "demo", "--max-new-tokens", "4"]
    return evaluate_main([*sample, "--out", str(out), *args])


def test_evaluate_command_on_the_sample_data(tmp_path, demo_dir, capsys):
    adapter = random_adapter(demo_dir, tmp_path / "adapter", seed=4)
    out = tmp_path / "results"
    code = run_evaluate(out, "--adapter", str(adapter), "--test-size", "0.2")
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [row["mode"] for row in results["rows"]] == ["base", "finetuned", "prompt", "rag"]
    for row in results["rows"]:
        assert row["n"] == 7 and row["perplexity"] > 1 and row["latency_s"] > 0
        assert -1 <= row["semantic_similarity"] <= 1 and 0 <= row["refusal_rate"] <= 1  # cosine can be < 0
    assert results["rows"][0]["perplexity"] != results["rows"][1]["perplexity"]  # the adapter is really used
    assert any("BERTScore skipped" in note for note in results["notes"])
    with (out / "answers.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4 * 7
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rag | 7 |" in capsys.readouterr().out


def test_finetuned_mode_needs_an_adapter(tmp_path, capsys):
    code = run_evaluate(tmp_path, "--modes", "base,finetuned")
    assert code == 2 and "mode 'finetuned' needs --adapter" in capsys.readouterr().err


def test_every_pushed_checkpoint_against_its_step(tmp_path, demo_dir, hub_server, hub_settings, monkeypatch, capsys):
    from qa_core.hub.checkpoints import push_checkpoint

    for step, seed in ((5, 1), (10, 2)):
        adapter = random_adapter(demo_dir, tmp_path / f"step{step}", seed=seed)
        push_checkpoint(adapter, "tester/eval-run", {"step": step, "loss": 2.0 / step}, hub_settings)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_TOKEN", hub_settings.hf_token)
    out = tmp_path / "results"
    code = run_evaluate(out, "--adapter", "tester/eval-run", "--revisions", "all")
    assert code == 0, capsys.readouterr().err
    rows = json.loads((out / "checkpoints.json").read_text())["rows"]
    assert [row["step"] for row in rows] == [5, 10]
    assert rows[0]["perplexity"] != rows[1]["perplexity"]  # each checkpoint's own adapter
    assert (out / "checkpoints.png").read_bytes()[:4] == b"\x89PNG"
