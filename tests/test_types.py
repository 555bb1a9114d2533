"""The type checker STYLE.md asks for: mypy over the packages and main.py, with pyproject.toml's [tool.mypy]."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it comes with the test extra: pip install -e '.[test]')")
def test_mypy_finds_no_errors() -> None:
    # The files to check come from [tool.mypy] (files = ...); the cache makes later runs quick.
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
