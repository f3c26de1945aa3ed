"""Deterministic splits: a row's split depends only on its key and the seed.

Adding rows never moves an existing row to another split, and the same key
always lands in the same split, so answers to one question never leak
between train and eval.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["assign_splits", "split_hashes"]

_SCALE = float(2**64)


def split_hashes(keys: pa.Array, seed: int) -> npt.NDArray[np.uint64]:
    """blake2b-64 of ``"{seed}:{key}"`` for every key."""
    prefix = f"{seed}:".encode()
    digests = b"".join(
        hashlib.blake2b(prefix + str(key).encode("utf-8"), digest_size=8).digest()
        for key in keys.to_pylist()
    )
    # Each digest read as a big-endian integer.
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def assign_splits(hashes: npt.NDArray[np.uint64], fractions: dict[str, float]) -> pa.Array:
    """Map each hash to a split by cumulative fraction of the 64-bit range."""
    names = list(fractions)
    bounds = np.cumsum([fractions[n] for n in names])
    bounds[-1] = 1.0  # guard against float round-off leaving a gap at the top
    position = hashes.astype(np.float64) / _SCALE
    index = np.searchsorted(bounds, position, side="right")
    index = np.minimum(index, len(names) - 1)
    return pa.DictionaryArray.from_arrays(
        pa.array(index, type=pa.int32()), pa.array(names, type=pa.string())
    ).cast(pa.string())
