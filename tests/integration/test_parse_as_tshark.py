"""Real captures from tcpdump's test corpus, parsed by both implementations and read back as Wireshark
(tshark) reads them: BIG TCP jumbograms, TSO-sized IPv4, OSPFv3 behind AH, ESP."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tests.unit.test_parse_ip_layers import has

pytestmark = [pytest.mark.peer, pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")]


def _corpus(shared_data, name):
    path = shared_data / "pcap-corpus" / "tcpdump" / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def _records(impl, path):
    from probe.sources.capfile import read_batches
    from probe.state.aggregates import batch_columns
    out = [impl.parse_frames(*batch_columns(b)) for b in read_batches(str(path))]
    return np.concatenate([r for r, _ in out]), sum(m for _, m in out)


def _tshark_fields(path, *fields, display_filter=None):
    cmd = ["tshark", "-r", str(path), "-T", "fields", *[a for f in fields for a in ("-e", f)]]
    if display_filter:
        cmd += ["-Y", display_filter]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [line.split("\t") for line in p.stdout.splitlines()]


def test_a_big_tcp_jumbogram_as_tshark_reads_it(impl, shared_data):
    """tcpdump's bigtcp-ipv6-hbh capture: a BIG TCP send of 80,000 bytes, IPv6 payload length 0 and the length
    in a hop-by-hop Jumbo Payload option; read as TCP, with tshark's lengths (tcp_len saturates at 65535)."""
    path = _corpus(shared_data, "tests__bigtcp-ipv6-hbh.pcap")
    recs, bad = _records(impl, path)
    theirs = _tshark_fields(path, "ipv6.plen", "ipv6.opt.jumbo", "tcp.len", "tcp.srcport", "tcp.dstport", "tcp.seq_raw")
    assert bad == 0 and len(recs) == len(theirs) == 1 and has(recs[0], "IPV6", "TCP") and not has(recs[0], "MALFORMED")
    plen, jumbo, tcp_len, sport, dport, seq = (int(x) for x in theirs[0])
    r = recs[0]
    assert plen == 0 and jumbo > 65535 and int(r["ip_len"]) == 65535 and int(r["tcp_len"]) == min(tcp_len, 65535)
    assert (int(r["sport"]), int(r["dport"]), int(r["tcp_seq"])) == (sport, dport, seq)


@pytest.mark.parametrize("name, display_filter, flag, proto", [
    ("tests__ipv4_tcp_http_xml_tso.pcap", "tcp", "TCP", 6),     # IPv4 total length 0: "(assumed TSO)"
    ("tests__OSPFv3_with_AH.pcap", "ah", "IPV6", 89),            # OSPFv3 behind AH
    ("tests__02-sunrise-sunset-esp.pcap", "esp", "ESP", 50),     # IPv4 ESP
])
def test_corpus_captures_as_tshark_reads_them(impl, shared_data, name, display_filter, flag, proto):
    path = _corpus(shared_data, name)
    recs, bad = _records(impl, path)
    theirs = _tshark_fields(path, "frame.number", display_filter=display_filter)
    assert bad == 0 and len(theirs) == len(recs) > 0
    assert all(has(r, flag) and r["ip_proto"] == proto for r in recs)
    if flag == "TCP":
        fields = _tshark_fields(path, "ip.len", "tcp.len", "tcp.srcport", "tcp.dstport", "tcp.seq_raw")
        assert [[int(x) for x in row] for row in fields] == [
            [int(r["ip_len"]), int(r["tcp_len"]), int(r["sport"]), int(r["dport"]), int(r["tcp_seq"])] for r in recs]
