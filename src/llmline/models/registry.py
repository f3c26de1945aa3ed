"""The model registry: named models, immutable numbered versions, movable
aliases, and an audit trail of every alias move.

References look like ``name`` or ``name@latest`` (newest version),
``name@3`` (version 3) or ``name@champion`` (an alias).  The ``champion``
alias is special: only :meth:`ModelRegistry.promote` (gated) and
:meth:`ModelRegistry.rollback` move it, and both leave a ``model_events`` row.
"""

from __future__ import annotations

import builtins
import difflib
import getpass
import os
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmline.errors import NotFoundError
from llmline.models.errors import GateFailedError, ModelError
from llmline.models.gates import Gate, GateFailure, check_gates
from llmline.models.info import (
    CHAMPION,
    GateCheck,
    ModelEventInfo,
    ModelKind,
    ModelRef,
    ModelVersionInfo,
    Promotion,
    Publisher,
    check_model_name,
    folder_publisher,
)
from llmline.storage.db import MetadataStore
from llmline.storage.lineage import ArtifactRef, add_edge
from llmline.storage.model_tables import Model, ModelAlias, ModelEvent, ModelVersion
from llmline.storage.models import utcnow

# The values are defined in llmline.models.info; importing them from here works too.
__all__ = [
    "CHAMPION",
    "GateCheck",
    "ModelEventInfo",
    "ModelKind",
    "ModelRef",
    "ModelRegistry",
    "ModelVersionInfo",
    "Promotion",
    "Publisher",
    "folder_publisher",
]

_KINDS = ("base", "tuned")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
_PUBLISH_ATTEMPTS = 100


