"""User feedback on gateway responses: the start of the data flywheel.

A client sends feedback on a response by its id (the ``id`` of the OpenAI
response, which is the ``request_id`` of the request log): a rating
(1-5, or thumbs ``up``/``down``, stored as 5 and 1 so that one threshold
reads both scales), a comment, and a corrected answer.  Reviewers accept or
reject it; accepted corrections and highly rated answers become the next
dataset version (:mod:`llmline.data.feedback_dataset`).

Submitting is idempotent: the same feedback (same response, sender and
content) sent twice is stored once, and the second call gets the stored row
back.  A response is known as soon as the gateway answered it: the request
log writes its row a fraction of a second later, and until then the
record is in the log's journal, which is consulted too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from llmline.errors import NotFoundError, UserError
from llmline.storage.feedback_tables import FeedbackRow
from llmline.storage.models import utcnow
from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from llmline.workspace import Workspace

__all__ = [
    "MAX_COMMENT_CHARS",
    "MAX_CORRECTION_CHARS",
    "STATUSES",
    "THUMBS",
    "FeedbackError",
    "FeedbackInfo",
    "RequestSummary",
    "export_feedback",
    "find_request",
    "get_feedback",
    "list_feedback",
    "parse_since",
    "review_feedback",
    "submit_feedback",
]

Status = Literal["new", "accepted", "rejected"]
Scale = Literal["5", "thumbs"]
STATUSES: tuple[Status, ...] = ("new", "accepted", "rejected")
# Thumbs map onto the ends of the 1-5 scale: "rating >= 4" selects thumbs up too.
THUMBS = {"up": 5, "down": 1}
MAX_COMMENT_CHARS = 4000
# The default dataset length bound: an accepted correction is never too long to train on.
MAX_CORRECTION_CHARS = 8000
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_DURATION = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FeedbackError(UserError, ValueError):
    """Feedback that cannot be stored as sent; ``param`` names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class RequestSummary:
    """What feedback needs to know about the response it is about."""

    request_id: str
    deployment: str | None
    key_id: str | None
    stored: bool  # False: still only in the request log's journal


@dataclass(frozen=True)
class FeedbackInfo:
    feedback_id: str
    request_id: str
    created_at: datetime
    status: Status
    rating: int | None = None
    rating_scale: Scale | None = None
    comment: str | None = None
    correction: str | None = None
    key_id: str | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The response it rates (question, answer, deployment...), when asked for.
    request: dict[str, Any] | None = None

    @property
    def thumbs(self) -> str | None:
        if self.rating_scale != "thumbs" or self.rating is None:
            return None
        return "up" if self.rating >= THUMBS["up"] else "down"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feedback_id": self.feedback_id,
            "request_id": self.request_id,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "rating": self.rating,
            "rating_scale": self.rating_scale,
            "thumbs": self.thumbs,
            "comment": self.comment,
            "correction": self.correction,
            "key_id": self.key_id,
            "user": self.user,
            "extra": self.extra,
        }
        if self.request is not None:
            out["request"] = self.request
        return out


# -- submitting ------------------------------------------------------------------------


def submit_feedback(
    workspace: Workspace,
    request_id: str,
    *,
    rating: int | str | None = None,
    scale: str | None = None,
    comment: str | None = None,
    correction: str | None = None,
    key_id: str | None = None,
    user: str | None = None,
) -> tuple[FeedbackInfo, bool]:
    """Store feedback on response ``request_id``: ``(info, created)``.

    ``rating`` is 1-5 or ``"up"``/``"down"`` (``scale`` is inferred, or
    must agree: ``"5"`` or ``"thumbs"``).  The same feedback sent again
    returns the stored row and ``created=False``.  An unknown response id
    raises :class:`~llmline.errors.NotFoundError`; bad values
    :class:`FeedbackError`.
    """
    request_id = check_request_id(request_id)
    value, rating_scale = _rating(rating, scale)
    comment = _text(comment, "comment", MAX_COMMENT_CHARS)
    correction = _text(correction, "correction", MAX_CORRECTION_CHARS)
    if value is None and comment is None and correction is None:
        raise FeedbackError(
            "feedback needs a rating, a comment or a correction (none was given)", param="rating"
        )
    if find_request(workspace, request_id) is None:
        raise _unknown(request_id)
    fingerprint = _fingerprint(request_id, key_id, user, value, rating_scale, comment, correction)
    row = {
        "feedback_id": f"fb-{uuid.uuid4().hex}",
        "request_id": request_id,
        "fingerprint": fingerprint,
        "created_at": utcnow(),
        "key_id": key_id,
        "user": user,
        "rating": value,
        "rating_scale": rating_scale,
        "comment": comment,
        "correction": correction,
        "status": "new",
        "extra": {},
    }
    with workspace.metadata.session() as session:
        # INSERT ... ON CONFLICT DO NOTHING: two identical submissions racing
        # each other store one row, and both callers get it back.
        created = _insert_once(session, row)
        stored = session.scalars(
            select(FeedbackRow).where(FeedbackRow.fingerprint == fingerprint)
        ).one()
        return _info(stored), created


