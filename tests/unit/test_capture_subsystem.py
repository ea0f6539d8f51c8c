"""The capture subsystem with a fake ring: counting, kernel drops, health, retries, the collector."""
from __future__ import annotations

import asyncio
import errno
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from probe.config import load_text
from probe.subsystems import capture as capture_mod
from probe.sources.afpacket import CaptureError
from probe.subsystems.capture import CaptureSubsystem, FramePipeline
from probe.sources.frames import FrameBatch
from probe.subsystems.base import Context, Health


class FakeRing:
    """Scripted ring: `script` is a list of FrameBatch, dict (kernel stats delta) or Exception."""

    script: list = []
    opened: list = []
    fail_open: list = []

    def __init__(self, interface, **kw):
        if FakeRing.fail_open:
            raise FakeRing.fail_open.pop(0)
        self.interface, self.kw = interface, kw
        self.stats = {"packets": 0, "drops": 0, "freeze_queue_count": 0}
        self.closed = False
        FakeRing.opened.append(self)

    def next_batch(self, timeout=0.1, max_frames=65536):
        if not FakeRing.script:
            time.sleep(min(timeout, 0.01))
            return FrameBatch.empty()
        item = FakeRing.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, dict):
            for k, v in item.items():
                self.stats[k] += v
            return FrameBatch.empty()
        self.stats["packets"] += len(item)
        return item

    def statistics(self):
        return dict(self.stats)

    def close(self):
        self.closed = True

    @classmethod
    def reset(cls):
        cls.script, cls.opened, cls.fail_open = [], [], []


@pytest.fixture(autouse=True)
def _reset():
    FakeRing.reset()


def config(**capture):
    import json
    return load_text(json.dumps({"capture": {"interface": "mirror0", **capture}}))


def batch(n, size=60, vlan=None):
    return FrameBatch.from_frames([bytes(size)] * n, ts_ns=[1_700_000_000_000_000_000 + i for i in range(n)],
                                  vlan=vlan)


def sysfs(tmp_path, rx_dropped=0):
    d = tmp_path / "mirror0" / "statistics"
    d.mkdir(parents=True, exist_ok=True)
    (d / "rx_dropped").write_text(f"{rx_dropped}\n")
    (d / "rx_missed_errors").write_text("0\n")
    return str(tmp_path)


def make(tmp_path, cfg=None, **kw):
    return CaptureSubsystem(cfg or config(), Context(store=None), ring_class=FakeRing, sysfs=sysfs(tmp_path, 7),
                            stats_seconds=0.01, retry_seconds=0.05, **kw)


async def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return False


def metric(sub, name, labels=None):
    reg = CollectorRegistry(auto_describe=False)
    for c in sub.collectors():
        reg.register(c)
    return reg.get_sample_value(name, labels or {})


def test_counts_frames_bytes_and_exports_them(tmp_path):
    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(100), batch(50, size=200, vlan=[5] * 50)]
        await sub.start()
        assert sub.status.health == Health.OK and sub.status.reason == "capturing on mirror0"
        assert await wait_for(lambda: sub.snapshot()["counters"].frames == 150)
        await asyncio.sleep(0.05)
        assert metric(sub, "sitevigil_capture_frames_total") == 150
        assert metric(sub, "sitevigil_capture_bytes_total") == 100 * 60 + 50 * 200
        assert metric(sub, "sitevigil_capture_kernel_packets_total") == 150
        assert metric(sub, "sitevigil_capture_kernel_drops_total") == 0
        assert metric(sub, "sitevigil_capture_interface_drops_total", {"counter": "rx_dropped"}) == 7
        assert metric(sub, "sitevigil_capture_last_frame_timestamp_seconds") == pytest.approx(1.7e9)
        await sub.stop()
        assert FakeRing.opened[0].closed
        assert FakeRing.opened[0].kw["block_size"] == 1 << 20 and FakeRing.opened[0].kw["bpf"] == []
    asyncio.run(go())


def test_kernel_drops_accumulate_and_degrade_health(tmp_path):
    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(10), {"packets": 40, "drops": 40}, {"packets": 5, "drops": 5}]
        await sub.start()
        assert await wait_for(lambda: sub.snapshot()["counters"].kernel_drops == 45)
        assert await wait_for(lambda: sub.status.health == Health.DEGRADED)
        assert "dropped frames" in sub.status.reason and "capture.block_count" in sub.status.reason
        assert metric(sub, "sitevigil_capture_kernel_drops_total") == 45
        assert metric(sub, "sitevigil_capture_kernel_packets_total") == 55
        await sub.stop()
    asyncio.run(go())


