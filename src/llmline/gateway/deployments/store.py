"""Deployments in the metadata store: create, change, promote, history.

Every change bumps the row's ``revision``; a running gateway polls
:meth:`DeploymentStore.revisions` and rebuilds what changed, so the CLI (or
another gateway process) can switch strategies without a restart.
"""

from __future__ import annotations

import builtins
import difflib
import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select

from llmline.errors import NotFoundError, UserError
from llmline.gateway.deployments.spec import DeploymentSpec, DeploymentState
from llmline.storage.deployment_tables import Deployment, DeploymentEvent
from llmline.storage.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from llmline.storage.db import MetadataStore

__all__ = ["DeploymentEventInfo", "DeploymentInfo", "DeploymentStore", "parse_spec"]

# Changes the state of a deployment: (spec, current state) -> new state.
StateChange = Callable[[DeploymentSpec, DeploymentState], DeploymentState]


def parse_spec(data: Mapping[str, Any], *, where: str = "deployment") -> DeploymentSpec:
    """A :class:`DeploymentSpec` from plain data, or a one-line UserError."""
    try:
        return DeploymentSpec.model_validate(dict(data))
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            # A model validator's own words say what is wrong; pydantic's prefix adds nothing.
            text = str(err["msg"]).removeprefix("Value error, ")
            messages.append(f"{field}: {text}" if field else text)
        raise UserError(f"{where}: {'; '.join(messages)}") from None


@dataclass(frozen=True)
class DeploymentInfo:
    spec: DeploymentSpec
    state: DeploymentState
    revision: int
    source: str
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "source": self.source,
            "spec": self.spec.model_dump(mode="json"),
            "state": self.state.model_dump(mode="json"),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class DeploymentEventInfo:
    deployment: str
    action: str
    revision: int
    details: dict[str, Any]
    reason: str | None
    actor: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "action": self.action,
            "revision": self.revision,
            "details": self.details,
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
        }


class DeploymentStore:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def save(
        self,
        spec: DeploymentSpec,
        *,
        source: str = "cli",
        replace: bool = False,
        actor: str | None = None,
    ) -> tuple[DeploymentInfo, bool]:
        """Create the deployment, or (``replace``) change its spec.

        Returns ``(info, changed)``; saving an identical spec changes nothing.
        A new spec starts a fresh rollout (state reset), since the old
        state's indexes may name other models.
        """
        data = spec.model_dump(mode="json")
        with self._store.session() as session:
            row = _row(session, spec.name, missing_ok=True)
            if row is not None and not replace:
                raise UserError(
                    f"deployment {spec.name!r} already exists; use --replace to change it"
                )
            if row is not None and row.spec == data:
                return _info(row), False
            fresh = DeploymentState(reason="created" if row is None else "spec changed")
            if row is None:
                row = Deployment(name=spec.name, revision=0, source=source, spec=data)
                session.add(row)
            row.spec = data
            row.source = source
            row.state = fresh.model_dump(mode="json")
            action = "create" if row.revision == 0 else "update"
            _bump(session, row, action, actor, details={"spec": data})
            return _info(row), True

    def get(self, name: str) -> DeploymentInfo:
        with self._store.read_session() as session:
            row = _row(session, name)
            assert row is not None
            return _info(row)

    def list(self) -> list[DeploymentInfo]:
        with self._store.read_session() as session:
            rows = session.scalars(select(Deployment).order_by(Deployment.name)).all()
            return [_info(row) for row in rows]

    def revisions(self) -> dict[str, int]:
        """``{name: revision}``: what a gateway polls to notice changes."""
        with self._store.read_session() as session:
            rows = session.execute(select(Deployment.name, Deployment.revision)).all()
            return {str(name): int(revision) for name, revision in rows}

    def change_state(
        self,
        name: str,
        change: StateChange,
        *,
        action: str,
        actor: str | None = None,
        expect_revision: int | None = None,
    ) -> DeploymentInfo | None:
        """Apply ``change`` to the stored state in one transaction.

        With ``expect_revision`` (automatic canary decisions), nothing is
        written when the deployment changed meanwhile; returns None then.
        """
        with self._store.session() as session:
            row = _row(session, name)
            assert row is not None
            if expect_revision is not None and row.revision != expect_revision:
                return None
            spec = DeploymentSpec.model_validate(row.spec)
            before = DeploymentState.model_validate(row.state)
            after = change(spec, before)
            row.state = after.model_dump(mode="json")
            details = {"from": before.model_dump(mode="json"), "to": row.state}
            _bump(session, row, action, actor, details=details, reason=after.reason)
            return _info(row)

    def delete(self, name: str) -> None:
        with self._store.session() as session:
            row = _row(session, name)
            session.delete(row)

    def events(self, name: str) -> builtins.list[DeploymentEventInfo]:
        with self._store.read_session() as session:
            row = _row(session, name)
            assert row is not None
            events = session.scalars(
                select(DeploymentEvent)
                .where(DeploymentEvent.deployment_id == row.id)
                .order_by(DeploymentEvent.id)
            ).all()
            return [
                DeploymentEventInfo(
                    name, e.action, e.revision, e.details, e.reason, e.actor, e.created_at
                )
                for e in events
            ]


def _row(session: Session, name: str, *, missing_ok: bool = False) -> Deployment | None:
    row = session.scalars(select(Deployment).where(Deployment.name == name)).one_or_none()
    if row is None and not missing_ok:
        names = list(session.scalars(select(Deployment.name)).all())
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NotFoundError(f"no deployment named {name!r}{hint}")
    return row


def _bump(
    session: Session,
    row: Deployment,
    action: str,
    actor: str | None,
    *,
    details: dict[str, Any],
    reason: str | None = None,
) -> None:
    row.revision += 1
    row.updated_at = utcnow()
    session.flush()  # a new row needs its id for the event
    session.add(
        DeploymentEvent(
            deployment_id=row.id,
            action=action,
            revision=row.revision,
            details=details,
            reason=reason,
            actor=actor or _default_actor(),
        )
    )


def _default_actor() -> str:
    try:
        return os.environ.get("LLMLINE_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _info(row: Deployment) -> DeploymentInfo:
    return DeploymentInfo(
        spec=DeploymentSpec.model_validate(row.spec),
        state=DeploymentState.model_validate(row.state),
        revision=row.revision,
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
