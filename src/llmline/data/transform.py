"""Per-batch transforms: clean, scrub, filter, template, split, sign."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmline.data.clean import html_to_text, length_mask, normalize_whitespace
from llmline.data.dedup import LshParams, band_keys, minhash_signatures
from llmline.data.pii import scrub_array
from llmline.data.spec import DatasetSpec
from llmline.data.split import assign_splits, split_hashes
from llmline.prompts.template import Template

__all__ = ["BatchTransformer", "TransformCounts"]

_PARALLEL_MIN_ROWS = 2048
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class TransformCounts:
    rows_read: int = 0
    dropped_empty: int = 0
    dropped_length: int = 0
    pii: Counter[str] = field(default_factory=Counter)


class BatchTransformer:
    """Turns warehouse record batches into staged rows."""

    def __init__(self, spec: DatasetSpec, template: Template, lsh: LshParams) -> None:
        self.spec = spec
        self.template = template
        self.lsh = lsh
        self.text_columns = list(dict.fromkeys([*template.variables, spec.output_column]))
        self.counts = TransformCounts()

    def __call__(self, batch: pa.RecordBatch) -> pa.Table:
        # Every step works row by row, and Arrow and numpy release the GIL:
        # on two or more cores the two halves of a large batch are transformed
        # side by side, then joined in order.  The result is the same.
        if batch.num_rows < _PARALLEL_MIN_ROWS or _CPUS < 2:
            return self._transform(batch, self.counts)
        half = batch.num_rows // 2
        counts = TransformCounts()
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(self._transform, batch.slice(half), counts)
            first = self._transform(batch.slice(0, half), self.counts)
            table = pa.concat_tables([first, second.result()])
        self.counts.rows_read += counts.rows_read
        self.counts.dropped_empty += counts.dropped_empty
        self.counts.dropped_length += counts.dropped_length
        self.counts.pii.update(counts.pii)
        return table

    def _transform(self, batch: pa.RecordBatch, counts: TransformCounts) -> pa.Table:
        counts.rows_read += batch.num_rows
        texts = {name: self._clean(batch.column(name), counts) for name in self.text_columns}
        keep = self._keep_mask(texts, counts)
        keys = pc.cast(batch.column(self.spec.key_column), pa.string())
        texts = {name: pc.filter(col, keep) for name, col in texts.items()}
        keys = pc.filter(keys, keep)
        input_text = self.template.render_arrays({v: texts[v] for v in self.template.variables})
        output_text = texts[self.spec.output_column]
        hashes = split_hashes(keys, self.spec.split.seed)
        columns: dict[str, pa.Array] = {
            "key": keys,
            "input_text": input_text,
            "output_text": output_text,
            "split": assign_splits(hashes, self.spec.split.fractions),
            "split_hash": pa.array(hashes, type=pa.uint64()),
        }
        # Sign the row's own text only: the template is shared by every row and
        # would make short rows look alike.
        columns.update(self._signatures([texts[name] for name in self.text_columns]))
        return pa.table(columns)

    def _clean(self, column: pa.Array, counts: TransformCounts) -> pa.Array:
        text = pc.cast(column, pa.string())
        cleaning = self.spec.cleaning
        text = html_to_text(text) if cleaning.html_to_text else normalize_whitespace(text)
        if cleaning.scrub_pii:
            text, found = scrub_array(text)
            counts.pii.update(found)
        return text

    def _keep_mask(self, texts: dict[str, pa.Array], counts: TransformCounts) -> pa.Array:
        cleaning = self.spec.cleaning
        present = None
        in_bounds = None
        for col in texts.values():
            has = pc.fill_null(pc.greater(pc.utf8_length(col), 0), False)
            ok = length_mask(col, cleaning.min_chars, cleaning.max_chars)
            present = has if present is None else pc.and_(present, has)
            in_bounds = ok if in_bounds is None else pc.and_(in_bounds, ok)
        assert present is not None and in_bounds is not None
        n_present = pc.sum(present).as_py() or 0
        n_keep = pc.sum(in_bounds).as_py() or 0
        counts.dropped_empty += len(present) - n_present
        counts.dropped_length += n_present - n_keep
        return in_bounds

    def _signatures(self, texts: list[pa.Array]) -> dict[str, pa.Array]:
        n = len(texts[0])
        if not self.spec.cleaning.dedup_near:
            return {
                "sig": pa.nulls(n, pa.binary()),
                "bands": pa.nulls(n, pa.list_(pa.uint64())),
            }
        joined = pc.binary_join_element_wise(*texts, "\n")
        sig = minhash_signatures(joined, self.lsh.num_perm)
        bands = band_keys(sig, self.lsh)
        offsets = pa.array(np.arange(0, (n + 1) * self.lsh.bands, self.lsh.bands), type=pa.int32())
        # Each row's signature as one fixed-width blob, straight from the buffer.
        width = sig.shape[1] * 8
        sig_offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        blobs = pa.Array.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(sig_offsets), pa.py_buffer(sig.tobytes())]
        )
        return {
            "sig": blobs,
            "bands": pa.ListArray.from_arrays(
                offsets, pa.array(bands.reshape(-1), type=pa.uint64())
            ),
        }
