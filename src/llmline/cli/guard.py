"""``llmline guard``: guardrail tools; ``guard eval`` scores the scanners on a
labelled set (thin over :mod:`llmline.guard.evaluation`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, print_json
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.guard.evaluation import Counts, EvalReport

__all__ = ["app", "default_set_path"]

app = typer.Typer(
    help="Guardrails: evaluate the scanners on a labelled set; red-team a running gateway.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Guardrails: evaluate the safety scanners on a labelled set."""
    # A callback keeps ``eval`` a subcommand even while it is the only one.


def default_set_path() -> Path:
    """``tests/data/guard/eval.jsonl`` of the source checkout this llmline
    runs from (an installed wheel has no such file)."""
    import llmline

    return Path(llmline.__file__).resolve().parents[2] / "tests" / "data" / "guard" / "eval.jsonl"


def _parse_thresholds(pairs: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(
                f"--threshold takes NAME=VALUE, e.g. injection=0.7, got {pair!r}"
            ) from None
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _count_cells(name: str, c: Counts) -> list[str]:
    n = c.tp + c.fp + c.fn + c.tn
    return [name, str(n), str(c.tp), str(c.fp), str(c.fn), str(c.tn)] + [
        _f(x) for x in (c.precision, c.recall, c.f1, c.fpr)
    ]


def _tables(report: EvalReport) -> tuple[Table, Table]:
    """Detection figures (with one row per label of a multi-label scanner)
    and the rates on benign items with latency: two tables that each fit
    an 80-column terminal."""
    counts = Table("scanner", "items", "tp", "fp", "fn", "tn", "precision", "recall", "F1", "FPR")
    rates = Table("scanner", "benign", "benign flagged", "benign FPR", "p50 ms", "p99 ms")
    for s in report.scanners:
        counts.add_row(*_count_cells(s.name, s.counts))
        for category, c in s.by_category.items():
            counts.add_row(*_count_cells(f"  {category}", c))
        rates.add_row(
            s.name,
            str(s.benign),
            str(s.benign_flagged),
            _f(s.benign_fpr),
            f"{s.latency_p50_ms:.3f}",
            f"{s.latency_p99_ms:.3f}",
        )
    return counts, rates


def _print_report(report: EvalReport, path: Path) -> None:
    console.print(
        f"eval set {path}: {report.items} items "
        f"({report.benign_inputs} benign inputs, {report.benign_outputs} benign outputs)",
        markup=False,
    )
    if report.scanners:
        for table in _tables(report):
            console.print(table)
    for s in report.scanners:
        if s.pii_types:
            types = Table("PII type", "found", "total", "recall")
            for kind, r in s.pii_types.items():
                types.add_row(kind, str(r.found), str(r.total), f"{r.recall:.3f}")
            console.print(types)
    for name, reason in report.skipped.items():
        console.print(f"skipped {name}: {reason}", markup=False)
    for s in report.scanners:
        if s.missed:
            console.print(f"{s.name} missed: {' '.join(s.missed)}", markup=False)
        if s.false_alarms:
            console.print(f"{s.name} false alarms: {' '.join(s.false_alarms)}", markup=False)
    for t in report.targets():
        verdict = {True: "met", False: "MISSED"}.get(t.met, "") if t.met is not None else ""
        detail = f"{verdict} ({t.detail})" if verdict else t.detail
        console.print(f"target {t.scanner} {t.target}: {detail}", markup=False)


@app.command("eval")
def eval_(
    set_path: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help="The labelled JSONL set (default: tests/data/guard/eval.jsonl of the checkout).",
            show_default=False,
        ),
    ] = None,
    scanners: Annotated[
        list[str] | None,
        typer.Option(
            "--scanner",
            help="A scanner to judge (repeat for more; default: every judged scanner).",
            show_default=False,
        ),
    ] = None,
    thresholds: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="NAME=VALUE: the score from which a scanner's finding counts (default 0.5).",
            show_default=False,
        ),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Precision, recall, false-positive rates and latency of the scanners.

    Exits 0 even when a target is missed; the targets are printed with
    met/missed.
    """
    from llmline.guard.evaluation import build_scanners, evaluate, load_eval_set

    if set_path is None:
        set_path = default_set_path()
        if not set_path.is_file():
            raise UserError(
                f"no eval set at {set_path} (it ships with the source checkout, not the "
                "installed package); pass --set PATH"
            )
    items = load_eval_set(set_path)
    limits = _parse_thresholds(thresholds)
    built, skipped = build_scanners(scanners or None)
    report = evaluate(items, built, thresholds=limits, skipped=skipped)
    if as_json:
        data = report.to_dict()
        data["set"] = {"path": str(set_path), **data["set"]}
        print_json(data)
        return
    _print_report(report, set_path)


@app.command("redteam")
def redteam(
    deployment: Annotated[str, typer.Argument(help="The deployment to attack.")],
    url: Annotated[
        str, typer.Option(help="The gateway's base URL.", envvar="LLMLINE_GATEWAY_URL")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="A key that may call the deployment.", envvar="LLMLINE_API_KEY"
        ),
    ] = None,
    set_path: Annotated[
        Path | None,
        typer.Option("--set", help="Attack set JSONL (default: the shipped red-team set)."),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send the attack set through a running gateway; report what got through."""
    from llmline.guard.redteam import load_attacks, run_redteam

    report = run_redteam(url, deployment, load_attacks(set_path), api_key=api_key)
    if as_json:
        print_json(report.to_dict())
        return
    table = Table("category", "stopped", "redacted", "flagged", "passed", "error")
    for category, counts in report.by_category().items():
        cells = [
            str(counts.get(k, 0)) for k in ("stopped", "redacted", "flagged", "passed", "error")
        ]
        table.add_row(category, *cells)
    console.print(table)
    summary = report.to_dict()
    console.print(
        f"{summary['attacks']} attacks on {deployment}: {summary['outcomes'].get('stopped', 0)} "
        f"stopped, {len(report.passed)} got through",
        markup=False,
    )
    for result in report.passed:
        console.print(f"  passed: {result.attack.id} ({result.attack.category})", markup=False)
