"""Serve many visitors' generations together: requests that arrive while the model is busy are
answered in one batch, each streaming its own answer.

One worker thread owns the model. It takes every waiting request (up to `max_batch_size`), groups
those that can share a forward pass (same sampling settings, same adapter state), and runs one
`generate` per group. Each row streams on its own and is finished as soon as it ends (end of
sequence, its own `max_new_tokens`, or its consumer going away), so a short answer is never held
back by a long one in its batch. Requests that arrive while a batch runs need not wait for it to
end: the batch makes way (see `_newcomers_due`), and its unfinished rows go on, from their prompt
plus the tokens generated so far, in the next batch together with the newcomers. If a batch
fails, its requests are retried one at a time, so one visitor's bad request never fails the
others'. Anything else that changes the model (attaching an adapter) runs under `exclusive()`,
between batches.

    with GenerationBatcher(backend, max_batch_size=16) as batcher:   # close() stops its worker thread
        for text in batcher.stream(prompt, GenerationSettings(max_new_tokens=64)):
            print(text)            # the whole answer so far

When an OpenAI-compatible server generates (QA_GENERATION_BACKEND=openai), `server.ServerGenerations`
offers the same methods (the `Batcher` protocol of backend.py) and sends each request straight to
the server, which batches them itself. A backend makes the right one: `backend.batcher(max_batch_size)`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from qa_core.errors import QAError
from qa_core.generation.backend import Backend
from qa_core.generation.settings import GenerationSettings, check_prompt_length

GATHER_SECONDS = 0.01  # how long the first request of a batch waits for company
MIN_STEPS = 4  # tokens a batch generates before it makes way for newcomers to join it
MAX_WAIT_SECONDS = 0.5  # a newcomer joins a running batch after this long, even when outnumbered
# How often streaming consumers hear of new tokens: 20 times a second for a visitor alone, and at
# most 40 times a second for all the rows of a batch together. Every update costs the server (a
# thread woken, text decoded, a message sent); at every token of a large batch it would cost more
# than generating the tokens.
UPDATE_SECONDS = 0.05
UPDATES_PER_SECOND = 20
_DONE = object()
_STOP = object()  # put in the queue by close(): the worker ends
CLOSED = "the server is shutting down: ask again in a moment"


@dataclass(eq=False)
class _Request:
    prompt_ids: list[int]
    settings: GenerationSettings
    with_adapter: bool
    tokens: list[int] = field(default_factory=list)  # grows as the worker generates
    updates: queue.Queue = field(default_factory=queue.Queue)  # token counts, then an exception or _DONE
    cancelled: bool = False
    finished: bool = False
    signalled: float = 0.0  # when the consumer was last told of new tokens
    arrived: float = field(default_factory=time.monotonic)

    def finish(self, outcome: object = _DONE) -> None:
        if not self.finished:
            self.finished = True
            self.updates.put(outcome)


class GenerationBatcher:
    """Batches concurrent generation requests for one model in this process (see the module docstring)."""

    def __init__(self, backend: Backend, max_batch_size: int = 16) -> None:
        self.backend, self.max_batch_size = backend, max(1, max_batch_size)
        self.largest_batch = 0  # the most rows one forward pass has served (for benchmarks and tests)
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._model_lock = threading.RLock()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="generation-batcher", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Stop taking requests, end those waiting or running with an error, and join the worker.
        Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._requests.put(_STOP)
        self._worker.join()
        with contextlib.suppress(queue.Empty):  # asked while the worker was stopping
            while True:
                request = self._requests.get_nowait()
                if request is not _STOP:
                    request.finish(QAError(CLOSED))

    def __enter__(self) -> GenerationBatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the model alone (no batch runs meanwhile), e.g. to attach another adapter."""
        with self._model_lock:
            yield

    def stream(
        self, prompt: str, settings: GenerationSettings | None = None, with_adapter: bool = True
    ) -> Iterator[str]:
        """Yield the whole answer so far as it grows; the last item is the complete answer. Closing
        the iterator early stops this request's generation (not the others').

        Raises:
            PromptError: the prompt plus `max_new_tokens` exceeds the model's context (checked here,
                before it joins a batch).
            QAError: the batcher is closed, or closes before the answer is complete.
        """
        if self._closed:
            raise QAError(CLOSED)
        settings = settings or GenerationSettings()
        ids = self.backend.tokenizer(prompt)["input_ids"]
        check_prompt_length(len(ids), self.backend, settings)
        request = _Request(ids, settings, with_adapter)
        self._requests.put(request)
        sent, end = "", None
        try:
            while end is None:
                # Decoded here, once per read: a consumer slower than the model (a page, a network)
                # skips the intermediate texts, and the worker never decodes.
                waiting = [request.updates.get()]
                with contextlib.suppress(queue.Empty):
                    while True:
                        waiting.append(request.updates.get_nowait())
                end = next((item for item in waiting if not isinstance(item, int)), None)
                count = len(request.tokens) if end is not None else max(i for i in waiting if isinstance(i, int))
                text = self.backend.tokenizer.decode(request.tokens[:count], skip_special_tokens=True).strip()
                if text != sent and (end is not None or not text.endswith("\ufffd")):  # not half a character
                    sent = text
                    yield text
            if isinstance(end, BaseException):
                raise end
        finally:
            request.cancelled = True

    def generate(self, prompt: str, settings: GenerationSettings | None = None, with_adapter: bool = True) -> str:
        """The complete answer to `prompt` (batched with whatever else is waiting)."""
        *_, answer = ["", *self.stream(prompt, settings, with_adapter)]
        return answer

    # --- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        carried: list[_Request] = []  # rows of a batch that made way for newcomers, not finished yet
        while True:
            waiting = carried or [self._requests.get()]
            with contextlib.suppress(queue.Empty):
                while len(waiting) < self.max_batch_size and _STOP not in waiting:
                    waiting.append(self._requests.get(timeout=GATHER_SECONDS if len(waiting) == 1 else 0))
            if _STOP in waiting:
                with contextlib.suppress(queue.Empty):
                    while True:
                        waiting.append(self._requests.get_nowait())
                for request in waiting:
                    if request is not _STOP:
                        request.finish(QAError(CLOSED))
                return
            groups: dict[tuple, list[_Request]] = {}
            for request in waiting:
                if not request.cancelled:
                    groups.setdefault(_group_key(request), []).append(request)
            carried = [request for group in groups.values() for request in self._run_safely(group)]

    def _run_safely(self, group: list[_Request]) -> list[_Request]:
        """Run `group`; returns its unfinished rows when it made way for newcomers."""
        try:
            return self._run(group)
        except Exception as exc:
            if len(group) == 1:
                group[0].finish(exc)
                return []
            for request in group:  # find the one that fails; the others get their answers
                request.tokens.clear()
                self._run_safely([request])
            return []

    @torch.inference_mode()
    def _run(self, group: list[_Request]) -> list[_Request]:
        tokenizer, model = self.backend.tokenizer, self.backend.model
        self.largest_batch = max(self.largest_batch, len(group))
        # A carried row goes on from its prompt plus what it has generated so far.
        encoded = tokenizer.pad(
            {"input_ids": [r.prompt_ids + r.tokens for r in group]}, return_tensors="pt", padding_side="left"
        ).to(model.device)
        settings = group[0].settings
        config = GenerationSettings(
            max(r.settings.max_new_tokens - len(r.tokens) for r in group),
            settings.temperature,
            settings.top_p,
            settings.repetition_penalty,
        ).to_config(tokenizer)
        rows = _Rows(group, config.eos_token_id, lambda: self._newcomers_due(len(group)))
        adapter_off = not group[0].with_adapter
        with self._model_lock, self.backend.without_adapter() if adapter_off else contextlib.nullcontext():
            model.generate(
                **encoded, generation_config=config, streamer=rows, stopping_criteria=StoppingCriteriaList([rows])
            )
        return [request for request in group if not (request.finished or request.cancelled)]

    def _newcomers_due(self, running: int) -> bool:
        """Whether a running batch of `running` rows should make way for the requests waiting.

        Making way re-reads every row's context, so it happens when at least as many wait as run (a
        batch at most doubles each time; a trickle of arrivals cannot thrash it), or when one has
        waited MAX_WAIT_SECONDS (nobody waits for a long answer to end).
        """
        if running >= self.max_batch_size:
            return False
        try:
            oldest = self._requests.queue[0].arrived
        except IndexError:
            return False
        return self._requests.qsize() >= running or time.monotonic() - oldest > MAX_WAIT_SECONDS


