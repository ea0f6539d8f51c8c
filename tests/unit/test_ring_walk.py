"""The capture ring's block walk over a synthetic TPACKET_V3 buffer (PacketRing.over_buffer), without
root: frames come out in order with the kernel's metadata, each block goes back to the kernel exactly
when its last frame is taken, blocks the kernel still holds stop the walk, damaged headers never send it
out of its block, and the compiled walk gives what the twin's BlockWalk (its specification) gives,
batch for batch."""
from __future__ import annotations

import functools
import random

import numpy as np
import pytest

import probe.fastpath.twin as twin
from probe.fastpath.layout import FRAME_DTYPE
from probe.sources.afpacket import TP_STATUS_KERNEL, TP_STATUS_USER, TPACKET_BLOCK_DESC
from probe.sources.frames import FrameBatch
from tests.ring_blocks import FIRST_FRAME, Frame, SyntheticRing

try:
    import probe._fastpath as compiled
except ImportError:  # not built: the comparison tests skip, the walk tests run on the twin
    compiled = None

STATUS_AT = TPACKET_BLOCK_DESC.fields["block_status"][1]


@functools.cache
def udp_frame(i: int, size: int = 60) -> bytes:
    """An Ethernet/IPv4/UDP frame whose bytes say which it is (i), padded to `size`."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    frame = Ether(src=f"02:00:00:00:{i >> 8 & 0xff:02x}:{i & 0xff:02x}", dst="02:00:00:00:ff:01") / \
        IP(src=f"10.0.{i >> 8 & 0xff}.{i & 0xff}", dst="10.0.255.1") / UDP(sport=40000 + i % 1000, dport=9999)
    raw = bytes(frame)
    return raw + bytes(max(0, size - len(raw)))


@functools.cache
def dhcp_frame(i: int, name_len: int = 200) -> bytes:
    """A DHCP discover (a rare frame: the ring keeps its bytes) with a host name of name_len bytes."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    mac = f"02:00:00:01:{i >> 8 & 0xff:02x}:{i & 0xff:02x}"
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                 UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=i) /
                 DHCP(options=[("message-type", "discover"), ("hostname", b"h" * name_len), "end"]))


def frames(start: int, n: int, *, vlan_every: int = 0) -> list[Frame]:
    return [Frame(udp_frame(i), ts_ns=1_700_000_000_000_000_000 + i * 1000,
                  vlan=(i % 4094 + 1) if vlan_every and i % vlan_every == 0 else None)
            for i in range(start, start + n)]


def taken(batch) -> list[bytes]:
    return [batch.frame(i) for i in range(len(batch))]


def test_frames_come_out_in_order_with_the_kernels_metadata(impl):
    ring = SyntheticRing(4096, 4)
    want = frames(0, 20, vlan_every=3)
    ring.fill(0, want[:10])
    ring.fill(1, want[10:])
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=4)
    batch = pr.next_batch(timeout=0, max_frames=100)
    assert taken(batch) == [f.data for f in want]
    assert batch.ts_ns.tolist() == [f.ts_ns for f in want]
    assert batch.vlan.tolist() == [f.vlan if f.vlan is not None else -1 for f in want]
    # a tag the kernel moved into metadata was on the wire
    assert batch.wirelen.tolist() == [len(f.data) + (4 if f.vlan is not None else 0) for f in want]
    assert ring.statuses() == [TP_STATUS_KERNEL] * 4
    assert len(pr.next_batch(timeout=0)) == 0


def test_a_block_goes_back_exactly_when_its_last_frame_is_taken(impl):
    ring = SyntheticRing(4096, 4)
    want = frames(0, 7)
    ring.fill(0, want[:5])
    ring.fill(1, want[5:])
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=4)
    got = taken(pr.next_batch(timeout=0, max_frames=3))
    assert got == [f.data for f in want[:3]] and ring.statuses()[:2] == [TP_STATUS_USER, TP_STATUS_USER]
    got += taken(pr.next_batch(timeout=0, max_frames=2))
    assert ring.statuses()[:2] == [TP_STATUS_KERNEL, TP_STATUS_USER]
    got += taken(pr.next_batch(timeout=0, max_frames=2))
    assert got == [f.data for f in want] and ring.statuses()[:2] == [TP_STATUS_KERNEL, TP_STATUS_KERNEL]


