"""Dense vector index: llmline's FAISS index against Chroma, side by side in one run.

Corpus (the same float32 vectors go to both engines):

* **base**: real all-MiniLM-L6-v2 embeddings (384 dimensions, the shipped
  encoder) of the paragraphs of CPython's ``pydoc_data.topics``;
* **scaled to ``--chunks``** (default 100k): embedding 100k texts with MiniLM
  takes far too long on 2 cores, so the base set is copied under random
  orthogonal rotations (one per copy, QR of a Gaussian matrix), plus a little
  Gaussian noise, then re-normalised.  A rotation keeps every distance inside
  a copy as MiniLM made it (the neighbourhood structure of real text
  embeddings) while putting each copy in another region of the sphere, so
  the copies do not pile up as exact duplicates;
* **queries** (``--queries``, default 1000): corpus rows chosen at random
  with stronger noise (a paraphrase of a stored chunk), re-normalised.  Their
  vectors are pre-computed: query latency excludes embedding.

Per engine: **ingest chunks/s** = chunks ÷ wall seconds from empty to a
searchable, persisted index; **query p50/p99** of single top-5 queries, one
at a time, after 50 warm-up queries; **recall@5** against exact brute force
(NumPy, float32 inner product).

* llmline: ``llmline.rag.index.build_dense`` with the spec ingest uses for
  that many vectors (``dense_spec``: IVF-Flat, about 4·√n lists, at least 16
  probed), written to disk, then opened memory-mapped as ``FaissIndex`` and
  searched — the code path ``KnowledgeBase.search`` takes;
* Chroma: ``chromadb.PersistentClient``, one collection with cosine space
  (its defaults otherwise), ``collection.add`` of ids + embeddings in batches
  of its maximum batch size (no documents or metadata: less work than ours
  would be), ``collection.query(query_embeddings=..., n_results=5)``.
  Chroma runs in its own virtualenv (``bench/.venv-chroma``: its pins clash
  with the project's), driven through a subprocess of this script.

Usage::

    make bench-rag                                   # creates the Chroma venv when missing
    .venv/bin/python bench/rag_vectors.py --chunks 100000 --queries 1000
    .venv/bin/python bench/rag_vectors.py --chunks 20000 --queries 200   # quick check

Figures are printed as JSON and written to ``--output``; never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMA_VENV = ROOT / "bench" / ".venv-chroma"
DIM = 384
K = 5
WARMUP = 50


# -- corpus ---------------------------------------------------------------------------
def pydoc_paragraphs(limit: int) -> list[str]:
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            text = " ".join(block.split())
            if len(text) >= 40:
                paragraphs.append(text)
    return paragraphs[:limit]


def base_vectors(workdir: Path, limit: int) -> np.ndarray:
    """MiniLM embeddings of pydoc paragraphs, cached in ``workdir``."""
    cache = workdir / f"pydoc-minilm-{limit}.npy"
    if cache.exists():
        cached: np.ndarray = np.load(cache)
        return cached
    from llmline.rag.encoder import MiniLMEncoder

    texts = pydoc_paragraphs(limit)
    started = time.perf_counter()
    vectors = MiniLMEncoder(batch_size=64).embed(texts)
    print(f"embedded {len(texts)} pydoc paragraphs in {time.perf_counter() - started:.1f} s")
    np.save(cache, vectors)
    return vectors


def _normalised(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def scaled_corpus(base: np.ndarray, chunks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    copies = -(-chunks // len(base))
    parts = []
    for _ in range(copies):
        rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        noise = rng.standard_normal(base.shape) * (0.02 / np.sqrt(DIM))
        parts.append(_normalised(base @ rotation.astype(np.float32) + noise))
    return np.ascontiguousarray(np.concatenate(parts)[:chunks])


def make_queries(corpus: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(corpus), size=count, replace=False)
    noise = rng.standard_normal((count, DIM)) * (0.5 / np.sqrt(DIM))
    return np.ascontiguousarray(_normalised(corpus[rows] + noise))


def exact_top_k(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = queries @ corpus.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(
        len(set(f[: truth.shape[1]]) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / truth.size


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


# -- engines ----------------------------------------------------------------------------
def run_llmline(corpus: np.ndarray, queries: np.ndarray, workdir: Path) -> dict[str, Any]:
    """The index ingest builds for this many vectors, searched as KnowledgeBase does."""
    from llmline.rag.index import FaissIndex, build_dense, dense_spec

    path = workdir / "dense.faiss"
    path.unlink(missing_ok=True)
    spec = dense_spec(len(corpus))
    started, cpu = time.perf_counter(), time.process_time()
    build_dense(corpus, path, spec)
    ingest_s = time.perf_counter() - started
    ingest_cpu_s = time.process_time() - cpu
    index = FaissIndex.load(path, spec)
    for q in queries[:WARMUP]:
        index.search(q.reshape(1, -1), K)
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        ranked = index.search(q.reshape(1, -1), K)
        times.append(time.perf_counter() - t0)
        found.append([row for row, _ in ranked])
    return {
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu_s,
        "found": found,
        "times": times,
        "index": spec,
    }


def run_faiss_ivf(
    corpus: np.ndarray, queries: np.ndarray, workdir: Path, variant: str
) -> dict[str, Any]:
    """Diagnostic, not what ingest builds: IVF-Flat with ``NLIST,NPROBE``,
    trained on 40 vectors per list, written and read memory-mapped like ours."""
    import faiss as typed_faiss

    faiss: Any = typed_faiss  # its stubs lack the search-parameter classes
    nlist, nprobe = (int(x) for x in variant.split(","))
    path = workdir / "ivf.faiss"
    started, cpu = time.perf_counter(), time.process_time()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(len(corpus), min(len(corpus), 40 * nlist), False)
    index.train(corpus[sample])
    index.add(corpus)
    faiss.write_index(index, str(path))
    ingest_s, ingest_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    for q in queries[:WARMUP]:
        index.search(q.reshape(1, -1), K, params=params)
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, rows = index.search(q.reshape(1, -1), K, params=params)
        times.append(time.perf_counter() - t0)
        found.append([int(r) for r in rows[0] if r >= 0])
    return {"ingest_s": ingest_s, "ingest_cpu_s": ingest_cpu_s, "found": found, "times": times}


def chroma_worker(workdir: Path) -> None:
    """Runs inside the Chroma venv: no llmline import here."""
    import chromadb  # type: ignore[import-not-found]  # only in bench/.venv-chroma

    corpus = np.load(workdir / "corpus.npy")
    queries = np.load(workdir / "queries.npy")
    store = workdir / "chroma"
    client = chromadb.PersistentClient(path=str(store))
    started, cpu = time.perf_counter(), time.process_time()
    collection = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
    batch = client.get_max_batch_size()
    for start in range(0, len(corpus), batch):
        part = corpus[start : start + batch]
        collection.add(ids=[str(i) for i in range(start, start + len(part))], embeddings=part)
    added_s = time.perf_counter() - started
    first = time.perf_counter()
    collection.query(query_embeddings=queries[:1], n_results=K)
    first_query_s = time.perf_counter() - first
    ingest_s = time.perf_counter() - started  # searchable: the first query has answered
    ingest_cpu_s = time.process_time() - cpu  # every thread of the process (Rust core too)
    for q in queries[:WARMUP]:
        collection.query(query_embeddings=q.reshape(1, -1), n_results=K)
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = collection.query(query_embeddings=q.reshape(1, -1), n_results=K, include=[])
        times.append(time.perf_counter() - t0)
        found.append([int(i) for i in result["ids"][0]])
    report = {
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu_s,
        "add_calls_s": added_s,
        "first_query_s": first_query_s,
        "batch": batch,
        "found": found,
        "times": times,
        "version": chromadb.__version__,
        "count": collection.count(),
    }
    (workdir / "chroma.json").write_text(json.dumps(report))


def run_chroma(corpus: np.ndarray, queries: np.ndarray, workdir: Path, venv: Path) -> Any:
    import shutil

    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `make bench-rag`, which creates it")
    shutil.rmtree(workdir / "chroma", ignore_errors=True)
    np.save(workdir / "corpus.npy", corpus)
    np.save(workdir / "queries.npy", queries)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    subprocess.run([str(python), __file__, "--chroma-worker", str(workdir)], check=True, env=env)
    return json.loads((workdir / "chroma.json").read_text())


# -- report -----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import faiss

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "load_before": os.getloadavg(),
        "omp_threads": _omp_threads(),
    }


def _omp_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())


def summarise(name: str, run: dict[str, Any], chunks: int, truth: np.ndarray) -> dict[str, Any]:
    return {
        "engine": name,
        "ingest_s": round(run["ingest_s"], 2),
        "ingest_chunks_per_s": round(chunks / run["ingest_s"], 1),
        "ingest_cpu_s": round(run["ingest_cpu_s"], 2),
        **latency_summary(run["times"]),
        "recall_at_5": round(recall_at_k(run["found"], truth), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--base", type=int, default=2000, help="pydoc paragraphs to embed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/llmline-bench-rag"))
    parser.add_argument("--chroma-venv", type=Path, default=CHROMA_VENV)
    parser.add_argument("--skip-chroma", action="store_true")
    parser.add_argument(
        "--ivf",
        action="append",
        default=[],
        help="also measure FAISS IVF-Flat with NLIST,NPROBE (diagnostic)",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "rag_vectors.json"))
    parser.add_argument("--chroma-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chroma_worker:
        chroma_worker(args.chroma_worker)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = base_vectors(args.workdir, args.base)
    corpus = scaled_corpus(base, args.chunks, args.seed)
    queries = make_queries(corpus, args.queries, args.seed)
    truth = exact_top_k(corpus, queries, K)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "chunks": len(corpus),
        "base_embeddings": len(base),
        "queries": len(queries),
        "k": K,
    }
    ours = run_llmline(corpus, queries, args.workdir)
    report["llmline_index"] = ours["index"]
    label = f"llmline (FAISS {ours['index']['type']})"
    rows = [summarise(label, ours, len(corpus), truth)]
    for variant in args.ivf:
        other = run_faiss_ivf(corpus, queries, args.workdir, variant)
        rows.append(summarise(f"FAISS IVF-Flat nlist,nprobe={variant}", other, len(corpus), truth))
    if not args.skip_chroma:
        chroma = run_chroma(corpus, queries, args.workdir, args.chroma_venv)
        report["chroma"] = {k: chroma[k] for k in ("version", "batch", "count", "first_query_s")}
        report["chroma"]["add_calls_s"] = round(chroma["add_calls_s"], 2)
        rows.append(summarise(f"Chroma {chroma['version']}", chroma, len(corpus), truth))
        report["ingest_ratio"] = round(chroma["ingest_s"] / ours["ingest_s"], 2)
        report["p50_ratio"] = round(rows[-1]["p50_ms"] / rows[0]["p50_ms"], 2)
    report["results"] = rows
    report["load_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
