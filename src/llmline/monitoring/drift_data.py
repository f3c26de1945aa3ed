"""What the drift report reads: a window of the request log, the tuning
dataset a model version was trained on, and (cached) prompt embeddings.

The window is read in two passes so that 100k logged requests stay cheap:
one query returns per-row lengths (computed by the database, so no text
crosses into Python), and a second fetches the texts of the sampled rows
only.  Embeddings are cached per text (blake2b digest → float16 vector)
in the workspace, so a report over an overlapping window, or a second
report against the same tuning dataset, embeds only what is new.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from llmline.errors import UserError
from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = [
    "EmbeddingCache",
    "OutputSample",
    "OutputScorer",
    "Reference",
    "TextCache",
    "TextEmbedder",
    "WindowError",
    "WindowRows",
    "fetch_texts",
    "load_reference",
    "parse_window",
    "read_window",
]

_WINDOW = re.compile(r"^\s*(\d+)\s*([wdhms])\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
# SQLite's default limit on bound parameters is 999 in old builds.
_IN_CHUNK = 900


class TextEmbedder(Protocol):
    """What the input tests need: ``MiniLMEncoder`` fits, so does any model."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class WindowError(UserError, ValueError):
    """A window such as ``24h`` that does not parse."""


def parse_window(text: str) -> timedelta:
    """``"24h"``, ``"7d"``, ``"90m"``, ``"2w"`` or ``"3600s"`` as a timedelta."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) == 0:
        raise WindowError(
            f"invalid window {text!r}: give a positive whole number and a unit "
            "(w, d, h, m or s), e.g. 24h, 7d or 90m"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class WindowRows:
    """Lengths of every logged request in ``[start, end)``, and their ids."""

    start: datetime
    end: datetime
    input_ids: list[str]
    input_lengths: npt.NDArray[np.float64]
    output_ids: list[str]  # answered requests (status 200) with an answer text
    output_lengths: npt.NDArray[np.float64]
    model_versions: Counter[str]

    @property
    def empty(self) -> bool:
        return not self.input_ids and not self.output_ids


def read_window(
    workspace: Workspace, start: datetime, end: datetime, deployment: str | None
) -> WindowRows:
    query = select(
        RequestRow.request_id,
        func.length(RequestRow.input_text),
        func.length(RequestRow.output_text),
        RequestRow.status,
        RequestRow.model_version,
    ).where(RequestRow.created_at >= start, RequestRow.created_at < end)
    if deployment is not None:
        query = query.where(RequestRow.deployment == deployment)
    # A stable order makes the sampled rows (and so the report) reproducible.
    query = query.order_by(RequestRow.created_at, RequestRow.request_id)
    input_ids: list[str] = []
    input_lengths: list[int] = []
    output_ids: list[str] = []
    output_lengths: list[int] = []
    versions: Counter[str] = Counter()
    with workspace.metadata.read_session() as session:
        for request_id, in_len, out_len, status, version in session.execute(query):
            if in_len is not None:
                input_ids.append(request_id)
                input_lengths.append(in_len)
            if out_len is not None and status == 200:
                output_ids.append(request_id)
                output_lengths.append(out_len)
            if version:
                versions[version] += 1
    return WindowRows(
        start,
        end,
        input_ids,
        np.asarray(input_lengths, dtype=np.float64),
        output_ids,
        np.asarray(output_lengths, dtype=np.float64),
        versions,
    )


def fetch_texts(
    workspace: Workspace, ids: Sequence[str], column: str
) -> dict[str, tuple[str | None, dict[str, Any] | None]]:
    """``request_id → (text of column, safety)`` of the given rows."""
    text_column = getattr(RequestRow, column)
    out: dict[str, tuple[str | None, dict[str, Any] | None]] = {}
    with workspace.metadata.read_session() as session:
        for at in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[at : at + _IN_CHUNK])
            query = select(RequestRow.request_id, text_column, RequestRow.safety).where(
                RequestRow.request_id.in_(chunk)
            )
            for request_id, text, safety in session.execute(query):
                out[request_id] = (text, safety)
    return out


# -- the reference: the tuning dataset -------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Train rows of the dataset a model version was tuned on; ``inputs``
    are the questions with the prompt template's literal text taken off,
    since the request log stores the bare questions the gateway templated."""

    dataset_ref: str
    content_hash: str
    inputs: list[str]
    outputs: list[str]


