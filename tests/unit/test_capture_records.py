"""The capture's hot path (FramePipeline.feed_ring over PacketRing.next_records: frames parsed in the
ring's block walk, only rare frames' bytes kept) gives what the batch path (feed(next_batch())) gives:
counters, totals, windows, findings and the devices learnt passively.

The ring is each implementation's PacketRing over a synthetic TPACKET_V3 buffer (tests/ring_blocks.py),
refilled block by block as the kernel would; tests/lab/test_capture_ring.py runs it on live frames."""
from __future__ import annotations

import numpy as np
import pytest

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.pipeline import CapturePipeline
from probe.sources import capfile
from probe.sources.afpacket import TP_STATUS_KERNEL
from probe.subsystems.capture import FramePipeline, PassiveFeed
from tests.ring_blocks import Frame, SyntheticRing


class BlockFeeder:
    """Plays the kernel for a PacketRing over a synthetic buffer: each block the walk handed back is
    refilled, in ring order, with as many of the pending frames as fit."""

    def __init__(self, impl, frames: list[Frame], block_size: int = 1 << 17, block_count: int = 4):
        self.blocks = SyntheticRing(block_size, block_count)
        self.ring = impl.PacketRing.over_buffer(self.blocks.mem, block_size=block_size, block_count=block_count)
        self.pending = list(frames)
        self.next_block = 0

    def refill(self) -> None:
        while self.pending and self.blocks.status(self.next_block) == TP_STATUS_KERNEL:
            n = 1
            while n < len(self.pending) and self.blocks.fits(self.pending[:n + 1]):
                n += 1
            self.blocks.fill(self.next_block, self.pending[:n])
            del self.pending[:n]
            self.next_block = (self.next_block + 1) % self.blocks.block_count

    def drained(self) -> bool:
        return not self.pending and all(s == TP_STATUS_KERNEL for s in self.blocks.statuses())


def ring_frames(batches) -> list[Frame]:
    return [Frame(b.frame(i), ts_ns=int(b.ts_ns[i]), wirelen=int(b.wirelen[i]) - (4 if b.vlan[i] >= 0 else 0),
                  vlan=int(b.vlan[i]) if b.vlan[i] >= 0 else None)
            for b in batches for i in range(len(b))]


class Learnt:
    def __init__(self):
        self.infos = []

    def learn_decoded(self, infos):
        self.infos += infos


def _run(batches, ring_impl=None):
    analysis = CapturePipeline(CaptureConfig(window=10, max_devices=256), DetectionConfig())
    closed = []
    analysis.on_window = closed.append
    learnt = Learnt()
    analysis.on_records = PassiveFeed(learnt, max_per_second=10**6, clock=lambda: 0.0).frames
    pipe = FramePipeline(analysis=analysis, batch_frames=8192)
    if ring_impl is not None:
        feeder = BlockFeeder(ring_impl, ring_frames(batches))
        for _ in range(100_000):
            feeder.refill()
            if feeder.drained():
                break
            pipe.feed_ring(feeder.ring, 0)
        assert feeder.drained()
    else:
        for b in batches:
            pipe.feed(b)
    analysis.finish()
    return pipe.counters, analysis.stats(), closed, analysis.findings.all_findings(), learnt.infos


def test_ring_records_path_equals_the_batch_path(shared_data, impl):
    batches = [b for p in sorted((shared_data / "pcap").glob("*.pcap*")) for b in capfile.read_batches(str(p))]
    batches = [b for b in batches if len(b)]
    assert sum(len(b) for b in batches) > 1000
    a, b = _run(batches), _run(batches, impl)
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


def test_rare_frames_come_with_their_own_records(impl):
    """next_records keeps the bytes of rare frames only; index points each at its record."""
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from probe.fastpath.layout import FRAME_DTYPE, RARE_FLAGS

    plain = bytes(Ether() / IP(dst="10.0.0.2") / UDP(sport=4000, dport=9))
    mdns = bytes(Ether(dst="01:00:5e:00:00:fb") / IP(dst="224.0.0.251") / UDP(sport=5353, dport=5353)
                 / DNS(qd=DNSQR(qname="a.local")))
    frames = [plain, mdns, plain, plain, mdns[:36]]  # the last is shorter than its IP header says: malformed
    blocks = SyntheticRing(4096, 2)
    blocks.fill(0, [Frame(f, ts_ns=t, vlan=3 if t == 20 else None) for f, t in zip(frames, [10, 20, 30, 40, 50])])
    ring = impl.PacketRing.over_buffer(blocks.mem, block_size=4096, block_count=2)
    out = np.zeros(16, FRAME_DTYPE)
    flags = np.full(32, 2, np.int64)  # added to, like record_totals'
    records, malformed, (index, rare), totals, aggregated = ring.next_records(out, 0, 0, flags)
    assert aggregated == 0
    assert len(records) == 5 and malformed == 1
    assert totals == (sum(len(f) for f in frames) + 4, 10, 50)  # the tag the kernel moved was on the wire
    assert flags.tolist() == [2 + sum(int(f) >> b & 1 for f in records["flags"]) for b in range(32)]
    assert index.tolist() == [1] and rare.frame(0) == mdns and rare.vlan.tolist() == [3]
    assert rare.ts_ns.tolist() == [20] and int(records[1]["flags"]) & RARE_FLAGS
    assert ring.next_records(out, 0)[0].shape == (0,)
    with pytest.raises(ValueError, match="FRAME_DTYPE"):
        ring.next_records(np.zeros(4, np.uint8), 0)
    with pytest.raises(ValueError, match="32 counters"):
        ring.next_records(out, 0, 0, np.zeros(8, np.int64))
