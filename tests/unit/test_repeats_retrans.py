"""Repeated frames (forwarding loops) and TCP retransmissions: parse fields, counters, twin equality."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from probe import fastpath
from probe.fastpath.layout import dup_max_fields
from probe.sources.frames import FrameBatch
from probe.state.aggregates import CaptureAggregator, batch_columns, merge_parallel

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
T0 = 1_700_000_000 * 10**9


def records(impl, frames, ts):
    b = FrameBatch.from_frames([bytes(f) for f in frames], ts_ns=ts)
    return impl.parse_frames(*batch_columns(b))[0]


def window(impl, frames, ts=None, window_s=10):
    agg = CaptureAggregator(max_devices=64, window_s=window_s, kernels=impl)
    ts = ts or [T0 + i * 1000 for i in range(len(frames))]
    agg.add(records(impl, frames, ts))
    return agg.flush()


def seg(seq, n, *, ip_id=1, flags="PA", src="10.0.0.10", dst="10.0.0.11", sport=40000, dport=5001, v6=False):
    l3 = IPv6(src=f"fd00::{src.split('.')[-1]}", dst=f"fd00::{dst.split('.')[-1]}") if v6 else IP(src=src, dst=dst, id=ip_id)
    return Ether(src=A, dst=B) / l3 / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / (b"x" * n)


def test_parse_fields(impl):
    arp = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    mdns = Ether(src=A, dst="01:00:5e:00:00:fb") / IP(src="10.0.0.10", dst="224.0.0.251") / UDP(sport=5353, dport=5353)
    uni = Ether(src=A, dst=B) / IP(src="10.0.0.10", dst="10.0.0.11") / UDP(sport=1, dport=2)
    recs = records(impl, [arp, arp, mdns, uni, seg(7, 100, ip_id=4242), seg(2**32 - 1, 0, flags="S"), seg(9, 10, v6=True)],
                   [1, 2, 3, 4, 5, 6, 7])
    h = recs["frame_hash"]
    assert h[0] == h[1] != 0 and h[2] not in (0, h[0]) and h[3] == 0  # unicast is not hashed
    assert recs["tcp_seq"][4] == 7 and recs["tcp_len"][4] == 100 and recs["ip_id"][4] == 4242
    assert recs["tcp_seq"][5] == 2**32 - 1 and recs["tcp_len"][5] == 0
    assert recs["tcp_seq"][6] == 9 and recs["tcp_len"][6] == 10 and recs["ip_id"][6] == 0
    assert recs["ip_id"][3] == 0  # only TCP segments carry it


def test_one_byte_changed_is_another_frame(impl):
    base = bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99"))
    variants = [base] + [base[:i] + bytes([base[i] ^ 1]) + base[i + 1:] for i in range(1, len(base))]
    variants.append(base + b"\0")
    h = records(impl, variants, list(range(len(variants))))["frame_hash"]
    assert len(set(h.tolist())) == len(variants)


def test_a_loop_repeats_one_frame(impl):
    arp = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=12) / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    other = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.98")
    w = window(impl, [arp] * 30 + [other] * 3)
    row = dict(w.mac_rows())[A]
    assert row["dup_frames"] == 29 + 2 and row["broadcast"] == 33
    f = dup_max_fields(row["dup_max"])
    assert f == {"copies": 30, "ethertype": 0x0806, "protocol": "arp", "vlan": 12}
    assert dup_max_fields(w.total("dup_max"))["copies"] == 30
    # untagged: no VLAN
    w = window(impl, [other] * 4)
    assert dup_max_fields(dict(w.mac_rows())[A]["dup_max"])["vlan"] is None


def test_a_copy_counts_only_close_behind_the_previous(impl):
    arp = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    ms = 10**6
    ts = [T0 + k * 150 * ms for k in range(20)]                        # resent every 150 ms: never a run
    ts += [T0 + 5 * 10**9 + k * 50 * ms for k in range(5)]            # then 5 copies 50 ms apart: a run of 5
    row = dict(window(impl, [arp] * len(ts), ts).mac_rows())[A]
    assert row["dup_frames"] == 4 and dup_max_fields(row["dup_max"])["copies"] == 5


def test_repeats_are_counted_per_window(impl):
    arp = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    agg = CaptureAggregator(max_devices=64, window_s=1, kernels=impl)
    closed = agg.add(records(impl, [arp] * 4, [T0, T0 + 1, T0 + 2 * 10**9, T0 + 2 * 10**9 + 1]))
    last = agg.flush()
    assert [dict(w.mac_rows())[A]["dup_frames"] for w in closed + [last]] == [1, 1]


def test_retransmissions_span_copies_and_wraparound(impl):
    frames = [seg(1000, 100, ip_id=1), seg(1000, 100, ip_id=1),    # the second is a SPAN copy
              seg(1100, 100, ip_id=2), seg(1000, 100, ip_id=3),    # retransmission of the first
              seg(1200, 0, ip_id=4, flags="A"),                    # pure ACK: not data
              seg(1200, 100, ip_id=5), seg(1250, 50, ip_id=6)]     # partial overlap, nothing new: retransmission
    w = window(impl, frames)
    row = dict(w.ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (5, 2)
    assert dict(w.mac_rows())[A]["tcp_retrans"] == 2 and w.total("tcp_retrans") == 2
    # the sequence space wraps: 2**32 - 50 + 100 ends at 50; the next segment is new, its resend is not
    wrap = [seg(2**32 - 50, 100, ip_id=1), seg(50, 100, ip_id=2), seg(50, 100, ip_id=3)]
    row = dict(window(impl, wrap).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (3, 1)


def test_keep_alives_are_not_retransmissions(impl):
    """A keep-alive (0 or 1 byte at one before the next sequence number, no SYN/FIN/RST) probes an idle
    peer: Wireshark flags it tcp.analysis.keep_alive, not a retransmission, and so do we."""
    frames = [seg(1000, 100, ip_id=1),
              seg(1099, 1, ip_id=2, flags="A"), seg(1099, 1, ip_id=3, flags="A"),  # keep-alives, again and again
              seg(1099, 0, ip_id=4, flags="A"),                                   # the zero-byte kind
              seg(1100, 100, ip_id=5), seg(1199, 1, ip_id=6, flags="A"),           # more data, its keep-alive
              seg(1100, 100, ip_id=7),                                            # a real retransmission
              seg(1150, 1, ip_id=8, flags="A"),                                   # 1 byte inside sent data: resent
              seg(1199, 1, ip_id=9, flags="FA")]                                  # with FIN: no keep-alive
    row = dict(window(impl, frames).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (5, 2)
    # over IPv6 too, and the flow's state is kept: the keep-alive moved nothing
    v6 = [seg(5, 10, v6=True), seg(14, 1, v6=True, flags="A"), seg(5, 10, v6=True), seg(15, 10, v6=True)]
    row = dict(window(impl, v6, ts=[T0 + k * 10**9 for k in range(4)]).ip_rows())["fd00::10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (3, 1)


def test_syn_ack_retransmission_bare_syns_and_ipv6_copies(impl):
    ms = 10**6
    synack = [seg(77, 0, flags="SA", ip_id=0), seg(77, 0, flags="SA", ip_id=0)]
    row = dict(window(impl, synack, ts=[T0, T0 + 1000 * ms]).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (2, 1)   # 1 s later without an ID: resent
    row = dict(window(impl, synack, ts=[T0, T0 + 20_000]).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (1, 0)   # 20 us later: a SPAN copy
    # bare SYNs are left to the handshake counters (a scan or flood must not churn the flow table)
    row = dict(window(impl, [seg(5, 0, flags="S", ip_id=k) for k in range(3)]).ip_rows())["10.0.0.10"]
    assert row["tcp_syn"] == 3 and "tcp_data" not in row or row["tcp_data"] == 0
    v6 = [seg(5, 10, v6=True), seg(5, 10, v6=True), seg(5, 10, v6=True)]
    row = dict(window(impl, v6, ts=[T0, T0 + 5000, T0 + 300 * ms]).ip_rows())["fd00::10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (2, 1)


def test_a_reused_port_is_a_new_connection(impl):
    isn = 1_000_000_000
    frames = [seg(isn, 100, ip_id=1), seg(isn + 100, 100, ip_id=2),
              seg(10, 100, ip_id=9),                      # the port again: far behind, a new connection
              seg(110, 100, ip_id=10), seg(10, 100, ip_id=11)]  # and its own retransmission
    row = dict(window(impl, frames).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (5, 1)
    # a SYN-ACK with another initial sequence number restarts the flow too
    frames = [seg(isn, 0, ip_id=1, flags="SA"), seg(isn + 1, 100, ip_id=2), seg(isn - 500, 0, ip_id=3, flags="SA"),
              seg(isn - 499, 100, ip_id=4)]
    row = dict(window(impl, frames).ip_rows())["10.0.0.10"]
    assert (row["tcp_data"], row["tcp_retrans"]) == (4, 0)


def test_directions_and_flows_are_apart(impl):
    a = seg(1000, 100, ip_id=1)
    back = Ether(src=B, dst=A) / IP(src="10.0.0.11", dst="10.0.0.10", id=1) / TCP(sport=5001, dport=40000, flags="PA", seq=1000) / (b"y" * 100)
    other = seg(1000, 100, ip_id=1, sport=40001)
    w = window(impl, [a, back, other])
    ips = dict(w.ip_rows())
    assert ips["10.0.0.10"]["tcp_data"] == 2 and ips["10.0.0.11"]["tcp_data"] == 1
    assert w.total("tcp_retrans") == 0


def test_recent_tables_are_bounded_and_checked(impl):
    agg = CaptureAggregator(max_devices=4, window_s=10, kernels=impl)
    before = agg.nbytes
    frames = [seg(i * 7, 10, ip_id=i, sport=1024 + i) for i in range(3000 if impl.__name__ == "probe._fastpath" else 300)]
    agg.add(records(impl, frames, [T0 + i for i in range(len(frames))]))
    assert agg.nbytes == before
    bad = (np.zeros((3, 2), np.uint64), agg.recent[1])
    with pytest.raises(ValueError, match="power of two"):
        impl.aggregate_frames(records(impl, frames[:1], [T0]), agg.macs.spec, agg.ips.spec, agg.arp.spec, bad)
    with pytest.raises(ValueError, match=r"flow table must be a writeable C-contiguous uint64\[N, 2\]"):
        impl.aggregate_frames(records(impl, frames[:1], [T0]), agg.macs.spec, agg.ips.spec, agg.arp.spec,
                              (agg.recent[0], np.zeros((8, 4), np.uint64)))


def test_flow_split_merges_repeats_and_retransmissions():
    """Fanout keeps a flow (and byte-identical frames) in one member: then the counters add up."""
    rng = np.random.default_rng(5)
    frames = []
    for k in range(200):
        f = int(rng.integers(0, 6))
        frames.append(seg(int(rng.integers(0, 5)) * 100, 100, ip_id=k + 1, sport=40000 + f))
    arp = [Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst=f"10.0.0.{90 + i % 3}") for i in range(40)]
    frames += arp
    order = rng.permutation(len(frames))
    frames = [frames[i] for i in order]
    ts = [T0 + i * 1000 for i in range(len(frames))]
    whole = window(fastpath, frames, ts)
    parts = [CaptureAggregator(max_devices=64, window_s=10, kernels=fastpath) for _ in range(3)]
    for f, t in zip(frames, ts):
        raw = bytes(f)
        member = zlib.crc32(raw[26:38] if raw[12:14] == b"\x08\x00" else raw) % 3  # per flow / per frame
        parts[member].add(records(fastpath, [raw], [t]))
    merged = merge_parallel([p.flush() for p in parts])
    for name in ("dup_frames", "tcp_data", "tcp_retrans"):
        assert merged.total(name) == whole.total(name), name
    assert whole.total("tcp_retrans") > 0 and whole.total("dup_frames") > 0
    assert dup_max_fields(merged.total("dup_max")) == dup_max_fields(whole.total("dup_max"))


# --- both implementations agree ---------------------------------------------------------------------
_FLOWS = [("10.0.0.10", "10.0.0.11", 40000, 80, False), ("10.0.0.11", "10.0.0.10", 80, 40000, False),
          ("10.0.0.12", "10.0.0.11", 40001, 80, False), ("10.0.0.10", "10.0.0.11", 40002, 22, True)]
_BCAST = [bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst=f"10.0.0.{i}")) for i in (1, 2)] + [
    bytes(Ether(src=B, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1") / UDP(sport=5353, dport=5353)),
    bytes(Ether(src=B, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=7) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67))]


@st.composite
def traffic(draw):
    items = []
    for _ in range(draw(st.integers(0, 60))):
        if draw(st.booleans()):
            items.append(draw(st.sampled_from(_BCAST)))
            continue
        src, dst, sp, dp, v6 = draw(st.sampled_from(_FLOWS))
        seq = draw(st.sampled_from([0, 99, 100, 199, 200, 2**32 - 60, draw(st.integers(0, 2**32 - 1))]))
        n = draw(st.sampled_from([0, 1, 100]))
        flags = draw(st.sampled_from(["A", "PA", "S", "F", "SA", "RA"]))
        ip_id = draw(st.sampled_from([0, 1, 2, 7]))
        items.append(bytes(seg(seq, n, ip_id=ip_id, flags=flags, src=src, dst=dst, sport=sp, dport=dp, v6=v6)))
    gaps = draw(st.lists(st.sampled_from([0, 500, 2_000_000, 400_000_000]), min_size=len(items), max_size=len(items)))
    return items, list(np.cumsum(gaps) + T0) if items else []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic())
def test_twin_and_compiled_agree(case):
    from probe.fastpath import twin as py
    from probe import fastpath as c
    frames, ts = case
    if not frames:
        return
    rc, rp = records(c, frames, ts), records(py, frames, ts)
    for f in ("frame_hash", "tcp_seq", "tcp_len", "ip_id"):
        assert rc[f].tolist() == rp[f].tolist(), f
    wc, wp = (CaptureAggregator(max_devices=8, window_s=1, kernels=k) for k in (c, py))
    out = [wc.add(rc) + [wc.flush()], wp.add(rp) + [wp.flush()]]
    assert len(out[0]) == len(out[1])
    for a, b in zip(*out):
        assert np.array_equal(a.totals, b.totals)
        assert np.array_equal(a.macs.counts, b.macs.counts) and np.array_equal(a.ips.counts, b.ips.counts)
    assert np.array_equal(wc.recent[1], wp.recent[1])