def tuning_dataset(workspace: Workspace, model_version: str) -> str | None:
    """The dataset ref a registry model version records it was tuned on."""
    from llmline.evaluation.gates import tuned_on
    from llmline.models import ModelRegistry

    if model_version.startswith("upstream:") or ":" in model_version.partition("@")[0]:
        return None
    try:
        return tuned_on(ModelRegistry(workspace.metadata).get(model_version))
    except (UserError, ValueError):
        return None


def load_reference(workspace: Workspace, dataset_ref: str) -> Reference:
    from llmline.data.catalog import get_version
    from llmline.evaluation.runner import load_rows

    info = get_version(workspace, dataset_ref)
    exact, rows = load_rows(workspace, info.ref, "train")
    prefix, suffix = _template_literals(workspace, info.manifest)
    inputs = [
        str(row.get("input_text", "")).removeprefix(prefix).removesuffix(suffix) for row in rows
    ]
    outputs = [str(row.get("output_text", "")) for row in rows]
    return Reference(exact, info.content_hash, inputs, outputs)


def _template_literals(workspace: Workspace, manifest: Mapping[str, Any]) -> tuple[str, str]:
    """Literal text before the first and after the last variable of the
    dataset's template (empty when it is unknown or deleted)."""
    ref = (manifest.get("template") or {}).get("resolved")
    if not ref:
        return "", ""
    from llmline.prompts.registry import PromptRegistry

    try:
        pieces = PromptRegistry(workspace.metadata).get(ref).template.pieces
    except UserError:
        return "", ""
    prefix = pieces[0][0] if pieces and pieces[0][1] is not None else ""
    suffix = pieces[-1][0] if pieces and pieces[-1][1] is None else ""
    return prefix, suffix


# -- caches of per-text results --------------------------------------------------


