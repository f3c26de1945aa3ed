"""``llmline eval``: score a model on a dataset split, list and compare results."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.evaluation import EvalResult, EvalStore, Judge

app = typer.Typer(
    help="Evaluation: score models on dataset splits, list and compare the results.",
    no_args_is_help=True,
)


def _store(ctx: typer.Context) -> EvalStore:
    from llmline.evaluation import EvalStore

    return EvalStore(workspace_from(ctx).metadata)


@app.command("run")
def run(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="NAME, NAME@latest or NAME@VERSION.")],
    model_ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[MODEL_REF]",
            help="A registered model: NAME, NAME@VERSION, NAME@ALIAS or NAME@latest.",
            show_default=False,
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir", help="Instead of MODEL_REF: a local Hugging Face model folder."
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Dataset split to score.")] = "eval",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Score only the first N rows.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")
    ] = "auto",
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="OpenAI-compatible base URL (…/v1).")
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="Model name the judge endpoint serves.")
    ] = None,
    judge_api_key: Annotated[
        str | None,
        typer.Option("--judge-api-key", envvar="LLMLINE_JUDGE_API_KEY", show_default=False),
    ] = None,
    no_semantic: Annotated[
        bool, typer.Option("--no-semantic", help="Skip the embedding similarity metric.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Generate answers for a dataset split, score them and record the result."""
    from llmline.evaluation import evaluate_model

    if (model_ref is None) == (model_dir is None):
        raise UserError(
            "give a MODEL_REF (a registered model) or --model-dir PATH (a local folder), "
            + ("not both" if model_ref is not None else "one of them")
        )
    if (judge_url is None) != (judge_model is None):
        raise UserError("give both --judge-url and --judge-model, or neither")
    judge = _judge(judge_url, judge_model, judge_api_key)
    label = model_ref or str(model_dir)
    status = err_console.status(f"evaluating {label} on {dataset} {split}…")
    try:
        with nullcontext() if as_json else status:
            saved = evaluate_model(
                workspace_from(ctx),
                model_dir if model_dir is not None else str(model_ref),
                dataset=dataset,
                split=split,
                limit=limit,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                judge=judge,
                semantic=not no_semantic,
                device=device,
            )
    finally:
        if judge is not None:
            judge.close()
    if as_json:
        print_json(saved.to_dict(with_samples=True))
        return
    console.print(_metrics_table(saved))
    console.print(
        f"saved evaluation [bold]#{saved.id}[/] ({saved.model_ref} on {saved.dataset_ref})"
    )


def _judge(url: str | None, model: str | None, api_key: str | None) -> Judge | None:
    if url is None or model is None:
        return None
    from llmline.evaluation import Judge

    return Judge(url, model, api_key=api_key)


def _metrics_table(result: EvalResult) -> Table:
    table = Table("metric", "value", title=f"{result.dataset_ref} {result.split}")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4g}")
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this model ref.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recorded evaluations, oldest first."""
    from llmline.evaluation.store import evaluations_table

    results = _store(ctx).list(model)
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    if not results:
        console.print("no evaluations yet; run `llmline eval run`")
        return
    console.print(evaluations_table(results))


@app.command("compare")
def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="#ID, or a model ref (its newest evaluation).")],
    b: Annotated[str, typer.Argument(help="#ID, or a model ref (on A's dataset and split).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Pick A's evaluation on this dataset.")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="...and this split.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Two evaluations side by side, with B-A deltas."""
    from llmline.evaluation.store import comparison_table

    comparison = _store(ctx).compare(a, b, dataset_ref=dataset, split=split)
    if as_json:
        print_json(comparison.to_dict())
        return
    console.print(comparison_table(comparison))
