"""Answer a question (optionally from a context) with a loaded model: the QA the CLI and app share.
Prompts go to the loaded model's backend (`qa_core.generation`: here, or an OpenAI-compatible
server), which generates them batched (`generate_many`), one (`generate`) or streamed (`stream`).

    from qa_core.models import load_model
    from qa_core.qa import ask
    loaded = load_model("smollm2")
    print(ask(loaded, "What is a bond?"))
    print(loaded.backend.generate_many(["Question: What is a bond?"], GenerationSettings(max_new_tokens=64)))
"""

from __future__ import annotations

from collections.abc import Iterator

from qa_core.generation import GenerationSettings
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
    return loaded.backend.generate(qa_prompt(loaded, question, context, style), settings)


def ask_stream(
    loaded: LoadedModel,
    question: str,
    context: str | None = None,
    style: str = "auto",
    settings: GenerationSettings | None = None,
) -> Iterator[str]:
    """Yield the answer to `question` piece by piece as it is generated."""
    return loaded.backend.stream(qa_prompt(loaded, question, context, style), settings)