class TextCache:
    """Per-text results (a vector each) kept in one ``.npz`` file: the
    newest ``capacity`` entries, keyed by the text's blake2b digest."""

    def __init__(
        self,
        path: Path,
        compute: Callable[[list[str]], npt.NDArray[Any]],
        *,
        capacity: int = 20_000,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        self.path = path
        self.compute = compute
        self.capacity = capacity
        self.dtype = dtype
        self._index: dict[bytes, int] = {}
        self._values: npt.NDArray[Any] = np.zeros((0, 0), dtype=dtype)
        self._dirty = False
        self._load()

    def _load(self) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            with np.load(self.path) as data:
                keys, values = data["keys"], data["values"]
            # Raw bytes (not an "S16" array, which drops trailing zero bytes).
            self._index = {k.tobytes(): i for i, k in enumerate(keys)}
            self._values = values.astype(self.dtype)

    def get(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text: cached, or computed now (in one call) and kept."""
        if not texts:
            return np.zeros((0, self._values.shape[1]), dtype=np.float32)
        digests = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        missing = list(dict.fromkeys(d for d in digests if d not in self._index))
        if missing:
            by_digest = dict(zip(digests, texts, strict=True))
            fresh = np.asarray(self.compute([by_digest[d] for d in missing]), dtype=self.dtype)
            start = len(self._values)
            self._values = fresh if start == 0 else np.vstack([self._values, fresh])
            self._index.update({d: start + i for i, d in enumerate(missing)})
            self._dirty = True
        rows = [self._index[d] for d in digests]
        return np.asarray(self._values[rows], dtype=np.float32).reshape(len(rows), -1)

    def save(self) -> None:
        """Write the newest ``capacity`` entries (atomically)."""
        if not self._dirty:
            return
        order = sorted(self._index.items(), key=lambda item: item[1])[-self.capacity :]
        keys = np.frombuffer(b"".join(k for k, _ in order), dtype=np.uint8).reshape(-1, 16)
        values = self._values[[i for _, i in order]]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=keys, values=values)
        os.replace(tmp, self.path)
        self._dirty = False


class EmbeddingCache(TextCache):
    """Embeddings by one embedder (float16: 768 bytes a MiniLM vector)."""

    def __init__(self, folder: Path, embedder: TextEmbedder, capacity: int = 20_000) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.name)
        path = folder / f"{safe}.npz"
        super().__init__(path, embedder.embed, capacity=capacity, dtype=np.float16)
        self.embedder = embedder

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.get(texts)


# -- outputs: refusal and toxicity scores ----------------------------------------


@dataclass(frozen=True)
class OutputSample:
    """Per answer: refusal and toxicity probabilities (None: not scorable)."""

    refusal: list[float]
    toxicity: list[float | None]


class OutputScorer:
    """Refusal and toxicity probabilities of answers: from the stored output
    safety decisions where the gateway ran the scanner, else from the same
    scanners run now (cached per text, so the tuning dataset's answers are
    scored once, and the toxicity classifier loads only when needed)."""

    def __init__(self, folder: Path) -> None:
        self.cache = TextCache(folder / "output-scores.npz", self._score, capacity=50_000)
        self._toxicity: Any = None

    def score(
        self, texts: Sequence[str], stored: Sequence[Mapping[str, Any] | None] | None = None
    ) -> OutputSample:
        known = [_stored_output_scores(stored[n] if stored else None) for n in range(len(texts))]
        todo = [n for n, scores in enumerate(known) if not {"refusal", "toxic"} <= set(scores)]
        fresh = dict(zip(todo, self.cache.get([texts[n] for n in todo]), strict=True))
        refusal: list[float] = []
        toxic: list[float | None] = []
        for n, scores in enumerate(known):
            row = fresh.get(n)
            refusal.append(float(scores["refusal"]) if "refusal" in scores else float(row[0]))  # type: ignore[index]
            value = float(scores["toxic"]) if "toxic" in scores else float(row[1])  # type: ignore[index]
            toxic.append(None if math.isnan(value) else value)
        return OutputSample(refusal, toxic)

    def _score(self, texts: list[str]) -> npt.NDArray[np.float64]:
        from llmline.guard.scanners.refusal import refusal_score

        toxicity = self._toxicity_scanner()
        out = np.full((len(texts), 2), np.nan)
        for n, text in enumerate(texts):
            out[n, 0] = refusal_score(text)[0]
            if toxicity is not None:
                out[n, 1] = toxicity.probability(text)
        return out

    def _toxicity_scanner(self) -> Any:
        """The gateway's toxicity scanner; None without its classifier
        (alt-profanity-check, from the tune extra)."""
        if self._toxicity is None:
            from llmline.gateway.safety import ToxicityScanner

            scanner: Any = ToxicityScanner()
            try:
                scanner.warm_up()
            except ImportError:
                scanner = False
            self._toxicity = scanner
        return self._toxicity or None

    def save(self) -> None:
        self.cache.save()


def _stored_output_scores(safety: Mapping[str, Any] | None) -> Mapping[str, Any]:
    output = (safety or {}).get("output") or {}
    scores = output.get("scores") if isinstance(output, Mapping) else None
    return scores if isinstance(scores, Mapping) else {}


def iter_in_order(mapping: Mapping[str, Any], ids: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """``(id, mapping[id])`` for the ids the mapping holds, in ``ids`` order."""
    for request_id in ids:
        if request_id in mapping:
            yield request_id, mapping[request_id]
