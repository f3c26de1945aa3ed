"""``llmline feedback``: user feedback on gateway responses.

Clients send it with ``POST /v1/feedback``; here it is listed, reviewed
(accepted corrections feed ``llmline data build --from-feedback``) and
exported.  With ``$LLMLINE_API_KEY`` set, reading needs ``requests.read``
(deployer, admin), reviewing ``feedback.review`` and exporting
``feedback.export`` (admin).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, authorize, console, print_json, workspace_from

if TYPE_CHECKING:
    from llmline.monitoring.feedback import FeedbackInfo

__all__ = ["app"]

app = typer.Typer(help="User feedback on gateway responses.", no_args_is_help=True)

_ID = typer.Argument(help="The feedback's id (fb-…; see: llmline feedback list).")
_STATUS = typer.Option("--status", help="Only feedback with this status: new, accepted, rejected.")
_SINCE = typer.Option("--since", help="Only feedback this recent: 24h, 7d, or an ISO date.")


def _rating(info: FeedbackInfo) -> str:
    if info.thumbs is not None:
        return f"thumbs {info.thumbs}"
    return f"{info.rating}/5" if info.rating is not None else "-"


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, _STATUS] = None,
    since: Annotated[str | None, _SINCE] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    as_json: bool = JSON_OPTION,
) -> None:
    """Feedback, newest first."""
    from llmline.monitoring.feedback import list_feedback, parse_since

    authorize(ctx, "requests.read")
    infos = list_feedback(workspace_from(ctx), status=status, since=parse_since(since), limit=limit)
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    if not infos:
        console.print("no feedback yet (clients send it with POST /v1/feedback)")
        return
    # Ids are what the other commands take: never wrapped or cut.  The
    # response each is about: `llmline feedback show ID` (or --json).
    table = Table("created", "rating", "status", "comment / correction")
    table.add_column("id", no_wrap=True)
    for i in infos:
        said = " / ".join(x for x in (_short(i.comment, 30), _short(i.correction, 30)) if x)
        table.add_row(
            f"{i.created_at:%Y-%m-%d %H:%M}",
            _rating(i),
            i.status,
            said,
            i.feedback_id,
        )
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, feedback_id: Annotated[str, _ID], as_json: bool = JSON_OPTION) -> None:
    """One feedback, with the question and answer it is about."""
    from llmline.monitoring.feedback import get_feedback

    authorize(ctx, "requests.read")
    info = get_feedback(workspace_from(ctx), feedback_id)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"[bold]{info.feedback_id}[/] ({info.status})")
    lines = [
        ("response", info.request_id),
        ("created", f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("rating", _rating(info)),
        ("from", ", ".join(x for x in (info.key_id, info.user) if x) or "anonymous"),
        ("comment", info.comment or "-"),
        ("correction", info.correction or "-"),
    ]
    request = info.request
    if request is None:
        lines.append(("question", "(the response is not in the request log yet)"))
    else:
        served = f"{request['deployment']} / {request['model_version']}"
        lines += [
            ("served by", f"{served} (prompt {request['prompt_version'] or 'none'})"),
            ("question", request["input_text"] or "-"),
            ("answer", request["output_text"] or "-"),
        ]
    for label, value in lines:
        console.print(f"  {label + ':':12} {value}", markup=False)


def _reviewer() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers): review unattributed
        return None


def _review(ctx: typer.Context, feedback_id: str, status: str, as_json: bool) -> None:
    from llmline.monitoring.feedback import review_feedback

    authorize(ctx, "feedback.review")
    info = review_feedback(workspace_from(ctx), feedback_id, status, reviewer=_reviewer())
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"{info.feedback_id}: {info.status}", markup=False)


@app.command("accept")
def accept(
    ctx: typer.Context, feedback_id: Annotated[str, _ID], as_json: bool = JSON_OPTION
) -> None:
    """Accept feedback: its correction (or rated answer) may train the next model."""
    _review(ctx, feedback_id, "accepted", as_json)


@app.command("reject")
def reject(
    ctx: typer.Context, feedback_id: Annotated[str, _ID], as_json: bool = JSON_OPTION
) -> None:
    """Reject feedback: it is never used in a dataset."""
    _review(ctx, feedback_id, "rejected", as_json)


@app.command("export")
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSONL file to write (replaced atomically).")],
    status: Annotated[str | None, _STATUS] = None,
    since: Annotated[str | None, _SINCE] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write feedback, oldest first and each with its question and answer, as JSON lines."""
    from llmline.monitoring.feedback import export_feedback, parse_since

    authorize(ctx, "feedback.export")
    count = export_feedback(workspace_from(ctx), path, status=status, since=parse_since(since))
    if as_json:
        print_json({"path": str(path), "rows": count, "format": "jsonl"})
        return
    console.print(f"wrote {count} feedback rows to {path}", markup=False)