class ModelRegistry:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- versions ------------------------------------------------------------
    def register(
        self,
        name: str,
        *,
        kind: ModelKind,
        uri: str | Publisher,
        format: str,
        source: str,
        base: str | None = None,
        metadata: dict[str, Any] | None = None,
        content_hash: str | None = None,
        description: str = "",
    ) -> ModelVersionInfo:
        """Add a version; with ``content_hash``, return the existing version of
        this model with the same hash instead (its ``created`` is False).

        ``uri`` is the version's artifact folder, or a :data:`Publisher` that
        publishes a staged folder under the version number the registry picks
        (inside the registering transaction, so a number is never handed out
        twice) and returns its URI.
        """
        _validate_register(name, kind, format, base)
        try:
            with self.store.session() as session:
                model = _get_or_create_model(session, name, kind, description)
                if content_hash is not None:
                    existing = _by_hash(session, model.id, content_hash)
                    if existing is not None:
                        return _info(session, existing)
                base_row = _resolve(session, ModelRef.parse(base)) if base else None
                number, where = _claim_version(session, model.id, uri)
                row = ModelVersion(
                    model=model,
                    version=number,
                    uri=where,
                    base=base_row,
                    format=format,
                    source=source,
                    content_hash=content_hash,
                    meta=dict(metadata or {}),
                    created_at=utcnow(),
                )
                session.add(row)
                session.flush()
                _add_lineage(session, row, base_row)
                return _info(session, row, created=True)
        except IntegrityError:
            # Another process registered the same content (or name) at once.
            if content_hash is not None and (found := self.find_by_hash(name, content_hash)):
                return found
            raise ModelError(f"model {name!r} changed while registering; retry") from None

    def find_by_hash(self, name: str, content_hash: str) -> ModelVersionInfo | None:
        with self.store.read_session() as session:
            model = session.scalar(select(Model).where(Model.name == name))
            row = _by_hash(session, model.id, content_hash) if model else None
            return _info(session, row) if row else None

    def get(self, ref: str | ModelRef) -> ModelVersionInfo:
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.store.read_session() as session:
            return _info(session, _resolve(session, ref))

    def versions(self, name: str) -> list[ModelVersionInfo]:
        with self.store.read_session() as session:
            return [_info(session, v) for v in _model(session, name).versions]

    def list(self) -> list[ModelVersionInfo]:
        """The latest version of every model, by name."""
        with self.store.read_session() as session:
            newest = (
                select(ModelVersion.model_id, func.max(ModelVersion.version).label("top"))
                .group_by(ModelVersion.model_id)
                .subquery()
            )
            rows = session.scalars(
                select(ModelVersion)
                .join(Model)
                .join(
                    newest,
                    (newest.c.model_id == ModelVersion.model_id)
                    & (newest.c.top == ModelVersion.version),
                )
                .order_by(Model.name)
            ).all()
            return [_info(session, row) for row in rows]

    def metrics_gate(self, gates: Sequence[Gate]) -> GateCheck:
        """A :data:`GateCheck` over the metrics stored with the versions:
        ``metadata["metrics"]`` of the candidate, and of its base for gates
        relative to the base.  An evaluation stage can pass its own check."""

        def check(candidate: ModelVersionInfo) -> builtins.list[GateFailure]:
            base_metrics = (
                self.get(candidate.base).metadata.get("metrics") if candidate.base else None
            )
            return check_gates(gates, candidate.metadata.get("metrics") or {}, base_metrics)

        return check

    # -- aliases -------------------------------------------------------------
    def set_alias(
        self, ref: str, alias: str, *, reason: str | None = None, actor: str | None = None
    ) -> ModelVersionInfo:
        """Point ``alias`` of the model at the version ``ref`` names."""
        if not _ALIAS.match(alias) or alias == "latest":
            raise ModelError(f"invalid alias {alias!r}: a letter, then letters, digits, - and _")
        if alias == CHAMPION:
            raise ModelError(
                f"alias {CHAMPION!r} moves only by promotion (gated) or rollback: "
                "use `llmline models promote`"
            )
        with self.store.session() as session:
            version = _resolve(session, ModelRef.parse(ref))
            previous = _move_alias(session, version, alias)
            if previous != version.version:
                _record(
                    session,
                    version,
                    action="alias",
                    alias=alias,
                    previous=previous,
                    reason=reason,
                    actor=actor,
                )
            return _info(session, version)

    def promote(
        self,
        ref: str,
        *,
        gates: GateCheck | Sequence[GateFailure] | None = None,
        force: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Promotion:
        """Make the version ``ref`` names the model's ``champion``.

        ``gates`` is a :data:`GateCheck` or the failures of gates already
        checked.  Any failure refuses the promotion with
        :class:`GateFailedError`, unless ``force`` (which needs a ``reason``;
        both are recorded in the audit trail).
        """
        if force and not (reason and reason.strip()):
            raise ModelError("a forced promotion needs a reason (--reason TEXT)")
        candidate = self.get(ref)
        # Gates run outside the write transaction: they may be slow, and a
        # SQLite write lock held meanwhile would stall every other writer.
        failures = list(gates(candidate) if callable(gates) else (gates or []))
        if not all(isinstance(f, GateFailure) for f in failures):
            raise TypeError(
                "gates must be a GateCheck or GateFailure results; "
                "for Gate thresholds pass registry.metrics_gate(gates)"
            )
        if failures and not force:
            raise GateFailedError(candidate.ref, failures)
        action = "force-promote" if force else "promote"
        with self.store.session() as session:
            version = _resolve(session, ModelRef(candidate.name, str(candidate.version)))
            previous = _move_alias(session, version, CHAMPION)
            changed = previous != version.version
            if changed:
                details = {"failures": [f.to_dict() for f in failures]}
                _record(
                    session,
                    version,
                    action=action,
                    alias=CHAMPION,
                    previous=previous,
                    reason=reason,
                    actor=actor,
                    details=details,
                )
            return Promotion(_info(session, version), previous, action, changed, failures)

    def rollback(
        self, name: str, *, reason: str | None = None, actor: str | None = None
    ) -> Promotion:
        """Move ``champion`` back to the champion before the current one."""
        with self.store.session() as session:
            model = _model(session, name)
            history = _champion_history(session, model.id)
            if len(history) < 2:
                raise ModelError(f"model {name!r} has no earlier champion to roll back to")
            target = history[-2]
            version = session.scalar(
                select(ModelVersion).where(
                    ModelVersion.model_id == model.id, ModelVersion.version == target
                )
            )
            if version is None:
                raise NotFoundError(f"earlier champion {name}@{target} no longer exists")
            previous = _move_alias(session, version, CHAMPION)
            _record(
                session,
                version,
                action="rollback",
                alias=CHAMPION,
                previous=previous,
                reason=reason,
                actor=actor,
            )
            return Promotion(_info(session, version), previous, "rollback", changed=True)

    def events(self, name: str) -> builtins.list[ModelEventInfo]:
        """The audit trail of the model's alias moves, oldest first."""
        with self.store.read_session() as session:
            model = _model(session, name)
            rows = session.scalars(
                select(ModelEvent).where(ModelEvent.model_id == model.id).order_by(ModelEvent.id)
            )
            return [
                ModelEventInfo(
                    model=name,
                    action=e.action,
                    alias=e.alias,
                    from_version=e.from_version,
                    to_version=e.to_version,
                    reason=e.reason,
                    actor=e.actor,
                    details=dict(e.details or {}),
                    created_at=e.created_at,
                )
                for e in rows
            ]


# -- helpers -----------------------------------------------------------------
def _validate_register(name: str, kind: str, format: str, base: str | None) -> None:
    check_model_name(name)
    if kind not in _KINDS:
        raise ModelError(f"invalid model kind {kind!r}: one of {', '.join(_KINDS)}")
    if not format:
        raise ModelError("a model version needs a format (e.g. hf-safetensors, peft-lora)")
    if kind == "tuned" and not base:
        raise ModelError(f"tuned model {name!r} needs the base version it was tuned from")


def _get_or_create_model(session: Session, name: str, kind: str, description: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        model = Model(name=name, kind=kind, description=description, created_at=utcnow())
        session.add(model)
        session.flush()
    elif model.kind != kind:
        raise ModelError(f"model {name!r} is a {model.kind} model, not {kind}")
    return model


def _claim_version(session: Session, model_id: int, uri: str | Publisher) -> tuple[int, str]:
    top = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
    )
    version = (top or 0) + 1
    if isinstance(uri, str):
        return version, uri
    # A folder without a row is left by a killed process: skip its number.
    for candidate in range(version, version + _PUBLISH_ATTEMPTS):
        published = uri(candidate)
        if published is not None:
            return candidate, published
    raise ModelError(f"no free version folder after version {version - 1}; clean up stale ones")


def _by_hash(session: Session, model_id: int, content_hash: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model_id, ModelVersion.content_hash == content_hash
        )
    )


