"""Run the CLI in-process (fast) or as the real console script (exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmline.cli.app import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


CLI = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> CLI:
    """``cli("data", "list", "--json")`` → Result, in the workspace ``tmp_path/ws``."""

    def run(*args: str, workspace: Path | None = None) -> Result:
        capsys.readouterr()
        root = workspace or tmp_path / "ws"
        code = main(["--workspace", str(root), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_console_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``llmline`` entry point in a real child process."""
    script = Path(sys.executable).with_name("llmline")
    return subprocess.run(
        [str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
