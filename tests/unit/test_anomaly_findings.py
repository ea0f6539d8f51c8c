"""High anomaly scores become `anomaly` findings: once per episode, with evidence a technician can read."""
from __future__ import annotations

import numpy as np

from probe.findings.anomaly import AnomalyAlerts
from probe.findings.ledger import Ledger
from probe.state.anomaly import AnomalyScores
from probe.state.store import Store
from probe.subsystems.base import Activity


def series(n, *, spikes=(), size=80.0, seed=3):
    rng = np.random.default_rng(seed)
    values = rng.normal(100.0, 2.0, n)
    for i in spikes:
        values[i] += size
    return 1.7e9 + 10.0 * np.arange(n), values


def run(scores, keys, ts, values):
    for t, v in zip(ts, values):
        scores.update(keys, [t] * len(keys), [v] * len(keys))


def test_a_spike_raises_one_finding_for_its_device_and_series():
    found = []
    alerts = AnomalyAlerts(found.append, warn_threshold=0.75)
    scores = AnomalyScores(16, on_alert=alerts, alert_threshold=0.5)
    ts, values = series(600, spikes=[500])
    for t, v in zip(ts, values):
        scores.update([("aa:bb:cc:00:00:01", "frames")], [t], [v])
    assert len(found) == 1, [f.evidence for f in found]
    f = found[0]
    assert f.kind == "anomaly" and f.device == "aa:bb:cc:00:00:01"
    assert f.evidence["series"] == "frames" and abs(f.evidence["value"] - values[500]) < 1e-3
    assert f.evidence["score"] >= 0.5 and f.evidence["one_in"] >= 10 ** 6
    assert f.first_seen == ts[500] and f.severity in ("info", "warning")
    assert (f.severity == "warning") == (f.evidence["score"] >= 0.75)


def test_quiet_series_raise_nothing_and_the_threshold_is_respected():
    found = []
    alerts = AnomalyAlerts(found.append, warn_threshold=0.75)
    scores = AnomalyScores(64, on_alert=alerts, alert_threshold=0.5)
    keys = [(f"dev{i}", "bytes") for i in range(20)]
    rng = np.random.default_rng(7)
    for step in range(400):
        scores.update(keys, [1.7e9 + 10 * step] * 20, rng.normal(1000.0, 30.0, 20))
    assert found == []
    # a 10-sigma spike scores between the default threshold and a stricter one: raised only under the first
    ts, values = series(600, spikes=[500], size=20.0)
    got = AnomalyScores(4)
    peak = max(float(got.update([("d", "s")], [t], [v])[0]) for t, v in zip(ts, values))
    assert 0.5 <= peak < 0.9
    for threshold, raised in ((0.9, 0), (0.5, 1)):
        found.clear()
        s = AnomalyScores(4, on_alert=AnomalyAlerts(found.append, warn_threshold=0.95),
                          alert_threshold=threshold)
        run(s, [("d", "s")], ts, values)
        assert len(found) == raised and all(f.severity == "info" for f in found)


def test_one_ledger_episode_per_device_and_a_broken_consumer_does_not_stop_scoring(tmp_path):
    store = Store(str(tmp_path))
    try:
        ledger = Ledger(store)
        alerts = AnomalyAlerts(ledger.record, warn_threshold=0.75)
        scores = AnomalyScores(8, on_alert=alerts, alert_threshold=0.5)
        ts, values = series(900, spikes=[500, 700])  # two episodes of the kernel, one open ledger episode
        run(scores, [("10.0.0.9", "if:eth0:in_bps")], ts, values)
        assert alerts.raised_total >= 1
        open_eps = [ep for ep in ledger.open_episodes() if ep.finding.kind == "anomaly"]
        assert len(open_eps) == 1 and open_eps[0].finding.device == "10.0.0.9"
        assert open_eps[0].occurrences == alerts.raised_total

        def broken(*_):
            raise RuntimeError("consumer bug")
        bad = AnomalyScores(4, on_alert=broken, alert_threshold=0.5)
        out = [float(bad.update([("d", "s")], [t], [v])[0]) for t, v in zip(ts, values)]
        assert max(out) >= 0.5 and bad.samples_total == len(ts)
    finally:
        store.close()


def test_the_daemon_records_anomaly_findings_and_a_reload_can_switch_them_off(tmp_path):
    """The daemon's wiring: what a subsystem scores through ctx.anomaly reaches the ledger as a finding;
    `detection.anomaly_findings: false` on reload stops new ones (scores are still kept and exported)."""
    import asyncio

    from probe.config import load_file
    from probe.daemon import Daemon, Overrides
    from probe.subsystems.base import Status

    fed = {}

    class Feeder:
        name = "feeder"

        def __init__(self, config, ctx):
            self.ctx, self.status = ctx, Status()
            fed["feeder"] = self

        def feed(self, device, spikes):
            ts, values = series(600, spikes=spikes)
            run(self.ctx.anomaly, [(device, "frames")], ts, values)

        async def start(self):
            pass

        async def stop(self):
            pass

        async def reload(self, config):
            pass

        def collectors(self):
            return []

        def routes(self):
            return []

        def describe(self):
            return {}

        def activity(self):
            return Activity()

    conf = tmp_path / "sitevigil.yml"
    conf.write_text("subnets: [{cidr: 192.0.2.0/24}]\ncapture: {interface: lo}\n")
    daemon = Daemon(load_file(str(conf)), config_path=str(conf),
                    overrides=Overrides(listen_address="127.0.0.1:0", state_dir=str(tmp_path / "state")),
                    factories=[("feeder", Feeder)])

    async def scenario():
        task = asyncio.ensure_future(daemon.run())
        for _ in range(100):
            if daemon._ready:
                break
            await asyncio.sleep(0.05)
        try:
            fed["feeder"].feed("aa:bb:cc:00:00:01", [500])
            kinds = [(ep.finding.kind, ep.finding.device) for ep in daemon.ledger.open_episodes()]
            assert ("anomaly", "aa:bb:cc:00:00:01") in kinds
            conf.write_text(conf.read_text() + "detection: {anomaly_findings: false}\n")
            ok, msg = await daemon.reload()
            assert ok, msg
            fed["feeder"].feed("aa:bb:cc:00:00:02", [500])
            kinds = [(ep.finding.kind, ep.finding.device) for ep in daemon.ledger.open_episodes()]
            assert ("anomaly", "aa:bb:cc:00:00:02") not in kinds
            assert daemon.anomaly.score_of(("aa:bb:cc:00:00:02", "frames")) is not None
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(scenario())


def test_the_evidence_explains_in_plain_words_what_is_usual_at_this_hour_and_how_rare_this_is():
    import probe.fastpath.twin.score as twin_score
    from probe.state import anomaly as state_anomaly
    assert (state_anomaly.STATE_SEAS, state_anomaly.STATE_SEAS_ERR, state_anomaly.N_HOURS) == (
        twin_score.C_SEAS, twin_score.C_SEAS_ERR, twin_score.N_SEAS)
    found = []
    scores = AnomalyScores(4, on_alert=AnomalyAlerts(found.append, warn_threshold=0.75), alert_threshold=0.5)
    ts, values = series(600, spikes=[500])
    run(scores, [("d", "s")], ts, values)
    assert len(found) == 1
    ev = found[0].evidence
    assert abs(ev["usual"] - 100.0) < 10.0          # the series sits at ~100; the spike is ~180
    text = ev["explanation"]
    assert text.startswith("usually about 10") and f"it was {values[500]:,.0f}" in text
    assert "UTC" in text and "one sample in" in text and ev["meaning"].split("one sample in ")[1] in text
