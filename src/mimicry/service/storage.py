"""A content-addressed store for uploads and model artifacts: written atomically, checked on read.

A blob lives at `blobs/<sha[:2]>/<sha>`, named by the SHA-256 of its bytes; it is written to a
temporary file and renamed, so a killed writer never leaves a half blob. A directory (a trained
adapter) is stored as its files' blobs plus a JSON manifest blob. Every read re-hashes, so a
corrupted artifact raises `CorruptArtifact` instead of being served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


class CorruptArtifact(Exception):
    """A stored blob no longer matches its checksum (or is missing)."""


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and _sha256_file(target) == digest:
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def put_file(self, path: Path) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def read(self, digest: str) -> bytes:
        target = self.path(digest)
        if not target.is_file():
            raise CorruptArtifact(f"blob {digest[:12]} is missing from the store")
        data = target.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptArtifact(f"blob {digest[:12]} fails its checksum")
        return data

    def put_dir(self, directory: Path) -> str:
        """Store every file under `directory`; returns the digest of the manifest."""
        directory = Path(directory)
        files = {str(p.relative_to(directory)): self.put_file(p) for p in sorted(directory.rglob("*")) if p.is_file()}
        return self.put_bytes(json.dumps({"files": files}, sort_keys=True).encode())

    def materialize(self, manifest: str, dest: Path) -> Path:
        """The stored directory at `dest`, every file checked; reused when already complete."""
        dest = Path(dest)
        done = dest / ".complete"
        if done.is_file() and done.read_text() == manifest:
            return dest
        files = json.loads(self.read(manifest))["files"]
        staging = Path(tempfile.mkdtemp(dir=dest.parent if dest.parent.exists() else None, prefix=".stage-"))
        try:
            for rel, digest in files.items():
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(self.read(digest))
            (staging / ".complete").write_text(manifest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def verify(self, manifest: str) -> None:
        for digest in json.loads(self.read(manifest))["files"].values():
            self.read(digest)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
