"""Shared fixtures. The environment is made hermetic before any library reads it.

Nothing here reaches the internet: HF_ENDPOINT points at a closed loopback port, so code that
probes the Hub finds it unreachable at once and falls back to the offline default, smollm2. Its
prepared folder (tests/setup.sh prepares it in the user's cache) is linked into the tests' own
cache, so the tests run it without fetching or converting anything. Under pytest-xdist each worker
gets its share of the cores.
"""

import os
import tempfile
from pathlib import Path

_home = Path(tempfile.mkdtemp(prefix="qa-tests-"))
_user_cache = Path(os.environ.get("QA_CACHE_DIR") or Path.home() / ".cache" / "qa-toolkit").expanduser()
for _name in list(os.environ):
    if _name.startswith("QA_") or _name in ("HF_TOKEN", "HF", "HF_HUB_OFFLINE"):
        del os.environ[_name]
os.environ.update(
    {
        "HF_HOME": str(_home / "hf-home"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: nothing listens, connect fails fast
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "ANONYMIZED_TELEMETRY": "False",
        "QA_CHROMA_PATH": str(_home / "chroma"),
        "QA_CACHE_DIR": str(_home / "qa-cache"),
    }
)
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Each worker (and what it starts) gets its share of the cores: with more OpenMP threads than cores,
    # every small matrix product waits at a barrier for a thread that is not running (10x slower).
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

import pytest  # noqa: E402

from qa_core.demo_model import ensure_demo_model  # noqa: E402
from qa_core.models import LoadedModel, load_model  # noqa: E402
from qa_core.smollm2 import ensure_smollm2, prepared_folder  # noqa: E402


def _link_smollm2() -> None:
    """Link the user's prepared smollm2 into the tests' cache (preparing it there first if needed)."""
    link = prepared_folder(os.environ["QA_CACHE_DIR"])
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ensure_smollm2(_user_cache), target_is_directory=True)


_link_smollm2()


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The demo model folder, built once per test session."""
    return ensure_demo_model(os.environ["QA_CACHE_DIR"])


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> LoadedModel:
    """The demo model loaded once; tests must not modify it."""
    return load_model("demo")


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    """SmolLM2-135M-Instruct, the real offline model, loaded once; tests must not modify it."""
    return load_model("smollm2")


HUB_TOKEN = "hf_hub-write-token-for-tests"
HUB_READ_TOKEN = "hf_hub-read-token-for-tests"


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory):
    """A Hub-compatible server on a free loopback port that accepts only HUB_TOKEN."""
    from hub.local_server import HubServer

    server = HubServer(
        0, tmp_path_factory.mktemp("hub-data"), token=HUB_TOKEN, page_size=3, read_token=HUB_READ_TOKEN
    ).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hub_settings(hub_server):
    """Settings pointing at the test Hub with its token."""
    from qa_core.config import load_settings

    return load_settings(None, hf_endpoint=hub_server.url, hf_token=HUB_TOKEN)


@pytest.fixture(scope="session")
def documented_folder(tmp_path_factory):
    """The folder the walk-through ran in, once per session, and its result: (folder, result)."""
    from tests.documented import prepare_folder, run_documented, walkthrough_command

    folder = prepare_folder(tmp_path_factory.mktemp("documented"))
    # The walk-through starts its own Hub server and exports its address and token.
    return folder, run_documented(*walkthrough_command(), folder, os.environ["HF_ENDPOINT"], "")


@pytest.fixture(scope="session")
def walkthrough_adapter(documented_folder) -> Path:
    """smollm2 fine-tuned on the fact sheets by the walk-through (prompt style auto: its chat template)."""
    from tests.documented import WALKTHROUGH_ADAPTER

    folder, result = documented_folder
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / WALKTHROUGH_ADAPTER


# The longest work first, so the two workers end together: the walk-through and its users, the other
# documented commands, the image build, the Space rehearsal, the soak.
LONGEST_FIRST = (
    "walkthrough",
    "tests/test_readme.py",
    "tests/test_container.py",
    "tests/test_rehearsal.py",
    "tests/test_soak.py",
)


def group(item: pytest.Item) -> str | None:
    """The tests that use the walk-through's folder are one group, so it runs once; each module's slow
    tests are one, so its module fixtures are built once; fast tests are spread one by one."""
    if "documented_folder" in item.fixturenames:
        return "walkthrough"
    return item.nodeid.split("::")[0] if item.get_closest_marker("slow") else None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist (pyproject.toml: `-n 2 --dist loadgroup`) a group runs whole on one worker."""
    if name := group(item):
        item.add_marker(pytest.mark.xdist_group(name))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(group(item), len(LONGEST_FIRST)))