def check_request_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise FeedbackError(
            f"invalid response id {str(request_id)[:80]!r}: give the 'id' of a gateway "
            "response, e.g. chatcmpl-…",
            param="id",
        )
    return request_id


def _unknown(request_id: str) -> NotFoundError:
    return NotFoundError(f"no response with id {request_id!r} in the request log")


def _rating(rating: int | str | None, scale: str | None) -> tuple[int | None, Scale | None]:
    if scale is not None and scale not in ("5", "thumbs"):
        raise FeedbackError(f"invalid rating scale {scale!r}: '5' or 'thumbs'", param="scale")
    if rating is None:
        return None, None
    if isinstance(rating, str) and rating.strip().lower() in THUMBS:
        if scale == "5":
            raise FeedbackError("a thumbs rating ('up'/'down') on the 1-5 scale", param="rating")
        return THUMBS[rating.strip().lower()], "thumbs"
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise FeedbackError(
            f"invalid rating {rating!r}: a whole number from 1 to 5, or 'up' / 'down'",
            param="rating",
        )
    if scale == "thumbs":
        raise FeedbackError("a thumbs rating is 'up' or 'down', not a number", param="rating")
    return rating, "5"


def _text(value: str | None, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FeedbackError(f"{name} must be text", param=name)
    value = value.strip()
    if len(value) > limit:
        raise FeedbackError(
            f"{name} is {len(value)} characters long; at most {limit} are accepted", param=name
        )
    return value or None


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _insert_once(session: Session, row: dict[str, Any]) -> bool:
    table: Any = FeedbackRow.__table__
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    # RETURNING, not rowcount: drivers may report -1 for a skipped row.
    statement = statement.values(**row).on_conflict_do_nothing(index_elements=["fingerprint"])
    return session.execute(statement.returning(table.c.feedback_id)).first() is not None


# -- which responses exist ----------------------------------------------------------------


def find_request(workspace: Workspace, request_id: str) -> RequestSummary | None:
    """The logged response ``request_id``, stored or still in the journal.

    A record is journaled before the response is sent and leaves the
    journal only once it is stored, so looking in the store, then the
    journal, then the store again cannot miss one that is moving between
    them.
    """
    for look in (_stored_request, _journaled_request, _stored_request):
        found = look(workspace, request_id)
        if found is not None:
            return found
    return None


def _stored_request(workspace: Workspace, request_id: str) -> RequestSummary | None:
    with workspace.metadata.read_session() as session:
        row = session.execute(
            select(RequestRow.deployment, RequestRow.key_id).where(
                RequestRow.request_id == request_id
            )
        ).first()
    if row is None:
        return None
    return RequestSummary(request_id, row.deployment, row.key_id, stored=True)


def _journaled_request(workspace: Workspace, request_id: str) -> RequestSummary | None:
    # Journal lines are compact JSON that start with the request id: a byte
    # search finds one without parsing every line (ids are plain ASCII).
    needle = b'{"request_id":' + json.dumps(request_id).encode() + b","
    journal = workspace.state_dir / "journal"
    for path in sorted(journal.glob("*.jsonl")) if journal.is_dir() else []:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # stored and removed meanwhile
            continue
        start = data.find(needle)
        if start < 0 or (start > 0 and data[start - 1 : start] != b"\n"):
            continue
        end = data.find(b"\n", start)
        with contextlib.suppress(ValueError):
            record = json.loads(data[start : end if end >= 0 else len(data)])
            return RequestSummary(
                request_id, record.get("deployment"), record.get("key_id"), stored=False
            )
    return None


# -- reading and reviewing ---------------------------------------------------------------


def _info(row: FeedbackRow, request: RequestRow | None = None) -> FeedbackInfo:
    return FeedbackInfo(
        feedback_id=row.feedback_id,
        request_id=row.request_id,
        created_at=row.created_at,
        status=row.status,  # type: ignore[arg-type]
        rating=row.rating,
        rating_scale=row.rating_scale,  # type: ignore[arg-type]
        comment=row.comment,
        correction=row.correction,
        key_id=row.key_id,
        user=row.user,
        extra=dict(row.extra or {}),
        request=_request_dict(request) if request is not None else None,
    )


def _request_dict(row: RequestRow) -> dict[str, Any]:
    return {
        "created_at": row.created_at.isoformat(),
        "endpoint": row.endpoint,
        "deployment": row.deployment,
        "model_version": row.model_version,
        "prompt_version": row.prompt_version,
        "status": row.status,
        "input_text": row.input_text,
        "output_text": row.output_text,
    }


def get_feedback(workspace: Workspace, feedback_id: str) -> FeedbackInfo:
    """One feedback row with the response it rates (``request``: None while
    the response is not yet stored)."""
    with workspace.metadata.read_session() as session:
        row = session.get(FeedbackRow, feedback_id)
        if row is None:
            raise NotFoundError(f"no feedback with id {feedback_id!r} (see: llmline feedback list)")
        request = session.get(RequestRow, row.request_id)
        return _info(row, request)


def list_feedback(
    workspace: Workspace,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int | None = 100,
    request_id: str | None = None,
) -> list[FeedbackInfo]:
    """Feedback, newest first: of one ``status``, since a time, at most ``limit``."""
    with workspace.metadata.read_session() as session:
        return [_info(row) for row in _select(session, status, since, limit, request_id)]


def _select(
    session: Session,
    status: str | None,
    since: datetime | None,
    limit: int | None,
    request_id: str | None = None,
) -> Iterator[FeedbackRow]:
    query = select(FeedbackRow).order_by(
        FeedbackRow.created_at.desc(), FeedbackRow.feedback_id.desc()
    )
    if status is not None:
        query = query.where(FeedbackRow.status == _status(status))
    if since is not None:
        query = query.where(FeedbackRow.created_at >= since)
    if request_id is not None:
        query = query.where(FeedbackRow.request_id == request_id)
    if limit is not None:
        if limit < 1:
            raise FeedbackError(f"limit must be at least 1, got {limit}", param="limit")
        query = query.limit(limit)
    yield from session.scalars(query.execution_options(yield_per=1000))


def _status(status: str) -> Status:
    aliases: dict[str, Status] = {"accept": "accepted", "reject": "rejected"}
    value = aliases.get(status, status)
    if value not in STATUSES:
        raise FeedbackError(
            f"invalid status {status!r}: one of {', '.join(STATUSES)}", param="status"
        )
    return value


def review_feedback(
    workspace: Workspace, feedback_id: str, status: str, *, reviewer: str | None = None
) -> FeedbackInfo:
    """Set the status of feedback ``feedback_id`` (``accepted``, ``rejected``
    or back to ``new``); when and by whom goes into its ``extra``."""
    value = _status(status)
    with workspace.metadata.session() as session:
        row = session.get(FeedbackRow, feedback_id)
        if row is None:
            raise NotFoundError(f"no feedback with id {feedback_id!r} (see: llmline feedback list)")
        row.status = value
        review = {"status": value, "at": utcnow().isoformat(), "by": reviewer}
        row.extra = {**(row.extra or {}), "review": review}
        session.flush()
        return _info(row)


def export_feedback(
    workspace: Workspace,
    path: Path | str,
    *,
    format: str = "jsonl",
    status: str | None = None,
    since: datetime | None = None,
) -> int:
    """Write feedback (oldest first, each with the response it rates) to
    ``path`` as JSON lines, atomically; the number of rows written."""
    if format != "jsonl":
        raise FeedbackError(f"unsupported export format {format!r}: jsonl", param="format")
    target = Path(path)
    if target.is_dir():
        raise FeedbackError(f"{target} is a folder; give a file name", param="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, workspace.metadata.read_session() as s:
            query = select(FeedbackRow, RequestRow).outerjoin(
                RequestRow, RequestRow.request_id == FeedbackRow.request_id
            )
            if status is not None:
                query = query.where(FeedbackRow.status == _status(status))
            if since is not None:
                query = query.where(FeedbackRow.created_at >= since)
            query = query.order_by(FeedbackRow.created_at, FeedbackRow.feedback_id)
            for feedback, request in s.execute(query.execution_options(yield_per=1000)):
                out.write(json.dumps(_info(feedback, request).to_dict(), ensure_ascii=False))
                out.write("\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``"24h"``, ``"7d"``, ``"2w"``... ago, or an ISO date / time (UTC unless it says)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if match:
        seconds = int(match.group(1)) * _SECONDS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FeedbackError(
            f"invalid time {text!r}: a duration such as 24h, 7d or 2w, or an ISO date "
            "such as 2026-12-01",
            param="since",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
