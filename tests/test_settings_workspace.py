"""Settings from llmline.yaml with LLMLINE_* overrides; finding the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.errors import ConfigError, WorkspaceNotFoundError
from llmline.settings import Settings
from llmline.workspace import find_workspace, init_workspace


def test_init_creates_config_state_and_seed(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "proj")
    assert (tmp_path / "proj" / "llmline.yaml").is_file()
    assert (tmp_path / "proj" / ".llmline" / "metadata.db").is_file()
    assert ws.settings.metadata_url == f"sqlite:///{tmp_path}/proj/.llmline/metadata.db"
    assert ws.settings.artifact_root == f"{tmp_path}/proj/.llmline/artifacts"
    assert "python-faq" in ws.settings.datasets
    with ws.warehouse(read_only=True) as wh:
        rows = {t.name: t.rows for t in wh.tables()}
    assert rows["posts_questions"] >= 170
    assert rows["posts_answers"] == rows["posts_questions"]
    ws.close()
    # Re-running init leaves data alone (no duplicate rows, same config).
    config = (tmp_path / "proj" / "llmline.yaml").read_text()
    again = init_workspace(tmp_path / "proj")
    with again.warehouse(read_only=True) as wh:
        assert {t.name: t.rows for t in wh.tables()} == rows
    assert (tmp_path / "proj" / "llmline.yaml").read_text() == config
    again.close()


def test_find_workspace_upward_explicit_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_workspace(tmp_path / "proj", load_sample_data=False).close()
    nested = tmp_path / "proj" / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.delenv("LLMLINE_WORKSPACE", raising=False)
    monkeypatch.chdir(nested)
    assert find_workspace().root == (tmp_path / "proj").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceNotFoundError, match="run `llmline init` first"):
        find_workspace()
    assert find_workspace(tmp_path / "proj").root == (tmp_path / "proj").resolve()
    monkeypatch.setenv("LLMLINE_WORKSPACE", str(tmp_path / "proj"))
    assert find_workspace().root == (tmp_path / "proj").resolve()
    with pytest.raises(WorkspaceNotFoundError, match="not an llmline workspace"):
        find_workspace(tmp_path / "nowhere")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llmline.yaml").write_text("sql_dialect: duckdb\nartifact_root: arts\n")
    monkeypatch.setenv("LLMLINE_SQL_DIALECT", "postgres")
    monkeypatch.setenv("LLMLINE_ARTIFACT_ROOT", "s3://bucket/llmline")
    settings = Settings.load(tmp_path)
    assert settings.sql_dialect == "postgres"
    assert settings.artifact_root == "s3://bucket/llmline"  # URLs are not anchored
    monkeypatch.delenv("LLMLINE_ARTIFACT_ROOT")
    assert Settings.load(tmp_path).artifact_root == str(tmp_path / "arts")


@pytest.mark.parametrize(
    "text, message",
    [
        ("sql_dialect: oracle\n", "sql_dialect: Input should be"),
        ("unknown_key: 1\n", "unknown_key: Extra inputs are not permitted"),
        ("datasets:\n  x:\n    split:\n      fractions: {train: 0.5}\n", "must sum to 1"),
        ("datasets: [\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "llmline.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        Settings.load(tmp_path)
    assert "\n" not in str(info.value)
    assert str(tmp_path / "llmline.yaml") in str(info.value)
