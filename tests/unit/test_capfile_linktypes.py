"""The capture-file reader on what real captures hold besides plain Ethernet: out-of-range timestamps, an FCS,
old and unknown versions, loopback/PPP/802.11 link types, and pcapng files whose interfaces mix link types.

Each crafted file is also read by tcpdump (frame count) or tshark (IP sources) when they are installed, so
what the reader keeps is what the reference tools see.
"""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from probe import fastpath
from probe.fastpath import layout as L
from probe.sources.capfile import CaptureFileError, ReaderStats, read_batches
from probe.state.aggregates import batch_columns

from tests.unit.test_capfile import FRAMES, block, epb, idb, read_all, shb

def ip_packets():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    v4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80, flags="S"))
    v6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=2, dport=443, flags="S"))
    return v4, v6


def pcap_records(records, *, endian="<", ns=False, linktype=1, version=(2, 4)):
    """records: (sec, frac, caplen_field, wirelen_field, data)."""
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, version[0], version[1], 0, 0, 65535, linktype)
    for sec, frac, incl, orig, data in records:
        out += struct.pack(endian + "IIII", sec, frac, incl, orig) + data
    return out


def parse(path, stats=None):
    recs = []
    for b in read_batches(str(path), stats=stats):
        r, _bad = fastpath.parse_frames(*batch_columns(b))
        recs.extend(r)
    return recs


def tcpdump_count(path):
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump not installed")
    p = subprocess.run(["tcpdump", "-nr", str(path), "--count"], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def tshark_fields(path, *fields):
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
                         capture_output=True, text=True, timeout=60).stdout
    return [field for line in out.splitlines() for field in line.split("\t") if field]


def tshark_ip_src(path):
    return tshark_fields(path, "ip.src", "ipv6.src")


# 1. a timestamp fraction of a second or more ends nothing

@pytest.mark.parametrize("ns", [False, True])
@pytest.mark.parametrize("linktype", [1, 101])  # the Ethernet fast path and the converting path
def test_out_of_range_timestamp_fraction_is_kept_and_counted(tmp_path, ns, linktype):
    v4, _ = ip_packets()
    frame = FRAMES[0] if linktype == 1 else v4
    over = 1_000_000_000 if ns else 1_000_000
    recs = [(100, 5, len(frame), len(frame), frame), (101, over, len(frame), len(frame), frame),
            (102, over + 7, len(frame), len(frame), frame), (103, 9, len(frame), len(frame), frame)]
    p = tmp_path / "ts.pcap"
    p.write_bytes(pcap_records(recs, ns=ns, linktype=linktype))
    stats = ReaderStats()
    batches = list(read_batches(str(p), stats=stats))
    ts = [int(t) for b in batches for t in b.ts_ns]
    unit = 1 if ns else 1000
    assert ts == [100 * 10**9 + 5 * unit, 102 * 10**9, 103 * 10**9 + 7 * unit, 103 * 10**9 + 9 * unit]
    assert stats.timestamps_out_of_range == 2
    second = 24 + 16 + len(frame)
    assert len(stats.warnings) == 1 and f"byte {second}: timestamp fraction {over}" in stats.warnings[0]
    rc, out = tcpdump_count(p)
    assert rc == 0 and "4 packets" in out


# 2. the FCS length in the link-type field

def test_fcs_length_in_linktype_field_is_stripped(tmp_path):
    fcs = b"\xde\xad\xbe\xef"
    full = FRAMES[1] + fcs
    recs = [(1, 0, len(full), len(full), full),                 # whole frame and its FCS
            (2, 0, len(full) - 2, len(full), full[:-2]),        # snapped inside the FCS
            (3, 0, 20, len(full), full[:20])]                   # snapped before the FCS
    p = tmp_path / "fcs.pcap"
    p.write_bytes(pcap_records(recs, linktype=0x24000001))  # P bit, FCS length 2 x 16 bits, Ethernet
    _, frames, _, wl = read_all(p)
    assert frames == [FRAMES[1], FRAMES[1], FRAMES[1][:20]]
    assert wl == [len(FRAMES[1])] * 3
    # P set with a zero FCS length (tcpdump's bootp_asan.pcap) says there is none: nothing is cut
    q = tmp_path / "fcs0.pcap"
    q.write_bytes(pcap_records(recs[:1], linktype=0x04000001))
    assert read_all(q)[1] == [full]
    rc, out = tcpdump_count(p)
    assert rc == 0 and "3 packets" in out


