"""The `anomaly` finding on labelled probe-like series (tests/anomaly_series.py): quality bounds."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests import anomaly_series as A

SNMP = os.path.join(os.environ.get("SITEVIGIL_SHARED_DATA", os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data")), "snmp", "librenms")


@pytest.fixture(scope="module")
def judged():
    series = A.make_set(100, 12, snmp_dir=SNMP)
    return series, A.judge(series, A.run_findings(series))


def test_the_generator_is_seeded_and_labels_every_injection():
    a, b = A.make_set(6, 1, seed=3), A.make_set(6, 1, seed=3)
    assert all(np.array_equal(x.values, y.values) and np.array_equal(x.ts, y.ts) for x, y in zip(a, b))
    injected = [s for s in a if s.kind]
    assert sorted(s.kind for s in injected) == sorted(A.KINDS)
    for s in injected:
        assert A.START + 21 * 86400 <= s.at < A.START + 26 * 86400 and s.at in s.ts


def test_spikes_are_found(judged):
    _, (quality, _, _) = judged
    assert quality["spike"].recall >= 0.3, quality["spike"]


def test_an_ordinary_week_raises_at_most_one_finding_per_100_series(judged):
    _, (_, week4, _) = judged
    assert week4 <= 1.0
