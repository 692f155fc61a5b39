"""Deploy the app to a Hugging Face Space: exactly the files a Space runs, in one commit, with its
variables, secrets and hardware.

    python -m hub deploy your-name/domain-qa --dry-run
    python -m hub deploy your-name/domain-qa --var QA_BASE_MODEL=Qwen/Qwen2.5-0.5B-Instruct \\
        --var QA_ADAPTER=your-name/qa-run@3f2a1c9 --secret HF_TOKEN --hardware t4-small

A Space installs `requirements.txt` alone, then runs `app.py` with the Space's variables and secrets in
its environment. So the Space gets `app.py`, `qa_core/` (the library and its bundled resources),
`requirements.txt`, `README.md` (its front matter configures the Space) and the `docs/` pages its
links lead to, and nothing else: no
tests, benchmarks, `.env`, results, runs, caches or local Hub data. Each deploy is one commit that
also deletes what an earlier deploy left and the working tree no longer has.

Everything that can be checked here is checked before anything changes on the Hub: the options,
that each secret is set, the files' sizes and the token in none of them, then the token's rights
and the SDK of a Space already under that name. Secret values are read from the environment or
`.env`, never from the command line, and never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from huggingface_hub import SpaceHardware, metadata_load
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from qa_core.config import Settings
from qa_core.errors import DeployError, HubError
from qa_core.hub.client import api, call, holds_token, push_folder

SDK = "gradio"
APP_FILE = "app.py"
# What a Space runs (qa_core includes its resources, such as the sample data the app offers).
SPACE_FILES = [APP_FILE, "requirements.txt", "README.md", "docs/*.md", "qa_core/**/*"]
NEVER_DEPLOYED = ["**/__pycache__/*", "*.pyc", ".env*", "**/.env*"]
# The Hub refuses a plain git push holding a larger file outside LFS; a Space's code never needs one.
MAX_FILE_MB = 10
HARDWARE = tuple(h.value for h in SpaceHardware)


@dataclass(frozen=True)
class SpacePlan:
    """What a deploy will do, all checked locally: the files (relative to `root`), the variables,
    the secrets (values kept out of `repr`) and the hardware to request."""

    space_id: str
    root: Path
    files: list[str]
    variables: dict[str, str]
    secrets: dict[str, str] = field(repr=False)
    hardware: str | None = None
    private: bool | None = None

    def describe(self) -> list[str]:
        """The plan as lines for a person: files with sizes, variables, secret names, hardware."""
        lines = [f"Space {self.space_id} (sdk {SDK}){' private' if self.private else ''}: {len(self.files)} files"]
        lines += [f"  {name}  ({(self.root / name).stat().st_size:,} bytes)" for name in self.files]
        lines += [f"variable {key}={value}" for key, value in self.variables.items()]
        lines += [f"secret {key} (set; its value is not shown)" for key in self.secrets]
        lines.append(f"hardware {self.hardware or 'unchanged (cpu-basic for a new Space)'}")
        return lines


@dataclass(frozen=True)
class Deployment:
    """A deployed Space: its page and the commit that holds its files."""

    space_id: str
    commit: str
    url: str


def space_files(root: Path) -> list[str]:
    """The files under `root` that a Space runs, as sorted paths relative to it.

    Raises:
        DeployError: a file the Space needs is missing, or one is over MAX_FILE_MB.
    """
    found = sorted(
        {p.relative_to(root).as_posix() for pattern in SPACE_FILES for p in root.glob(pattern) if p.is_file()}
    )
    chosen = list(filter_repo_objects(found, ignore_patterns=NEVER_DEPLOYED))
    for needed in (APP_FILE, "requirements.txt", "README.md", "qa_core/__init__.py"):
        if needed not in chosen:
            raise DeployError(f"{root / needed} is missing: a Space needs it (is {root} the folder holding app.py?)")
    for name in chosen:
        size_mb = (root / name).stat().st_size / 2**20
        if size_mb > MAX_FILE_MB:
            raise DeployError(f"{name} is {size_mb:.1f} MB; a Space's files must be under {MAX_FILE_MB} MB each")
    return chosen


def read_secret(name: str, env_file: str | os.PathLike | None) -> str:
    """The value of secret `name` from the environment, else from `env_file`.

    Raises:
        DeployError: it is set in neither.
    """
    value = os.environ.get(name) or (
        dotenv_values(env_file).get(name) if env_file and Path(env_file).is_file() else None
    )
    if not value:
        raise DeployError(
            f"secret {name} is not set: export it or put it in {env_file or '.env'} (never on the command line)"
        )
    return value


def _parse_variables(pairs: list[str], settings: Settings) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"--var {pair.split('=')[0]!r}: write it as KEY=VALUE")
        if settings.hf_token and settings.hf_token in value:
            raise DeployError(f"--var {key}: the value holds the Hub token; pass secrets with --secret {key}")
        variables[key.strip()] = value
    return variables


def plan_space(
    root: Path,
    space_id: str,
    settings: Settings,
    variables: list[str] = (),
    secrets: list[str] = (),
    hardware: str | None = None,
    private: bool | None = None,
    env_file: str | os.PathLike | None = ".env",
) -> SpacePlan:
    """Check a deploy of the app in `root` to `space_id` without touching the Hub.

    Returns:
        The plan `deploy` carries out.

    Raises:
        DeployError: a malformed --var, a secret not set, an unknown hardware name, a file missing or
            too large, a README without `sdk: gradio`, or a file that holds the Hub token.
    """
    try:
        validate_repo_id(space_id)
        valid = space_id.count("/") == 1
    except HFValidationError:
        valid = False
    if not valid:
        raise DeployError(f"{space_id!r} is not a Space id: write it as OWNER/NAME (letters, digits, - _ .)")
    if hardware is not None and hardware not in HARDWARE:
        raise DeployError(f"--hardware {hardware!r} is not a Space hardware; one of: {', '.join(HARDWARE)}")
    parsed = _parse_variables(list(variables), settings)
    values = {name: read_secret(name, env_file) for name in secrets}
    files = space_files(root)
    front = metadata_load(root / "README.md") or {}
    if front.get("sdk") != SDK or front.get("app_file", APP_FILE) != APP_FILE:
        raise DeployError(f"{root / 'README.md'}: its front matter must say sdk: {SDK} and app_file: {APP_FILE}")
    # push_folder checks again, but only after the Space's settings have changed
    holding = [name for name in files if holds_token((root / name).read_bytes(), settings)]
    if holding:
        raise HubError(f"{', '.join(holding)}: contain the Hugging Face token; refusing to push them")
    return SpacePlan(space_id, root, files, parsed, values, hardware, private)


def _check_rights(plan: SpacePlan, settings: Settings) -> None:
    """The token may write, and a Space already under that name is a Gradio one."""
    hub = api(settings)
    if not settings.hf_token:
        raise DeployError("no Hub token: set HF_TOKEN (a token with write access) to deploy")
    who = call(hub.whoami, settings, plan.space_id)
    if who.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise DeployError("HF_TOKEN is a read-only token: deploying needs one with write access")
    try:
        space = call(lambda: hub.space_info(plan.space_id), settings, plan.space_id)
    except HubError as exc:
        if isinstance(exc.__cause__, RepositoryNotFoundError):
            return  # the deploy creates it
        raise
    if space.sdk != SDK:
        raise DeployError(f"{plan.space_id} is a Space of SDK {space.sdk!r}, not {SDK}: choose another name")


def deploy(plan: SpacePlan, settings: Settings) -> Deployment:
    """Carry out `plan`: create the Space if needed, set its variables and secrets, request its
    hardware, then push its files as one commit (which starts the Space's build).

    Returns:
        The Space's page and the new commit.

    Raises:
        DeployError: no token, a read-only one, or a Space of another SDK under that name (nothing
            is changed then).
        HubError: the Hub refused or could not be reached part-way.
    """
    _check_rights(plan, settings)
    hub = api(settings)
    space = plan.space_id
    call(
        lambda: hub.create_repo(space, repo_type="space", space_sdk=SDK, private=plan.private, exist_ok=True),
        settings,
        space,
    )
    for key, value in plan.variables.items():
        call(lambda k=key, v=value: hub.add_space_variable(space, k, v), settings, space)
    for key, value in plan.secrets.items():
        call(lambda k=key, v=value: hub.add_space_secret(space, k, v), settings, space)
    if plan.hardware:
        call(lambda: hub.request_space_hardware(space, plan.hardware), settings, space)
    commit = push_folder(
        plan.root, space, settings, "Deploy the app", paths=plan.files, repo_type="space", create=False
    )
    return Deployment(space, commit, f"{settings.hf_endpoint}/spaces/{space}")