def test_missing_interface_fails_then_recovers(tmp_path):
    async def go():
        FakeRing.fail_open = [CaptureError(errno.ENODEV, "capture interface 'mirror0' does not exist")] * 2
        sub = make(tmp_path)
        await sub.start()
        assert sub.status.health == Health.FAILED
        assert sub.status.reason == "capture interface 'mirror0' does not exist"
        assert await wait_for(lambda: sub.status.health == Health.OK)  # it came back: retried
        await sub.stop()
    asyncio.run(go())


def test_counters_survive_a_ring_that_fails_while_running(tmp_path):
    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(30), CaptureError(errno.ENETDOWN, "capture interface 'mirror0' went down or was removed")]
        await sub.start()
        assert await wait_for(lambda: len(FakeRing.opened) >= 2)  # reopened after the failure
        assert FakeRing.opened[0].closed
        FakeRing.script = [batch(20)]
        assert await wait_for(lambda: sub.snapshot()["counters"].frames == 50)  # never goes backwards
        await sub.stop()
    asyncio.run(go())


def test_no_interface_and_disabled(tmp_path):
    async def go():
        sub = make(tmp_path, config(interface=None))
        await sub.start()
        assert sub.status.health == Health.FAILED and "set capture.interface" in sub.status.reason
        sub = make(tmp_path, config(enabled=False))
        await sub.start()
        assert sub.status.health == Health.DISABLED
        await sub.stop()
    asyncio.run(go())


def test_reload_reopens_only_when_capture_config_changes(tmp_path):
    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(10)]
        await sub.start()
        assert await wait_for(lambda: sub.snapshot()["counters"].frames == 10)
        await sub.reload(config())
        assert len(FakeRing.opened) == 1
        await sub.reload(config(block_count=8))
        assert len(FakeRing.opened) == 2 and FakeRing.opened[1].kw["block_count"] == 8
        assert FakeRing.opened[0].closed
        FakeRing.script = [batch(5)]
        assert await wait_for(lambda: sub.snapshot()["counters"].frames == 15)  # counters carry over a reload
        await sub.stop()
    asyncio.run(go())


def test_pipeline_parses_when_the_parser_is_there(monkeypatch):
    calls = []

    def parse_frames(data, offset, caplen, wirelen, ts_ns, vlan):
        calls.append(len(offset))
        return np.zeros(len(offset)), 2

    monkeypatch.setattr(capture_mod.fastpath, "parse_frames", parse_frames, raising=False)
    pipe = FramePipeline()
    pipe.feed(batch(5))
    pipe.feed(FrameBatch.empty())
    assert calls == [5] and pipe.counters.malformed == 2 and pipe.counters.frames == 5 and pipe.parses


def test_pipeline_hands_batches_and_ticks_to_the_analysis():
    class Analysis:
        def __init__(self):
            self.batches, self.ticks = [], []

        def add_batch(self, b):
            self.batches.append(len(b))

        def tick(self, now_ns):
            self.ticks.append(now_ns)

    analysis = Analysis()  # it reports its findings to its own ledger (probe.findings.pipeline)
    pipe = FramePipeline(analysis=analysis)
    pipe.feed(batch(4))
    pipe.feed(FrameBatch.empty())
    pipe.tick(123)
    assert analysis.batches == [4] and analysis.ticks == [123]
    assert pipe.counters.frames == 4 and pipe.parse_frames is None  # parsed once, by the analysis


def test_subsystem_is_registered():
    from probe.subsystems import SUBSYSTEMS, factories
    assert ("capture", "probe.subsystems.capture:factory") in SUBSYSTEMS
    assert dict(factories())["capture"] is capture_mod.factory


def test_a_pipeline_bug_fails_health_and_restarts(tmp_path):
    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(3), ZeroDivisionError("boom")]
        await sub.start()
        assert await wait_for(lambda: sub.status.health == Health.FAILED)
        assert "internal error" in sub.status.reason and "boom" in sub.status.reason
        assert await wait_for(lambda: sub.status.health == Health.OK)  # reopened after retry_seconds
        assert len(FakeRing.opened) >= 2 and FakeRing.opened[0].closed
        await sub.stop()
    asyncio.run(go())
