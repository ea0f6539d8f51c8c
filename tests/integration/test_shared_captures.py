"""Every shared capture is read and parsed, and the counts agree with tshark's dissection of the same file."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

from probe.fastpath import layout as L
from probe import fastpath
from probe.sources.capfile import read_batches


def captures(shared):
    files = sorted(p for p in (shared / "pcap").glob("*.pcap*") if p.suffix in (".pcap", ".pcapng"))
    assert files, f"no captures under {shared / 'pcap'}"
    return files


def parse_file(path):
    recs, malformed = [], 0
    for b in read_batches(str(path)):
        r, m = fastpath.parse_frames(b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)
        recs.append(r)
        malformed += m
    return (np.concatenate(recs) if recs else np.zeros(0, L.FRAME_DTYPE)), malformed


def our_counts(recs):
    f = recs["flags"]
    ok = (f & L.F_MALFORMED) == 0

    def n(flag, extra=None):
        sel = ok & ((f & flag) != 0)
        return int(sel.sum() if extra is None else (sel & extra).sum())
    icmp4 = recs["ip_proto"] == 1
    return Counter({
        "frames": len(recs), "bytes": int(recs["wirelen"].sum()),
        "ip": n(L.F_IPV4), "ipv6": n(L.F_IPV6), "arp": int(((f & L.F_ARP) != 0).sum()),
        "tcp": n(L.F_TCP), "udp": n(L.F_UDP), "icmp": n(L.F_ICMP, icmp4), "icmpv6": n(L.F_ICMP, ~icmp4),
        "dns": n(L.F_DNS), "mdns": n(L.F_MDNS), "llmnr": n(L.F_LLMNR), "dhcp": n(L.F_DHCP),
        "lldp": n(L.F_LLDP), "cdp": n(L.F_CDP),
    })


def tshark_counts(path):
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "frame.protocols"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    c = Counter()
    for line in out.splitlines():
        length, _, protos = line.partition("\t")
        toks = [t for t in protos.split(":") if t not in ("eth", "ethertype", "vlan")]
        c["frames"] += 1
        c["bytes"] += int(length)
        if not toks:
            continue
        l3 = toks[0]
        if l3 == "llc" and "cdp" in toks:
            c["cdp"] += 1
        if l3 in ("ip", "ipv6", "arp", "lldp"):
            c[l3] += 1
        if l3 not in ("ip", "ipv6"):
            continue
        rest = [t for t in toks[1:] if not t.startswith("ipv6.")]
        if not rest:
            continue
        l4 = rest[0]
        if l4 in ("tcp", "udp", "icmp", "icmpv6"):
            c[l4] += 1
        if l4 == "udp" and len(rest) > 1 and rest[1] in ("dns", "mdns", "llmnr", "dhcp"):
            c[rest[1]] += 1
    return c


def test_every_capture_reads_and_both_implementations_agree(shared_data):
    import probe.fastpath.twin as py
    for path in captures(shared_data):
        total = 0
        for b in read_batches(str(path)):
            cols = (b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)
            r1, m1 = fastpath.parse_frames(*cols)
            r2, m2 = py.parse_frames(*cols)
            assert m1 == m2 and r1.tobytes() == r2.tobytes(), path.name
            total += len(b)
        assert total > 0, path.name


def test_malformed_arp_capture_is_counted(shared_data):
    recs, malformed = parse_file(shared_data / "pcap" / "arp_malformed_len255.pcap")
    assert len(recs) == 6 and malformed == 6  # hlen/plen 255: every frame lies about its ARP lengths
    recs, malformed = parse_file(shared_data / "pcap" / "arp_who_has_baseline.pcap")
    assert malformed == 0


@pytest.mark.peer
def test_counts_match_tshark(shared_data):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    mismatches = []
    for path in captures(shared_data):
        recs, _ = parse_file(path)
        ours, theirs = our_counts(recs), tshark_counts(path)
        keys = set(ours) | set(theirs)
        diff = {k: (ours.get(k, 0), theirs.get(k, 0)) for k in keys if ours.get(k, 0) != theirs.get(k, 0)}
        if diff:
            mismatches.append(f"{path.name}: {diff}")
    assert not mismatches, "\n".join(mismatches)
