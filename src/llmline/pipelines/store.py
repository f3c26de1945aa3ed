"""Pipeline runs and their steps in the metadata store."""

from __future__ import annotations

import difflib
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from llmline.errors import NotFoundError
from llmline.storage.db import MetadataStore
from llmline.storage.models import utcnow
from llmline.storage.pipeline_tables import PipelineRun, PipelineStep

__all__ = ["RunInfo", "RunStore", "StepInfo"]


@dataclass(frozen=True)
class StepInfo:
    name: str
    status: str  # succeeded | failed
    cached: bool
    duration_s: float
    outputs: dict[str, Any]
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "cached": self.cached,
            "duration_s": self.duration_s,
            "outputs": self.outputs,
            "started_at": self.started_at.isoformat(),
        }


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    pipeline: str
    status: str  # running | succeeded | failed | interrupted
    parameters: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    root: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepInfo] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def cache_hits(self) -> int:
        return sum(step.cached for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": self.duration_s,
            "cache_hits": self.cache_hits,
            "parameters": self.parameters,
            "outputs": self.outputs,
            "error": self.error,
            "root": self.root,
            "steps": [step.to_dict() for step in self.steps],
        }


class RunStore:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def start(self, run_id: str, pipeline: str, parameters: dict[str, Any], root: str) -> None:
        with self.metadata.session() as session:
            session.add(
                PipelineRun(
                    run_id=run_id,
                    pipeline=pipeline,
                    status="running",
                    parameters=parameters,
                    outputs={},
                    root=root,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=utcnow(),
                )
            )

    def add_step(
        self,
        run_id: str,
        name: str,
        *,
        status: str,
        cached: bool,
        duration_s: float,
        outputs: dict[str, Any],
        started_at: datetime,
    ) -> None:
        with self.metadata.session() as session:
            run = self._row(session, run_id)
            session.add(
                PipelineStep(
                    run_pk=run.id,
                    name=name,
                    status=status,
                    cached=cached,
                    duration_s=duration_s,
                    outputs=outputs,
                    started_at=started_at,
                )
            )

    def finish(
        self, run_id: str, status: str, *, outputs: dict[str, Any], error: str | None = None
    ) -> RunInfo:
        with self.metadata.session() as session:
            run = self._row(session, run_id)
            run.status = status
            run.outputs = outputs
            run.error = error
            run.finished_at = utcnow()
            session.flush()
            return _info(run)

    def get(self, run_id: str) -> RunInfo:
        with self.metadata.read_session() as session:
            return _info(self._row(session, run_id))

    def list(self, pipeline: str | None = None) -> list[RunInfo]:
        """Runs, oldest first."""
        with self.metadata.read_session() as session:
            query = select(PipelineRun).order_by(PipelineRun.id)
            if pipeline is not None:
                query = query.where(PipelineRun.pipeline == pipeline)
            return [_info(row) for row in session.scalars(query)]

    @staticmethod
    def _row(session: Any, run_id: str) -> PipelineRun:
        row = session.scalar(select(PipelineRun).where(PipelineRun.run_id == run_id))
        if row is None:
            if run_id == "latest":
                row = session.scalar(select(PipelineRun).order_by(PipelineRun.id.desc()))
                if row is not None:
                    return row  # type: ignore[no-any-return]
            known = session.scalars(select(PipelineRun.run_id)).all()
            close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotFoundError(f"no pipeline run {run_id!r}{hint}")
        return row  # type: ignore[no-any-return]


def _info(row: PipelineRun) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        pipeline=row.pipeline,
        status=_live_status(row),
        parameters=dict(row.parameters or {}),
        outputs=dict(row.outputs or {}),
        error=row.error,
        root=row.root,
        started_at=row.started_at,
        finished_at=row.finished_at,
        steps=[
            StepInfo(
                name=s.name,
                status=s.status,
                cached=s.cached,
                duration_s=s.duration_s,
                outputs=dict(s.outputs or {}),
                started_at=s.started_at,
            )
            for s in row.steps
        ],
    )


def _live_status(row: PipelineRun) -> str:
    """A ``running`` row whose process is gone was killed: say so."""
    if row.status != "running" or row.host != socket.gethostname():
        return row.status
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return "interrupted"
    except PermissionError:
        pass  # alive, another user's
    return row.status
