"""Generation on an OpenAI-compatible inference server: vLLM, TGI, SGLang, `transformers serve`.

The toolkit keeps building every prompt itself (prompt styles, an adapter's training style, RAG
context trimming: they need the tokenizer alone) and sends the exact text to the server's
`/v1/completions`, so a served model answers as the local one does (greedy decoding gives the same
text). Work of many prompts (evaluate, synth) goes out as concurrent requests, which the server's
continuous batching serves together; streaming reads the server's server-sent events. An adapter
is a model name on the server (vLLM: `--enable-lora --lora-modules NAME=PATH`).

    QA_GENERATION_BACKEND=openai QA_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 \
        python -m qa_core ask "What is a bond?" --model NousResearch/Llama-2-7b-chat-hf

Transient failures (connection refused or reset, HTTP 408 / 429 / 5xx) are retried by the
`openai` client before any text has arrived, so an answer is never duplicated; a stream broken
half-way is reported, not retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from qa_core.errors import ServerError

if TYPE_CHECKING:
    import openai

    from qa_core.config import Settings
    from qa_core.generation.settings import GenerationSettings

MESSAGE_CHARS = 300  # a server's own error message, shortened to this
RETRIES = 2


@dataclass
class InferenceServer:
    """An OpenAI-compatible server at `base_url` (the API root, ending in /v1)."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceServer:
        return cls(settings.openai_base_url, settings.openai_api_key, settings.openai_timeout)

    @cached_property
    def client(self) -> openai.OpenAI:
        import openai  # here, not at the top: a process that generates locally never pays for it

        # Servers without keys still want the header; "EMPTY" is what vLLM's own docs send.
        return openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key or "EMPTY", timeout=self.timeout, max_retries=RETRIES
        )

    def served_models(self) -> list[str]:
        """The model names the server lists (vLLM lists its base model and LoRA modules;
        `transformers serve` loads models on demand and may list none, or fail to list).

        Raises:
            ServerError: the server cannot be reached, or refuses the key.
        """
        import openai

        with self._errors(None):
            try:
                return [model.id for model in self.client.models.list()]
            except openai.APIStatusError as exc:
                if exc.status_code == 401:
                    raise
                return []  # no listing to check against: the first request says what is wrong

    def check_reachable(self) -> None:
        """Fail early, before any prompt is built, when the server cannot be reached.

        Raises:
            ServerError: unreachable, or it refuses the key.
        """
        self.served_models()

    def complete(self, model: str, prompt: str, settings: GenerationSettings) -> str:
        """The server's completion of `prompt`, stripped.

        Raises:
            ServerError: unreachable, unknown model, prompt refused (e.g. too long), timeout.
        """
        with self._errors(model):
            response = self.client.completions.create(model=model, prompt=prompt, **_sampling(settings))
        return response.choices[0].text.strip()

    def complete_many(
        self,
        model: str,
        prompts: Sequence[str],
        settings: GenerationSettings,
        concurrency: int = 8,
        show_progress: bool = False,
    ) -> list[str]:
        """Complete every prompt, `concurrency` requests in flight at once; answers in prompt order.

        Raises:
            ServerError: the first request that failed for good (requests not sent yet are cancelled).
        """
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(self.complete, model, prompt, settings) for prompt in prompts]
            try:
                return [f.result() for f in tqdm(futures, desc="generating", unit="prompt", disable=not show_progress)]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def stream(self, model: str, prompt: str, settings: GenerationSettings) -> Iterator[str]:
        """Yield the completion of `prompt` piece by piece as the server sends it (server-sent
        events); closing the iterator closes the connection, which stops the server's generation.

        Raises:
            ServerError: as `complete`, or the stream broke off.
        """
        with self._errors(model):
            events = self.client.completions.create(model=model, prompt=prompt, stream=True, **_sampling(settings))
            with contextlib.closing(events):
                started = False
                for event in events:
                    piece = event.choices[0].text if event.choices else ""
                    if not started:  # the local stream strips leading whitespace too
                        piece, started = piece.lstrip(), bool(piece.strip())
                    if piece:
                        yield piece

    @contextlib.contextmanager
    def _errors(self, model: str | None) -> Iterator[None]:
        import openai

        where = f"the inference server at {self.base_url}"
        try:
            yield
        except openai.APITimeoutError as exc:
            raise ServerError(f"{where} did not answer within {self.timeout:.0f} s (QA_OPENAI_TIMEOUT)") from exc
        except openai.APIConnectionError as exc:
            raise ServerError(f"cannot reach {where}: is it running? (QA_OPENAI_BASE_URL; {exc})") from exc
        except openai.APIStatusError as exc:
            message = _server_message(exc)
            if exc.status_code == 401:
                raise ServerError(f"{where} refused the key (QA_OPENAI_API_KEY): {message}") from exc
            if exc.status_code in (400, 404) and model:
                # A listing is only a hint: `transformers serve` lists its cache, vLLM what it serves.
                listed = self.served_models()
                message += f" (model {model!r}; the server lists: {', '.join(listed) or 'nothing'})"
            raise ServerError(f"{where} refused the request (HTTP {exc.status_code}): {message}") from exc


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):  # OpenAI style {"error": {"message": ...}} or FastAPI {"detail": ...}
        body = body.get("error", body)
        body = body.get("message") or body.get("detail") or body if isinstance(body, dict) else body
    text = " ".join(str(body or exc.message).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _sampling(settings: GenerationSettings) -> dict:
    """The request fields for `settings`; temperature 0 is greedy on every server."""
    fields: dict = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature}
    if settings.temperature > 0:
        fields["top_p"] = settings.top_p
    if settings.repetition_penalty != 1.0:  # not in the OpenAI API; vLLM, TGI and SGLang read it
        fields["extra_body"] = {"repetition_penalty": settings.repetition_penalty}
    return fields
