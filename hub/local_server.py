"""A Hugging Face Hub-compatible HTTP server for offline trials and the tests.

The unmodified `huggingface_hub` client works against it: whoami, create/delete repo, repo info
at a revision, commit history (paginated), refs, tree, paths-info, validate-yaml, preupload,
NDJSON commits (with the parentCommit check), LFS batch upload, and `resolve` downloads with the
headers and Range support the client needs; for Spaces, their SDK, variables, secrets (write-only,
as on the Hub) and hardware requests. Repositories are stored under `--data-dir`: every commit is a
JSON snapshot of its file list, file contents are content-addressed blobs.

    python -m hub.local_server --port 8765 --data-dir /tmp/hub --token hf_local_test_token
    export HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=hf_local_test_token HF_HUB_DISABLE_XET=1
    python train_job/run.py ...

It does not speak Xet, the storage the real Hub uploads large files to: clients must upload over
plain HTTP and LFS, which `huggingface_hub` does when `HF_HUB_DISABLE_XET=1` is set.

With `--token`, requests carrying another token get 401, and writes need the token; without it
every request is allowed. It speaks the protocol for rehearsals and tests; it is not a Hub (no web
pages, no Xet, one token for access).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# Files the Hub stores in LFS whatever their size (its default .gitattributes), and the size limit.
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".gguf",
    ".parquet",
    ".arrow",
    ".zip",
    ".npy",
    ".npz",
    ".pkl",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")
# The flavors the Hub offers a Space (huggingface_hub's SpaceHardware lists the same names).
SPACE_HARDWARE = (
    "cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4",
    "l40sx8", "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8",
)  # fmt: skip
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


class HubError(Exception):
    """An HTTP error answer: status, the Hub's X-Error-Code, and a message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


@dataclass
class Repo:
    """One repository: its commits (newest last) and branch heads, kept in a JSON file."""

    path: Path
    repo_type: str
    repo_id: str
    commits: dict  # commit id -> {"id", "parents", "title", "message", "date", "files": {path: entry}}
    branches: dict  # name -> commit id
    order: list  # commit ids, oldest first
    # private; for a Space: sdk, variables, secrets (name -> {"value", "description", "updatedAt"}), hardware
    settings: dict

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        state = {"commits": self.commits, "branches": self.branches, "order": self.order, "settings": self.settings}
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    def resolve(self, revision: str) -> dict:
        """The commit a branch name or (full or abbreviated) commit id points at."""
        revision = unquote(revision)
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        matches = [c for c in self.commits if len(revision) >= 7 and c.startswith(revision)]
        if len(matches) == 1:
            return self.commits[matches[0]]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, head: str) -> list[dict]:
        """Commits reachable from `head`, newest first."""
        found, current = [], head
        while current:
            commit = self.commits[current]
            found.append(commit)
            current = commit["parents"][0] if commit["parents"] else None
        return found


