"""A local stand-in for the Hugging Face Hub: the part of its HTTP API that huggingface_hub, transformers, timm
and optimum use to create repos, commit (regular and LFS files), tag, list and download.

No PyPI package offers a working local Hub (offline-stack.md §4), so the tests bring this one. Writes need
`Authorization: Bearer <token>`; errors carry `X-Error-Code` so the client raises its own exception types.
Everything lives in memory; `HubDouble(...).start()` serves it on 127.0.0.1 from a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".onnx", ".png", ".jpg", ".bin", ".pt")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:  # what preupload reports: sha256 for LFS files, the git blob sha1 otherwise
        return hashlib.sha256(self.data).hexdigest() if self.lfs else git_sha1(self.data)

    def entry(self, path: str) -> dict:
        entry = {"type": "file", "path": path, "size": len(self.data), "oid": git_sha1(self.data)}
        if self.lfs:
            entry["lfs"] = {"oid": hashlib.sha256(self.data).hexdigest(), "size": len(self.data), "pointerSize": 134}
        return entry


@dataclass
class Commit:
    id: str
    message: str
    files: dict[str, Blob]
    date: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit]
    refs: dict[str, str]  # branch or tag -> commit id
    tags: set[str] = field(default_factory=set)

    def resolve(self, revision: str) -> Commit | None:
        commit_id = self.refs.get(unquote(revision), unquote(revision))
        return next((c for c in self.commits if c.id == commit_id), None)


class HubDouble:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> HubDouble:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create(self, repo_id: str, repo_type: str, private: bool) -> tuple[int, dict]:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return 409, {"error": "You already created this repo", "url": f"{self.url}/{repo_id}"}
            first = Commit(hashlib.sha1(f"{repo_id}-init".encode()).hexdigest(), "initial commit",
                           {".gitattributes": Blob(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", False)})
            self.repos[(repo_type, repo_id)] = Repo(repo_id, repo_type, private, [first], {"main": first.id})
        return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def commit(self, repo: Repo, revision: str, lines: list[dict]) -> tuple[int, dict]:
        with self.lock:
            parent = repo.resolve(revision)
            if parent is None:
                return 404, {"error": f"Revision {revision} not found"}
            files = dict(parent.files)
            message = ""
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    message = value.get("summary", "")
                elif key == "file":
                    files[value["path"]] = Blob(base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    if value["oid"] not in self.lfs:
                        return 400, {"error": f"LFS object {value['oid']} was never uploaded"}
                    files[value["path"]] = Blob(self.lfs[value["oid"]], True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
            commit_id = hashlib.sha1(f"{parent.id}{message}{sorted(files)}{time.time()}".encode()).hexdigest()
            repo.commits.append(Commit(commit_id, message, files))
            repo.refs[unquote(revision) if unquote(revision) in repo.refs else "main"] = commit_id
        return 200, {"commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit_id}", "commitOid": commit_id,
                     "success": True, "pullRequestUrl": None}


_API_REPO = re.compile(r"^/api/(?P<kind>models|spaces|datasets)/(?P<ns>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$")
_RESOLVE = re.compile(
    r"^/(?:(?P<kind>spaces|datasets)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_LFS_BATCH = re.compile(r"^/(?:(?:spaces|datasets)/)?[^/]+/[^/]+\.git/info/lfs/objects/batch$")


def _handler(hub: HubDouble):  # noqa: C901 - one small router for a test double
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        # ---- helpers
        def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
                  error_code: str | None = None, head: bool = False):
            data = json.dumps(body).encode() if isinstance(body, dict | list) else body
            self.send_response(status)
            content_type = "application/json" if isinstance(body, dict | list) else "application/octet-stream"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if error_code:
                self.send_header("X-Error-Code", error_code)
                self.send_header("X-Error-Message", str(body.get("error", "")) if isinstance(body, dict) else "")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self) -> bool:
            return self.headers.get("Authorization", "") == f"Bearer {hub.token}"

        def _deny(self):
            self._send(401, {"error": "Invalid credentials in Authorization header"}, error_code="Unauthorized")

        def _repo(self, kind: str, ns: str, name: str) -> Repo | None:
            repo = hub.repo(f"{ns}/{name}", kind.rstrip("s"))
            if repo is None or (repo.private and not self._authorized()):
                self._send(404, {"error": "Repository not found"}, error_code="RepoNotFound")
                return None
            return repo

        # ---- routes
        def do_HEAD(self):
            self._resolve(head=True)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/api/whoami-v2":
                if not self._authorized():
                    return self._deny()
                return self._send(200, {"type": "user", "name": "cropdx-tester", "orgs": [],
                                        "auth": {"accessToken": {"displayName": "test", "role": "write"}}})
            match = _API_REPO.match(url.path)
            if match:
                return self._api_get(match, parse_qs(url.query))
            return self._resolve(head=False)

        def do_POST(self):
            url = urlparse(self.path)
            body = self._body()
            if url.path == "/api/repos/create":
                if not self._authorized():
                    return self._deny()
                payload = json.loads(body)
                repo_id = f"{payload.get('organization') or 'cropdx-tester'}/{payload['name']}"
                status, answer = hub.create(repo_id, payload.get("type") or "model", bool(payload.get("private")))
                return self._send(status, answer)
            if url.path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body))
            if _LFS_BATCH.match(url.path):
                return self._lfs_batch(json.loads(body))
            if url.path == "/lfs-verify":
                return self._send(200, {"success": True})
            match = _API_REPO.match(url.path)
            if not match:
                return self._send(404, {"error": "not found"})
            repo = self._repo(match["kind"], match["ns"], match["name"])
            if repo is None:
                return None
            rest = match["rest"] or ""
            if rest.startswith("/preupload/"):
                return self._preupload(repo, rest.split("/", 2)[2], json.loads(body))
            if rest.startswith("/commit/"):
                if not self._authorized():
                    return self._deny()
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                status, answer = hub.commit(repo, rest.split("/", 2)[2], lines)
                return self._send(status, answer)
            if rest.startswith("/tag/"):
                if not self._authorized():
                    return self._deny()
                payload = json.loads(body)
                commit = repo.resolve(rest.split("/", 2)[2])
                if payload["tag"] in repo.tags:
                    return self._send(409, {"error": "Tag already exists"})
                repo.refs[payload["tag"]] = commit.id
                repo.tags.add(payload["tag"])
                return self._send(200, {})
            if rest.startswith("/paths-info/"):
                commit = repo.resolve(rest.split("/", 2)[2])
                paths = parse_qs(body.decode()).get("paths", [])
                return self._send(200, [commit.files[p].entry(p) for p in paths if p in commit.files])
            return self._send(404, {"error": f"unknown route {rest}"})

        def do_PUT(self):
            url = urlparse(self.path)
            if url.path.startswith("/lfs-upload/"):
                data = self._body()
                oid = url.path.rsplit("/", 1)[1]
                if hashlib.sha256(data).hexdigest() != oid:
                    return self._send(400, {"error": "sha256 mismatch"})
                hub.lfs[oid] = data
                return self._send(200, b"")
            return self._send(404, {"error": "not found"})

        # ---- route bodies
        def _api_get(self, match, query):
            repo = self._repo(match["kind"], match["ns"], match["name"])
            if repo is None:
                return None
            rest = match["rest"] or ""
            if rest in ("", "/") or rest.startswith("/revision/"):
                revision = rest.split("/", 2)[2] if rest.startswith("/revision/") else "main"
                return self._info(repo, revision)
            if rest == "/refs":
                branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c}
                            for n, c in repo.refs.items() if n not in repo.tags]
                tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": repo.refs[n]} for n in sorted(repo.tags)]
                return self._send(200, {"branches": branches, "tags": tags, "converts": []})
            if rest.startswith("/commits/"):
                commit = repo.resolve(rest.split("/", 2)[2])
                history = repo.commits[: repo.commits.index(commit) + 1][::-1]
                return self._send(200, [{"id": c.id, "title": c.message, "message": c.message, "authors": [],
                                         "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(c.date))}
                                        for c in history])
            if rest.startswith("/tree/"):
                parts = rest.split("/", 3)
                commit = repo.resolve(parts[2])
                if commit is None:
                    return self._send(404, {"error": "Revision not found"}, error_code="RevisionNotFound")
                prefix = (parts[3].rstrip("/") + "/") if len(parts) > 3 and parts[3] else ""
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._send(200, _tree(commit, prefix, recursive))
            return self._send(404, {"error": f"unknown route {rest}"})

        def _info(self, repo: Repo, revision: str):
            commit = repo.resolve(revision)
            if commit is None:
                return self._send(404, {"error": f"Invalid rev id: {revision}"}, error_code="RevisionNotFound")
            card = {}
            readme = commit.files.get("README.md")
            if readme and readme.data.startswith(b"---"):
                import yaml

                card = yaml.safe_load(readme.data.decode().split("---")[1]) or {}
            siblings = [{"rfilename": p, "size": len(b.data), "blobId": git_sha1(b.data),
                         **({"lfs": {"sha256": hashlib.sha256(b.data).hexdigest(), "size": len(b.data),
                                     "pointerSize": 134}} if b.lfs else {})} for p, b in sorted(commit.files.items())]
            info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.id, "private": repo.private,
                    "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                    "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
                    "siblings": siblings, "cardData": card}
            if repo.repo_type == "space":
                info.update(sdk=card.get("sdk", "gradio"), runtime={"stage": "BUILDING"})
            return self._send(200, info)

        def _preupload(self, repo: Repo, revision: str, payload: dict):
            commit = repo.resolve(revision)
            files = []
            for f in payload["files"]:
                lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10_000_000
                existing = commit.files.get(f["path"]) if commit else None
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                              "oid": existing.oid if existing and existing.lfs == lfs else None})
            return self._send(200, {"files": files, "commitOid": commit.id if commit else None})

        def _validate_yaml(self, payload: dict):
            import yaml

            try:
                yaml.safe_load(payload["content"].split("---")[1])
            except (yaml.YAMLError, IndexError) as exc:
                return self._send(400, {"error": f"invalid YAML front matter: {exc}"})
            return self._send(200, {"errors": [], "warnings": []})

        def _lfs_batch(self, payload: dict):
            if not self._authorized():
                return self._deny()
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                                        "verify": {"href": f"{hub.url}/lfs-verify", "header": {}}}
                objects.append(entry)
            return self._send(200, {"transfer": "basic", "objects": objects},
                              headers={"Content-Type": "application/vnd.git-lfs+json"})

        def _resolve(self, head: bool):
            match = _RESOLVE.match(urlparse(self.path).path)
            if not match:
                return self._send(404, {"error": "not found"}, head=head)
            repo = self._repo(match["kind"] or "models", match["ns"], match["name"])
            if repo is None:
                return None
            commit = repo.resolve(match["rev"])
            if commit is None:
                return self._send(404, {"error": "Revision not found"}, error_code="RevisionNotFound", head=head)
            path = unquote(match["path"])
            blob = commit.files.get(path)
            if blob is None:
                return self._send(404, {"error": "Entry not found"}, error_code="EntryNotFound", head=head)
            data, status = blob.data, 200
            headers = {"X-Repo-Commit": commit.id, "ETag": f'"{git_sha1(blob.data)}"', "Accept-Ranges": "bytes"}
            if blob.lfs:
                headers.update({"X-Linked-Etag": f'"{hashlib.sha256(blob.data).hexdigest()}"',
                                "X-Linked-Size": str(len(blob.data))})
            byte_range = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if byte_range:
                start = int(byte_range[1])
                end = int(byte_range[2]) if byte_range[2] else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start:end + 1], 206
            return self._send(status, data, headers=headers, head=head)

    return Handler


def _tree(commit: Commit, prefix: str, recursive: bool) -> list[dict]:
    entries, folders = [], set()
    for path, blob in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        if "/" in rest and not recursive:
            folders.add(prefix + rest.split("/", 1)[0])
            continue
        if recursive:
            parts = rest.split("/")[:-1]
            folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
        entries.append(blob.entry(path))
    return [{"type": "directory", "path": f, "oid": git_sha1(f.encode())} for f in sorted(folders)] + entries
