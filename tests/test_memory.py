"""Keeping a long-running server's memory flat (qa_core.memory; the soak benchmark measures it)."""

import subprocess
import sys
import threading
import time

from tqdm._monitor import TMonitor

from qa_core.config import load_settings
from qa_core.memory import MemoryTrimmer, limit_malloc_arenas
from qa_core.models import load_model
from qa_core.serving import QAService
from tests.helpers import ROOT

FRAGMENTED_HEAP = """
from qa_core.memory import trim_free_memory

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

blocks = [bytearray(100_000) for _ in range(3000)]  # 300 MB of heap (under the mmap threshold)
del blocks[::2]  # every other block freed: free memory between blocks in use, not at the top
freed = rss_mb()
trim_free_memory()
print(f"{freed:.0f} {rss_mb():.0f}")
"""


def test_trimming_hands_the_heap_s_free_pages_back():
    run = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], cwd=ROOT, capture_output=True, text=True, check=True)
    freed, trimmed = map(float, run.stdout.split())
    assert freed - trimmed > 100, run.stdout  # the 150 MB freed between live blocks went back


def test_the_server_caps_malloc_arenas_unless_the_environment_does(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True  # glibc took the cap (mallopt returned 1)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's own setting is left alone


def test_closing_a_service_stops_every_thread_it_started(tmp_path):
    before = set(threading.enumerate())  # other tests' services may still run threads of these names
    settings = load_settings(None, chroma_path=tmp_path / "chroma")
    with QAService(settings, load_model("demo", settings=settings)):
        started = set(threading.enumerate()) - before
        assert {"generation-batcher", "session-sweeper", "memory-trimmer"} <= {thread.name for thread in started}
    assert not [thread for thread in started if thread.is_alive() and not isinstance(thread, TMonitor)]
    with MemoryTrimmer(every_s=0.01) as trimmer:  # trims over and over until closed
        time.sleep(0.05)
    assert not trimmer._thread.is_alive()
