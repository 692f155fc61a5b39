"""Answer a question (optionally from a context) with a loaded model: the QA the CLI and app share."""

from __future__ import annotations

from collections.abc import Iterator

from qa_core.generate import GenerationSettings, generate, stream
from qa_core.models import LoadedModel
from qa_core.prompts import DEFAULT_SYSTEM, build_prompt, check_question


def qa_prompt(
    loaded: LoadedModel, question: str, context: str | None = None, style: str = "auto", system: str = DEFAULT_SYSTEM
) -> str:
    """Build the prompt for `question` in `style` for this model's tokenizer (`auto`: the style
    its adapter was trained with, if it has one).

    Raises:
        PromptError: the question is empty, or the style cannot be used with this model.
    """
    check_question(question)
    return build_prompt(style, question, context, loaded.tokenizer, system, trained=loaded.prompt_style)


def ask(
    loaded: LoadedModel,
    question: str,
    context: str | None = None,
    style: str = "auto",
    settings: GenerationSettings | None = None,
) -> str:
    """Return the model's answer to `question`, grounded on `context` when one is given."""
    prompt = qa_prompt(loaded, question, context, style)
    return generate(loaded, [prompt], settings)[0]


def ask_stream(
    loaded: LoadedModel,
    question: str,
    context: str | None = None,
    style: str = "auto",
    settings: GenerationSettings | None = None,
) -> Iterator[str]:
    """Yield the answer to `question` piece by piece as it is generated."""
    prompt = qa_prompt(loaded, question, context, style)
    return stream(loaded, prompt, settings)