def _add_lineage(session: Session, row: ModelVersion, base: ModelVersion | None) -> None:
    me = ArtifactRef("model", f"{row.model.name}@{row.version}")
    if base is not None:
        add_edge(session, ArtifactRef("model", f"{base.model.name}@{base.version}"), me, "base_of")
    # Metadata keys that name upstream artifacts, and the lineage kind of each.
    for key, kind, relation in (
        ("run", "run", "produced"),
        ("dataset", "dataset", "trained"),
        ("template", "prompt", "formatted"),
    ):
        ref = _named_ref(row.meta.get(key))
        if ref:
            add_edge(session, ArtifactRef(kind, ref), me, relation)


def _named_ref(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("ref"), str):
        return str(value["ref"]) or None
    return None


def _model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        names = session.scalars(select(Model.name)).all()
        raise NotFoundError(f"no model named {name!r}{_suggest(name, names)}")
    return model


def _resolve(session: Session, ref: ModelRef) -> ModelVersion:
    model = _model(session, ref.name)
    selector = ref.selector
    if selector is None or selector == "latest":
        version = model.versions[-1] if model.versions else None
        if version is None:
            raise NotFoundError(f"model {ref.name!r} has no versions")
        return version
    if selector.isdigit():
        for version in model.versions:
            if version.version == int(selector):
                return version
        numbers = ", ".join(str(v.version) for v in model.versions) or "none"
        raise NotFoundError(f"model {ref.name!r} has no version {selector} (versions: {numbers})")
    for alias in model.aliases:
        if alias.alias == selector:
            return alias.target
    known = [a.alias for a in model.aliases]
    raise NotFoundError(
        f"model {ref.name!r} has no alias {selector!r}{_suggest(selector, [*known, 'latest'])}"
    )


def _suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _move_alias(session: Session, version: ModelVersion, alias: str) -> int | None:
    """Point ``alias`` at ``version``; return the version number it pointed at."""
    row = session.scalar(
        select(ModelAlias).where(ModelAlias.model_id == version.model_id, ModelAlias.alias == alias)
    )
    if row is None:
        session.add(
            ModelAlias(
                model_id=version.model_id, alias=alias, version_id=version.id, updated_at=utcnow()
            )
        )
        session.flush()
        return None
    previous = row.target.version
    if row.version_id != version.id:
        row.version_id = version.id
        row.updated_at = utcnow()
        session.flush()
        session.expire(row, ["target"])
    return previous


def _champion_history(session: Session, model_id: int) -> list[int]:
    """Champion versions as a stack: promotions push, rollbacks pop."""
    stack: list[int] = []
    events = session.scalars(
        select(ModelEvent)
        .where(ModelEvent.model_id == model_id, ModelEvent.alias == CHAMPION)
        .order_by(ModelEvent.id)
    )
    for event in events:
        if event.action == "rollback":
            if stack:
                stack.pop()
        elif event.to_version is not None:
            stack.append(event.to_version)
    return stack


def _record(
    session: Session,
    version: ModelVersion,
    *,
    action: str,
    alias: str,
    previous: int | None,
    reason: str | None,
    actor: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        ModelEvent(
            model_id=version.model_id,
            version_id=version.id,
            action=action,
            alias=alias,
            from_version=previous,
            to_version=version.version,
            reason=reason,
            actor=actor or _default_actor(),
            details=details or {},
            created_at=utcnow(),
        )
    )


def _default_actor() -> str:
    try:
        return os.environ.get("LLMLINE_ACTOR") or getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "unknown"


def _info(session: Session, version: ModelVersion, *, created: bool = False) -> ModelVersionInfo:
    aliases = session.scalars(
        select(ModelAlias.alias)
        .where(ModelAlias.version_id == version.id)
        .order_by(ModelAlias.alias)
    ).all()
    base = version.base
    return ModelVersionInfo(
        name=version.model.name,
        version=version.version,
        kind=version.model.kind,
        format=version.format,
        uri=version.uri,
        source=version.source,
        base=f"{base.model.name}@{base.version}" if base else None,
        content_hash=version.content_hash,
        metadata=dict(version.meta or {}),
        created_at=version.created_at,
        description=version.model.description,
        aliases=list(aliases),
        created=created,
    )
