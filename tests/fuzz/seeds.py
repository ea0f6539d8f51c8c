"""Seed inputs for the fuzz targets, from the shared captures and from frames crafted here.

Parse seeds are single frames (harness.seed_input's format), picked from every capture for variety: at most
`per_kind` frames per kind of record the parser makes of them (its flags, EtherType, IP protocol, well-known
port, ICMP type), so a few thousand floods of one kind don't crowd out the one CDP frame. Capfile seeds are
the captures themselves, cut to `max_bytes` (a cut file is a seed too: the reader must say it was cut).
The crafted ones (a dozen protocols, pcap and pcapng, several link types) let the targets start somewhere
useful on a machine without the shared data.
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from tests.fuzz import harness

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def crafted_frames() -> list[bytes]:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.ipsec import AH
    from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                    IPv6ExtHdrHopByHop)
    from scapy.layers.l2 import ARP, LLC, SNAP, STP, Dot1Q, Ether
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    b = Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
    m = Ether(src="02:00:00:00:00:01", dst="01:00:5e:00:00:fb")
    frames = [
        e / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="S", options=[("MSS", 1460)]),
        e / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(sport=53, dport=40000) / DNS(qd=DNSQR(qname="a.example")),
        e / IP(src="10.0.0.1", dst="10.0.0.2", frag=10) / (b"x" * 30),
        e / IP(src="10.0.0.1", dst="10.0.0.2", len=0) / TCP(),
        b / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
          / BOOTP(chaddr=b"\x02\0\0\0\0\1") / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6]),
                                                          ("vendor_class_id", b"MSFT 5.0"), "end"]),
        m / IP(src="10.0.0.1", dst="224.0.0.251") / UDP(sport=5353, dport=5353) / DNS(qd=DNSQR(qname="x.local")),
        e / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=3) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(),
        e / IP(src="10.0.0.1", dst="10.0.0.2", proto=51) / (b"\x06\x04" + bytes(22)) / TCP(),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
          / IPv6ExtHdrFragment(m=1) / UDP(sport=5355, dport=5355) / DNS(qd=DNSQR(qname="h")),
        e / IPv6(src="2001:db8::1", dst="ff02::1") / AH(nh=58) / ICMPv6EchoRequest(),
        e / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=137, dport=137),
        b / ARP(op=2, psrc="10.0.0.5", pdst="10.0.0.5", hwsrc="02:00:00:00:00:01"),
        Ether(src="02:00:00:00:00:01", dst="01:80:c2:00:00:00") / LLC() / STP(),
        Ether(src="02:00:00:00:00:01", dst="01:00:0c:cc:cc:cc") / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
          / SNAP(OUI=0x0C, code=0x2000) / (b"\x02\xb4" + bytes(20)),
        Ether(src="02:00:00:00:00:01", dst="01:80:c2:00:00:0e", type=0x88CC) / (b"\x02\x07\x04\x02\x00\x00\x00\x00\x01\x04\x02\x07x\x06\x02\x00\x78\x00\x00"),
        m / IP(src="10.0.0.1", dst="239.255.255.250") / UDP(sport=1900, dport=1900) / b"NOTIFY * HTTP/1.1\r\n",
    ]
    return [bytes(f) for f in frames]


def _epb(iface: int, frame: bytes, ts: int = 1) -> bytes:
    pad = (-len(frame)) % 4
    body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame + bytes(pad)
    return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _block(btype: int, body: bytes) -> bytes:
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def crafted_captures() -> list[bytes]:
    """pcap (both byte orders, ns, an FCS, cooked/raw/NULL link types) and pcapng (two interfaces)."""
    frames = crafted_frames()
    out = []
    for endian, magic, linktype in (("<", 0xA1B2C3D4, 1), (">", 0xA1B23C4D, 1), ("<", 0xA1B2C3D4, 0x04000001 | (2 << 28))):
        rec = b"".join(struct.pack(endian + "IIII", 1, 2, len(f), len(f)) + f for f in frames)
        out.append(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype) + rec)
    ip = [f[14:] for f in frames if f[12:14] in (b"\x08\x00", b"\x86\xdd")]
    for linktype, wrap in ((101, lambda p: p), (113, lambda p: struct.pack(">HHH", 0, 1, 6) + bytes(8) + b"\x08\x00" + p),
                           (0, lambda p: struct.pack("<I", 2 if p[0] >> 4 == 4 else 30) + p),
                           (9, lambda p: b"\xff\x03" + (b"\x00\x21" if p[0] >> 4 == 4 else b"\x00\x57") + p)):
        rec = b"".join(struct.pack("<IIII", 1, 2, len(wrap(p)), len(wrap(p))) + wrap(p) for p in ip)
        out.append(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype) + rec)
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_eth = _block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB3x", 9, 1, 9) + bytes(4))
    idb_lo = _block(1, struct.pack("<HHI", 147, 0, 65535) + b"\x02\x00\x02\x00lo\x00\x00" + bytes(4))
    out.append(shb + idb_eth + idb_lo + b"".join(_epb(i % 2, f, i) for i, f in enumerate(frames))
               + _block(3, struct.pack("<I", len(frames[0])) + frames[0] + bytes((-len(frames[0])) % 4)))
    return out


def captures(shared: Path | None) -> list[Path]:
    if shared is None or not shared.is_dir():
        return []
    files = sorted((shared / "pcap").glob("*.pcap*")) + sorted((shared / "pcap-corpus" / "tcpdump").glob("*"))
    return [p for p in files if p.is_file()]


def _kind(rec) -> tuple:
    ports = [p for p in (int(rec["sport"]), int(rec["dport"])) if 0 < p < 1024 or p in (1900, 5353, 5355)]
    return (int(rec["flags"]), int(rec["ethertype"]), int(rec["ip_proto"]), min(ports, default=0), int(rec["icmp_type"]))


def parse_seeds(shared: Path | None, per_kind: int = 2) -> list[bytes]:
    from probe.sources.capfile import CaptureFileError, read_batches

    seen: dict[tuple, int] = {}
    seeds = [harness.seed_input(f, len(f)) for f in crafted_frames()]
    for path in captures(shared):
        try:
            for batch in read_batches(str(path)):
                recs, _ = _parse_fast(batch)
                for i in range(len(batch)):
                    k = _kind(recs[i])
                    if seen.get(k, 0) < per_kind:
                        seen[k] = seen.get(k, 0) + 1
                        seeds.append(harness.seed_input(batch.frame(i), int(batch.wirelen[i])))
        except CaptureFileError:
            pass
    return seeds


def _parse_fast(batch):
    """Sorting frames into kinds needs only a parser, any: the release build when built, else the twin."""
    from probe.state.aggregates import batch_columns
    try:
        import probe._fastpath as c
    except ImportError:
        import probe.fastpath.twin as c
    return c.parse_frames(*batch_columns(batch))


def capfile_seeds(shared: Path | None, max_bytes: int = 16384) -> list[bytes]:
    seeds = crafted_captures()
    for path in captures(shared):
        with open(path, "rb") as f:
            seeds.append(f.read(max_bytes))
    return seeds


def regressions(target: str) -> list[Path]:
    folder = REGRESSIONS / target
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


def write(folder: Path, inputs: list[bytes]) -> int:
    """Write each distinct input once, named by its SHA-1 as libFuzzer names its corpus files."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in inputs:
        p = folder / hashlib.sha1(data).hexdigest()
        if not p.exists():
            p.write_bytes(data)
            n += 1
    return n


def shared_data() -> Path | None:
    """The shared captures, as tests/conftest.py finds them (SITEVIGIL_SHARED_DATA or ../shared/data)."""
    import os
    root = Path(__file__).resolve().parent.parent.parent
    path = Path(os.environ.get("SITEVIGIL_SHARED_DATA", root.parent / "shared" / "data"))
    return path if path.is_dir() else None


def seed(target: str, folder: Path, shared: Path | None = None) -> int:
    """Fill `folder` with the target's seeds and kept regressions; returns how many files were new."""
    inputs = parse_seeds(shared) if target == "parse" else capfile_seeds(shared)
    return write(folder, inputs + [p.read_bytes() for p in regressions(target)])


if __name__ == "__main__":  # python -m tests.fuzz.seeds TARGET FOLDER
    import sys
    target, folder = sys.argv[1], Path(sys.argv[2])
    data = shared_data()
    print(f"seeds: {seed(target, folder, data)} new in {folder} (shared captures: {data or 'not found'})", file=sys.stderr)
