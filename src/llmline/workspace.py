"""A workspace: ``llmline.yaml`` plus the ``.llmline/`` state folder beside it."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from llmline.errors import UserError, WorkspaceNotFoundError
from llmline.settings import CONFIG_FILE, STATE_DIR, Settings

if TYPE_CHECKING:
    from llmline.storage.artifacts import ArtifactStore
    from llmline.storage.db import MetadataStore
    from llmline.warehouse import Warehouse

__all__ = ["ENV_WORKSPACE", "Workspace", "find_workspace", "init_workspace"]

ENV_WORKSPACE = "LLMLINE_WORKSPACE"


class Workspace:
    """Settings and the stores they point at, opened lazily."""

    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings or Settings.load(self.root)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    # The stores import SQLAlchemy/Alembic, fsspec and DuckDB: opened on first
    # use so that `llmline --help` and light commands start quickly.
    @cached_property
    def metadata(self) -> MetadataStore:
        from llmline.storage.db import MetadataStore

        return MetadataStore(self.settings.metadata_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from llmline.storage.artifacts import ArtifactStore

        return ArtifactStore(self.settings.artifact_root)

    def warehouse(self, *, read_only: bool = False) -> Warehouse:
        """A new warehouse connection; close it (or use ``with``) when done."""
        from llmline.warehouse import connect

        return connect(self.settings.warehouse_url, read_only=read_only)

    def close(self) -> None:
        if "metadata" in self.__dict__:
            self.metadata.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def find_workspace(start: Path | str | None = None) -> Workspace:
    """The workspace named by ``start`` or ``$LLMLINE_WORKSPACE``, else the
    nearest folder holding ``llmline.yaml`` from the current directory up."""
    explicit = start if start is not None else os.environ.get(ENV_WORKSPACE)
    if explicit:
        root = Path(explicit).expanduser()
        if not (root / CONFIG_FILE).is_file():
            raise WorkspaceNotFoundError(f"{root} is not an llmline workspace (no {CONFIG_FILE})")
        return Workspace(root)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return Workspace(folder)
    raise WorkspaceNotFoundError(
        f"no {CONFIG_FILE} in {here} or any parent; run `llmline init` first"
    )


def init_workspace(directory: Path | str = ".", *, load_sample_data: bool = True) -> Workspace:
    """Create ``llmline.yaml`` and ``.llmline/``; migrate the metadata store;
    load the shipped CPython FAQ and the default prompt template.

    Running it again on an existing workspace is safe: it only fills in what
    is missing.
    """
    root = Path(directory).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    config = root / CONFIG_FILE
    if not config.exists():
        _write_atomic(config, default_config_text())
    (root / STATE_DIR).mkdir(exist_ok=True)
    _write_atomic(root / STATE_DIR / ".gitignore", "*\n")
    workspace = Workspace(root)
    workspace.metadata.upgrade()
    from llmline.bootstrap import seed_workspace

    seed_workspace(workspace, load_sample_data=load_sample_data)
    return workspace


def default_config_text() -> str:
    body = {
        "metadata_url": f"sqlite:///{STATE_DIR}/metadata.db",
        "artifact_root": f"{STATE_DIR}/artifacts",
        "warehouse_url": f"duckdb:///{STATE_DIR}/warehouse.duckdb",
        "sql_dialect": "bigquery",
        "datasets": {
            "python-faq": {
                "description": "Python questions with their accepted answers, for tuning",
                "template": "stackoverflow-python@production",
            }
        },
    }
    header = (
        "# llmline workspace settings. Every key can be overridden by an\n"
        "# LLMLINE_<KEY> environment variable (e.g. LLMLINE_METADATA_URL).\n"
        "# Relative paths are relative to this file's folder.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
