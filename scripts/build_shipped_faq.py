#!/usr/bin/env python3
"""Build the CPython FAQ data that llmline ships in ``llmline/resources/cpython_faq``.

The source is the reST of the Python 3.11.2 documentation as Debian packages
it (``python3.11-doc``, which installs the Sphinx sources under
``/usr/share/doc/python3.11/html/_sources``)::

    cd /tmp && apt-get download python3.11-doc
    dpkg-deb -x python3.11-doc_*.deb /tmp/pydoc
    python scripts/build_shipped_faq.py

It runs llmline's own FAQ importer over ``faq/*.rst.txt`` (all but the
``index``), writes the two warehouse tables as JSON lines, and writes the
licence and a README next to them.  The output is byte-for-byte the same on
every run, so a diff of the resource folder shows real changes only.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runs from a checkout without installing llmline.
sys.path.insert(0, str(REPO / "src"))

import docutils  # noqa: E402

from llmline.warehouse.faq import SHIPPED_FAQ_DIR, dump_jsonl, parse_faq_files  # noqa: E402

DEFAULT_SOURCES = Path("/tmp/pydoc/usr/share/doc/python3.11/html/_sources")
DEFAULT_OUT = REPO / "src" / "llmline" / "resources" / SHIPPED_FAQ_DIR
PYTHON_RELEASE = "3.11.2"
DEBIAN_PACKAGE = "python3.11-doc 3.11.2-6+deb12u8, Debian 12"
# Every row's creation_date: the day Python 3.11.2 was released.  Fixed, not
# the files' mtimes, which depend on when and how the package was unpacked.
CREATED = datetime(2023, 2, 8)
TAG = "python"
MIN_PAIRS = 170


def _literal_block(text: str, heading: str) -> str:
    """The ``parsed-literal`` block that follows ``heading`` in license.rst."""
    after = text[text.index(heading) :]
    block = after[after.index(".. parsed-literal::") :].split("\n", 2)[2]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip().replace("|release|", PYTHON_RELEASE)


def license_text(sources: Path) -> str:
    license_rst = (sources / "license.rst.txt").read_text(encoding="utf-8")
    copyright_rst = (sources / "copyright.rst.txt").read_text(encoding="utf-8")
    paragraphs = (" ".join(p.split()) for p in copyright_rst.split("\n\n"))
    notices = [p for p in paragraphs if p.startswith("Copyright ©")]
    psf = _literal_block(license_rst, "PSF LICENSE AGREEMENT FOR PYTHON |release|")
    bsd0 = _literal_block(license_rst, "ZERO-CLAUSE BSD LICENSE FOR CODE IN THE PYTHON")
    psf_title = f"PSF LICENSE AGREEMENT FOR PYTHON {PYTHON_RELEASE}"
    bsd0_title = f"ZERO-CLAUSE BSD LICENSE FOR CODE IN THE PYTHON {PYTHON_RELEASE} DOCUMENTATION"
    intro = (
        f"The files in this folder are derived from the Python {PYTHON_RELEASE}\n"
        "documentation (Doc/faq/*.rst). Python software and documentation are\n"
        "licensed under the PSF License Agreement below; code examples in the\n"
        "documentation are also available under the Zero-Clause BSD licence below."
    )
    sections = [
        intro,
        "\n".join(notices),
        f"{psf_title}\n{'=' * len(psf_title)}\n\n{psf}",
        f"{bsd0_title}\n{'=' * len(bsd0_title)}\n\n{bsd0}",
    ]
    return "\n\n\n".join(sections) + "\n"


def readme_text(per_file: dict[str, int]) -> str:
    rows = "\n".join(f"| `{Path(p).name}` | {n} |" for p, n in per_file.items())
    total = sum(per_file.values())
    return f"""# CPython FAQ sample data

{total} question/answer pairs from the Python {PYTHON_RELEASE} FAQ
(<https://docs.python.org/3.11/faq/>), in the shape of llmline's Stack
Overflow warehouse tables:

- `posts_questions.jsonl`: one FAQ question per line (title; empty body;
  tags `python|python-<file>`; `accepted_answer_id` points at its answer)
- `posts_answers.jsonl`: the answers, as HTML rendered from the reST

`llmline init` loads them (`llmline.warehouse.faq.load_shipped_faq`).

| FAQ file | pairs |
|---|---|
{rows}

## Source and licence

The text is © Python Software Foundation, from the Python {PYTHON_RELEASE}
documentation sources as packaged by Debian ({DEBIAN_PACKAGE}), and is
used under the PSF License Agreement (code examples also under the
Zero-Clause BSD licence); see `LICENSE.txt`.  Changes made: each question
section was converted to a pair of table rows and its reST rendered to
HTML; Sphinx-only markup (cross-reference roles, `versionadded` and similar
directives) was rendered as plain text or code.

## How it was produced

    cd /tmp && apt-get download python3.11-doc
    dpkg-deb -x python3.11-doc_*.deb /tmp/pydoc
    python scripts/build_shipped_faq.py

The script runs llmline's own reST FAQ importer (`import_faq` uses the
same parser; HTML rendered by docutils {docutils.__version__}) with tag `python`
and every `creation_date` set to {CREATED:%Y-%m-%d}, the day Python
{PYTHON_RELEASE} was released.  Ids are stable hashes of tag, file and title,
so the output is identical on every run.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    files = sorted(p for p in (args.sources / "faq").glob("*.rst.txt") if p.name != "index.rst.txt")
    if not files:
        parser.error(f"no FAQ sources under {args.sources / 'faq'} (see this script's docstring)")
    faq = parse_faq_files(files, tag=TAG, created=CREATED)
    if faq.questions.num_rows < MIN_PAIRS:
        parser.error(f"only {faq.questions.num_rows} questions parsed, expected {MIN_PAIRS}+")
    args.out.mkdir(parents=True, exist_ok=True)
    dump_jsonl(faq.questions, args.out / "posts_questions.jsonl")
    dump_jsonl(faq.answers, args.out / "posts_answers.jsonl")
    (args.out / "LICENSE.txt").write_text(license_text(args.sources), encoding="utf-8")
    (args.out / "README.md").write_text(readme_text(faq.per_file), encoding="utf-8")
    print(f"wrote {faq.questions.num_rows} question/answer pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
