"""The artifact store: content-addressed blobs and versioned folders over fsspec.

A version is written into a private staging folder and published in one step:
a rename on local disks (atomic), or an upload that puts ``manifest.json``
last on object stores.  The metadata store row is the commit point, so a
killed process never leaves a version that anything lists; the staging
folders it leaves are swept by the next writer.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec

from llmline.storage.scratch import scratch_dir, sweep

__all__ = ["ArtifactStore", "sha256_file"]

STAGING = ".staging"
CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Files under one root: a local folder or any fsspec URL."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol

    # -- paths ---------------------------------------------------------------
    def uri(self, relpath: str) -> str:
        """Address of ``relpath`` as users see it (a path or a URL)."""
        return f"{self.root}/{relpath}"

    def _path(self, relpath: str) -> str:
        return f"{self._base}/{relpath}"

    def exists(self, relpath: str) -> bool:
        return bool(self.fs.exists(self._path(relpath)))

    def open(self, relpath: str, mode: str = "rb") -> IO[Any]:
        return self.fs.open(self._path(relpath), mode)  # type: ignore[no-any-return]

    def read_bytes(self, relpath: str) -> bytes:
        with self.open(relpath) as fh:
            data: bytes = fh.read()
        return data

    def hash_file(self, relpath: str) -> str:
        digest = hashlib.sha256()
        with self.open(relpath) as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    # -- content-addressed blobs ---------------------------------------------
    def put_blob(self, data: bytes) -> str:
        """Store ``data`` once under its sha256; return the digest."""
        digest = hashlib.sha256(data).hexdigest()
        relpath = self.blob_path(digest)
        if not self.exists(relpath):
            with self.stage() as staging:
                (staging / "blob").write_bytes(data)
                self._publish_file(staging / "blob", relpath)
        return digest

    def get_blob(self, digest: str) -> bytes:
        return self.read_bytes(self.blob_path(digest))

    @staticmethod
    def blob_path(digest: str) -> str:
        return f"blobs/sha256/{digest[:2]}/{digest}"

    # -- versioned folders ---------------------------------------------------
    @contextmanager
    def stage(self) -> Iterator[Path]:
        """A private local folder to write a version into; removed afterwards."""
        # Local stores stage beside the versions, so publishing is a rename
        # on the same filesystem; remote stores stage in the system temp dir.
        parent = Path(self._path(STAGING)) if self.is_local else Path(tempfile.gettempdir())
        with scratch_dir(parent) as staging:
            yield staging

    def publish(self, staging: Path, relpath: str) -> bool:
        """Make ``staging`` visible at ``relpath``; False if it already exists."""
        if self.exists(relpath):
            return False
        if self.is_local:
            target = Path(self._path(relpath))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    return False
                raise
            return True
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        # Object stores have no rename: upload the manifest last so that a
        # reader who sees it sees every file it lists.
        files.sort(key=lambda p: p.name == "manifest.json")
        for path in files:
            self.fs.put_file(str(path), self._path(f"{relpath}/{path.relative_to(staging)}"))
        return True

    def _publish_file(self, source: Path, relpath: str) -> None:
        if self.is_local:
            target = Path(self._path(relpath))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        else:
            self.fs.put_file(str(source), self._path(relpath))

    def remove_stale_staging(self) -> int:
        """Delete staging folders left by killed processes; return how many."""
        return sweep(Path(self._path(STAGING))) if self.is_local else 0