def test_a_block_the_kernel_still_holds_stops_the_walk_and_wraps_round(impl):
    ring = SyntheticRing(4096, 3)
    a, b, c, d = frames(0, 4), frames(4, 4), frames(8, 4), frames(12, 4)
    ring.fill(0, a)
    ring.fill(1, b, ready=False)
    ring.fill(2, c)
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=3)
    assert taken(pr.next_batch(timeout=0)) == [f.data for f in a]  # block 2 waits behind block 1
    assert len(pr.next_batch(timeout=0)) == 0
    ring.hand_over(1)
    ring.fill(0, d)  # the kernel refilled block 0: the walk reaches it after block 2, round the ring
    assert taken(pr.next_batch(timeout=0)) == [f.data for f in b + c + d]
    assert ring.statuses() == [TP_STATUS_KERNEL] * 3


@pytest.mark.parametrize("damage", ["first_frame_inside_block_header", "first_frame_past_block_end",
                                    "frame_bytes_past_block_end", "header_past_block_end", "no_frames",
                                    "more_frames_counted_than_chained"])
def test_damaged_headers_end_their_block_without_reading_outside_it(impl, damage):
    ring = SyntheticRing(4096, 3)
    before, damaged, after = frames(0, 3), frames(3, 4), frames(7, 3)
    ring.fill(0, before)
    offsets = ring.fill(1, damaged)
    ring.fill(2, after)
    kept = damaged
    if damage == "first_frame_inside_block_header":
        ring.block(1)["offset_to_first_pkt"] = FIRST_FRAME - 8
        kept = []
    elif damage == "first_frame_past_block_end":
        ring.block(1)["offset_to_first_pkt"] = 4096 - 10
        kept = []
    elif damage == "frame_bytes_past_block_end":
        ring.frame_header(1, offsets[2])["tp_snaplen"] = 4096
        kept = damaged[:2]
    elif damage == "header_past_block_end":
        ring.frame_header(1, offsets[1])["tp_next_offset"] = 4096
        kept = damaged[:2]
    elif damage == "no_frames":
        ring.block(1)["num_pkts"] = 0
        kept = []
    elif damage == "more_frames_counted_than_chained":  # the chain's end (tp_next_offset 0) ends the block
        ring.block(1)["num_pkts"] = 10
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=3)
    got = []
    for _ in range(5):
        got += taken(pr.next_batch(timeout=0))
    assert got == [f.data for f in before + kept + after]
    assert ring.statuses() == [TP_STATUS_KERNEL] * 3


def test_frame_bytes_may_reach_the_block_end_but_not_pass_it(impl):
    ring = SyntheticRing(4096, 2)
    (off,) = ring.fill(0, [Frame(udp_frame(1))])
    hdr = ring.frame_header(0, off)
    room = 4096 - off - int(hdr["tp_mac"])
    hdr["tp_snaplen"] = room
    ring.block(0)["blk_len"] = 4096
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=2)
    (frame,) = taken(pr.next_batch(timeout=0))
    assert len(frame) == room and frame[:60] == udp_frame(1)
    ring.hand_over(0)
    hdr["tp_snaplen"] = room + 1
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=2)
    assert len(pr.next_batch(timeout=0)) == 0 and ring.status(0) == TP_STATUS_KERNEL


def test_a_frame_header_may_end_at_the_block_end_but_not_pass_it(impl):
    ring = SyntheticRing(4096, 2)
    for start, taken_frames in ((4096 - 48, 1), (4096 - 47, 0)):
        ring.fill(0, [])
        desc = ring.block(0)
        desc["num_pkts"], desc["offset_to_first_pkt"] = 1, start
        hdr = ring.frame_header(0, start) if taken_frames else None
        if hdr is not None:  # a frame that is its own header's last 16 bytes
            hdr["tp_mac"], hdr["tp_snaplen"], hdr["tp_len"] = 32, 16, 16
        ring.hand_over(0)
        pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=2)
        assert len(pr.next_batch(timeout=0)) == taken_frames
        assert ring.status(0) == TP_STATUS_KERNEL


