"""Generation: one `Backend` interface, in this process (`LocalBackend`) or on an OpenAI-compatible
server (`ServerBackend`), and the batcher that answers many callers at once on either.

    settings.py          GenerationSettings, prompt length checks
    backend.py           Backend: generate, stream, without_adapter, attach, describe, batcher
    local.py             LocalBackend: the weights here, batched and streamed with transformers
    server.py            ServerBackend: prompts sent to a server (inference_server.py)
    batching.py          GenerationBatcher (visitors answered together in this process)

This is the only place that knows whether text is generated here or on a server; `qa_core.models`
picks the backend once, when it loads a model. Nothing here imports `qa_core.models`.
"""

from qa_core.generation.backend import Backend, Batcher, TextGenerator, growing
from qa_core.generation.settings import GenerationSettings, check_prompt_length, prompt_budget

__all__ = [
    "Backend",
    "Batcher",
    "GenerationSettings",
    "TextGenerator",
    "check_prompt_length",
    "growing",
    "prompt_budget",
]
