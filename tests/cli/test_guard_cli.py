"""``llmline guard eval``: the --json report on a subset of the shipped set
with the real toxicity scanner, the human output, and one-line exit-1
errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llmline
from llmline.gateway.safety import ScanContext, severity_rank
from llmline.guard.scanners import create_scanner
from tests.cli.conftest import CLI, Result

SHIPPED = Path(__file__).resolve().parents[2] / "tests" / "data" / "guard" / "eval.jsonl"


@pytest.fixture(scope="module")
def subset_lines() -> list[str]:
    """A few items of each kind from the shipped set, toxic ones among them."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    picked: list[str] = []
    for prefix, n in (("tox-", 8), ("ben-", 6), ("out-", 3), ("inj-", 4), ("ref-", 2)):
        picked += [line for line in lines if json.loads(line)["id"].startswith(prefix)][:n]
    return picked


@pytest.fixture
def subset(tmp_path: Path, subset_lines: list[str]) -> Path:
    path = tmp_path / "subset.jsonl"
    path.write_text("\n".join(subset_lines) + "\n", encoding="utf-8")
    return path


def _expected(lines: list[str]) -> dict[str, set[str]]:
    """Ids by outcome from scanning each item with the toxicity scanner here:
    detected when a category scores >= 0.5 or is above negligible."""
    scanner = create_scanner("toxicity")
    out: dict[str, set[str]] = {"tp": set(), "fp": set(), "fn": set(), "tn": set()}
    for line in lines:
        item = json.loads(line)
        result = scanner.scan(item["text"], ScanContext(direction=item["direction"]))
        hit = any(s >= 0.5 for s in result.scores.values()) or any(
            severity_rank(v) > 0 for v in result.severity.values()
        )
        toxic = "toxicity" in item["labels"]
        out[("t" if hit == toxic else "f") + ("p" if hit else "n")].add(item["id"])
    return out


def test_eval_json_with_toxicity(cli: CLI, subset: Path, subset_lines: list[str]) -> None:
    r = cli("guard", "eval", "--set", str(subset), "--scanner", "toxicity", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["set"]["path"] == str(subset)
    assert data["set"]["items"] == len(subset_lines)
    assert data["set"]["labels"]["toxicity"] == 8
    assert data["set"]["benign_inputs"] == 6 and data["set"]["benign_outputs"] == 3
    assert data["skipped"] == {}
    [row] = data["scanners"]
    expected = _expected(subset_lines)
    assert row["name"] == "toxicity" and row["directions"] == ["input", "output"]
    assert row["items"] == len(subset_lines)
    assert {k: row[k] for k in ("tp", "fp", "fn", "tn")} == {k: len(v) for k, v in expected.items()}
    assert set(row["missed"]) == expected["fn"]
    assert set(row["false_alarms"]) == expected["fp"]
    assert row["tp"] + row["fn"] == 8
    assert row["recall"] == pytest.approx(row["tp"] / 8)
    assert row["benign"] == 9
    assert row["latency_p99_ms"] >= row["latency_p50_ms"] >= 0
    assert {t["scanner"]: t["met"] for t in data["targets"]} == {"injection": None, "pii": None}


def test_eval_human_output(cli: CLI, subset: Path) -> None:
    r = cli("guard", "eval", "--set", str(subset), "--scanner", "toxicity")
    assert r.code == 0, r.err
    assert f"eval set {subset}: 23 items" in r.out
    assert "toxicity" in r.out and "benign FPR" in r.out
    assert "target injection recall >= 0.90 at benign FPR <= 0.05: not run" in r.out
    assert "target pii recall >= 0.95: not run" in r.out


def test_threshold_option(cli: CLI, subset: Path) -> None:
    r = cli(
        "guard", "eval", "--set", str(subset), "--scanner", "toxicity",
        "--threshold", "toxicity=0.99", "--json",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["scanners"][0]["threshold"] == 0.99


def _one_line_error(r: Result, *words: str) -> None:
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for word in words:
        assert word in lines[0]


def test_bad_inputs(cli: CLI, tmp_path: Path, subset: Path) -> None:
    _one_line_error(cli("guard", "eval", "--set", str(tmp_path / "none.jsonl")), "does not exist")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(subset.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n")
    _one_line_error(cli("guard", "eval", "--set", str(bad)), f"{bad}:2:", "not valid JSON")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"id": "a", "text": "t", "direction": "input", "labels": ["spam"]}\n')
    _one_line_error(cli("guard", "eval", "--set", str(unknown)), f"{unknown}:1:", "labels")
    _one_line_error(cli("guard", "eval", "--set", str(subset), "--scanner", "topics"), "'topics'")
    _one_line_error(
        cli("guard", "eval", "--set", str(subset), "--threshold", "toxicity"), "NAME=VALUE"
    )
    _one_line_error(cli("guard", "eval", "--set", str(subset), "--threshold", "toxicity=2"), "0..1")


def test_default_set_missing_outside_a_checkout(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As installed from a wheel: site-packages/llmline/, no tests/ two levels up.
    fake = tmp_path / "site-packages" / "llmline" / "__init__.py"
    monkeypatch.setattr(llmline, "__file__", str(fake))
    _one_line_error(cli("guard", "eval", "--scanner", "toxicity"), "pass --set")
