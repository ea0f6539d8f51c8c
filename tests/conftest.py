"""Shared fixtures: the fast-path implementations, the shared test data, the `sitevigil` command.

The suite runs once per fast-path implementation (CI sets SITEVIGIL_NO_EXTENSIONS=1 for the second
run); tests that compare the two take the `impl` fixture, which yields both modules when both exist.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

pytest_plugins = ["tests.lab.fixtures"]


def shared_data_dir() -> Path:
    return Path(os.environ.get("SITEVIGIL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set SITEVIGIL_SHARED_DATA)")
    return path


def _implementations():
    import probe.fastpath.twin as py

    impls = [pytest.param(py, id="python")]
    try:
        import probe._fastpath as c
    except ImportError:
        c = None
    if c is not None:
        impls.insert(0, pytest.param(c, id="cython"))
    return impls


@pytest.fixture(params=_implementations())
def impl(request):
    """Each fast-path implementation in turn (the compiled one when built, and the twin)."""
    return request.param


@pytest.fixture(scope="session")
def sitevigil_cmd() -> list[str]:
    """How to run the command line from this checkout (works without the console script installed)."""
    return [sys.executable, "-m", "probe"]


@pytest.fixture(scope="session")
def sitevigil_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture
def store(tmp_path):
    """A probe database in the test's own directory, closed afterwards."""
    from probe.state.store import Store

    s = Store(str(tmp_path))
    yield s
    s.close()


def pytest_collection_modifyitems(config, items):
    """Folders match markers: a test that builds a lab (marked `lab`: root, network namespaces) lives in
    tests/lab/, and every test there is marked so; `tests/unit tests/integration` and `-m "not lab"`
    then select the same tests. A test that runs a real peer program (marked `peer`) is no unit test:
    tests/unit/ holds none, so `pytest tests/unit` needs nothing beyond the Python packages."""
    here = Path(__file__).resolve().parent
    lab_dir, unit_dir = here / "lab", here / "unit"
    wrong = []
    for item in items:
        folder = Path(str(item.fspath)).resolve().parent
        marked = item.get_closest_marker("lab") is not None
        if marked != (folder == lab_dir):
            wrong.append(f"{item.nodeid}: {'marked lab outside tests/lab/' if marked else 'in tests/lab/ but not marked lab'}")
        if folder == unit_dir and item.get_closest_marker("peer") is not None:
            wrong.append(f"{item.nodeid}: marked peer (a real program) in tests/unit/")
    if wrong:
        raise pytest.UsageError("tests in the wrong folder for their markers:\n  " + "\n  ".join(wrong))
