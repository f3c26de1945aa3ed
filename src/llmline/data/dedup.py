"""Near-duplicate detection: MinHash signatures and LSH band keys, a batch at a time.

datasketch's ``MinHash`` hashes one document at a time (about 170 µs each
here), too slow for millions of rows.  This module computes one-permutation
MinHash signatures (Li, Owen & Zhang, 2012) for a whole Arrow batch with
numpy: word bigrams hashed with a vectorised polynomial hash, one bin per
signature slot.  Band keys then go to the staging database, where rows that
share a band become candidate pairs; candidates are confirmed by their
estimated Jaccard similarity.  Everything is deterministic (no Python
``hash()``), so builds are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LshParams",
    "band_keys",
    "estimate_jaccard",
    "lsh_params",
    "minhash_signatures",
    "similar_to_earlier",
]

U64 = npt.NDArray[np.uint64]
EMPTY = np.uint64(np.iinfo(np.uint64).max)
_P = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime, as the polynomial base
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MAX_TOKEN_BYTES = 32
_SMALL_GROUP = 64  # rows sharing a band key: up to this many, compared as explicit pairs
_PAIR_CHUNK = 65_536  # explicit pairs compared at a time
_BLOCK_CELLS = 1 << 22  # pairs x slots compared at a time within a large group
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class LshParams:
    num_perm: int
    bands: int
    rows: int

    @property
    def threshold(self) -> float:
        """Similarity at which a pair becomes a candidate with probability 1/2-ish."""
        return float((1 / self.bands) ** (1 / self.rows))


def lsh_params(threshold: float, num_perm: int = 64) -> LshParams:
    """The banding (bands × rows = num_perm) whose S-curve is steepest near ``threshold``."""
    options = [(b, num_perm // b) for b in range(1, num_perm + 1) if num_perm % b == 0]
    bands, rows = min(options, key=lambda br: abs((1 / br[0]) ** (1 / br[1]) - threshold))
    return LshParams(num_perm, bands, rows)


def _mix(values: U64) -> U64:
    # splitmix64 finaliser: spreads polynomial hashes over all 64 bits.
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * _MIX1
        values = (values ^ (values >> np.uint64(27))) * _MIX2
        return values ^ (values >> np.uint64(31))


def _hash_strings(strings: pa.Array) -> U64:
    """A 64-bit hash of each string (its first 32 bytes), vectorised over bytes."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)
    starts = offsets[:-1]
    lengths = np.minimum(np.diff(offsets), _MAX_TOKEN_BYTES)
    hashes = np.zeros(len(strings), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for pos in range(int(lengths.max(initial=0))):
            live = lengths > pos
            byte = data[starts[live] + pos].astype(np.uint64)
            hashes[live] = hashes[live] * _P + byte + np.uint64(1)
    return _mix(hashes)


def _word_hashes(texts: pa.Array) -> tuple[U64, npt.NDArray[np.int64]]:
    """Hash of every word of every text, and the row each word belongs to."""
    lists = pc.utf8_split_whitespace(pc.utf8_lower(pc.fill_null(texts, "")))
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(lists)
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    # Splitting "" yields one empty word: drop empty words.
    nonempty = pc.greater(pc.binary_length(flat), 0)
    if not pc.all(nonempty).as_py():
        flat = pc.filter(flat, nonempty)
        rows = rows[nonempty.to_numpy(zero_copy_only=False)]
    if len(flat) == 0:
        return np.zeros(0, dtype=np.uint64), rows
    # Hash each distinct word once: vocabularies are far smaller than corpora.
    encoded = pc.dictionary_encode(flat)
    vocabulary = encoded.dictionary
    if isinstance(vocabulary, pa.ChunkedArray):  # pragma: no cover - defensive
        vocabulary = vocabulary.combine_chunks()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return _hash_strings(vocabulary)[indices], rows


def minhash_signatures(texts: pa.Array, num_perm: int = 64) -> U64:
    """One-permutation MinHash of each text's word bigrams: shape (n, num_perm).

    Empty slots hold ``EMPTY``; a text with no words has an all-empty row.
    """
    n = len(texts)
    sig = np.full(n * num_perm, EMPTY, dtype=np.uint64)
    words, rows = _word_hashes(texts)
    if len(words):
        # Bigram = a word and the next word of the same text; one-word texts
        # keep their single word so that they are not all-empty.
        pair = rows[1:] == rows[:-1]
        with np.errstate(over="ignore"):
            bigrams = _mix((words[:-1] * _P) ^ words[1:])[pair]
        per_row = np.bincount(rows, minlength=n)
        single = per_row[rows] == 1
        shingles = np.concatenate([bigrams, words[single]])
        owners = np.concatenate([rows[:-1][pair], rows[single]])
        k = np.uint64(num_perm)
        slots = (shingles % k).astype(np.int64)
        np.minimum.at(sig, owners * num_perm + slots, shingles // k)
    return sig.reshape(n, num_perm)


def band_keys(signatures: U64, params: LshParams) -> U64:
    """One 64-bit key per band per row, shape (n, bands); 0 marks an all-empty band."""
    n = signatures.shape[0]
    banded = signatures.reshape(n, params.bands, params.rows)
    keys = np.zeros((n, params.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(params.rows):
            keys = _mix(keys * _P + banded[:, :, r])
        keys ^= np.arange(1, params.bands + 1, dtype=np.uint64)  # same values, other band: differ
    empty = np.all(banded == EMPTY, axis=2)
    keys[empty] = 0
    keys[keys == 0] = 1  # keep 0 as the "empty" marker
    keys[empty] = 0
    return keys


def estimate_jaccard(a: U64, b: U64) -> npt.NDArray[np.float64]:
    """Estimated Jaccard similarity of signatures, row by row (1-D or 2-D input).

    Slots empty in both signatures are ignored; two empty texts count as equal.
    """
    used = (a != EMPTY) | (b != EMPTY)
    agree = ((a == b) & used).sum(axis=-1)
    total = used.sum(axis=-1)
    return np.where(total > 0, agree / np.maximum(total, 1), 1.0)


def _band_groups(
    keys: U64,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows sharing a non-zero key: the stable sort order, and the start and
    size (in that order) of every group of two rows or more."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    keep = (sizes >= 2) & (ordered[starts] != 0)
    return order, starts[keep], sizes[keep]


def similar_to_earlier(
    bands: U64, signatures: Callable[[npt.NDArray[np.intp]], U64], threshold: float
) -> npt.NDArray[np.intp]:
    """Rows whose estimated Jaccard similarity to an earlier row that shares a
    non-zero band key with it reaches ``threshold``, ascending.

    ``bands`` is (n, bands), one row per row in the order that decides which
    copy survives; ``signatures(rows)`` returns the signatures of ``rows``
    (ascending indices), and is called once, for the rows in some group.
    Every candidate pair is compared, as estimate_jaccard does; small groups
    as explicit pairs, large ones (shared boilerplate makes some huge) block
    by block on compact per-slot codes.
    """
    n = bands.shape[0]
    groups = [_band_groups(bands[:, band]) for band in range(bands.shape[1])]
    grouped = np.zeros(n, dtype=bool)
    for order, starts, sizes in groups:
        grouped[order[_expand(starts, sizes)]] = True
    needed = np.flatnonzero(grouped)
    if not len(needed):
        return needed
    sig = signatures(needed)
    sig_row = np.full(n, -1, dtype=np.intp)
    sig_row[needed] = np.arange(len(needed))
    hits = np.zeros(n, dtype=bool)
    for order, starts, sizes in groups:
        small = sizes <= _SMALL_GROUP
        lo, hi = _pairs(starts[small], sizes[small])
        lo, hi = order[lo], order[hi]
        for i in range(0, len(lo), _PAIR_CHUNK):
            a, b = lo[i : i + _PAIR_CHUNK], hi[i : i + _PAIR_CHUNK]
            similar = estimate_jaccard(sig[sig_row[a]], sig[sig_row[b]]) >= threshold
            hits[np.maximum(a, b)[similar]] = True
        for start, size in zip(starts[~small].tolist(), sizes[~small].tolist(), strict=True):
            members = order[start : start + size]  # ascending: the sort is stable
            hits[members[_group_hits(sig[sig_row[members]], threshold)]] = True
    return np.flatnonzero(hits)


def _expand(starts: npt.NDArray[np.intp], sizes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Every position of every group."""
    offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + offsets


def _pairs(
    starts: npt.NDArray[np.intp], sizes: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every pair of positions within each group, earlier position first."""
    if not len(sizes):
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    pos = _expand(starts, sizes)
    end = np.repeat(starts + sizes, sizes)
    firsts, seconds = [], []
    for step in range(1, int(sizes.max())):
        ok = pos + step < end
        firsts.append(pos[ok])
        seconds.append(pos[ok] + step)
    return np.concatenate(firsts), np.concatenate(seconds)


def _group_hits(sig: U64, threshold: float) -> npt.NDArray[np.bool_]:
    """Within one group (rows in order), which rows are similar to an earlier one.

    Counts as estimate_jaccard does, on cheaper data: a row's used slots as a
    bitmap, and slot values as small codes (equal codes, equal values).
    """
    k, slots = sig.shape
    _, inverse = np.unique(sig.ravel(), return_inverse=True)
    codes = inverse.reshape(k, slots).astype(np.uint32)
    used = sig != EMPTY
    bits = np.packbits(used, axis=1)
    hits = np.zeros(k, dtype=bool)
    step = max(1, _BLOCK_CELLS // (k * slots))
    for j0 in range(1, k, step):
        j1 = min(k, j0 + step)
        same = codes[j0:j1, None, :] == codes[None, :j1, :]
        agree = (same & used[j0:j1, None, :]).sum(axis=-1)
        total = _POPCOUNT[bits[j0:j1, None, :] | bits[None, :j1, :]].sum(axis=-1, dtype=np.int64)
        similarity = np.where(total > 0, agree / np.maximum(total, 1), 1.0)
        earlier = np.arange(j1)[None, :] < np.arange(j0, j1)[:, None]
        hits[j0:j1] = ((similarity >= threshold) & earlier).any(axis=1)
    return hits
