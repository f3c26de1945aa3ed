"""The artifact store: content-addressed blobs, and versions published in one step
(checked with a real process killed by SIGKILL before it publishes)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

import llmline
from llmline.storage.artifacts import STAGING, ArtifactStore, sha256_file

# A writer that stages a version, says so, then hangs before publishing:
# the test kills it there, as the OOM killer or a power cut would.
KILLED_WRITER = """
import sys, time
from llmline.storage.artifacts import ArtifactStore

store = ArtifactStore(sys.argv[1])
with store.stage() as staging:
    for i in range(20):
        (staging / f"part-{i}.txt").write_text("x" * 10_000)
    (staging / "manifest.json").write_text("{}")
    print("staged", flush=True)
    time.sleep(600)
    store.publish(staging, "datasets/faq/v1")
"""


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A private folder in fsspec's in-process ``memory://`` filesystem."""
    root = f"memory://llmline-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _blobs_on_disk(root: Path) -> list[Path]:
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


def test_put_blob_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    data = b"hello artifacts\n"
    digest = store.put_blob(data)
    assert digest == hashlib.sha256(data).hexdigest()
    blob = tmp_path / ArtifactStore.blob_path(digest)
    assert blob.read_bytes() == data
    assert sha256_file(blob) == digest
    mtime = blob.stat().st_mtime_ns

    assert store.put_blob(data) == digest  # again: same address, file untouched
    assert blob.stat().st_mtime_ns == mtime
    assert store.put_blob(b"other") != digest
    assert len(_blobs_on_disk(tmp_path)) == 2
    assert store.get_blob(digest) == data
    assert not list((tmp_path / STAGING).iterdir())  # no staging leftovers


def test_publish_moves_a_staged_version_into_place(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    with store.stage() as staging:
        (staging / "data.jsonl").write_text('{"q": 1}\n')
        (staging / "manifest.json").write_text("{}")
        assert not store.exists("datasets/faq/v1")  # invisible until published
        assert store.publish(staging, "datasets/faq/v1") is True
    assert store.read_bytes("datasets/faq/v1/data.jsonl") == b'{"q": 1}\n'
    assert (
        store.hash_file("datasets/faq/v1/data.jsonl") == hashlib.sha256(b'{"q": 1}\n').hexdigest()
    )
    assert not list((tmp_path / STAGING).iterdir())


def test_publish_to_an_existing_version_returns_false(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    for content in ("first", "second"):
        with store.stage() as staging:
            (staging / "manifest.json").write_text(content)
            published = store.publish(staging, "v1")
        assert published is (content == "first")
    assert store.read_bytes("v1/manifest.json") == b"first"


def test_killed_writer_leaves_no_version(tmp_path: Path) -> None:
    src = str(Path(llmline.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = ArtifactStore(str(tmp_path))
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "staged\n", child.communicate(timeout=30)
        # A live writer's staging folder is not swept from under it.
        assert store.remove_stale_staging() == 0
        assert len(list((tmp_path / STAGING).iterdir())) == 1
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    assert not store.exists("datasets/faq/v1")
    assert not (tmp_path / "datasets").exists()
    [leftover] = (tmp_path / STAGING).iterdir()  # the killed writer's folder
    assert len(list(leftover.iterdir())) == 21
    assert store.remove_stale_staging() == 1
    assert not list((tmp_path / STAGING).iterdir())
    assert store.remove_stale_staging() == 0


def test_memory_filesystem_blobs_and_publish(memory_root: str) -> None:
    store = ArtifactStore(memory_root)
    assert not store.is_local
    digest = store.put_blob(b"in memory")
    assert store.put_blob(b"in memory") == digest
    assert store.get_blob(digest) == b"in memory"
    assert store.uri(ArtifactStore.blob_path(digest)).startswith("memory://")

    with store.stage() as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "rows.jsonl").write_text("{}\n")
        (staging / "manifest.json").write_text('{"files": 1}')
        assert store.publish(staging, "datasets/faq/v1") is True
    assert not staging.exists()  # the local scratch folder is gone
    assert store.read_bytes("datasets/faq/v1/sub/rows.jsonl") == b"{}\n"
    assert store.read_bytes("datasets/faq/v1/manifest.json") == b'{"files": 1}'

    with store.stage() as staging:
        (staging / "manifest.json").write_text("{}")
        assert store.publish(staging, "datasets/faq/v1") is False
    assert store.read_bytes("datasets/faq/v1/manifest.json") == b'{"files": 1}'
    assert store.remove_stale_staging() == 0  # nothing to sweep on a remote store
