"""Generate answers with a loaded model: batched, or streamed piece by piece.

Where the text is generated (in this process, or on an OpenAI-compatible server) is the loaded
model's backend's business (`qa_core.generation`); these two functions read the same either way.

    from qa_core.models import load_model
    from qa_core.generate import GenerationSettings, generate, stream
    loaded = load_model("smollm2")
    print(generate(loaded, ["Question: What is a bond?"], GenerationSettings(max_new_tokens=64)))
    for piece in stream(loaded, "Question: What is a bond?"):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from qa_core.generation.settings import GenerationSettings, check_prompt_length, prompt_budget
from qa_core.models import LoadedModel

__all__ = ["GenerationSettings", "check_prompt_length", "generate", "prompt_budget", "stream"]


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
