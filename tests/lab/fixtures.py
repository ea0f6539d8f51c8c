"""pytest fixtures for the simulated client LAN (tests/lab/netns.py): `lab` (the default shape),
`lab_factory` (labs of any shape within one test), and `lab_fixture(...)` for a module's own shared lab.
Each skips with the reason where a lab cannot be built, and tears down what it built, also on failure."""
from __future__ import annotations

import shutil

import pytest

from tests.lab.netns import Lab, lab_available


@pytest.fixture
def lab_factory():
    """Build labs with custom shapes: `lab_factory(hosts=50, snmp_hosts=3)`; all torn down after the test."""
    if (why := lab_available()) is not None:
        pytest.skip(f"lab: {why}")
    labs: list[Lab] = []

    def make(**kw) -> Lab:
        lab = Lab(**kw)
        labs.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in labs:
            lab.destroy()


@pytest.fixture
def lab(lab_factory) -> Lab:
    """A small client LAN: gateway, probe (with a mirror port), three hosts, one running snmpd."""
    return lab_factory(hosts=3, snmp_hosts=1)


def lab_fixture(*, scope: str = "module", needs: tuple[str, ...] = (), **shape):
    """A fixture giving one Lab of `shape` (Lab's arguments) shared by the tests in its `scope`; skipped
    when a program in `needs` (e.g. "snmpd") is missing. In a test module: `lab = lab_fixture(hosts=2)`."""

    @pytest.fixture(scope=scope)
    def fixture():
        if (why := lab_available()) is not None:
            pytest.skip(f"lab: {why}")
        for tool in needs:
            if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin") is None:
                pytest.skip(f"needs {tool}")
        with Lab(**shape) as lab:
            yield lab
    return fixture
