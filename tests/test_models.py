import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

from qa_core.config import load_settings
from qa_core.demo_model import build_demo_model, random_adapter
from qa_core.errors import ModelLoadError, PromptError, RefError
from qa_core.generation import GenerationSettings
from qa_core.hub.refs import ModelRef
from qa_core.models import attach_adapter_folder, load_model, resolve_model_name
from qa_core.prompts import build_prompt

PROMPTS = [
    build_prompt("qa", "What is a bond?"),
    build_prompt("qa", "What was Northwind Capital's CET1 ratio?", "The CET1 ratio stood at 13.8% at year end."),
    build_prompt("alpaca", "Define diversification in one sentence, please, for a new analyst."),
]
GREEDY = GenerationSettings(max_new_tokens=16)


def test_demo_model_is_built_deterministically(tmp_path, demo_dir):
    rebuilt = build_demo_model(tmp_path / "again")
    assert (rebuilt / "tokenizer.json").read_text() == (demo_dir / "tokenizer.json").read_text()
    a = LlamaForCausalLM.from_pretrained(rebuilt).state_dict()
    b = LlamaForCausalLM.from_pretrained(demo_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_demo_loads_through_the_auto_classes(demo, demo_dir):
    assert demo.is_demo and demo.description == "demo"
    assert isinstance(demo.model, LlamaForCausalLM)
    assert demo.tokenizer.padding_side == "left" and demo.tokenizer.pad_token == "<pad>"
    by_path = load_model(str(demo_dir))
    assert not by_path.is_demo and by_path.name == str(demo_dir)
    assert by_path.model.config._attn_implementation == "sdpa"
    eager = load_model(str(demo_dir), attn_implementation="eager")
    assert eager.model.config._attn_implementation == "eager"
    assert eager.backend.generate_many(PROMPTS, GREEDY) == by_path.backend.generate_many(PROMPTS, GREEDY)


def test_default_model_without_network_is_smollm2():
    settings = load_settings(None)
    assert resolve_model_name(None, settings) == "smollm2"
    assert resolve_model_name("org/model", settings) == "org/model"
    assert resolve_model_name(None, load_settings(None, base_model="my/base")) == "my/base"


def test_batched_generation_equals_one_by_one(demo):
    batched = demo.backend.generate_many(PROMPTS, GREEDY, batch_size=3)
    single = [demo.backend.generate(p, GREEDY) for p in PROMPTS]
    assert batched == single
    assert all(batched)


def test_stream_yields_pieces_that_add_up_to_the_answer(demo):
    pieces = list(demo.backend.stream(PROMPTS[1], GREEDY))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == demo.backend.generate(PROMPTS[1], GREEDY)


def test_sampling_with_temperature_runs(demo):
    torch.manual_seed(0)
    text = demo.backend.generate_many(PROMPTS[:1], GenerationSettings(max_new_tokens=8, temperature=0.8))
    assert isinstance(text[0], str)


def test_too_long_prompt_is_refused(demo):
    long_prompt = build_prompt("qa", "Why?", "word " * 3000)
    with pytest.raises(PromptError, match=r"limit of 2048 tokens"):
        demo.backend.generate_many([long_prompt], GREEDY)
    with pytest.raises(PromptError, match=r"limit of 2048 tokens"):
        list(demo.backend.stream(long_prompt, GREEDY))


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, demo_dir):
    return random_adapter(demo_dir, tmp_path_factory.mktemp("adapter"))


def test_adapter_from_a_folder_changes_the_output(demo, adapter_dir):
    tuned = load_model("demo", str(adapter_dir))
    assert tuned.description == f"demo + adapter {adapter_dir}"
    ids = demo.tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(tuned.model(**ids).logits, demo.model(**ids).logits)


