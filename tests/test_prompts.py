import pytest

from qa_core.errors import PromptError
from qa_core.prompts import build_prompt, resolve_style

Q = "What is a bond?"
C = "A bond is a debt security."


def test_qa_style_matches_the_policy_recipe():
    assert build_prompt("qa", Q) == "Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"
    assert build_prompt("qa", Q, C) == (
        "Answer the following question using the provided context:\n"
        "Context: A bond is a debt security.\nQuestion: What is a bond?\n---\nAnswer:"
    )


def test_llama2_chat_style():
    prompt = build_prompt("llama2-chat", Q, C, system="Be brief.")
    assert prompt == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nContext:\nA bond is a debt security.\n\n"
        "Question: What is a bond? [/INST]"
    )
    assert not prompt.startswith("<s>")  # the tokenizer adds BOS itself


def test_alpaca_style_with_and_without_input():
    with_input = build_prompt("alpaca", Q, C)
    assert (
        "### Instruction:\nWhat is a bond?\n\n### Input:\nA bond is a debt security.\n\n### Response:\n" in with_input
    )
    without = build_prompt("alpaca", Q)
    assert "### Input" not in without and without.endswith("### Instruction:\nWhat is a bond?\n\n### Response:\n")


def test_blank_context_is_no_context():
    assert build_prompt("qa", Q, "   \n") == build_prompt("qa", Q)


def test_chat_template_uses_the_tokenizers_template(demo):
    prompt = build_prompt("chat-template", Q, C, demo.tokenizer, system="Be brief.")
    assert prompt == (
        "<|system|>\nBe brief.</s>\n<|user|>\nContext:\nA bond is a debt security.\n\n"
        "Question: What is a bond?</s>\n<|assistant|>\n"
    )
    assert resolve_style("auto", demo.tokenizer) == "chat-template"


def test_chat_template_without_a_template_is_a_clear_error():
    assert resolve_style("auto", None) == "qa"
    with pytest.raises(PromptError, match="no.*chat_template|has none"):
        build_prompt("chat-template", Q)


def test_unknown_style_lists_the_choices():
    with pytest.raises(PromptError, match="llama2-chat"):
        build_prompt("vicuna", Q)
