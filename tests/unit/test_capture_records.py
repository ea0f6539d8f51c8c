"""The capture's hot path (FramePipeline.feed_ring over PacketRing.next_records: frames parsed in the
ring's walk, only rare frames' bytes kept) gives what the batch path (feed(next_batch())) gives:
counters, totals, windows, findings and the devices learnt passively.

The ring is the twin's next_records over scripted batches; the compiled walk is compared with the twin
on live frames in tests/integration/test_capture_ring.py."""
from __future__ import annotations

import numpy as np
import pytest

from probe.fastpath.twin.ring import PacketRing as TwinRing
from probe.config import CaptureConfig, DetectionConfig
from probe.findings.pipeline import CapturePipeline
from probe.sources import capfile
from probe.subsystems.capture import FramePipeline, PassiveFeed
from probe.sources.frames import FrameBatch


class ScriptedRing(TwinRing):
    """The twin ring's next_records, reading scripted batches instead of a socket."""

    def __init__(self, batches):
        self.script = list(batches)
        self._sock = object()
        self._busy = self._close_pending = False

    def next_batch(self, timeout=0.1, max_frames=4096):
        if not self.script:
            return FrameBatch.empty()
        batch = self.script.pop(0)
        assert len(batch) <= max_frames
        return batch


class Learnt:
    def __init__(self):
        self.infos = []

    def learn_decoded(self, infos):
        self.infos += infos


def _run(batches, use_ring: bool):
    analysis = CapturePipeline(CaptureConfig(window=10, max_devices=256), DetectionConfig())
    closed = []
    analysis.on_window = closed.append
    learnt = Learnt()
    analysis.on_records = PassiveFeed(learnt, max_per_second=10**6, clock=lambda: 0.0).frames
    pipe = FramePipeline(analysis=analysis, batch_frames=8192)
    if use_ring:
        ring = ScriptedRing(batches)
        while ring.script:
            pipe.feed_ring(ring, 0)
    else:
        for b in batches:
            pipe.feed(b)
    analysis.finish()
    return pipe.counters, analysis.stats(), closed, analysis.findings.all_findings(), learnt.infos


def test_ring_records_path_equals_the_batch_path(shared_data):
    batches = [b for p in sorted((shared_data / "pcap").glob("*.pcap*")) for b in capfile.read_batches(str(p))]
    batches = [b for b in batches if len(b)]
    assert sum(len(b) for b in batches) > 1000
    a, b = _run(batches, False), _run(batches, True)
    assert a[0] == b[0]  # frames, bytes, last frame time
    sa, sb = a[1], b[1]
    assert (sa.frames, sa.bytes, sa.malformed, sa.flag_frames, sa.events, sa.windows) == \
           (sb.frames, sb.bytes, sb.malformed, sb.flag_frames, sb.events, sb.windows)
    assert sa.malformed > 0 and sa.flag_frames["DHCP"] > 0 and sa.flag_frames["LLDP"] > 0
    assert len(a[2]) == len(b[2]) > 1
    for wa, wb in zip(a[2], b[2]):
        assert (wa.start_ns, wa.end_ns) == (wb.start_ns, wb.end_ns)
        for name in ("macs", "ips", "arp"):
            ta, tb = getattr(wa, name), getattr(wb, name)
            assert np.array_equal(ta.keys, tb.keys) and np.array_equal(ta.counts, tb.counts)
            assert np.array_equal(ta.hll, tb.hll)
    assert [(f.kind, f.device) for f in a[3]] == [(f.kind, f.device) for f in b[3]]
    assert a[4] == b[4] and len(a[4]) > 10  # the same rare frames decoded, in the same order


def test_rare_frames_come_with_their_own_records():
    """next_records keeps the bytes of rare frames only; index points each at its record."""
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from probe.fastpath.layout import FRAME_DTYPE, RARE_FLAGS

    plain = bytes(Ether() / IP(dst="10.0.0.2") / UDP(sport=4000, dport=9))
    mdns = bytes(Ether(dst="01:00:5e:00:00:fb") / IP(dst="224.0.0.251") / UDP(sport=5353, dport=5353)
                 / DNS(qd=DNSQR(qname="a.local")))
    frames = [plain, mdns, plain, plain, mdns[:36]]  # the last is shorter than its IP header says: malformed
    ring = ScriptedRing([FrameBatch.from_frames(frames, ts_ns=[10, 20, 30, 40, 50], vlan=[-1, 3, -1, -1, -1])])
    out = np.zeros(16, FRAME_DTYPE)
    flags = np.full(32, 2, np.int64)  # added to, like record_totals'
    records, malformed, (index, rare), totals, aggregated = ring.next_records(out, 0, 0, flags)
    assert aggregated == 0
    assert len(records) == 5 and malformed == 1
    assert totals == (sum(len(f) for f in frames), 10, 50)
    assert flags.tolist() == [2 + sum(int(f) >> b & 1 for f in records["flags"]) for b in range(32)]
    assert index.tolist() == [1] and rare.frame(0) == mdns and rare.vlan.tolist() == [3]
    assert rare.ts_ns.tolist() == [20] and int(records[1]["flags"]) & RARE_FLAGS
    assert ring.next_records(out, 0)[0].shape == (0,)
    with pytest.raises(ValueError, match="FRAME_DTYPE"):
        ring.next_records(np.zeros(4, np.uint8), 0)
    with pytest.raises(ValueError, match="32 counters"):
        ring.next_records(out, 0, 0, np.zeros(8, np.int64))
