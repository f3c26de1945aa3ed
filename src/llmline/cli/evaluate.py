"""``llmline eval``: score a model on a dataset split, list and compare results."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.evaluation import EvalResult, EvalStore, Judge
    from llmline.rag.kb import KnowledgeBase
    from llmline.workspace import Workspace

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


def _questions(dataset: Path | None, limit: int | None) -> list[Any]:
    from llmline.evaluation.rag import load_questions, shipped_questions_path

    return load_questions(dataset or shipped_questions_path(), limit)


_DATASET_HELP = "Labelled questions (JSONL: question, topics, answer); default: the shipped set."
# Options eval rag and eval compare-rag share.
_DatasetOption = Annotated[Path | None, typer.Option("--dataset", help=_DATASET_HELP)]
_KOption = Annotated[int, typer.Option("--k", min=1, help="Chunks retrieved per question.")]
_LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="First N questions.")]
_MaxTokensOption = Annotated[int, typer.Option("--max-tokens", min=1, help="Answer length cap.")]
_ContextOption = Annotated[
    int, typer.Option("--max-context-tokens", min=16, help="Retrieved text in a prompt.")
]


@app.command("rag")
def rag(
    ctx: typer.Context,
    kb: Annotated[str, typer.Argument(help="Knowledge base NAME or NAME@VERSION.")],
    deployment: Annotated[
        str | None,
        typer.Argument(
            help="A model target answered here (registry ref, embedded:…, upstream:…, fake:…), "
            "or with --gateway the name of a deployment of that gateway.",
            show_default=False,
        ),
    ] = None,
    dataset: _DatasetOption = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="Base URL of a running gateway (…/v1).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="LLMLINE_API_KEY", show_default=False)
    ] = None,
    k: _KOption = 5,
    limit: _LimitOption = None,
    max_tokens: _MaxTokensOption = 48,
    max_context_tokens: _ContextOption = 1500,
    threshold: Annotated[
        float, typer.Option(help="Cosine at which a sentence counts as supported.")
    ] = 0.6,
    retrieval_only: Annotated[
        bool, typer.Option("--retrieval-only", help="Score retrieval and contexts; no answers.")
    ] = False,
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model")] = None,
    judge_api_key: Annotated[
        str | None,
        typer.Option("--judge-api-key", envvar="LLMLINE_JUDGE_API_KEY", show_default=False),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Retrieval (recall@k, MRR), context precision/recall, faithfulness, answer
    relevance and citation accuracy of a RAG setup over labelled questions."""
    from llmline.evaluation import rag as ev
    from llmline.rag import open_knowledge_base

    if (judge_url is None) != (judge_model is None):
        raise UserError("give both --judge-url and --judge-model, or neither")
    if deployment is None and not retrieval_only:
        raise UserError("give the DEPLOYMENT (a model target) to answer with, or --retrieval-only")
    questions = _questions(dataset, limit)
    workspace = workspace_from(ctx)
    judge = _judge(judge_url, judge_model, judge_api_key)
    status = err_console.status(f"evaluating {len(questions)} questions…")
    try:
        with (
            open_knowledge_base(kb, workspace=workspace) as base,
            nullcontext() if as_json else status,
        ):
            samples, target = _rag_samples(
                workspace,
                base,
                questions,
                None if retrieval_only else deployment,
                gateway=gateway,
                api_key=api_key,
                k=k,
                max_context_tokens=max_context_tokens,
                max_tokens=max_tokens,
            )
            scorer = ev.SupportScorer(threshold=threshold)
            result = ev.evaluate_rag(
                samples, knowledge_base=base.ref, target=target, k=k, scorer=scorer, judge=judge
            )
    finally:
        if judge is not None:
            judge.close()
    if as_json:
        print_json(result.to_dict())
        return
    table = Table("metric", "value", title=f"{result.target} on {result.knowledge_base}")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4g}")
    console.print(table)


def _rag_samples(
    workspace: Workspace,
    kb: KnowledgeBase,
    questions: list[Any],
    target: str | None,
    *,
    gateway: str | None,
    api_key: str | None,
    k: int,
    max_context_tokens: int,
    max_tokens: int,
) -> tuple[list[Any], str]:
    """The answered questions and what answered them (``retrieval``: nothing)."""
    from llmline.evaluation import rag as ev

    if target is None:
        samples = ev.retrieval_samples(kb, questions, k=k, max_context_tokens=max_context_tokens)
        return samples, "retrieval"
    if gateway is not None:
        samples = ev.gateway_samples(
            kb, questions, gateway, target, k=k, api_key=api_key, max_tokens=max_tokens
        )
        return samples, f"{gateway} {target}"
    target = ev.pin_target(workspace, target)
    samples = ev.local_samples(
        workspace,
        kb,
        questions,
        target,
        k=k,
        max_context_tokens=max_context_tokens,
        max_tokens=max_tokens,
    )
    return samples, target


@app.command("compare-rag")
def compare_rag(
    ctx: typer.Context,
    kb: Annotated[str, typer.Argument(help="Knowledge base NAME or NAME@VERSION.")],
    base: Annotated[
        str, typer.Option("--base", help="The base model target.")
    ] = "smollm2-135m-instruct@latest",
    tuned: Annotated[
        str | None, typer.Option("--tuned", help="The tuned model target, e.g. python-faq-lora@1.")
    ] = None,
    dataset: _DatasetOption = None,
    k: _KOption = 5,
    limit: _LimitOption = None,
    max_tokens: _MaxTokensOption = 48,
    max_context_tokens: _ContextOption = 1500,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Markdown report (+ .json); default .llmline/reports/."),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Base vs tuned vs base+RAG vs tuned+RAG on the same questions."""
    from datetime import UTC, datetime

    from llmline.rag import open_knowledge_base
    from llmline.rag.compare import compare_rag as run_comparison

    questions = _questions(dataset, limit)
    workspace = workspace_from(ctx)
    status = err_console.status(f"comparing variants on {len(questions)} questions…")
    with (
        open_knowledge_base(kb, workspace=workspace) as knowledge,
        nullcontext() if as_json else status,
    ):
        comparison = run_comparison(
            workspace,
            knowledge,
            questions,
            base=base,
            tuned=tuned,
            k=k,
            max_context_tokens=max_context_tokens,
            max_tokens=max_tokens,
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = output or workspace.state_dir / "reports" / f"rag-compare-{stamp}.md"
    markdown, _ = comparison.save(path)
    if as_json:
        print_json({**comparison.to_dict(), "report": str(markdown)})
        return
    console.print(comparison.table())
    console.print(f"report: {markdown}", markup=False)
