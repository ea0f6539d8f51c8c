"""pytest fixtures for the simulated client LAN (tests/lab/netns.py)."""
from __future__ import annotations

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
