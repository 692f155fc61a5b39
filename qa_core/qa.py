"""Answer a question (optionally from a context) with a loaded model: the QA the CLI and app share,
and the two ways to generate from prompts, batched or streamed (where the text is generated, here
or on an OpenAI-compatible server, is the loaded model's backend's business: `qa_core.generation`).

    from qa_core.models import load_model
    from qa_core.qa import ask, generate
    loaded = load_model("smollm2")
    print(ask(loaded, "What is a bond?"))
    print(generate(loaded, ["Question: What is a bond?"], GenerationSettings(max_new_tokens=64)))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """Answer every prompt, `batch_size` prompts per forward pass (or requests in flight on a server).

    Returns:
        The generated continuations (prompt not included), in the order of `prompts`.

    Raises:
        PromptError: a prompt plus `max_new_tokens` exceeds the model's context length.
        ServerError: the server failed a request.
    """
    return loaded.backend.generate_many(prompts, settings, batch_size, show_progress)


def stream(loaded: LoadedModel, prompt: str, settings: GenerationSettings | None = None) -> Iterator[str]:
    """Yield the answer to `prompt` piece by piece as the model (or the server) generates it.

    Raises:
        PromptError: the prompt plus `max_new_tokens` exceeds the model's context length.
        ServerError: the server failed the request.
    """
    return loaded.backend.stream(prompt, settings)