def test_pcapng_if_fcslen_is_stripped(tmp_path):
    body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", 13, 1) + bytes([32, 0, 0, 0]) + bytes(4)
    p = tmp_path / "fcs.pcapng"
    p.write_bytes(shb("<") + block("<", 1, body) + epb("<", 0, 1, FRAMES[2] + b"\x01\x02\x03\x04"))
    _, frames, _, wl = read_all(p)
    assert frames == [FRAMES[2]] and wl == [len(FRAMES[2])]


# 3. pcapng interfaces of mixed link types

def idb_named(endian, linktype, name):
    nm = name.encode()
    opt = struct.pack(endian + "HH", 2, len(nm)) + nm + bytes(-len(nm) % 4) + struct.pack(endian + "HH", 0, 0)
    return block(endian, 1, struct.pack(endian + "HHI", linktype, 0, 65535) + opt)


def test_pcapng_unsupported_interface_is_skipped_counted_and_warned_once(tmp_path):
    data = (shb("<") + idb_named("<", 1, "eth0") + idb_named("<", 147, "usbmon0")
            + epb("<", 0, 1, FRAMES[0]) + epb("<", 1, 2, b"\x00" * 40) + epb("<", 0, 3, FRAMES[1])
            + epb("<", 1, 4, b"\x00" * 40) + epb("<", 1, 5, b"\x00" * 40) + epb("<", 0, 6, FRAMES[2]))
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(data)
    stats = ReaderStats()
    batches = list(read_batches(str(p), stats=stats))
    assert [b.frame(i) for b in batches for i in range(len(b))] == FRAMES[:3]
    assert [int(t) for b in batches for t in b.ts_ns] == [1000, 3000, 6000]
    assert stats.skipped == {"link type 147: not supported": 3}
    assert len(stats.warnings) == 1
    assert "interface 1 (usbmon0): link type 147 is not supported" in stats.warnings[0]
    # libpcap refuses a pcapng whose interfaces differ in link type; Wireshark reads all six frames
    assert len(tshark_fields(p, "frame.number")) == 6


# 4. versions, as libpcap reads them

def test_pcap_versions_as_libpcap(tmp_path):
    f = FRAMES[3]
    for version in ((2, 4), (2, 3), (2, 2), (2, 0), (543, 0)):
        # before 2.3 (and in DG/UX's 543.0) the wire length came first; a 2.3 file may be either way
        swapped = version[0] == 543 or version[1] < 3
        recs = [(1, 0, len(f) + 9, len(f), f)] if swapped or version == (2, 3) else [(1, 0, len(f), len(f) + 9, f)]
        p = tmp_path / f"v{version[0]}.{version[1]}.pcap"
        p.write_bytes(pcap_records(recs, version=version))
        _, frames, _, wl = read_all(p)
        assert frames == [f] and wl == [len(f) + 9], version
    for version in ((3, 4), (2, 5), (1, 4), (0, 0)):
        p = tmp_path / f"bad{version[0]}.{version[1]}.pcap"
        p.write_bytes(pcap_records([(1, 0, len(f), len(f), f)], version=version))
        with pytest.raises(CaptureFileError) as info:
            list(read_batches(str(p)))
        assert str(info.value) == f"{p}: byte 4: unsupported pcap version {version[0]}.{version[1]} (2.0 to 2.4 are read)"
        rc, _ = tcpdump_count(p)
        assert rc != 0  # tcpdump refuses it too


def shb_version(endian, major, minor):
    return block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, major, minor, -1))


