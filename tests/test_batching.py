"""Concurrent visitors' generations are batched, and each still gets exactly its own answer."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from qa_core.data import load_qa_data
from qa_core.demo_model import random_adapter, sample_data_path
from qa_core.errors import PromptError
from qa_core.generation import GenerationSettings
from qa_core.generation.batching import GenerationBatcher
from qa_core.models import load_model
from qa_core.prompts import build_prompt


@pytest.fixture(scope="module")
def prompts(demo) -> list[str]:
    questions = load_qa_data(sample_data_path())["question"][:16]
    return [build_prompt("qa", q, None, demo.tokenizer) for q in questions]


def test_concurrent_requests_share_batches_and_get_their_own_greedy_answers(demo, prompts):
    batcher = GenerationBatcher(demo.backend, max_batch_size=16)
    settings = [GenerationSettings(max_new_tokens=4 + i % 5 * 6) for i in range(len(prompts))]
    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(batcher.generate, prompts, settings))
    alone = [demo.backend.generate(p, s) for p, s in zip(prompts, settings, strict=True)]
    assert answers == alone  # each row stops at its own max_new_tokens; batching changes nothing
    assert batcher.largest_batch > 1


def test_a_failing_request_fails_alone(demo, prompts):
    batcher = GenerationBatcher(demo.backend, max_batch_size=8)
    too_long = "word " * 5000
    with pytest.raises(PromptError, match="exceeds the model's limit"):
        batcher.generate(too_long)
    broken = GenerationSettings(max_new_tokens=4, repetition_penalty=-1.0)  # generate() refuses it
    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(batcher.generate, p, GenerationSettings(max_new_tokens=6)) for p in prompts[:7]]
        bad = pool.submit(batcher.generate, prompts[7], broken)
    with pytest.raises(ValueError, match="has to be a strictly positive float"):
        bad.result()
    assert [f.result() for f in good] == [
        demo.backend.generate(p, GenerationSettings(max_new_tokens=6)) for p in prompts[:7]
    ]


@pytest.mark.slow
def test_a_short_answer_is_not_held_back_by_a_long_one(demo, prompts):
    long_settings = GenerationSettings(max_new_tokens=400)
    long_prompt = max(prompts, key=lambda p: len(demo.backend.generate(p, long_settings)))
    assert len(demo.backend.generate(long_prompt, long_settings)) > 200  # it is long
    batcher = GenerationBatcher(demo.backend, max_batch_size=4)
    finished = {}

    def timed(name: str, prompt: str, settings: GenerationSettings) -> None:
        batcher.generate(prompt, settings)
        finished[name] = time.monotonic()

    with ThreadPoolExecutor(2) as pool:
        pool.submit(timed, "long", long_prompt, long_settings)
        pool.submit(timed, "short", prompts[0], GenerationSettings(max_new_tokens=2))
    assert batcher.largest_batch == 2 and finished["short"] < finished["long"]


@pytest.mark.slow
def test_a_newcomer_does_not_wait_for_a_long_answer_to_end(demo, prompts):
    """A visitor who asks while another's long answer is being generated joins that batch."""
    long_settings = GenerationSettings(max_new_tokens=400)
    long_prompt = max(prompts, key=lambda p: len(demo.backend.generate(p, long_settings)))
    batcher = GenerationBatcher(demo.backend, max_batch_size=4)
    with ThreadPoolExecutor(1) as pool:
        long_stream = batcher.stream(long_prompt, long_settings)
        next(long_stream)  # the long answer is under way
        short = pool.submit(batcher.generate, prompts[0], GenerationSettings(max_new_tokens=3))
        short_answer = short.result()
        still_long = list(long_stream)
    assert still_long and len(still_long[-1]) > 200  # the long one was still being written
    assert short_answer == demo.backend.generate(prompts[0], GenerationSettings(3))
    assert batcher.largest_batch == 2
    assert still_long[-1] == demo.backend.generate(long_prompt, long_settings)


def test_a_visitor_who_leaves_stops_only_their_own_generation(demo, prompts):
    batcher = GenerationBatcher(demo.backend, max_batch_size=4)
    settings = GenerationSettings(max_new_tokens=300)
    with ThreadPoolExecutor(2) as pool:
        leaving = batcher.stream(prompts[1], settings)
        staying = pool.submit(batcher.generate, prompts[2], GenerationSettings(max_new_tokens=12))
        next(leaving)
        leaving.close()
        assert staying.result() == demo.backend.generate(prompts[2], GenerationSettings(12))


def test_base_and_adapter_requests_never_mix(demo_dir, tmp_path, prompts):
    """compare() asks without the adapter while others ask with it: the batcher runs them apart."""
    tuned = load_model("demo", str(random_adapter(demo_dir, tmp_path / "adapter", seed=3)))
    settings = GenerationSettings(max_new_tokens=8)
    flags = [i % 2 == 0 for i in range(8)]
    # Closed (its worker joined) before the model is used directly: an answer is complete while
    # its batch may still be leaving the adapter-off block.
    with GenerationBatcher(tuned.backend, max_batch_size=8) as batcher, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p, f: batcher.generate(p, settings, f), prompts[:8], flags))
    with_adapter = [tuned.backend.generate(p, settings) for p in prompts[:8]]
    with tuned.model.disable_adapter():
        without = [tuned.backend.generate(p, settings) for p in prompts[:8]]
    assert answers == [w if f else b for w, b, f in zip(with_adapter, without, flags, strict=True)]
    assert with_adapter != without
