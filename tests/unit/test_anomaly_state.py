"""Series keys to kernel slots (bounded, least recently updated evicted) and the exported gauges."""
from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from probe import fastpath
from probe.fastpath.layout import SCORE_PARAM_NAMES
from probe.exposition.anomaly_collector import AnomalyCollector
from probe.state.anomaly import AnomalyScores


def feed(scores, keys, n, start=1.7e9, spike=None, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        t = start + 60.0 * i
        vals = rng.normal(100, 1, len(keys))
        if spike is not None and i == spike[1]:
            vals[keys.index(spike[0])] += 50
        scores.update(keys, [t] * len(keys), vals)


def test_same_scores_as_the_kernel_alone():
    rng = np.random.default_rng(1)
    keys = [("sw1", f"if{i}") for i in range(5)]
    n = 2000
    which = rng.integers(0, 5, n)
    ts = 1.7e9 + np.arange(n) * 10.0
    values = rng.normal(size=n)
    s = AnomalyScores(10, alert_threshold=0.6)
    got = s.update([keys[k] for k in which], ts, values)
    state = fastpath.score_state_new(5)
    params = fastpath.score_default_params()
    params[SCORE_PARAM_NAMES.index("alert")] = 0.6   # episodes open where findings are raised
    want = fastpath.score_samples(state, params, which.astype(np.int64), ts, values)
    np.testing.assert_array_equal(got, want)


def test_an_episode_opens_at_the_finding_threshold_so_a_climbing_score_raises_one():
    """A flatline gets rarer with every repeat: its score climbs through the kernel's own alert level
    (0.35) to the finding threshold. Opened at 0.35, the episode silenced the climb and no finding came."""
    raised = []
    s = AnomalyScores(2, on_alert=lambda key, ts, value, score, usual: raised.append(score), alert_threshold=0.5)
    rng = np.random.default_rng(4)
    values = np.r_[rng.lognormal(5.0, 0.2, 3000), np.full(80, 150.0)]
    ts = 1.7e9 + 300.0 * np.arange(len(values))
    scores = s.update([("sw1", "if1")] * len(values), ts, values)
    assert raised and min(raised) >= 0.5
    assert scores[3000:].max() >= 0.5 and (scores[3000:] >= 0.5).sum() == len(raised)


def test_bounded_and_least_recently_updated_evicted():
    s = AnomalyScores(3)
    s.update([("a", "x"), ("b", "x"), ("c", "x")], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    s.update([("a", "x")], [4.0], [1.0])          # a is fresh again: b is now the oldest
    s.update([("d", "x")], [5.0], [1.0])
    assert len(s) == 3 and s.evicted_total == 1
    assert s.score_of(("b", "x")) is None and s.score_of(("a", "x")) is not None
    # a batch with more distinct keys than slots still scores every sample, within the bound
    keys = [(f"dev{i}", "y") for i in range(7)]
    out = s.update(keys, np.arange(7.0) + 10, np.ones(7))
    assert out.shape == (7,) and len(s) == 3 and s.evicted_total == 8
    # a re-used slot starts from nothing: the new series is not judged by the old one's history
    s2 = AnomalyScores(1)
    feed(s2, [("old", "s")], 300)
    s2.update([("new", "s")], [2e9], [1e9])
    assert s2.score_of(("new", "s")) == 0.0
    s2.forget([("new", "s")])
    assert len(s2) == 0


def test_collector_exports_top_n_and_device_maxima():
    s = AnomalyScores(100)
    keys = [(f"dev{d}", f"if{i}") for d in range(4) for i in range(5)]
    feed(s, keys, 400, spike=(("dev2", "if3"), 390))
    now = 1.7e9 + 60.0 * 400
    reg = CollectorRegistry()
    reg.register(AnomalyCollector(s, top_n=3, threshold=0.5, clock=lambda: now))
    top = [m for m in reg.collect() if m.name == "sitevigil_anomaly_score"][0].samples
    assert len(top) == 3
    assert top[0].labels == {"device": "dev2", "series": "if3"} and top[0].value >= 0.5
    assert reg.get_sample_value("sitevigil_anomaly_device_score_max", {"device": "dev2"}) == top[0].value
    devices = [m for m in reg.collect() if m.name == "sitevigil_anomaly_device_score_max"][0].samples
    assert len(devices) == 4
    assert reg.get_sample_value("sitevigil_anomaly_series_above_threshold") == 1
    assert reg.get_sample_value("sitevigil_anomaly_series") == 20
    assert reg.get_sample_value("sitevigil_anomaly_samples_total") == 8000
    # the alert is held for a while though the kernel silences the followers
    assert s.score_of(("dev2", "if3")) >= 0.5
    # series that stopped reporting leave the export
    later = AnomalyCollector(s, top_n=3, threshold=0.5, stale_seconds=60, clock=lambda: now + 3600)
    assert [m for m in later.collect() if m.name == "sitevigil_anomaly_score"][0].samples == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_series"):
        AnomalyScores(0)
    with pytest.raises(ValueError, match="differ in length"):
        AnomalyScores(2).update([("a", "b")], [1.0, 2.0], [1.0])
