"""Citation metadata: which spans of an output reproduce a tuning answer.

A tuned model can recite its training answers word for word; when it does,
the response's ``citation_metadata`` names the source row, its title and
its licence (Stack Overflow posts are CC BY-SA 4.0, which requires
attribution).  :class:`CitationIndex` holds every word 8-gram ("shingle")
of a dataset version's train answers as a 64-bit hash with its row and
position, in sorted NumPy arrays; :meth:`CitationIndex.find` hashes the
output's shingles the same way, follows matches along the diagonal of one
source row to get maximal copied spans, and reports them as character
offsets into the output.

Words are runs of letters, digits and combining marks, compared after
NFKC normalisation and case folding, so punctuation, spacing, case and
Unicode composition do not hide a copy.  Only answers (``output_text``) are
indexed: inputs share the prompt template's boilerplate, which every row
would "cite".

The index is built at tune time (when the tuned model is registered) and
stored in the artifact store under the dataset version's content hash, so
every model tuned on the same data shares it; :func:`load_citation_index`
rebuilds one that is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from llmline.errors import NotFoundError
from llmline.gateway.protocol.extensions import Citation, CitationMetadata

if TYPE_CHECKING:
    from llmline.data.catalog import DatasetVersionInfo
    from llmline.workspace import Workspace

__all__ = [
    "FORMAT_VERSION",
    "SHINGLE_WORDS",
    "Citation",
    "CitationIndex",
    "CitationMetadata",
    "Source",
    "build_citation_index",
    "index_path",
    "load_citation_index",
]

logger = logging.getLogger(__name__)

#: Words per shingle: the shortest copy that is cited.  Eight words rarely
#: recur by chance in technical prose, yet catch a copied sentence.
SHINGLE_WORDS = 8
#: Bump when the stored layout or the hashing changes (old files are then
#: simply not found, and rebuilt).
FORMAT_VERSION = 1
INDEX_FILE = "index.npz"
#: A shingle shared by more rows than this (template boilerplate, a common
#: code line) is looked up in the first rows only, to bound the work.
MAX_POSTINGS = 64
_TITLE_CHARS = 120
_PRIME = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so the rolling hash mixes all bits
# Combining marks belong to the word they follow: "café" written with
# U+0301 is one word, equal to the precomposed one after NFKC.
_WORD = re.compile(r"[\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# Where a dataset's SQL reads from, and the licence that content carries.
_KNOWN_LICENSES = (("bigquery-public-data.stackoverflow", "CC-BY-SA-4.0"),)

U64Array = npt.NDArray[np.uint64]
I32Array = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Source:
    """Where a row came from, as a citation names it."""

    uri: str
    title: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    hash: int


def _word_hash(token: str, cache: dict[str, int]) -> int:
    token = unicodedata.normalize("NFKC", token).casefold()
    value = cache.get(token)
    if value is None:
        # blake2b, not hash(): the index outlives the process, and str
        # hashes are salted per process.
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = cache[token] = int.from_bytes(digest, "little")
    return value


def _words(text: str) -> list[_Word]:
    """The words of ``text`` with their character offsets and hashes."""
    cache: dict[str, int] = {}
    return [_Word(m.start(), m.end(), _word_hash(m.group(), cache)) for m in _WORD.finditer(text)]


def _word_hashes(text: str, cache: dict[str, int]) -> Iterator[int]:
    return (_word_hash(m.group(), cache) for m in _WORD.finditer(text))


def _shingles(word_hashes: Iterable[int], n: int) -> U64Array:
    """Rolling polynomial hash of every run of ``n`` consecutive words."""
    values = np.fromiter(word_hashes, dtype=np.uint64)
    count = len(values) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic is modulo 2**64 on purpose
        for k in range(n):
            out = out * _PRIME + values[k : k + count]
    return out


class CitationIndex:
    """Shingle hashes of a dataset's answers, sorted, with row and position.

    Build one with :meth:`from_rows` (or :func:`build_citation_index` for a
    dataset version in a workspace); it is read-only afterwards, so one
    index can serve concurrent requests.
    """

    def __init__(
        self,
        *,
        dataset: str,
        content_hash: str,
        sources: list[Source],
        hashes: U64Array,
        rows: I32Array,
        positions: I32Array,
        shingle: int = SHINGLE_WORDS,
    ) -> None:
        if not len(hashes) == len(rows) == len(positions):
            raise ValueError("hashes, rows and positions must have one entry per shingle")
        if shingle < 1:
            raise ValueError("a shingle has at least one word")
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= len(sources)):
            raise ValueError("a shingle points at a row the index has no source for")
        self.dataset = dataset
        self.content_hash = content_hash
        self.sources = sources
        self.hashes = hashes
        self.rows = rows
        self.positions = positions
        self.shingle = shingle

    def __len__(self) -> int:
        return len(self.hashes)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, Source]],
        *,
        dataset: str,
        content_hash: str,
        shingle: int = SHINGLE_WORDS,
    ) -> CitationIndex:
        """Index ``(output_text, source)`` pairs; a row's number is its place."""
        cache: dict[str, int] = {}
        sources: list[Source] = []
        parts: list[U64Array] = []
        for text, source in rows:
            parts.append(_shingles(_word_hashes(text, cache), shingle))
            sources.append(source)
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        row_of = np.repeat(np.arange(len(parts), dtype=np.int32), sizes)
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        position = (np.arange(len(hashes), dtype=np.int64) - starts).astype(np.int32)
        # A stable sort keeps equal hashes in row order: lookups that stop
        # at MAX_POSTINGS see the earliest rows.
        order = np.argsort(hashes, kind="stable")
        return cls(
            dataset=dataset,
            content_hash=content_hash,
            sources=sources,
            hashes=hashes[order],
            rows=row_of[order],
            positions=position[order],
            shingle=shingle,
        )

    # -- lookup --------------------------------------------------------------
    def find(self, output_text: str) -> list[Citation]:
        """Maximal spans of ``output_text`` copied from an indexed answer.

        Each span is at least ``shingle`` words long and runs from the first
        character of its first word to the last character of its last word
        (``output_text[start_index:end_index]``).  Where several rows
        contain a span, the row with the longest copy wins (then the
        earliest); spans of one source that touch are merged.
        """
        words = _words(output_text)
        matches = self._matches(_shingles((w.hash for w in words), self.shingle))
        pieces = self._select(self._runs(matches))
        citations = []
        for first, last, row in _merge(pieces):
            source = self.sources[row]
            citations.append(
                Citation(
                    start_index=words[first].start,
                    end_index=words[last - 1].end,
                    uri=source.uri,
                    title=source.title,
                    license=source.license,
                )
            )
        return citations

    def metadata(self, output_text: str) -> CitationMetadata | None:
        """``citation_metadata`` for a response, or None when nothing is cited."""
        citations = self.find(output_text)
        return CitationMetadata(citations=citations) if citations else None

    def _matches(self, shingles: U64Array) -> dict[tuple[int, int], list[int]]:
        """Output shingle numbers per (row, diagonal), where the diagonal is
        the row position minus the output position: a copy keeps it fixed."""
        lo = np.searchsorted(self.hashes, shingles, side="left")
        hi = np.searchsorted(self.hashes, shingles, side="right")
        diagonals: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in np.flatnonzero(hi > lo).tolist():
            end = min(int(hi[i]), int(lo[i]) + MAX_POSTINGS)
            for j in range(int(lo[i]), end):
                diagonals[int(self.rows[j]), int(self.positions[j]) - i].append(i)
        return diagonals

    def _runs(self, diagonals: Mapping[tuple[int, int], list[int]]) -> list[tuple[int, int, int]]:
        """Word ranges ``(first, end, row)`` of consecutive matching shingles."""
        runs = []
        for (row, _), starts in diagonals.items():
            first = previous = starts[0]
            for i in starts[1:]:
                if i != previous + 1:
                    runs.append((first, previous + self.shingle, row))
                    first = i
                previous = i
            runs.append((first, previous + self.shingle, row))
        return runs

    def _select(self, runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """Longest runs first; a later run keeps only its uncovered stretches
        that are still a shingle long (any stretch of a copy is a copy)."""
        runs.sort(key=lambda r: (r[0] - r[1], r[0], r[2]))
        covered: set[int] = set()
        chosen = []
        for first, end, row in runs:
            start = None
            for k in range(first, end + 1):
                free = k < end and k not in covered
                if free and start is None:
                    start = k
                elif not free and start is not None:
                    if k - start >= self.shingle:
                        chosen.append((start, k, row))
                        covered.update(range(start, k))
                    start = None
        return chosen

    # -- persistence ---------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = {
            "format": FORMAT_VERSION,
            "dataset": self.dataset,
            "content_hash": self.content_hash,
            "shingle": self.shingle,
            "sources": [[s.uri, s.title, s.license] for s in self.sources],
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            hashes=self.hashes,
            rows=self.rows,
            positions=self.positions,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CitationIndex:
        """Read :meth:`to_bytes` output; raises ValueError (or an I/O or zip
        error) when the data is not a complete index of this format."""
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            meta = json.loads(stored["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"citation index format {meta.get('format')!r}")
            hashes = stored["hashes"].astype(np.uint64, copy=False)
            if len(hashes) > 1 and not bool(np.all(hashes[1:] >= hashes[:-1])):
                raise ValueError("citation index hashes are not sorted")
            return cls(
                dataset=str(meta["dataset"]),
                content_hash=str(meta["content_hash"]),
                sources=[Source(uri, title, lic) for uri, title, lic in meta["sources"]],
                hashes=hashes,
                rows=stored["rows"].astype(np.int32, copy=False),
                positions=stored["positions"].astype(np.int32, copy=False),
                shingle=int(meta["shingle"]),
            )


def _merge(pieces: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Join pieces of one source that touch; ordered by position."""
    merged: list[tuple[int, int, int]] = []
    for first, end, row in sorted(pieces):
        if merged and merged[-1][2] == row and merged[-1][1] >= first:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), row)
        else:
            merged.append((first, end, row))
    return merged


# -- dataset versions in a workspace ---------------------------------------------
def index_path(content_hash: str, shingle: int = SHINGLE_WORDS) -> str:
    """Folder of a dataset content's index in the artifact store."""
    return f"citations/{content_hash}/v{FORMAT_VERSION}-w{shingle}"


def build_citation_index(
    workspace: Workspace,
    dataset_ref: str,
    *,
    split: str = "train",
    license: str | None = None,
    rebuild: bool = False,
) -> CitationIndex:
    """Index a dataset version's ``split`` answers and store the index.

    An index already stored for the same content is reused unless
    ``rebuild``.  ``license`` names the licence of rows that carry none
    (default: the manifest's ``license``, else the one known for the SQL's
    source, e.g. CC-BY-SA-4.0 for BigQuery's Stack Overflow dataset).
    """
    from llmline.data.catalog import get_version

    info = get_version(workspace, dataset_ref)
    relpath = index_path(info.content_hash)
    if not rebuild:
        stored = _read(workspace, relpath, info)
        if stored is not None:
            return stored
    index = _build(workspace, info, split=split, license=license)
    _store(workspace, relpath, index)
    return index


def load_citation_index(workspace: Workspace, dataset_ref: str) -> CitationIndex:
    """The stored index of a dataset version, built (and stored) when it is
    missing or unreadable."""
    return build_citation_index(workspace, dataset_ref)


def _read(workspace: Workspace, relpath: str, info: DatasetVersionInfo) -> CitationIndex | None:
    store = workspace.artifacts
    path = f"{relpath}/{INDEX_FILE}"
    if not store.exists(path):
        return None
    try:
        index = CitationIndex.from_bytes(store.read_bytes(path))
        if index.content_hash != info.content_hash:
            raise ValueError(f"index is of content {index.content_hash[:12]}")
    except Exception as exc:  # any unreadable index is rebuilt, never fatal
        logger.warning(
            "citation index of %s at %s is unreadable (%s: %s); rebuilding it",
            info.ref,
            store.uri(path),
            type(exc).__name__,
            exc,
        )
        _remove(workspace, relpath)
        return None
    return index


def _remove(workspace: Workspace, relpath: str) -> None:
    store = workspace.artifacts
    with contextlib.suppress(FileNotFoundError):  # another process removed it first
        store.fs.rm(store.uri(relpath), recursive=True)


def _store(workspace: Workspace, relpath: str, index: CitationIndex) -> None:
    """Publish the index in one step (a rename on local disks), so readers
    see a whole file or none; if another builder published first, its
    index (of the same content) stays."""
    store = workspace.artifacts
    store.remove_stale_staging()
    if store.exists(relpath):
        _remove(workspace, relpath)
    with store.stage() as staging:
        (staging / INDEX_FILE).write_bytes(index.to_bytes())
        if not store.publish(staging, relpath):
            logger.info("citation index %s was published by another builder", relpath)


def _build(
    workspace: Workspace, info: DatasetVersionInfo, *, split: str, license: str | None
) -> CitationIndex:
    fname = f"{split}.jsonl"
    if fname not in info.manifest.get("files", {}):
        known = ", ".join(sorted(info.splits)) or "none"
        raise NotFoundError(f"dataset {info.ref} has no {split} split (splits: {known})")
    default_license = license or info.manifest.get("license") or _infer_license(info.manifest)
    prefix = _template_prefix(workspace, info.manifest)
    folder = info.uri.removeprefix(workspace.artifacts.root + "/")
    rows = (
        (
            str(row.get("output_text") or ""),
            _source(row, n, info=info, split=split, prefix=prefix, license=default_license),
        )
        for n, row in enumerate(_read_jsonl(workspace, f"{folder}/{fname}"))
    )
    index = CitationIndex.from_rows(rows, dataset=info.ref, content_hash=info.content_hash)
    logger.info(
        "citation index of %s: %d rows, %d shingles", info.ref, len(index.sources), len(index)
    )
    return index


def _read_jsonl(workspace: Workspace, relpath: str) -> Iterator[dict[str, Any]]:
    with workspace.artifacts.open(relpath, "rb") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _source(
    row: Mapping[str, Any],
    number: int,
    *,
    info: DatasetVersionInfo,
    split: str,
    prefix: str,
    license: str | None,
) -> Source:
    """A row's citation: its own URL, title and licence when it has them."""
    uri = next((row[k] for k in ("source_url", "url", "uri") if isinstance(row.get(k), str)), None)
    title = row.get("title") if isinstance(row.get("title"), str) else None
    row_license = row.get("license") if isinstance(row.get("license"), str) else None
    return Source(
        uri=uri or f"llmline://datasets/{info.ref}/{split}#{number}",
        title=title or _title(str(row.get("input_text") or ""), prefix),
        license=row_license or license,
    )


def _title(input_text: str, prefix: str) -> str | None:
    """The first line of the row's input after the template's fixed opening
    (for the Stack Overflow template: the question's title)."""
    text = input_text[len(prefix) :] if prefix and input_text.startswith(prefix) else input_text
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= _TITLE_CHARS:
        return line or None
    cut = line[:_TITLE_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


def _template_prefix(workspace: Workspace, manifest: Mapping[str, Any]) -> str:
    """The literal text before the first variable of the dataset's template."""
    ref = (manifest.get("template") or {}).get("resolved")
    if not ref:
        return ""
    from llmline.errors import UserError
    from llmline.prompts.registry import PromptRegistry

    try:
        template = PromptRegistry(workspace.metadata).get(ref).template
    except UserError:  # template deleted since: titles keep the opening
        return ""
    return template.pieces[0][0] if template.pieces else ""


def _infer_license(manifest: Mapping[str, Any]) -> str | None:
    """The licence of the source the SQL reads, when it is known and the
    SQL really ran there (locally the same SQL reads whatever the table map
    points at, e.g. the CPython FAQ, so nothing is claimed)."""
    sql = manifest.get("sql") or {}
    if sql.get("engine") != "bigquery":
        return None
    text = str(sql.get("executed") or sql.get("text") or "").lower()
    return next((lic for marker, lic in _KNOWN_LICENSES if marker in text), None)
