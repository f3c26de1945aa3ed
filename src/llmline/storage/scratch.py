"""Private scratch folders that a killed process cannot leave behind for long.

Each folder's name starts with the owning process id; :func:`sweep` removes
the folders of processes that no longer run.  Used for artifact staging and
for a build's working files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["scratch_dir", "sweep"]


@contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A new folder under ``parent``, removed on exit (whatever happens)."""
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{os.getpid()}-{uuid.uuid4().hex}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep(parent: Path) -> int:
    """Remove scratch folders whose process is gone; return how many."""
    removed = 0
    if not parent.is_dir():
        return 0
    for entry in parent.iterdir():
        pid_text = entry.name.split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
