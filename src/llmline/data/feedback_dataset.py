"""``data build --from-feedback``: production feedback → a new dataset version.

Rows come from two kinds of feedback on logged responses:

* accepted corrections: the original question → the corrected answer;
* highly rated answers: the question → the model's own answer, when the
  mean of the response's ratings reaches ``min_rating`` (thumbs up counts
  5, down 1) and nobody corrected it (a correction not yet reviewed
  holds its answer back too, until it is rejected).

Rejected feedback is never used; with ``accepted_only`` ratings must have
been accepted too.  Rows go through the same steps as a warehouse build:
cleaning and PII scrubbing (:mod:`.transform`), the prompt template the
model was served with (so ``input_text`` is in the tuning format), exact
and near de-duplication and the deterministic split (:mod:`.staging`),
JSONL + Parquet + manifest, published atomically and recorded in the
catalog.  The split key is the question, so two answers to one question
never straddle train and eval.  ``base`` merges an existing version's rows
(each in its own split) so that a tune learns from both.

Lineage: ``request:<response id> → feedback:<id> → dataset:<name>@<version>``
for every feedback row that made it into the files, plus the templates and
the base version.  The edges are written just before the version row (the
commit point): a crash in between leaves edges to a version nobody lists,
as a crash after publishing leaves an unlisted folder.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from llmline.data.builder import BuildPlan, BuildReport, BuildResult, publish_version
from llmline.data.dedup import lsh_params
from llmline.data.spec import CleaningSpec, DatasetSpec, SplitSpec
from llmline.data.split import assign_splits, split_hashes
from llmline.data.staging import Staging
from llmline.data.transform import BatchTransformer
from llmline.errors import DatasetError, EmptyResultError
from llmline.prompts.registry import PromptInfo, PromptRegistry
from llmline.storage.artifacts import sha256_file
from llmline.storage.feedback_tables import FeedbackRow
from llmline.storage.lineage import ArtifactRef, add_edge
from llmline.storage.request_tables import RequestRow
from llmline.storage.scratch import scratch_dir, sweep

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from llmline.data.catalog import DatasetVersionInfo
    from llmline.workspace import Workspace

__all__ = ["FeedbackSelection", "build_from_feedback", "select_feedback"]

_KEY = "_feedback_key"  # column names no template variable is likely to take
_OUTPUT = "_feedback_output"


@dataclass
class Candidate:
    """One would-be row: a question, the answer to train on, where it came from."""

    question: str
    answer: str
    kind: str  # correction | rated
    template: str  # prompt ref
    request_id: str
    feedback_ids: list[str]

    @property
    def key(self) -> str:
        # The split key: the question, whitespace- and case-normalised.
        normalised = " ".join(self.question.lower().split())
        return hashlib.sha256(normalised.encode()).hexdigest()[:24]


@dataclass
class FeedbackSelection:
    candidates: list[Candidate] = field(default_factory=list)
    considered: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        kinds = Counter(c.kind for c in self.candidates)
        return {"corrections": kinds["correction"], "rated_answers": kinds["rated"]}


def select_feedback(
    workspace: Workspace,
    *,
    min_rating: float = 4,
    since: datetime | None = None,
    accepted_only: bool = False,
    template: str | None = None,
) -> FeedbackSelection:
    """The rows feedback gives, before cleaning (see the module docstring).

    ``template`` (a prompt ref) is applied to every question; otherwise each
    uses the prompt version it was served with, else the default template.
    """
    query = (
        select(FeedbackRow, RequestRow)
        .outerjoin(RequestRow, RequestRow.request_id == FeedbackRow.request_id)
        .where(FeedbackRow.status != "rejected")
        .order_by(FeedbackRow.request_id, FeedbackRow.created_at, FeedbackRow.feedback_id)
    )
    if since is not None:
        query = query.where(FeedbackRow.created_at >= since)
    by_request: dict[str, list[FeedbackRow]] = defaultdict(list)
    requests: dict[str, RequestRow | None] = {}
    with workspace.metadata.read_session() as session:
        for feedback, request in session.execute(query):
            by_request[feedback.request_id].append(feedback)
            requests[feedback.request_id] = request
        session.expunge_all()  # plain objects from here on
    selection = FeedbackSelection()
    default = template or DatasetSpec().template
    for request_id, rows in by_request.items():
        selection.considered += len(rows)
        found = requests[request_id]
        if found is None:
            selection.skipped["response_not_stored"] += len(rows)
            continue
        request = found
        if not (request.input_text or "").strip():
            selection.skipped["no_question"] += len(rows)
            continue
        ref = template or request.prompt_version or default
        selection.candidates += _candidates(request, rows, ref, min_rating, accepted_only)
    return selection


def _candidates(
    request: RequestRow, rows: list[FeedbackRow], ref: str, min_rating: float, accepted_only: bool
) -> list[Candidate]:
    question = request.input_text or ""
    if any(f.correction for f in rows):
        # Someone says the answer is wrong: until that correction is rejected,
        # the answer's ratings do not count; accepted corrections replace it.
        corrections = [f for f in rows if f.status == "accepted" and f.correction]
        return [
            Candidate(
                question, f.correction or "", "correction", ref, request.request_id, [f.feedback_id]
            )
            for f in corrections
        ]
    rated = [
        f for f in rows if f.rating is not None and (f.status == "accepted" or not accepted_only)
    ]
    if not rated or not request.output_text or request.status != 200:
        return []
    mean = sum(f.rating or 0 for f in rated) / len(rated)
    if mean < min_rating:
        return []
    ids = [f.feedback_id for f in rated]
    return [Candidate(question, request.output_text, "rated", ref, request.request_id, ids)]


# -- the build ----------------------------------------------------------------------------


@dataclass
class _Settings:
    name: str
    cleaning: CleaningSpec
    split: SplitSpec
    base: DatasetVersionInfo | None
    options: dict[str, Any]


@dataclass
class _Built:
    """What a build wrote, before it is published."""

    settings: _Settings
    prompts: dict[str, PromptInfo]
    selection: FeedbackSelection
    used: list[Candidate]  # candidates whose row is in the files
    files: dict[str, Path]
    report: BuildReport

    @property
    def primary(self) -> PromptInfo:
        """The template most rows use (a model tuned on them is served with it)."""
        counts = Counter(c.template for c in self.used)
        ranked = sorted(self.prompts, key=lambda ref: (-counts[ref], ref))
        return self.prompts[ranked[0]]


def build_from_feedback(
    workspace: Workspace,
    name: str | None = None,
    *,
    min_rating: float = 4,
    since: datetime | None = None,
    base: str | None = None,
    template: str | None = None,
    accepted_only: bool = False,
) -> BuildResult:
    """Build dataset ``name`` (default ``<base>-feedback`` or ``feedback``)
    from feedback; identical output reuses the existing version."""
    from llmline.data.catalog import get_version

    if not 1 <= min_rating <= 5:
        raise DatasetError(f"min_rating must be between 1 and 5, got {min_rating:g}")
    base_info = get_version(workspace, base) if base else None
    if base_info is not None and template is None:
        template = (base_info.manifest.get("template") or {}).get("resolved")
    selection = select_feedback(
        workspace,
        min_rating=min_rating,
        since=since,
        accepted_only=accepted_only,
        template=template,
    )
    if not selection.candidates:
        raise EmptyResultError(_nothing_usable(selection, min_rating, since))
    settings = _settings(name, base_info, min_rating, since, accepted_only)
    tmp_root = workspace.state_dir / "tmp"
    workspace.artifacts.remove_stale_staging()
    sweep(tmp_root)
    with scratch_dir(tmp_root) as tmp, workspace.artifacts.stage() as out:
        staging = Staging(tmp / "staging.duckdb")
        try:
            prompts, texts, report = _stage(workspace, selection, settings, staging)
            report.exact_duplicates = staging.number_rows(
                drop_exact_duplicates=settings.cleaning.dedup_exact
            )
            if settings.cleaning.dedup_near:
                report.near_duplicates = staging.drop_near_duplicates(
                    settings.cleaning.near_threshold
                )
            counts = staging.split_counts()
            report.splits = {s: counts.get(s, 0) for s in settings.split.fractions}
            files = {p.name: p for s in settings.split.fractions for p in staging.export(s, out)}
        finally:
            staging.close()
        used = _used(selection, texts, files)
        built = _Built(settings, prompts, selection, used, files, report)
        return _publish(workspace, built, out)


def _nothing_usable(selection: FeedbackSelection, min_rating: float, since: datetime | None) -> str:
    window = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in selection.skipped.items())
    return (
        f"no usable feedback{window}: no accepted corrections and no answers rated "
        f">= {min_rating:g} ({selection.considered} feedback rows considered"
        f"{'; skipped: ' + skipped if skipped else ''}); review with `llmline feedback list` "
        "and `llmline feedback accept ID`"
    )


def _settings(
    name: str | None,
    base: DatasetVersionInfo | None,
    min_rating: float,
    since: datetime | None,
    accepted_only: bool,
) -> _Settings:
    cleaning, split = CleaningSpec(), SplitSpec()
    if base is not None:  # the base's own rules, so merged rows are alike
        cleaning = CleaningSpec(**base.manifest.get("cleaning", {}))
        split = SplitSpec(
            fractions=base.manifest.get("split_fractions") or split.fractions,
            seed=base.manifest.get("seed", split.seed),
        )
    options = {
        "min_rating": min_rating,
        "since": since.astimezone(UTC).isoformat() if since else None,
        "accepted_only": accepted_only,
    }
    default_name = f"{base.dataset}-feedback" if base is not None else "feedback"
    return _Settings(name or default_name, cleaning, split, base, options)


def _stage(
    workspace: Workspace, selection: FeedbackSelection, settings: _Settings, staging: Staging
) -> tuple[dict[str, PromptInfo], dict[int, tuple[str, str]], BuildReport]:
    """Transform and stage every candidate (and the base's rows); the prompts
    used and each candidate's row texts after cleaning, by index."""
    registry = PromptRegistry(workspace.metadata)
    lsh = lsh_params(settings.cleaning.near_threshold)
    report = BuildReport()
    prompts: dict[str, PromptInfo] = {}
    texts: dict[int, tuple[str, str]] = {}
    by_template: dict[str, list[int]] = defaultdict(list)
    for i, candidate in enumerate(selection.candidates):
        by_template[candidate.template].append(i)
    pii: Counter[str] = Counter()
    for ref, indices in sorted(by_template.items()):
        prompt = registry.get(ref)
        if len(prompt.variables) != 1:  # the log holds the question only
            selection.skipped["template_needs_variables"] += len(indices)
            continue
        prompts[prompt.ref] = prompt
        for i in indices:  # aliases resolved: the manifest names exact versions
            selection.candidates[i].template = prompt.ref
        spec = DatasetSpec(
            template=ref,
            output_column=_OUTPUT,
            key_column=_KEY,
            cleaning=settings.cleaning,
            split=settings.split,
        )
        transform = BatchTransformer(spec, prompt.template, lsh)
        table = transform(_batch(selection.candidates, indices, prompt.variables[0]))
        table = _rekey(table, settings.split, texts)
        if table.num_rows:
            staging.append(table)
        counts = transform.counts
        report.rows_read += counts.rows_read
        report.dropped_empty += counts.dropped_empty
        report.dropped_length += counts.dropped_length
        pii.update(counts.pii)
    if settings.base is not None:
        report.rows_read += _stage_base(workspace, settings.base, staging, lsh.bands)
    report.pii_redactions = dict(sorted(pii.items()))
    if not texts:  # base rows alone would be a copy of the base, not a feedback build
        raise EmptyResultError(
            f"no feedback rows left after cleaning ({report.dropped_empty} empty, "
            f"{report.dropped_length} outside {settings.cleaning.min_chars}-"
            f"{settings.cleaning.max_chars} characters, "
            f"{selection.skipped['template_needs_variables']} with multi-variable templates)"
        )
    return prompts, texts, report


def _batch(candidates: list[Candidate], indices: list[int], variable: str) -> pa.RecordBatch:
    rows = [candidates[i] for i in indices]
    return pa.record_batch(
        {
            variable: pa.array([c.question for c in rows], pa.string()),
            _OUTPUT: pa.array([c.answer for c in rows], pa.string()),
            # The candidate's index rides along in the key until _rekey.
            _KEY: pa.array([f"{c.key}|{i}" for c, i in zip(rows, indices, strict=True)]),
        }
    )


def _rekey(table: pa.Table, split: SplitSpec, texts: dict[int, tuple[str, str]]) -> pa.Table:
    """Split by the question alone (not the candidate), remembering each
    surviving candidate's texts."""
    tagged = table.column("key").to_pylist()
    keys = [k.rpartition("|")[0] for k in tagged]
    inputs = table.column("input_text").to_pylist()
    outputs = table.column("output_text").to_pylist()
    for tag, text_in, text_out in zip(tagged, inputs, outputs, strict=True):
        texts[int(tag.rpartition("|")[2])] = (text_in, text_out)
    key_array = pa.array(keys, pa.string())
    hashes = split_hashes(key_array, split.seed)
    table = table.set_column(table.schema.get_field_index("key"), "key", key_array)
    table = table.set_column(
        table.schema.get_field_index("split"), "split", assign_splits(hashes, split.fractions)
    )
    return table.set_column(
        table.schema.get_field_index("split_hash"), "split_hash", pa.array(hashes, pa.uint64())
    )


def _stage_base(
    workspace: Workspace, base: DatasetVersionInfo, staging: Staging, bands: int
) -> int:
    """Stage the base version's rows as they are, each in its own split.
    They take no part in near de-duplication (their band keys are empty):
    they were de-duplicated when the base was built."""
    store = workspace.artifacts
    relpath = base.uri.removeprefix(store.root + "/")
    staged = 0
    for split_name in base.splits:
        data = store.read_bytes(f"{relpath}/{split_name}.parquet")
        rows = pq.read_table(pa.BufferReader(data), columns=["input_text", "output_text"])
        n = rows.num_rows
        if n == 0:
            continue
        keys = pa.array(
            [
                "base:" + hashlib.sha256(f"{a}\n{b}".encode()).hexdigest()[:24]
                for a, b in zip(
                    rows.column("input_text").to_pylist(),
                    rows.column("output_text").to_pylist(),
                    strict=True,
                )
            ],
            pa.string(),
        )
        zeros = pa.array([0] * (n * bands), pa.uint64())
        offsets = pa.array(range(0, (n + 1) * bands, bands), pa.int32())
        staging.append(
            pa.table(
                {
                    "key": keys,
                    "input_text": rows.column("input_text"),
                    "output_text": rows.column("output_text"),
                    "split": pa.array([split_name] * n, pa.string()),
                    "split_hash": pa.array(split_hashes(keys, 0), pa.uint64()),
                    "sig": pa.nulls(n, pa.binary()),
                    "bands": pa.ListArray.from_arrays(offsets, zeros),
                }
            )
        )
        staged += n
    return staged


def _used(
    selection: FeedbackSelection, texts: dict[int, tuple[str, str]], files: dict[str, Path]
) -> list[Candidate]:
    """Candidates whose row is in the written files (not dropped as a duplicate)."""
    written: set[tuple[str, str]] = set()
    for name, path in files.items():
        if name.endswith(".parquet"):
            table = pq.read_table(path, columns=["input_text", "output_text"])
            written.update(
                zip(
                    table.column("input_text").to_pylist(),
                    table.column("output_text").to_pylist(),
                    strict=True,
                )
            )
    return [c for i, c in enumerate(selection.candidates) if texts.get(i) in written]


def _manifest(built: _Built) -> dict[str, Any]:
    from llmline import __version__

    settings, report, used = built.settings, built.report, built.used
    rows = {
        f"{split}.{ext}": n for split, n in report.splits.items() for ext in ("jsonl", "parquet")
    }
    templates = Counter(c.template for c in used)
    kinds = Counter(c.kind for c in used)
    primary = built.primary
    return {
        "dataset": settings.name,
        "source": "feedback",
        "format": "jsonl+parquet",
        "schema": {"input_text": "string", "output_text": "string"},
        "splits": report.splits,
        "files": {
            name: {"sha256": sha256_file(path), "bytes": path.stat().st_size, "rows": rows[name]}
            for name, path in sorted(built.files.items())
        },
        "feedback": {
            **settings.options,
            "feedback_considered": built.selection.considered,
            "candidates": built.selection.counts(),
            "rows_from_feedback": {
                "corrections": kinds["correction"],
                "rated_answers": kinds["rated"],
            },
            "responses": len({c.request_id for c in used}),
            "feedback_used": sum(len(c.feedback_ids) for c in used),
            "skipped": dict(sorted(built.selection.skipped.items())),
        },
        "base": None
        if settings.base is None
        else {"ref": settings.base.ref, "splits": settings.base.splits},
        "template": {"ref": primary.ref, "resolved": primary.ref, "sha256": primary.sha256},
        "templates": {ref: templates.get(ref, 0) for ref in sorted(built.prompts)},
        "sources": {},
        "seed": settings.split.seed,
        "split_fractions": settings.split.fractions,
        "cleaning": settings.cleaning.model_dump(),
        "report": _report_dict(report),
        "llmline_version": __version__,
    }


def _report_dict(report: BuildReport) -> dict[str, Any]:
    return {**asdict(report), "rows_written": report.rows_written}


def _publish(workspace: Workspace, built: _Built, out: Path) -> BuildResult:
    plan = BuildPlan(
        name=built.settings.name,
        spec=DatasetSpec(description="Curated from gateway feedback (llmline feedback)"),
        prompt=built.primary,
        sql="",
        source_dialect="",
        engine="feedback",
        sources={},
    )
    return publish_version(
        workspace,
        plan,
        out,
        _manifest(built),
        built.report,
        link=lambda session, target: _link(session, target, built),
    )


def _link(session: Session, target: ArtifactRef, built: _Built) -> None:
    for candidate in built.used:
        response = ArtifactRef("request", candidate.request_id)
        relation = "corrected" if candidate.kind == "correction" else "rated"
        for feedback_id in candidate.feedback_ids:
            feedback = ArtifactRef("feedback", feedback_id)
            add_edge(session, response, feedback, relation)
            add_edge(session, feedback, target, "curated_into", {"kind": candidate.kind})
    primary = built.primary.ref
    for ref in sorted(built.prompts):
        if ref != primary:  # record_version links the primary one
            add_edge(session, ArtifactRef("prompt", ref), target, "templated")
    if built.settings.base is not None:
        add_edge(session, ArtifactRef("dataset", built.settings.base.ref), target, "merged_into")