def test_a_block_header_that_understates_its_length_delays_frames_but_loses_none(impl):
    ring = SyntheticRing(4096, 3)
    a, b = frames(0, 6), frames(6, 6)
    ring.fill(0, a)
    ring.fill(1, b)
    for block in (0, 1):  # the headers say 60 bytes each: room for two of these 60-byte frames
        ring.block(block)["blk_len"] = 60
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=3)
    first = taken(pr.next_batch(timeout=0))
    assert first == [f.data for f in a[:2]]
    rest = taken(pr.next_batch(timeout=0))  # inside a block, the bound is the rest of the block
    assert first + rest == [f.data for f in a + b]
    assert ring.statuses() == [TP_STATUS_KERNEL] * 3


def test_next_records_are_the_parsed_frames_with_rare_bytes_kept(impl):
    ring = SyntheticRing(8192, 3)
    mixed = frames(0, 6)
    mixed[2:2] = [Frame(dhcp_frame(1), ts_ns=1_700_000_000_000_000_500)]
    mixed.append(Frame(dhcp_frame(2), ts_ns=1_700_000_000_000_009_000, vlan=7))
    ring.fill(0, mixed[:4])
    ring.fill(1, mixed[4:])
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=8192, block_count=3)
    out = np.zeros(64, FRAME_DTYPE)
    flag_counts = np.zeros(32, np.int64)
    records, malformed, rare, totals, aggregated = pr.next_records(out, timeout=0, flag_counts=flag_counts)
    batch = FrameBatch.from_frames([f.data for f in mixed], [f.ts_ns for f in mixed],
                                        [len(f.data) + (4 if f.vlan is not None else 0) for f in mixed],
                                        [f.vlan if f.vlan is not None else -1 for f in mixed])
    want, want_malformed = twin.parse_frames(batch.data, batch.offset, batch.caplen, batch.wirelen,
                                             batch.ts_ns, batch.vlan)
    assert records.tobytes() == want.tobytes() and malformed == want_malformed == 0
    index, rare_batch = rare
    assert index.tolist() == [2, 7] and taken(rare_batch) == [mixed[2].data, mixed[7].data]
    assert rare_batch.vlan.tolist() == [-1, 7]
    assert totals == (int(batch.wirelen.sum()), min(f.ts_ns for f in mixed), max(f.ts_ns for f in mixed))
    assert flag_counts.sum() > 0 and aggregated == 0
    assert ring.statuses() == [TP_STATUS_KERNEL] * 3


def test_next_records_stops_before_a_rare_frame_that_would_overflow_its_buffer(impl):
    # the ring keeps rare frames' bytes in a block_size buffer: 4096 / ~490 bytes = 8 per call
    ring = SyntheticRing(4096, 8)
    rare = [Frame(dhcp_frame(i, name_len=200), ts_ns=i) for i in range(30)]
    per_block = 6
    for b in range(5):
        ring.fill(b, rare[b * per_block:(b + 1) * per_block])
    pr = impl.PacketRing.over_buffer(ring.mem, block_size=4096, block_count=8)
    out = np.zeros(256, FRAME_DTYPE)
    got, calls = [], 0
    while calls < 20:
        records, _m, kept, _t, _a = pr.next_records(out, timeout=0)
        if not len(records):
            break
        calls += 1
        assert kept is not None and len(kept[0]) == len(records)  # every frame here is rare
        assert int(kept[1].caplen.sum()) <= 4096
        got += taken(kept[1])
    assert got == [f.data for f in rare] and calls > 1


