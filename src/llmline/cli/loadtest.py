"""``llmline loadtest``: a bounded load test of a deployment over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llmline.cli._common import JSON_OPTION, console, print_json

if TYPE_CHECKING:
    from llmline.monitoring.loadtest import LoadTestResult, Percentiles

__all__ = ["loadtest"]


def loadtest(
    deployment: Annotated[str, typer.Argument(help="Deployment (the request's model).")],
    rps: Annotated[float, typer.Option("--rps", help="Requests per second (fixed rate).")],
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds to send for (at most 3600).")
    ],
    url: Annotated[
        str, typer.Option("--url", help="The gateway's root URL.")
    ] = "http://127.0.0.1:8000",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Most requests in flight; beyond: skipped.")
    ] = 64,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="max_tokens of each request.")
    ] = 16,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", help="User message; {n} becomes the request number."),
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream the answers and measure TTFT.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout, s.")] = 60.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="LLMLINE_API_KEY", show_envvar=True, help="Bearer token to send."
        ),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send RPS requests/s for DURATION s (open model, bounded); print latency and errors."""
    from llmline.monitoring.loadtest import DEFAULT_PROMPT, load_test

    result = load_test(
        url,
        deployment,
        rps=rps,
        duration_s=duration,
        concurrency=concurrency,
        max_tokens=max_tokens,
        prompt=prompt or DEFAULT_PROMPT,
        stream=stream,
        api_key=api_key,
        timeout_s=timeout,
    )
    if as_json:
        print_json(result.to_dict())
        return
    _print(result)


def _line(name: str, p: Percentiles | None) -> str:
    if p is None:
        return f"  {name:<12} n/a"
    return (
        f"  {name:<12} p50 {p.p50:.1f}  p90 {p.p90:.1f}  p99 {p.p99:.1f}  "
        f"mean {p.mean:.1f}  max {p.max:.1f}"
    )


def _print(r: LoadTestResult) -> None:
    errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "none"
    lines = [
        f"load test of {r.deployment} at {r.url}: {r.target_rps:g} rps for {r.duration_s:g} s"
        + (" (streaming)" if r.stream else ""),
        f"  requests     {r.sent} sent of {r.scheduled} scheduled, {r.skipped} skipped, "
        f"{r.ok} ok, {r.error_count} errors",
        f"  rate         {r.sent_rps:g} rps sent, {r.achieved_rps:g} rps answered "
        f"(elapsed {r.elapsed_s:g} s, at most {r.max_in_flight} in flight)",
        _line("latency ms", r.latency_ms),
    ]
    if r.stream:
        lines.append(_line("TTFT ms", r.ttft_ms))
    lines.append(f"  errors       {errors}")
    lines.append(f"  tokens out   {r.completion_tokens}")
    lines += [f"  note: {note}" for note in r.notes]
    console.print("\n".join(lines), markup=False)
