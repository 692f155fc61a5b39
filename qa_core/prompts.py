"""Prompt templates: the styles of the recipes this toolkit reproduces.

Each style turns a question (and optionally a context passage) into the prompt text the model
continues. Training uses the same function, so a model is always asked the way it was trained.

    >>> print(build_prompt("qa", "What is a bond?"))
    Answer the following question:
    Question: What is a bond?
    ---
    Answer:
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qa_core.errors import PromptError

if TYPE_CHECKING:  # transformers takes a second to import: `ask ""` is refused before that
    from transformers import PreTrainedTokenizerBase

DEFAULT_SYSTEM = (
    "You are a careful assistant for finance and policy questions. Answer concisely. "
    "When a context is given, answer only from it and say so if it does not contain the answer."
)


def _llama2_chat(question: str, context: str | None, system: str, _tok: object) -> str:
    # The tokenizer adds <s>; writing it here too would double it.
    user = f"Context:\n{context}\n\nQuestion: {question}" if context else question
    return f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"


def _qa(question: str, context: str | None, _system: str, _tok: object) -> str:
    if context:
        return (
            "Answer the following question using the provided context:\n"
            f"Context: {context}\nQuestion: {question}\n---\nAnswer:"
        )
    return f"Answer the following question:\nQuestion: {question}\n---\nAnswer:"


def _alpaca(question: str, context: str | None, _system: str, _tok: object) -> str:
    if context:
        return (
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.\n\n"
            f"### Instruction:\n{question}\n\n### Input:\n{context}\n\n### Response:\n"
        )
    return (
        "Below is an instruction that describes a task. Write a response that appropriately "
        f"completes the request.\n\n### Instruction:\n{question}\n\n### Response:\n"
    )


def _chat_template(question: str, context: str | None, system: str, tokenizer: PreTrainedTokenizerBase | None) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise PromptError(
            "prompt style 'chat-template' needs a tokenizer with a chat_template; "
            "this model has none, use --prompt-style qa, alpaca or llama2-chat"
        )
    user = f"Context:\n{context}\n\nQuestion: {question}" if context else question
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


PromptFn = Callable[[str, "str | None", str, "PreTrainedTokenizerBase | None"], str]

PROMPT_STYLES: dict[str, PromptFn] = {
    "llama2-chat": _llama2_chat,
    "qa": _qa,
    "alpaca": _alpaca,
    "chat-template": _chat_template,
}
STYLE_HELP = {
    "auto": "the style the adapter was trained with, else the model's own chat template, else 'qa'",
    "llama2-chat": "Llama-2 chat: [INST] <<SYS>> system <</SYS>> context + question [/INST]",
    "qa": "'Answer the following question:\\nQuestion: ...\\n---\\nAnswer:' (+ 'Context:')",
    "alpaca": "Alpaca '### Instruction / ### Input / ### Response'",
    "chat-template": "the tokenizer's own chat template (system + user message)",
}


def check_question(question: str | None) -> None:
    """Refuse an empty question, before any model or index is asked.

    Raises:
        PromptError: the question is empty or blank.
    """
    if not question or not question.strip():
        raise PromptError("the question is empty")


def resolve_style(style: str, tokenizer: PreTrainedTokenizerBase | None = None, trained: str | None = None) -> str:
    """Return the concrete style name for `style`: `auto` is the style an adapter was `trained`
    with (a fine-tuned model must be asked the way it was trained), else the tokenizer's chat
    template when it has one, else `qa`.

    Raises:
        PromptError: `style` is not a known style.
    """
    if style == "auto" and trained in PROMPT_STYLES:
        return trained
    if style == "auto":
        return "chat-template" if getattr(tokenizer, "chat_template", None) else "qa"
    if style not in PROMPT_STYLES:
        raise PromptError(f"unknown prompt style {style!r}; choose one of: {', '.join(STYLE_HELP)}")
    return style


def build_prompt(
    style: str,
    question: str,
    context: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    system: str = DEFAULT_SYSTEM,
    trained: str | None = None,
) -> str:
    """Render the prompt for `question` (and `context`, if any) in `style` (`auto` resolved with
    `trained`, the adapter's training style, see `resolve_style`).

    Returns:
        The prompt text, ending where the model's answer should begin.

    Raises:
        PromptError: unknown style, or 'chat-template' with a tokenizer that has no template.
    """
    context = context.strip() if context and context.strip() else None
    return PROMPT_STYLES[resolve_style(style, tokenizer, trained)](question.strip(), context, system, tokenizer)
