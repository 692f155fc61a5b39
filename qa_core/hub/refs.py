"""What a model, adapter or dataset name points at: a local path, or a Hub repo at a revision.

    from qa_core.hub.refs import ModelRef
    ModelRef.parse("me/run@40")          # ModelRef(spec='me/run@40', path=None, repo_id='me/run', revision='40')
    ModelRef.parse("./runs/x/final")     # a path: path=PosixPath('runs/x/final'), repo_id=None

Names the toolkit knows itself (`smollm2`, `demo`, the bundled embedding model) are checked by
their callers before a name is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa_core.errors import RefError

PATH_PREFIXES = ("/", ".", "~")
# What local data is called: documents (.txt .md .pdf .csv) and QA files (.csv .jsonl .json).
DATA_SUFFIXES = (".txt", ".md", ".pdf", ".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class ModelRef:
    """A parsed `FOLDER` or `REPO[@REVISION]`: exactly one of `path` and `repo_id` is set."""

    spec: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ModelRef:
        """Read `spec` as a path when it exists or is written as one (`./x`, `/x`, `~/x`), else as
        `REPO[@REVISION]`, where REVISION is a branch, tag, commit or checkpoint step.

        Raises:
            RefError: a revision after an existing path, or a repo id with more than one `/`.
        """
        path = Path(spec).expanduser()
        if path.exists() or spec.startswith(PATH_PREFIXES):
            return cls(spec, path=path)
        name, sep, revision = spec.rpartition("@")
        if not sep or not name or "/" in revision:
            name, revision = spec, ""
        if revision and Path(name).expanduser().exists():
            raise RefError(f"{spec}: a revision (@{revision}) only applies to Hub repos, not folders")
        if name.count("/") > 1:
            raise RefError(f"{spec}: no such folder, and not a Hub repo id (USER/NAME[@REVISION])")
        return cls(spec, repo_id=name, revision=revision or None)

    @property
    def public_name(self) -> str:
        """The name that may be published: a Hub id as written, a local path by its last part only."""
        return self.path.name if self.path else self.spec


def public_name(spec: str) -> str:
    """`spec` as it may be published in a card or record (never a path on this machine)."""
    try:
        return ModelRef.parse(spec).public_name
    except RefError:
        return Path(spec).name


def is_hub_dataset(source: str) -> bool:
    """Whether `source` names a dataset on the Hub (`owner/name`, or a canonical `name`) rather
    than local data: a file or folder that exists, or a name with a data file's suffix (a missing
    file is then reported as missing, not looked for on the Hub).

    >>> is_hub_dataset("databricks/databricks-dolly-15k"), is_hub_dataset("data/missing.csv")
    (True, False)
    """
    path = Path(source).expanduser()
    return not (path.exists() or path.suffix.lower() in DATA_SUFFIXES)