def test_pcapng_versions_as_libpcap(tmp_path):
    for minor in (0, 2):
        p = tmp_path / f"v1.{minor}.pcapng"
        p.write_bytes(shb_version("<", 1, minor) + idb("<") + epb("<", 0, 1, FRAMES[0]))
        assert read_all(p)[1] == FRAMES[:1]
    for major, minor in ((2, 0), (1, 1), (0, 0)):
        p = tmp_path / f"bad{major}.{minor}.pcapng"
        p.write_bytes(shb_version(">", major, minor) + idb(">") + epb(">", 0, 1, FRAMES[0]))
        with pytest.raises(CaptureFileError) as info:
            list(read_batches(str(p)))
        assert str(info.value) == (f"{p}: byte 12: unsupported pcapng version {major}.{minor} in section header "
                                   f"(1.0 and 1.2 are read)")
        rc, _ = tcpdump_count(p)
        assert rc != 0
    # a later section of an unknown version: the frames before it are yielded, then the located error
    head = shb("<") + idb("<") + epb("<", 0, 1, FRAMES[0])
    p = tmp_path / "second.pcapng"
    p.write_bytes(head + shb_version("<", 3, 0) + idb("<") + epb("<", 0, 2, FRAMES[1]))
    got = []
    with pytest.raises(CaptureFileError, match=rf"byte {len(head) + 12}: unsupported pcapng version 3.0"):
        for b in read_batches(str(p)):
            got.extend(b.frame(i) for i in range(len(b)))
    assert got == FRAMES[:1]


# 5. loopback, PPP and 802.11 as Ethernet

def test_null_and_loop_become_ethernet(tmp_path):
    v4, v6 = ip_packets()
    cases = {  # link type, file byte order -> (4-byte family header, packet)
        (0, "<"): [(struct.pack("<I", 2), v4), (struct.pack("<I", 24), v6), (struct.pack("<I", 28), v6),
                   (struct.pack("<I", 30), v6)],
        (0, ">"): [(struct.pack(">I", 2), v4), (struct.pack(">I", 30), v6)],  # a big-endian writer
        (108, "<"): [(struct.pack(">I", 2), v4), (struct.pack(">I", 24), v6)],  # LOOP: network order always
    }
    for (linktype, endian), frames in cases.items():
        family_order = endian if linktype == 0 else ">"
        frames = frames + [(struct.pack(family_order + "I", 7), b"\x00" * 30)]  # not IP: skipped, counted
        recs = [(i, 0, len(h + pkt), len(h + pkt), h + pkt) for i, (h, pkt) in enumerate(frames)]
        p = tmp_path / f"lt{linktype}{'le' if endian == '<' else 'be'}.pcap"
        p.write_bytes(pcap_records(recs, endian=endian, linktype=linktype))
        stats = ReaderStats()
        got = parse(p, stats)
        assert len(got) == len(frames) - 1
        for r, (_, pkt) in zip(got, frames):
            assert not r["flags"] & L.F_MALFORMED
            assert r["flags"] & (L.F_IPV4 if pkt is v4 else L.F_IPV6) and r["flags"] & L.F_TCP
            assert r["wirelen"] == len(pkt) + 14
        assert sum(stats.skipped.values()) == 1 and "address family not IPv4/IPv6" in next(iter(stats.skipped))
        srcs = tshark_ip_src(p)
        assert srcs == ["10.0.0.1" if pkt is v4 else "2001:db8::1" for _, pkt in frames[:-1]]


def test_ppp_becomes_ethernet(tmp_path):
    v4, v6 = ip_packets()
    lcp = b"\xc0\x21" + b"\x01\x01\x00\x04"
    frames = [b"\xff\x03\x00\x21" + v4,   # address, control, protocol
              b"\x00\x57" + v6,           # address and control left out
              b"\xff\x03\x21" + v4,       # protocol compressed to one byte
              b"\xff\x03" + lcp]          # LCP: skipped, counted
    recs = [(i, 0, len(f), len(f), f) for i, f in enumerate(frames)]
    for linktype in (9, 50):
        p = tmp_path / f"ppp{linktype}.pcap"
        p.write_bytes(pcap_records(recs, linktype=linktype))
        stats = ReaderStats()
        got = parse(p, stats)
        assert [bool(r["flags"] & L.F_IPV4) for r in got] == [True, False, True]
        assert all(r["flags"] & L.F_TCP and not r["flags"] & L.F_MALFORMED for r in got)
        assert got[0]["src_ip"] == 0x0A000001 and got[1]["flags"] & L.F_IPV6
        assert [int(r["wirelen"]) for r in got] == [len(v4) + 14, len(v6) + 14, len(v4) + 14]
        assert stats.skipped == {"PPP (9/50): control or other protocol": 1}
    assert tshark_ip_src(tmp_path / "ppp9.pcap") == ["10.0.0.1", "2001:db8::1", "10.0.0.1"]


MAC = {n: bytes([2, 0, 0, 0, 0, n]) for n in range(1, 5)}