class HubState:
    """All repositories and blobs under one data folder; one lock serialises every write."""

    def __init__(self, data_dir: Path, token: str | None, read_token: str | None = None, user: str = "tester") -> None:
        self.data_dir, self.token, self.read_token, self.user = data_dir, token, read_token, user
        self.blobs = data_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        # Repositories' files are data, never source: a data folder inside a git checkout stays out of it.
        (data_dir / ".gitignore").write_text("*\n")
        self.lock = threading.RLock()
        self.secret = os.urandom(16)  # signs LFS upload links, as the Hub presigns storage URLs

    def sign(self, oid: str) -> str:
        return hmac.new(self.secret, oid.encode(), hashlib.sha256).hexdigest()

    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.data_dir / "repos" / repo_type / f"{repo_id}.json"

    def get(self, repo_type: str, repo_id: str) -> Repo:
        path = self._repo_file(repo_type, repo_id)
        if not path.is_file():
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        data = json.loads(path.read_text())
        return Repo(path, repo_type, repo_id, data["commits"], data["branches"], data["order"], data["settings"])

    def store_blob(self, content: bytes) -> str:
        oid = hashlib.sha256(content).hexdigest()
        target = self.blobs / oid
        if not target.exists():
            tmp = target.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(content)
            tmp.replace(target)
        return oid

    def blob(self, oid: str) -> Path:
        return self.blobs / oid

    def create(self, repo_type: str, repo_id: str, private: bool = False, sdk: str | None = None) -> Repo:
        with self.lock:
            path = self._repo_file(repo_type, repo_id)
            if path.exists():
                raise HubError(409, f"You already created this {repo_type} repo")
            settings: dict = {"private": private}
            if repo_type == "space":
                if sdk not in SPACE_SDKS:
                    raise HubError(400, f"sdk must be one of {', '.join(SPACE_SDKS)}")
                settings.update(sdk=sdk, variables={}, secrets={}, hardware={"current": None, "requested": None})
            repo = Repo(path, repo_type, repo_id, {}, {}, [], settings)
            self.commit(repo, "main", "initial commit", "", {".gitattributes": GITATTRIBUTES}, [], None, new=True)
            return repo

    def update_settings(self, repo: Repo, change: Callable[[dict], object]) -> dict:
        """Apply `change` to the repo's settings under the lock and save them; returns the new settings."""
        with self.lock:
            repo = self.get(repo.repo_type, repo.repo_id)
            change(repo.settings)
            repo.save()
            return repo.settings

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.get(repo_type, repo_id).path.unlink()

    def commit(
        self,
        repo: Repo,
        branch: str,
        title: str,
        message: str,
        added: dict[str, bytes | dict],
        deleted: list[str],
        parent_commit: str | None,
        new: bool = False,
    ) -> dict:
        """Write one commit on `branch`: `added` maps paths to bytes (regular) or LFS pointers."""
        with self.lock:
            if not new:
                repo = self.get(repo.repo_type, repo.repo_id)  # re-read under the lock
            head = repo.branches.get(branch)
            if head is None and not new:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if parent_commit and parent_commit != head:
                raise HubError(412, f"A commit has happened since {parent_commit}; the head of {branch} is {head}")
            files = dict(repo.commits[head]["files"]) if head else {}
            for path in deleted:
                prefix = path.rstrip("/") + "/"
                doomed = [p for p in files if p == path or p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"{path} does not exist in {branch}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            for path, content in added.items():
                if isinstance(content, dict):  # an LFS pointer to a blob uploaded before
                    if not self.blob(content["oid"]).is_file():
                        raise HubError(422, f"LFS object {content['oid']} for {path} was not uploaded")
                    files[path] = {
                        "sha256": content["oid"],
                        "size": content["size"],
                        "lfs": True,
                        "git_oid": git_blob_oid(_lfs_pointer(content["oid"], content["size"])),
                    }
                else:
                    files[path] = {
                        "sha256": self.store_blob(content),
                        "size": len(content),
                        "lfs": False,
                        "git_oid": git_blob_oid(content),
                    }
            body = json.dumps([head, title, message, sorted(files.items()), time.time_ns()])
            commit_id = hashlib.sha1(body.encode()).hexdigest()
            repo.commits[commit_id] = {
                "id": commit_id,
                "parents": [head] if head else [],
                "title": title,
                "message": message,
                "date": _now(),
                "author": self.user,
                "files": files,
            }
            repo.branches[branch] = commit_id
            repo.order.append(commit_id)
            repo.save()
            return repo.commits[commit_id]


def _lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _runtime(repo: Repo, settings: dict | None = None) -> dict:
    """A Space's runtime as the Hub reports it. This server builds nothing: a Space with an app file
    stays BUILDING (`python -m hub rehearse` is what builds and starts it here)."""
    settings = settings or repo.settings
    head = repo.commits[repo.branches["main"]]["files"] if repo.branches.get("main") else {}
    return {
        "stage": "BUILDING" if "app.py" in head else "NO_APP_FILE",
        "hardware": settings["hardware"],
        "storage": None,
        "gcTimeout": None,
    }


def _entry(path: str, info: dict) -> dict:
    entry = {"type": "file", "oid": info["git_oid"], "size": info["size"], "path": path}
    if info["lfs"]:
        entry["lfs"] = {
            "oid": info["sha256"],
            "size": info["size"],
            "pointerSize": len(_lfs_pointer(info["sha256"], info["size"])),
        }
    return entry


def _tree(files: dict, base: str, recursive: bool) -> list[dict]:
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    entries, folders = [], set()
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if (recursive or depth == 1) and folder not in folders:
                folders.add(folder)
                entries.append(
                    {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0, "path": folder}
                )
        if recursive or len(parts) == 1:
            entries.append(_entry(path, files[path]))
    if prefix and not entries:
        raise HubError(404, f"{base} does not exist", "EntryNotFound")
    return entries


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the Hub's endpoints; every answer is JSON except file downloads."""

    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        """Quiet (tests read their own output), but every request line is kept for tests to count."""
        if format.startswith('"%s"') and args:
            self.server.requests.append(str(args[0]))

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _body(self) -> bytes:
        return self.raw

    def _json_body(self) -> dict:
        raw = self._body()
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v if len(v) > 1 or k == "paths" else v[0] for k, v in parse_qs(raw.decode()).items()}
        return json.loads(raw or b"{}")

    def _send(
        self, status: int, payload: object = None, headers: dict | None = None, body: bytes | None = None
    ) -> None:
        data = body if body is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _authorize(self, write: bool) -> None:
        expected, given = self.state.token, self._token()
        if expected is None:
            return
        if given is not None and given == self.state.read_token:
            if write:
                raise HubError(403, "You don't have the rights to write with a read token")
            return
        if given is not None and given != expected:
            raise HubError(401, "Invalid credentials in Authorization header")
        if write and given is None:
            raise HubError(401, "Authorization header is required for this operation")

    def _dispatch(self) -> None:
        # Read the whole body first: an error answered before reading it would leave it on the
        # kept-alive connection, where it would corrupt the next request.
        self.raw = self._read_body()
        status = self.server.take_failure(self.path)
        if status:
            return self._send(status, {"error": "injected failure"})
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        try:
            if segments[0] != "lfs-upload":  # upload links are presigned: they carry their own signature
                # POSTs that only read (as on the Hub): checking YAML, and listing paths of a public repo
                reads = segments[:2] == ["api", "validate-yaml"] or "paths-info" in segments
                self._authorize(write=self.command in ("POST", "DELETE") and not reads)
            self._route(segments)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message}, headers)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            self._send(400, {"error": f"bad request: {exc}"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # --- routes -----------------------------------------------------------------------------
    def _route(self, s: list[str]) -> None:
        method = self.command
        if s == ["api", "whoami-v2"] and method == "GET":
            if self._token() is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            role = "read" if self._token() == self.state.read_token else "write"
            return self._send(
                200,
                {
                    "type": "user",
                    "name": self.state.user,
                    "fullname": "Test User",
                    "avatarUrl": "/avatars/test-user.svg",  # as the Hub answers; Gradio's sign-in reads it
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}},
                },
            )
        if s == ["api", "validate-yaml"]:
            self._body()
            return self._send(200, {"errors": [], "warnings": []})
        if s[:2] == ["api", "repos"] and len(s) == 3:
            body = self._json_body()
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or self.state.user}/{body['name']}"
            if s[2] == "create" and method == "POST":
                try:
                    self.state.create(repo_type, repo_id, bool(body.get("private")), body.get("sdk"))
                except HubError as err:
                    if err.status == 409:
                        return self._send(409, {"error": err.message, "url": self._repo_url(repo_type, repo_id)})
                    raise
                return self._send(200, {"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id})
            if s[2] == "delete" and method == "DELETE":
                self.state.delete(repo_type, repo_id)
                return self._send(200, {})
        if len(s) >= 4 and s[0] == "api" and s[1] in REPO_TYPES:
            return self._api_repo(REPO_TYPES[s[1]], f"{s[2]}/{s[3]}", s[4:])
        if len(s) >= 2 and s[0] == "lfs-upload" and method == "PUT":
            return self._lfs_upload(s[1])
        if len(s) >= 2 and s[0] == "lfs-verify" and method == "POST":
            body = self._json_body()
            if not self.state.blob(body["oid"]).is_file():
                raise HubError(404, f"LFS object {body['oid']} not found")
            return self._send(200, {"message": "ok"})
        repo_type, rest = (
            ("dataset", s[1:]) if s[:1] == ["datasets"] else ("space", s[1:]) if s[:1] == ["spaces"] else ("model", s)
        )
        if len(rest) >= 5 and rest[1].endswith(".git") and rest[2:5] == ["info", "lfs", "objects"]:
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}")
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
        raise HubError(404, f"no route for {method} {self.path}")

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.base_url}/{prefix}{repo_id}"

    def _api_repo(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
        repo = self.state.get(repo_type, repo_id)
        action = rest[0] if rest else ""
        if repo_type == "space" and action in ("variables", "secrets", "hardware", "runtime"):
            return self._space_setting(repo, action)
        if action in ("", "revision") and self.command == "GET":
            commit = repo.resolve(rest[1] if action else "main")
            space = {"sdk": repo.settings["sdk"], "runtime": _runtime(repo)} if repo_type == "space" else {}
            return self._send(
                200,
                {
                    **space,
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": commit["id"],
                    "private": repo.settings["private"],
                    "disabled": False,
                    "gated": False,
                    "lastModified": commit["date"],
                    "tags": [],
                    "downloads": 0,
                    "likes": 0,
                    "author": repo_id.split("/")[0],
                    "siblings": [{"rfilename": p} for p in sorted(commit["files"])],
                },
            )
        if action == "refs":
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()]
            return self._send(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": []})
        if action == "commits":
            return self._commits(repo, rest[1] if len(rest) > 1 else "main")
        if action == "tree":
            files = repo.resolve(rest[1])["files"]
            return self._send(
                200,
                _tree(files, "/".join(rest[2:]), self.query.get("recursive", ["false"])[0] in ("true", "True", "1")),
            )
        if action == "paths-info" and self.command == "POST":
            files = repo.resolve(rest[1])["files"]
            wanted = self._json_body().get("paths", [])
            return self._send(200, [_entry(p, files[p]) for p in wanted if p in files])
        if action == "preupload" and self.command == "POST":
            return self._preupload(repo, rest[1])
        if action == "commit" and self.command == "POST":
            return self._commit(repo, rest[1])
        raise HubError(404, f"no route for {self.command} {self.path}")

    def _space_setting(self, repo: Repo, action: str) -> None:
        """A Space's variables and secrets (GET lists, POST sets one, DELETE removes one; a secret's
        value is never sent back), its hardware request and its runtime, answered as the Hub does."""
        method, body = self.command, self._json_body() if self.command in ("POST", "DELETE") else {}
        if action == "runtime" and method == "GET":
            return self._send(200, _runtime(repo))
        if action == "hardware" and method == "POST":
            if body.get("flavor") not in SPACE_HARDWARE:
                raise HubError(400, f"Invalid hardware flavor {body.get('flavor')!r}")
            settings = self.state.update_settings(repo, lambda s: s["hardware"].update(requested=body["flavor"]))
            return self._send(200, _runtime(repo, settings))
        if action in ("variables", "secrets") and method in ("GET", "POST", "DELETE"):
            if method == "POST":
                entry = {"value": body["value"], "description": body.get("description"), "updatedAt": _now()}
                settings = self.state.update_settings(repo, lambda s: s[action].update({body["key"]: entry}))
            elif method == "DELETE":
                settings = self.state.update_settings(repo, lambda s: s[action].pop(body["key"], None))
            else:
                settings = repo.settings
            shown = settings[action]
            if action == "secrets":  # write-only: the Hub never answers with a secret's value
                shown = {k: {key: v for key, v in entry.items() if key != "value"} for k, entry in shown.items()}
            return self._send(200, shown)
        raise HubError(404, f"no route for {method} {self.path}")

    def _commits(self, repo: Repo, revision: str) -> None:
        history = repo.history(repo.resolve(revision)["id"])
        page = int(self.query.get("p", ["0"])[0])
        size = self.server.page_size
        items = [
            {
                "id": c["id"],
                "title": c["title"],
                "message": c["message"],
                "date": c["date"],
                "authors": [{"user": c["author"]}],
            }
            for c in history[page * size : (page + 1) * size]
        ]
        headers = {}
        if (page + 1) * size < len(history):
            next_url = f"{self.base_url}/api/{repo.repo_type}s/{repo.repo_id}/commits/{quote(revision, safe='')}"
            headers["Link"] = f'<{next_url}?p={page + 1}>; rel="next"'
        self._send(200, items, headers)

    def _preupload(self, repo: Repo, revision: str) -> None:
        files = repo.resolve(revision)["files"]
        answers = []
        for item in self._json_body()["files"]:
            # Like the Hub: binary content (judged from the 512-byte sample the client sends) goes to LFS.
            binary = b"\0" in base64.b64decode(item.get("sample", ""))
            lfs = binary or item["size"] >= LFS_MIN_SIZE or item["path"].lower().endswith(LFS_SUFFIXES)
            existing = files.get(item["path"])
            oid = (existing["sha256"] if lfs else existing["git_oid"]) if existing else None
            answers.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._send(200, {"files": answers})

    def _commit(self, repo: Repo, revision: str) -> None:
        branch = unquote(revision)
        header: dict = {}
        added: dict[str, bytes | dict] = {}
        deleted: list[str] = []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                added[value["path"]] = base64.b64decode(value["content"])
                if b"\0" in added[value["path"]]:  # the Hub refuses binary files outside LFS / Xet
                    raise HubError(400, f"Your push was rejected because {value['path']} is a binary file")
            elif key == "lfsFile":
                added[value["path"]] = {"oid": value["oid"], "size": value["size"]}
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        if not re.fullmatch(r"[\w.\-/]+", branch) or branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        commit = self.state.commit(
            repo,
            branch,
            header.get("summary") or "update",
            header.get("description", ""),
            added,
            deleted,
            header.get("parentCommit"),
        )
        self._send(
            200,
            {
                "success": True,
                "commitOid": commit["id"],
                "pullRequestUrl": None,
                "commitUrl": f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{commit['id']}",
            },
        )

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self.state.get(repo_type, repo_id)
        objects = []
        for obj in self._json_body()["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.state.blob(obj["oid"]).is_file():
                upload = f"{self.base_url}/lfs-upload/{obj['oid']}?signature={self.state.sign(obj['oid'])}"
                answer["actions"] = {
                    "upload": {"href": upload},
                    "verify": {"href": f"{self.base_url}/lfs-verify/{obj['oid']}"},
                }
            objects.append(answer)
        self._send(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str) -> None:
        if not hmac.compare_digest(self.query.get("signature", [""])[0], self.state.sign(oid)):
            raise HubError(403, "upload link signature does not match")
        content = self._body()
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match sha256 {oid}")
        self.state.store_blob(content)
        self._send(200, {})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.state.get(repo_type, repo_id)
        commit = repo.resolve(revision)
        info = commit["files"].get(unquote(path))
        if info is None:
            raise HubError(404, f"{path} not found at {commit['id']}", "EntryNotFound")
        etag = info["sha256"] if info["lfs"] else info["git_oid"]
        headers = {"X-Repo-Commit": commit["id"], "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if info["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(info["size"])})
        content = self.state.blob(info["sha256"]).read_bytes()
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and content:
            start = int(match.group(1) or 0)
            end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            return self._send(206, headers=headers, body=content[start : end + 1])
        self._send(200, headers=headers, body=content)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, port: int, data_dir: Path, token: str | None = None, page_size: int = 50, read_token: str | None = None
    ) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = HubState(Path(data_dir), token, read_token)
        self.page_size = page_size
        self.failures_left, self.failing_route, self.failing_status = 0, "", 503
        self.down_until = 0.0  # time.monotonic() before which every request gets 503
        self.requests: list[str] = []  # "POST /api/repos/create HTTP/1.1" ...
        self._failures_lock = threading.Lock()

    def fail_next(self, count: int, route: str = "", status: int = 503) -> None:
        """Answer the next `count` requests whose path contains `route` with HTTP `status`: 503 as an
        overloaded Hub would (retried), 403 as one that refuses the push (not retried)."""
        with self._failures_lock:
            self.failures_left, self.failing_route, self.failing_status = count, route, status

    def fail_for(self, seconds: float) -> None:
        """Answer every request with HTTP 503 for `seconds`, as a Hub outage would."""
        self.down_until = time.monotonic() + seconds

    def take_failure(self, path: str) -> int | None:
        """The status to fail this request with, or None to serve it."""
        if time.monotonic() < self.down_until:
            return 503
        with self._failures_lock:
            if self.failures_left > 0 and self.failing_route in path:
                self.failures_left -= 1
                return self.failing_status
            return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> HubServer:
        """Serve in a background thread; returns self (stop with `shutdown()`)."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, required=True, help="where repositories and files are stored")
    parser.add_argument("--token", help="the only token accepted (default: accept any request)")
    parser.add_argument("--read-token", help="a token that may read but not write")
    args = parser.parse_args()
    server = HubServer(args.port, args.data_dir, args.token, read_token=args.read_token)
    print(
        f"Hub-compatible test server on {server.url}\n"
        f"export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1   # it does not speak Xet: uploads need this",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
