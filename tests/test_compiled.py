"""The mypyc-compiled build gives the same output as pure Python.

Both builds are copies of the package in a temporary directory, run with only
that directory before site-packages. The compiled copy is built once for the
module by ``tools/compile.py --out``.
"""

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def _missing_build_tools() -> str | None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "no C compiler"
    for module in ("mypyc", "setuptools"):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"])
        if probe.returncode != 0:
            return f"{module} is not installed"
    return None


class Builds(NamedTuple):
    compiled: Path
    pure: Path


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    missing = _missing_build_tools()
    if missing:
        pytest.skip(f"cannot build with mypyc: {missing}")
    base = tmp_path_factory.mktemp("builds")
    compiled = base / "compiled"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "compile.py"), "--out", str(compiled)],
        check=True,
        capture_output=True,
    )
    pure = base / "pure"
    shutil.copytree(
        ROOT / "tcpwatch",
        pure / "tcpwatch",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    yield Builds(compiled, pure)


def _run(pythonpath: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python with only ``pythonpath`` before site-packages (``-P``: no cwd)."""
    return subprocess.run(
        [sys.executable, "-P", *args],
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
        capture_output=True,
        text=True,
        check=False,
    )


def _module_file(pythonpath: Path, module: str) -> str:
    done = _run(pythonpath, "-c", f"import {module} as m; print(m.__file__)")
    return done.stdout.strip()


def test_compiled_build_compiles_hot_modules(builds: Builds) -> None:
    for module in (
        "tcpwatch.flow.tracker",
        "tcpwatch.capture.decoder",
        "tcpwatch.capture.merge",
        "tcpwatch.capture.pcapfile",
        "tcpwatch.export.writers",
        "tcpwatch.pipeline",
    ):
        assert _module_file(builds.compiled, module).endswith(".so"), module
        assert _module_file(builds.pure, module).endswith(".py"), module


def test_compiled_matches_pure_on_bundled_captures(
    builds: Builds, tmp_path: Path
) -> None:
    zipped = tmp_path / "mixed.pcap.gz"
    zipped.write_bytes(gzip.compress((CAPTURES / "mixed.pcap").read_bytes()))
    files = sorted(str(path) for path in CAPTURES.glob("*.pcap*")) + [str(zipped)]
    for output in ("json", "csv"):
        read = ("-m", "tcpwatch", "read", *files, "--format", output)

        compiled = _run(builds.compiled, *read)
        pure = _run(builds.pure, *read)

        assert pure.returncode == 0, pure.stderr
        assert compiled.returncode == 0, compiled.stderr
        assert len(pure.stdout.splitlines()) > 5
        assert compiled.stdout == pure.stdout
        assert compiled.stderr == pure.stderr


def test_compiled_matches_pure_with_separate_jobs(builds: Builds) -> None:
    # Worker processes send their connections back pickled.
    files = [str(CAPTURES / "mixed.pcap"), str(CAPTURES / "refused.pcap")]
    read = ("-m", "tcpwatch", "read", *files, "--separate", "--jobs", "2", "-F")

    compiled = _run(builds.compiled, *read, "json")
    pure = _run(builds.pure, *read, "json")

    assert pure.returncode == 0, pure.stderr
    assert compiled.returncode == 0, compiled.stderr
    assert len(pure.stdout.splitlines()) == 8
    assert compiled.stdout == pure.stdout
    assert compiled.stderr == pure.stderr


def test_compiled_matches_pure_on_damaged_file(builds: Builds, tmp_path: Path) -> None:
    data = (CAPTURES / "mixed.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    read = ("-m", "tcpwatch", "read", str(cut), "--format", "json")

    compiled = _run(builds.compiled, *read)
    pure = _run(builds.pure, *read)

    assert pure.returncode == 1
    assert compiled.returncode == 1
    assert "truncated" in pure.stderr or "cut short" in pure.stderr
    assert compiled.stdout == pure.stdout
    assert compiled.stderr == pure.stderr


@pytest.mark.root
def test_compiled_records_match_pure_python(builds: Builds, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("recording in a network namespace needs root")
    capture = tmp_path / "loopback.pcap"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.corpus", "--packets", "4000"]
        + ["--out", str(capture), "--max-seconds", "60"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    read = ("-m", "tcpwatch", "read", str(capture), "--format", "json")

    compiled = _run(builds.compiled, *read)
    pure = _run(builds.pure, *read)

    assert pure.returncode == 0, pure.stderr
    assert len(pure.stdout.splitlines()) > 50
    assert compiled.stdout == pure.stdout
