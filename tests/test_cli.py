"""The command line, run as users run it (`python -m qa_core ...` in a subprocess: the slow tier)."""

import pytest

from tests.helpers import run_cli

SECRET = "hf_cli-secret-token-for-tests"


@pytest.mark.slow
def test_ask_prints_an_answer_and_the_demo_notice():
    result = run_cli("ask", "What is a bond?", "--max-new-tokens", "8", "--model", "demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "offline demo model" in result.stderr and "QA_BASE_MODEL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ask_with_context_file_streaming(tmp_path):
    policy = tmp_path / "policy.txt"
    policy.write_text("Breaches must be reported within 72 hours.")
    result = run_cli(
        "ask",
        "Within how many hours?",
        "--context-file",
        str(policy),
        "--stream",
        "--prompt-style",
        "qa",
        "--max-new-tokens",
        "6",
        "--model",
        "demo",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_help_explains_every_option():
    result = run_cli("ask", "--help")
    assert result.returncode == 0
    for flag in (
        "--context-file",
        "--model",
        "--adapter",
        "--prompt-style",
        "--max-new-tokens",
        "--stream",
        "--quantization",
        "llama2-chat",
        "alpaca",
        "chat-template",
        "--repetition-penalty",
    ):
        assert flag in result.stdout
    rag_help = run_cli("ask", "--help", module="qa_core.rag")
    assert (
        "(default: what answers best for the model, as measured: extractive under 1 B parameters, else "
        "retrieve-then-answer)" in " ".join(rag_help.stdout.split())
    )  # was "(default: first)"


@pytest.mark.slow
def test_token_from_env_file_never_printed(tmp_path):
    env = tmp_path / ".env"
    env.write_text(f"HF={SECRET}\nQA_BASE_MODEL=demo\n")
    ok = run_cli("--env-file", str(env), "ask", "hi", "--max-new-tokens", "4")
    # the token goes to a Hub that answers nothing: the error path must not show it either
    failed = run_cli("--env-file", str(env), "ask", "hi", "--adapter", "someone/private-adapter@main")
    assert ok.returncode == 0, ok.stderr
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") or "\nerror: " in failed.stderr
    assert "someone/private-adapter" in failed.stderr and "Traceback" not in failed.stderr
    for result in (ok, failed):
        assert SECRET not in result.stdout + result.stderr


@pytest.mark.slow
def test_bad_input_is_one_line_error(tmp_path):
    empty = run_cli("ask", "  ", "--model", "demo")  # refused before the model loads (which says "model: demo")
    assert (empty.returncode, empty.stderr) == (2, "error: the question is empty\n")
    no_model = run_cli("ask", "hi", "--model", str(tmp_path))
    assert no_model.returncode == 2
    assert no_model.stderr == f"error: {tmp_path}: not a model folder (no config.json in {tmp_path})\n"
    missing = run_cli("ask", "hi", "--context-file", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "nope.txt" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nQ1,\n")
    check = run_cli("check-data", str(bad))
    assert check.returncode == 2
    assert "bad.csv, line 2, column 'answer': empty value" in check.stderr


def test_check_data_reports_counts_and_split():
    result = run_cli("check-data", "qa_core/resources/sample_qa.csv", "--test-size", "0.25")
    assert result.returncode == 0, result.stderr
    assert "36 QA pairs (36 with context); split 27 train / 9 test (seed 42)" in result.stdout
