"""The capture-file reader: pcap/pcapng variants, streaming batches, located errors after the good part."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from probe.sources.capfile import CaptureFileError, read_batches, write_pcap
from probe.sources.frames import FrameBatch

FRAMES = [bytes([i]) * (60 + i) for i in range(7)]


def pcap_bytes(frames, *, endian="<", ns=False, linktype=1, ts0=1_700_000_000):
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(endian + "IIII", ts0 + i, 5 * (i + 1), len(f), len(f) + 4) + f
    return out


def block(endian, btype, body):
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def shb(endian):
    return block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(endian, linktype=1, tsresol=None):
    body = struct.pack(endian + "HHI", linktype, 0, 65535)
    if tsresol is not None:
        body += struct.pack(endian + "HH", 9, 1) + bytes([tsresol, 0, 0, 0]) + struct.pack(endian + "HH", 0, 0)
    return block(endian, 1, body)


def epb(endian, iface, ts, frame, wirelen=None):
    return block(endian, 6, struct.pack(endian + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                        wirelen or len(frame)) + frame)


def spb(endian, frame):
    return block(endian, 3, struct.pack(endian + "I", len(frame)) + frame)


def read_all(path, **kw):
    batches = list(read_batches(str(path), **kw))
    frames = [b.frame(i) for b in batches for i in range(len(b))]
    ts = [int(t) for b in batches for t in b.ts_ns]
    wl = [int(w) for b in batches for w in b.wirelen]
    return batches, frames, ts, wl


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_variants(tmp_path, endian, ns):
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes(FRAMES, endian=endian, ns=ns))
    batches, frames, ts, wl = read_all(p, batch_frames=3)
    assert frames == FRAMES
    assert [len(b) for b in batches] == [3, 3, 1]  # bounded chunks
    unit = 1 if ns else 1000
    assert ts == [(1_700_000_000 + i) * 10**9 + 5 * (i + 1) * unit for i in range(7)]
    assert wl == [len(f) + 4 for f in FRAMES]
    assert all((b.vlan == -1).all() for b in batches)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_unknown_blocks(tmp_path, endian):
    data = (shb(endian) + idb(endian) + idb(endian, tsresol=9) + block(endian, 0x0BADBEEF, b"junk")
            + epb(endian, 0, 1_000_000, FRAMES[0]) + epb(endian, 1, 2_000_000_123, FRAMES[1], wirelen=999)
            + spb(endian, FRAMES[2]) + block(endian, 5, bytes(8)))  # interface statistics: skipped
    p = tmp_path / "x.pcapng"
    p.write_bytes(data)
    _, frames, ts, wl = read_all(p)
    assert frames == FRAMES[:3]
    assert ts[:2] == [1_000_000 * 1000, 2_000_000_123]
    assert ts[2] == ts[1]  # a simple packet block has no timestamp: keeps the last one
    assert wl[1] == 999


def test_pcapng_sections_switch_byte_order(tmp_path):
    data = shb("<") + idb("<") + epb("<", 0, 1, FRAMES[0]) + shb(">") + idb(">") + epb(">", 0, 2, FRAMES[1])
    p = tmp_path / "x.pcapng"
    p.write_bytes(data)
    assert read_all(p)[1] == FRAMES[:2]


def test_truncated_pcap_errors_after_yielding_what_came_before(tmp_path):
    good = pcap_bytes(FRAMES)
    cut = len(good) - 10  # inside the last frame's data
    p = tmp_path / "cut.pcap"
    p.write_bytes(good[:cut])
    got = []
    with pytest.raises(CaptureFileError) as info:
        for b in read_batches(str(p), batch_frames=4):
            got.extend(b.frame(i) for i in range(len(b)))
    assert got == FRAMES[:-1]
    last_record = len(good) - 16 - len(FRAMES[-1])
    assert info.value.offset == last_record
    assert str(info.value).startswith(f"{p}: byte {last_record}: truncated record")


def test_corrupt_record_length_is_located(tmp_path):
    good = bytearray(pcap_bytes(FRAMES[:3]))
    second = 24 + 16 + len(FRAMES[0])
    good[second + 8:second + 12] = struct.pack("<I", 0x7FFFFFFF)
    p = tmp_path / "bad.pcap"
    p.write_bytes(bytes(good))
    got = []
    with pytest.raises(CaptureFileError, match=rf"byte {second}: record length 2147483647 exceeds"):
        for b in read_batches(str(p)):
            got.extend(b.frame(i) for i in range(len(b)))
    assert got == FRAMES[:1]


def test_corrupt_pcapng_block_is_located(tmp_path):
    head = shb("<") + idb("<") + epb("<", 0, 1, FRAMES[0])
    bad = bytearray(epb("<", 0, 2, FRAMES[1]))
    bad[-4:] = struct.pack("<I", 12345)  # trailing length disagrees
    p = tmp_path / "bad.pcapng"
    p.write_bytes(head + bytes(bad) + epb("<", 0, 3, FRAMES[2]))
    got = []
    with pytest.raises(CaptureFileError, match=rf"byte {len(head)}: block length .* does not match"):
        for b in read_batches(str(p)):
            got.extend(b.frame(i) for i in range(len(b)))
    assert got == FRAMES[:1]


def test_truncated_pcapng_block(tmp_path):
    head = shb("<") + idb("<") + epb("<", 0, 1, FRAMES[0])
    p = tmp_path / "cut.pcapng"
    p.write_bytes(head + epb("<", 0, 2, FRAMES[1])[:30])
    with pytest.raises(CaptureFileError, match=rf"byte {len(head)}: truncated block"):
        list(read_batches(str(p)))


def test_other_linktypes_and_garbage_are_clear_errors(tmp_path):
    p = tmp_path / "user0.pcap"
    p.write_bytes(pcap_bytes(FRAMES[:1], linktype=147))  # LINKTYPE_USER0: nothing to read in a pcap of it
    with pytest.raises(CaptureFileError, match="byte 20: link type 147 is not supported"):
        list(read_batches(str(p)))
    g = tmp_path / "junk.pcap"
    g.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureFileError, match="byte 0: not a pcap or pcapng file"):
        list(read_batches(str(g)))
    with pytest.raises(CaptureFileError, match="cannot open"):
        list(read_batches(str(tmp_path / "missing.pcap")))


def test_empty_pcap_yields_nothing(tmp_path):
    p = tmp_path / "empty.pcap"
    p.write_bytes(pcap_bytes([]))
    assert list(read_batches(str(p))) == []


def test_write_pcap_round_trips(tmp_path):
    b = FrameBatch.from_frames(FRAMES, ts_ns=[i * 1_000_000_123 for i in range(7)], wirelen=[100 + i for i in range(7)])
    for ns in (False, True):
        p = tmp_path / f"rt{ns}.pcap"
        assert write_pcap(str(p), [b], nanosecond=ns, big_endian=ns) == 7
        _, frames, ts, wl = read_all(p)
        assert frames == FRAMES and wl == [100 + i for i in range(7)]
        expect = [int(t) if ns else int(t) // 1000 * 1000 for t in b.ts_ns]
        assert ts == expect
    assert np.array_equal(b.caplen, [len(f) for f in FRAMES])


def test_linux_cooked_and_raw_ip_become_ethernet(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import ARP
    from probe import fastpath
    from probe.fastpath import layout as L
    from probe.state.aggregates import batch_columns

    syn = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80, flags="S"))
    arp = bytes(ARP(op=1, hwsrc="02:00:00:00:00:05", psrc="10.0.0.5", pdst="10.0.0.1"))
    src = bytes.fromhex("020000000005")
    sll = [struct.pack(">HHH", 4, 1, 6) + src + b"\0\0" + b"\x08\x00" + syn,          # outgoing, IPv4
           struct.pack(">HHH", 1, 1, 6) + src + b"\0\0" + b"\x08\x06" + arp]          # broadcast, ARP
    sll2 = [b"\x08\x00" + b"\0\0" + struct.pack(">IHBB", 2, 1, 4, 6) + src + b"\0\0" + syn]
    for linktype, frames in ((113, sll), (276, sll2), (101, [syn]), (228, [syn])):
        p = tmp_path / f"lt{linktype}.pcap"
        p.write_bytes(pcap_bytes(frames, linktype=linktype))
        b, = list(read_batches(str(p)))
        recs, bad = fastpath.parse_frames(*batch_columns(b))
        assert bad == 0
        assert recs[0]["flags"] & L.F_TCP and recs[0]["dport"] == 80 and recs[0]["src_ip"] == 0x0A000001
        assert recs[0]["src_mac"] == (0x020000000005 if linktype in (113, 276) else 0)
        if linktype == 113:
            assert recs[1]["flags"] & L.F_ARP and recs[1]["flags"] & L.F_BROADCAST and recs[1]["arp_spa"] == 0x0A000005
    p = tmp_path / "runt.pcap"  # a cooked header shorter than itself, not cut by a snap length
    p.write_bytes(pcap_bytes([], linktype=113) + struct.pack("<IIII", 1, 0, 2, 2) + b"\x00\x04")
    b, = list(read_batches(str(p)))
    assert fastpath.parse_frames(*batch_columns(b))[1] == 1


def test_large_pcap_across_read_chunks_and_cuts(tmp_path):
    import random
    rnd = random.Random(5)
    frames = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(14, 1515))) for _ in range(2500)]
    ts = [1_600_000_000_000_000_000 + 1000 * i for i in range(len(frames))]
    b = FrameBatch.from_frames(frames, ts_ns=ts)
    p = tmp_path / "big.pcap"
    write_pcap(str(p), [b], nanosecond=True)
    data = p.read_bytes()
    assert len(data) > 3 * 512 * 1024  # several read chunks
    _, got, got_ts, _ = read_all(p, batch_frames=1000)
    assert got == frames and got_ts == ts
    starts, pos = [], 24
    for f in frames:
        starts.append(pos)
        pos += 16 + len(f)
    for cut in (600_000, 1_048_583, len(data) - 3):
        q = tmp_path / f"cut{cut}.pcap"
        q.write_bytes(data[:cut])
        seen = []
        with pytest.raises(CaptureFileError) as info:
            for batch in read_batches(str(q)):
                seen.extend(batch.frame(i) for i in range(len(batch)))
        k = max(i for i, s in enumerate(starts) if s <= cut and (i + 1 == len(starts) or starts[i + 1] > cut))
        assert seen == frames[:k] and info.value.offset == starts[k]
