import os
from dataclasses import fields

import pytest

from qa_core.config import QUANTIZATIONS, Settings, env_example, load_settings, markdown_table
from qa_core.errors import SettingsError
from tests.helpers import ROOT

SECRET = "hf_config-secret-token-for-tests"


def write_env(tmp_path, text):
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_env_file_is_read_without_touching_the_process_environment(tmp_path, monkeypatch):
    env = write_env(tmp_path, f"HF_TOKEN={SECRET}\nQA_BASE_MODEL=demo\nQA_DTYPE=bfloat16\n")
    settings = load_settings(env)
    assert settings.hf_token == SECRET
    assert settings.base_model == "demo"
    assert settings.dtype == "bfloat16"
    assert "HF_TOKEN" not in os.environ


def test_hf_is_an_alias_and_hf_token_wins(tmp_path, monkeypatch):
    assert load_settings(write_env(tmp_path, "HF=from-alias\n")).hf_token == "from-alias"
    monkeypatch.setenv("HF_TOKEN", "from-env")
    assert load_settings(write_env(tmp_path, "HF=from-alias\n")).hf_token == "from-env"


def test_environment_beats_env_file_and_flags_beat_both(tmp_path, monkeypatch):
    env = write_env(tmp_path, "QA_DEVICE=cuda\nQA_QUANTIZATION=8bit\nHF_ENDPOINT=http://mirror.example/\n")
    monkeypatch.setenv("QA_DEVICE", "cpu")
    monkeypatch.delenv("HF_ENDPOINT")
    settings = load_settings(env, quantization="4bit", dtype=None)
    assert settings.device == "cpu"
    assert settings.quantization == "4bit"
    assert settings.dtype == "auto"  # a None override does not hide the default
    assert settings.hf_endpoint == "http://mirror.example"


def test_token_is_never_in_repr_and_is_redacted(tmp_path):
    settings = load_settings(write_env(tmp_path, f"HF_TOKEN={SECRET}\n"))
    assert SECRET not in repr(settings)
    assert settings.redact(f"failed with {SECRET} in it") == "failed with *** in it"


@pytest.mark.parametrize(
    ("line", "variable"),
    [("QA_DEVICE=gpu", "QA_DEVICE"), ("QA_DTYPE=fp8", "QA_DTYPE"), ("QA_QUANTIZATION=3bit", "QA_QUANTIZATION")],
)
def test_bad_values_name_the_variable(tmp_path, line, variable):
    with pytest.raises(SettingsError, match=variable):
        load_settings(write_env(tmp_path, line + "\n"))


def test_cuda_index_is_accepted(tmp_path):
    assert load_settings(write_env(tmp_path, "QA_DEVICE=cuda:1\n")).device == "cuda:1"


def test_rag_settings_and_number_check(tmp_path):
    env = write_env(tmp_path, "QA_CHROMA_URL=http://127.0.0.1:8000/\nQA_COLLECTION=filings\nQA_MAX_FILE_MB=2.5\n")
    settings = load_settings(env)
    assert (settings.chroma_url, settings.collection, settings.max_file_mb) == ("http://127.0.0.1:8000", "filings", 2.5)
    with pytest.raises(SettingsError, match="QA_MAX_FILE_MB='lots' is not a valid value"):
        load_settings(write_env(tmp_path, "QA_MAX_FILE_MB=lots\n"))


def test_flags(tmp_path):
    assert load_settings(write_env(tmp_path, "QA_ALLOW_ADAPTER_LOAD=no\n")).allow_adapter_load is False
    with pytest.raises(SettingsError, match="QA_ALLOW_ADAPTER_LOAD='maybe' is not a valid value"):
        load_settings(write_env(tmp_path, "QA_ALLOW_ADAPTER_LOAD=maybe\n"))


def test_the_settings_table_and_env_example_are_made_from_the_declarations():
    """Each setting is declared once, in qa_core/config.py; the documents that list them must match."""
    assert markdown_table() in (ROOT / "docs" / "settings.md").read_text()
    assert (ROOT / ".env.example").read_text() == env_example()
    declared = {variable for f in fields(Settings) for variable in f.metadata["variables"]}
    assert len(declared) == 34 and {"HF_TOKEN", "HF", "QA_SESSION_TTL_S", "QA_OPENAI_API_KEY"} <= declared
    assert all(f"# {name}=" in env_example() for name in declared - {"HF"})


def test_command_line_options_come_from_the_declarations():
    """hf_endpoint and quantization were declared again by hand in four and three places."""
    from hub.cli import build_parser as hub_parser
    from qa_core.__main__ import build_parser as ask_parser
    from train_job.run import ModelArguments, PublishArguments

    declared = {f.name: f.metadata for f in fields(Settings)}
    ask = next(
        a for a in ask_parser()._subparsers._group_actions[0].choices["ask"]._actions if a.dest == "quantization"
    )
    assert ask.choices == list(QUANTIZATIONS) and ask.help.startswith(declared["quantization"]["help"])
    hub = next(a for a in hub_parser()._actions if a.dest == "hf_endpoint")
    assert hub.help.startswith(declared["hf_endpoint"]["help"])
    training = {f.name: f.metadata for f in fields(ModelArguments) + fields(PublishArguments)}
    assert training["hub_endpoint"]["help"].startswith(declared["hf_endpoint"]["help"])
    assert training["quantization"]["choices"] == list(QUANTIZATIONS)
    assert "QA_QUANTIZATION" not in training["quantization"]["help"]  # a run's default is none, not the app's setting
    with pytest.raises(SettingsError, match="QA_DTYPE='float8' is not one of: auto, float32, bfloat16, float16"):
        load_settings(None, dtype="float8")
