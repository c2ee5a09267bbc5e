"""The mypyc-compiled build gives the same records as pure Python.

The capture is real kernel traffic, recorded on loopback in a network
namespace by the benchmark corpus generator, so the test needs root.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _missing_build_tools() -> str | None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "no C compiler"
    for module in ("mypyc", "setuptools"):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"])
        if probe.returncode != 0:
            return f"{module} is not installed"
    return None


def _run(pythonpath: Path, *args: str) -> str:
    """Run Python with only ``pythonpath`` before site-packages (``-P``: no cwd)."""
    completed = subprocess.run(
        [sys.executable, "-P", *args],
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


@pytest.mark.root
def test_compiled_records_match_pure_python(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("recording in a network namespace needs root")
    missing = _missing_build_tools()
    if missing:
        pytest.skip(f"cannot build with mypyc: {missing}")
    capture = tmp_path / "loopback.pcap"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.corpus", "--packets", "4000"]
        + ["--out", str(capture), "--max-seconds", "60"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    compiled = tmp_path / "compiled"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "compile.py"), "--out", str(compiled)],
        check=True,
        capture_output=True,
    )
    pure = tmp_path / "pure"
    shutil.copytree(
        ROOT / "tcpwatch",
        pure / "tcpwatch",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    where = "import tcpwatch.flow.tracker as t; print(t.__file__)"
    read = ("-m", "tcpwatch", "read", str(capture), "--format", "json")

    compiled_tracker = _run(compiled, "-c", where).strip()
    pure_tracker = _run(pure, "-c", where).strip()
    compiled_records = _run(compiled, *read)
    pure_records = _run(pure, *read)

    assert compiled_tracker.endswith(".so")
    assert pure_tracker.endswith(".py")
    assert len(pure_records.splitlines()) > 50
    assert compiled_records == pure_records
