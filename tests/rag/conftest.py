"""Fixtures for the knowledge-base tests: a fresh workspace, the real MiniLM
encoder (loaded once per process), and writers for small source files."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from llmline.rag.encoder import MiniLMEncoder, Vectors
from llmline.workspace import Workspace, init_workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path / "ws", load_sample_data=False)
    yield ws
    ws.close()


def write_pdf(path: Path, pages: list[str], *, title: str = "") -> Path:
    """A real PDF with one text line per page, written by matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata={"Title": title} if title else None) as pdf:
        for text in pages:
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.05, 0.9, text, fontsize=8)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def write_corpus(folder: Path) -> Path:
    """One small file of each supported type, on different subjects."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tides.md").write_text(
        "# Tides\n\nTides rise and fall twice a day because the moon pulls on the oceans.\n\n"
        "## Spring tides\n\nAt new and full moon the sun and moon align, giving larger tides.\n",
        "utf-8",
    )
    (folder / "bread.rst").write_text(
        "Baking bread\n============\n\nKnead the dough for ten minutes, then let it rise "
        "in a warm place until it doubles.\n\nProving\n-------\n\nA second rise (the proof) "
        "happens after shaping the loaf.\n",
        "utf-8",
    )
    (folder / "bees.html").write_text(
        "<html><head><title>Honey bees</title></head><body><h1>Honey bees</h1>"
        "<p>Worker bees collect nectar and turn it into honey inside the hive.</p>"
        "<h2>Waggle dance</h2><p>A forager dances to tell the others where flowers are."
        "</p></body></html>",
        "utf-8",
    )
    (folder / "chess.txt").write_text(
        "The knight moves in an L shape and can jump over other pieces.\n\n"
        "Castling moves the king two squares towards a rook.\n",
        "utf-8",
    )
    write_pdf(
        folder / "volcano.pdf",
        [
            "Volcanoes erupt when magma rises through the crust of the earth.",
            "Lava cools into basalt rock on the slopes of the volcano.",
        ],
        title="Volcanoes",
    )
    return folder


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, inner: MiniLMEncoder) -> None:
        self.inner = inner
        self.embedded = 0
        self.last: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_spans(text)

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded += len(texts)
        self.last = list(texts)
        return self.inner.embed(texts)


class Truncated128Encoder(CountingEncoder):
    """A different embedding of the same name: MiniLM's first 128 dimensions."""

    @property
    def dim(self) -> int:
        return 128

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = self.inner.embed(texts)[:, :128]
        out: Vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        return out