def test_adapter_settings_fallback_and_not_an_adapter(tmp_path, adapter_dir, demo_dir):
    assert load_model("demo", settings=load_settings(None, adapter=str(adapter_dir))).adapter == str(adapter_dir)
    with pytest.raises(ModelLoadError, match="not a PEFT adapter"):
        load_model("demo", str(demo_dir))
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_model("demo", str(tmp_path / "missing-adapter"))


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_quantized_loading_generates(mode):
    loaded = load_model("demo", quantization=mode, device="cpu")
    layer = loaded.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == ("Linear4bit" if mode == "4bit" else "Linear8bitLt")
    assert loaded.description == f"demo ({mode})"
    assert loaded.backend.generate_many(PROMPTS[:2], GenerationSettings(max_new_tokens=4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_a_default_model_the_hub_lacks_says_how_to_name_one(hub_settings):
    """A reachable endpoint (here the local Hub server) makes the online default the choice."""
    with pytest.raises(ModelLoadError, match=r"Qwen/Qwen2.5-0.5B-Instruct: repository not found") as info:
        load_model(settings=hub_settings)
    assert "name one with --model or QA_BASE_MODEL, e.g. smollm2" in str(info.value)
    with pytest.raises(ModelLoadError) as named:  # a model the user named is only reported
        load_model("tester/no-such-model", settings=hub_settings)
    assert "QA_BASE_MODEL" not in str(named.value)


def test_missing_gpu_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        load_model("demo", device="cuda")


def test_hub_model_when_hub_unreachable_is_one_clear_line():
    with pytest.raises(
        ModelLoadError,
        match=r"some-org/some-model is not in the local cache and the Hub at http://127.0.0.1:9 cannot be used",
    ) as info:
        load_model("some-org/some-model")
    assert "\n" not in str(info.value)


def test_model_ref_parse(tmp_path, monkeypatch):
    assert ModelRef.parse("me/adapter@v1") == ModelRef("me/adapter@v1", repo_id="me/adapter", revision="v1")
    assert ModelRef.parse("me/adapter") == ModelRef("me/adapter", repo_id="me/adapter")
    assert ModelRef.parse("./runs/x@2/checkpoint").path == Path("runs/x@2/checkpoint")
    assert ModelRef.parse("./runs/x@2/checkpoint").public_name == "checkpoint"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "me" / "adapter").mkdir(parents=True)
    assert ModelRef.parse("me/adapter").path == Path("me/adapter")  # an existing folder wins over a repo id
    with pytest.raises(RefError, match=r"a revision \(@v1\) only applies to Hub repos"):
        ModelRef.parse("me/adapter@v1")
    with pytest.raises(RefError, match="not a Hub repo id"):
        ModelRef.parse("a/b/c")


def test_an_adapter_trained_on_another_base_is_one_line_naming_both(smollm2, adapter_dir, tmp_path):
    adapter_dir = shutil.copytree(adapter_dir, tmp_path / "facts-qa")
    (adapter_dir / "checkpoint.json").write_text('{"step": 16, "base_model": "demo"}')
    with pytest.raises(ModelLoadError) as refused:
        attach_adapter_folder(smollm2, adapter_dir, "tester/facts-qa")
    message = str(refused.value)
    assert message.startswith("adapter tester/facts-qa was trained on demo, and the model loaded is smollm2: ")
    assert "--model demo" in message and "size mismatch" not in message and "\n" not in message
    assert not isinstance(smollm2.model, PeftModel) and smollm2.adapter is None  # refused before PEFT touched it
    assert not any("lora" in name for name, _ in smollm2.model.named_modules())
    (adapter_dir / "checkpoint.json").unlink()  # no record (neither checkpoint.json nor a card): the layer is named
    (adapter_dir / "README.md").unlink()
    with pytest.raises(
        ModelLoadError, match=r"layers\.0\.self_attn\.[kqvo]_proj has 128 inputs where this model's has 576"
    ):
        attach_adapter_folder(smollm2, adapter_dir, "tester/facts-qa")


def test_a_folder_without_a_model_is_one_line(tmp_path, adapter_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty: not a model folder \(no config.json in "):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="a LoRA adapter, not a model: give it as --adapter"):
        load_model(str(adapter_dir))