def dot11_data(to_ds, from_ds, payload, *, qos=False, protected=False, order=False):
    fc0 = 0x08 | (0x80 if qos else 0)                       # type 2 (data), subtype 0 or 8 (QoS data)
    fc1 = to_ds | (from_ds << 1) | (0x40 if protected else 0) | (0x80 if order else 0)
    a = {(0, 0): (MAC[1], MAC[2], MAC[3]),     # DA, SA, BSSID
         (1, 0): (MAC[3], MAC[2], MAC[1]),     # BSSID, SA, DA
         (0, 1): (MAC[1], MAC[3], MAC[2]),     # DA, BSSID, SA
         (1, 1): (MAC[3], MAC[4], MAC[1])}[(to_ds, from_ds)]   # RA, TA, DA, then SA
    hdr = bytes([fc0, fc1, 0, 0]) + a[0] + a[1] + a[2] + b"\x10\x00"
    if to_ds and from_ds:
        hdr += MAC[2]
    if qos:
        hdr += b"\x00\x00" + (b"\x00" * 4 if order else b"")
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + payload


def radiotap(frame, *, fcs=False, tsft=True):
    # presence: TSFT (bit 0, 8 bytes, 8-aligned) and Flags (bit 1), preceded by an extended presence word
    if tsft:
        head = (struct.pack("<II", 0x80000003, 0) + bytes(4)  # padding: the TSFT is aligned to 8 bytes
                + struct.pack("<Q", 12345) + bytes([0x10 if fcs else 0]) + b"\0")
    else:
        head = struct.pack("<I", 0x00000002) + bytes([0x10 if fcs else 0]) + b"\0\0\0"
    rt = struct.pack("<BBH", 0, 0, 4 + len(head)) + head
    return rt + frame + (b"\x11\x22\x33\x44" if fcs else b"")


def test_radiotap_80211_data_frames_become_ethernet(tmp_path):
    from scapy.layers.inet import IP, UDP
    pkts = [bytes(IP(src=f"10.0.0.{i}", dst="10.0.0.99") / UDP(sport=1000 + i, dport=53) / b"q") for i in range(1, 7)]
    beacon = bytes([0x80, 0x00, 0, 0]) + b"\xff" * 6 + MAC[2] + MAC[2] + b"\0\0" + bytes(12)
    ack = bytes([0xD4, 0x00, 0, 0]) + MAC[1]
    frames = [radiotap(dot11_data(0, 0, b"\x08\x00" + pkts[0])),
              radiotap(dot11_data(1, 0, b"\x08\x00" + pkts[1]), fcs=True),
              radiotap(dot11_data(0, 1, b"\x08\x00" + pkts[2], qos=True), tsft=False),
              radiotap(dot11_data(1, 1, b"\x08\x00" + pkts[3], qos=True, order=True), fcs=True),
              radiotap(beacon), radiotap(ack),
              radiotap(dot11_data(1, 0, b"\x08\x00" + pkts[4], protected=True)),
              radiotap(dot11_data(0, 1, b"\x08\x00" + pkts[5]), fcs=True, tsft=False)]
    recs = [(i, 0, len(f), len(f), f) for i, f in enumerate(frames)]
    recs[-1] = (7, 0, len(frames[-1]) - 3, len(frames[-1]), frames[-1][:-3])  # snapped inside the FCS
    p = tmp_path / "wifi.pcap"
    p.write_bytes(pcap_records(recs, linktype=127))
    stats = ReaderStats()
    got = parse(p, stats)
    assert [int(r["src_ip"]) & 0xFF for r in got] == [1, 2, 3, 4, 6]
    assert all(r["flags"] & L.F_UDP and r["dport"] == 53 and not r["flags"] & L.F_MALFORMED for r in got)
    mac = {n: int.from_bytes(m, "big") for n, m in MAC.items()}
    assert [(int(r["dst_mac"]), int(r["src_mac"])) for r in got] == [(mac[1], mac[2])] * 5
    assert [int(r["wirelen"]) for r in got] == [len(pkts[i]) + 14 for i in (0, 1, 2, 3, 5)]
    assert stats.skipped == {"802.11: management or control frame": 2, "802.11: protected (encrypted) frame": 1}
    rc, out = tcpdump_count(p)
    assert rc == 0 and "8 packets" in out
    assert tshark_ip_src(p) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"]
