"""The commands of the README and of the docs/ pages it links, as tests/test_readme.py runs them:
in order (the README, then each page in the order the README links it; a command already run is
not run again), in a scratch folder holding the files they name (reports/, policy.pdf, faq.csv,
policy.txt) and links to the repository's folders they use; those that talk to the Hub get the
test Hub server as HF_ENDPOINT, the others a closed port (offline).

The walk-through (docs/walkthrough.md: smollm2 trained on fact sheets, pushed to the local Hub,
evaluated) is the longest of them and needs none of the others: it runs once per session in a folder
of its own (the `documented_folder` fixture), beside the rest, and the smollm2 tests use the adapter
it trained.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, write_pdf

FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOC_LINK = re.compile(r"\]\((docs/[\w-]+\.md)\)")
HUB_COMMAND = re.compile(r"your-name/|--push-to-hub|-m hub |hub\.local_server")
# The walk-through's block trains this preset; its adapter is written here, relative to the folder.
# (docs/deploy.md's offline trial trains the same preset, into a folder of its own: not this mark)
WALKTHROUGH_MARK = "--config configs/smollm2-cpu.yaml --data runs/facts.csv --push-to-hub --hub-repo tester/facts-qa"
WALKTHROUGH_ADAPTER = Path("runs/smollm2-cpu/final")


def documents() -> list[Path]:
    """The README, then each docs/ page in the order the README first links it."""
    linked = dict.fromkeys(DOC_LINK.findall((ROOT / "README.md").read_text()))
    return [ROOT / "README.md", *(ROOT / page for page in linked)]


def documented_commands() -> list[tuple[str, str]]:
    """(language, command) for every bash command (continuation lines joined) and python block, once;
    a bash block that starts a server in the background is one `script`."""
    found = []
    blocks = [block for document in documents() for block in FENCE.findall(document.read_text())]
    for language, body in blocks:
        if language == "python":
            found.append(("python", body))
        elif "hub.local_server" in body or "transformers serve" in body:
            found.append(("script", body))
        else:
            joined = re.sub(r"\\\n\s*", "", body)
            lines = [line.strip() for line in joined.splitlines()]
            found += [("bash", line) for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(found))


def walkthrough_command() -> tuple[str, str]:
    """The walk-through's block, as `documented_commands` lists it."""
    return next(found for found in documented_commands() if WALKTHROUGH_MARK in found[1])


def prepare_folder(folder: Path) -> Path:
    """Fill `folder` with the files the documented commands name, and link the repository's folders."""
    for name in ("configs", "qa_core", "train_job", "tests", "benchmarks", "hub"):
        (folder / name).symlink_to(ROOT / name)
    (folder / "reports").mkdir()
    (folder / "reports" / "q3.txt").write_text(
        "Northwind Bank Q3 report. The CET1 ratio at year end was 14.2 percent, up from 13.8 percent.\n"
    )
    (folder / "reports" / "q2.txt").write_text("Northwind Bank Q2 report. Net interest income rose 4 percent.\n")
    write_pdf(folder / "policy.pdf", ["A personal data breach must be reported within 72 hours."], "Data policy")
    (folder / "faq.csv").write_text(
        "question,answer\nWhat is a bond?,A debt security.\nWhat is CET1?,Common equity tier 1 capital.\n"
    )
    (folder / "policy.txt").write_text("A personal data breach must be reported to the regulator within 72 hours.\n")
    return folder


def run_documented(
    language: str, command: str, folder: Path, hub_url: str, hub_token: str
) -> subprocess.CompletedProcess:
    """Run one documented command in `folder` as a user would type it (a `script` has what it started
    in the background stopped when it ends)."""
    offline = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    online = {**offline, "HF_ENDPOINT": hub_url, "HF_TOKEN": hub_token, "HF_HUB_DISABLE_XET": "1"}
    env = online if HUB_COMMAND.search(command) else offline
    if language == "python":
        argv = [sys.executable, "-c", command]
    elif language == "script":
        argv = ["bash", "-ec", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + command]
    else:
        argv = ["bash", "-ec", command]
    # the longest, the walk-through, takes about 5 minutes on 2 cores
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=1200)