def _group_key(request: _Request) -> tuple:
    s = request.settings
    return (s.temperature, s.top_p, s.repetition_penalty, request.with_adapter)


class _Rows(BaseStreamer, StoppingCriteria):
    """Streams each row of a batch to its own request, and stops the rows that are done; stops the
    whole batch, unfinished rows included, when `newcomers()` says requests wait to join it."""

    def __init__(self, group: list[_Request], eos: int | list[int] | None, newcomers: Callable[[], bool]) -> None:
        self.group, self.newcomers = group, newcomers
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.prompt_seen, self.steps, self.making_way = False, 0, False
        self.update_every = max(UPDATE_SECONDS, len(group) / UPDATES_PER_SECOND)

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        self.steps += 1
        for request, token in zip(self.group, value.tolist(), strict=True):
            if request.finished or request.cancelled:
                continue
            if token in self.eos:
                request.finish()
                continue
            request.tokens.append(token)
            if len(request.tokens) >= request.settings.max_new_tokens:
                request.finish()
            elif (now := time.monotonic()) - request.signalled >= self.update_every:
                request.signalled = now
                request.updates.put(len(request.tokens))

    def end(self) -> None:
        if not self.making_way:  # otherwise the unfinished rows go on in the next batch
            for request in self.group:
                request.finish()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.making_way = self.making_way or (self.steps >= MIN_STEPS and self.newcomers())
        done = [self.making_way or request.finished or request.cancelled for request in self.group]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