def test_over_buffer_refuses_a_buffer_that_is_not_the_ring(impl):
    with pytest.raises(ValueError, match="buffer holds 4096 bytes, not block_size x block_count = 8192"):
        impl.PacketRing.over_buffer(np.zeros(4096, np.uint8), block_size=4096, block_count=2)
    with pytest.raises(ValueError, match="writeable C-contiguous uint8"):
        impl.PacketRing.over_buffer(np.zeros(8192, np.uint16), block_size=4096, block_count=2)
    with pytest.raises(ValueError, match="power of two"):
        impl.PacketRing.over_buffer(np.zeros(3000 * 2, np.uint8), block_size=3000, block_count=2)
    pr = impl.PacketRing.over_buffer(np.zeros(8192, np.uint8), block_size=4096, block_count=2)
    pr.close()
    assert pr.closed
    with pytest.raises(ValueError, match="closed"):
        pr.next_batch(timeout=0)


def _random_ring(rnd: random.Random, block_size: int, block_count: int) -> SyntheticRing:
    ring = SyntheticRing(block_size, block_count)
    serial = 0
    for b in range(block_count):
        fs = []
        while True:
            kind = rnd.random()
            if kind < 0.15:
                f = Frame(dhcp_frame(serial % 64, name_len=rnd.randrange(1, 250)), ts_ns=serial)
            else:
                f = Frame(udp_frame(serial % 512, size=rnd.randrange(60, 600)), ts_ns=serial,
                          vlan=rnd.randrange(1, 4095) if rnd.random() < 0.2 else None)
            if not ring.fits(fs + [f]) or rnd.random() < 0.05:
                break
            fs.append(f)
            serial += 1
        offsets = ring.fill(b, fs, ready=rnd.random() < 0.9)
        if offsets and rnd.random() < 0.2:  # a damaged header somewhere
            at = rnd.choice(offsets)
            field = rnd.choice(["tp_snaplen", "tp_next_offset", "tp_mac"])
            ring.frame_header(b, at)[field] = rnd.choice([block_size, block_size - 1, 1 << 15, 0])
        if rnd.random() < 0.1:
            ring.block(b)["blk_len"] = rnd.randrange(0, block_size)
    return ring


@pytest.mark.skipif(compiled is None, reason="the compiled fast path is not built")
@pytest.mark.parametrize("seed", range(40))
def test_compiled_walk_gives_what_the_twins_block_walk_gives(seed):
    rnd = random.Random(seed)
    block_size, block_count = rnd.choice([4096, 8192]), rnd.randrange(2, 6)
    ring = _random_ring(rnd, block_size, block_count)
    mems = {name: ring.mem.copy() for name in ("cython", "python")}
    rings = {"cython": compiled.PacketRing.over_buffer(mems["cython"], block_size=block_size, block_count=block_count),
             "python": twin.PacketRing.over_buffer(mems["python"], block_size=block_size, block_count=block_count)}
    calls = [(rnd.choice(["batch", "records"]), rnd.randrange(1, 40)) for _ in range(12)]
    for step, (kind, limit) in enumerate(calls):
        got = {}
        for name, pr in rings.items():
            if kind == "batch":
                b = pr.next_batch(timeout=0, max_frames=limit)
                got[name] = (taken(b), b.wirelen.tolist(), b.ts_ns.tolist(), b.vlan.tolist())
            else:
                out = np.zeros(limit, FRAME_DTYPE)
                fc = np.zeros(32, np.int64)
                records, malformed, rare, totals, _agg = pr.next_records(out, timeout=0, flag_counts=fc)
                got[name] = (records.tobytes(), malformed, totals, fc.tolist(),
                             None if rare is None else (rare[0].tolist(), taken(rare[1])))
        assert got["cython"] == got["python"], f"seed {seed}, call {step} ({kind}, {limit})"
        if rnd.random() < 0.3:  # the kernel hands over a block it held
            b = rnd.randrange(block_count)
            for mem in mems.values():
                mem[b * block_size + STATUS_AT] |= TP_STATUS_USER
    assert mems["cython"].tobytes() == mems["python"].tobytes()  # the same blocks handed back
