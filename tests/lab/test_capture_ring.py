"""The live capture ring in the lab: frames sent between lab hosts reach the probe through the mirror
port and are all counted, by the compiled ring and its twin alike; kernel drops, BPF and VLAN work.

Capture runs in a child process inside the probe's namespace (tests/lab/capture_child.py); frames
are numbered marker frames sent from a lab host (tests/lab/send_frames.py).
"""
from __future__ import annotations

import json
import random
import os
import shutil
import sys

import pytest

from tests.lab.fixtures import lab_fixture
from tests.lab.netns import Lab
from tests.lab.send_frames import random_frame

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_DIR = os.path.join(os.path.dirname(HERE), "lab")
CHILD = os.path.join(LAB_DIR, "capture_child.py")
SENDER = os.path.join(LAB_DIR, "send_frames.py")


def _cython_built() -> bool:
    try:
        import probe._fastpath  # noqa: F401
    except ImportError:
        return False
    return True


lab = lab_fixture(hosts=2)


_runs = iter(range(1000, 100000))


def capture(lab: Lab, sends: list[dict], *, expect: int, impl: str = "facade", **opts) -> dict:
    """Start a capture child in the probe namespace, send the frames, return its JSON report."""
    argv = [sys.executable, CHILD, "--iface", "mirror0", "--run", str(opts.pop("run")), "--expect", str(expect),
            "--impl", impl]
    for key, value in opts.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    child = lab.popen(lab.probe, argv, text=True)
    try:
        first = child.stdout.readline().strip()
        if first != "READY":
            out, err = child.communicate(timeout=10)
            return json.loads(first) if first.startswith("{") else pytest.fail(f"capture child: {first} {err}")
        for send in sends:
            send = dict(send)
            host = send.pop("host")
            if "argv" in send:
                lab.run(host, send["argv"], timeout=60)
                continue
            args = [sys.executable, SENDER]
            for key, value in send.items():
                args += [f"--{key}", str(value)]
            lab.run(host, args, timeout=60)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])
    finally:
        lab.stop(child)


def seqs(markers: list) -> list[int]:
    return [int(m[0][48:56], 16) for m in markers]


def test_every_frame_sent_is_counted(lab):
    h0, h1 = lab.hosts
    run, n = next(_runs), 5000
    out = capture(lab, [dict(host=h0, count=n, run=run, dst=h1.mac)], expect=n, run=run)
    (res,) = out.values()
    assert seqs(res["markers"]) == list(range(n))  # every one, once, in order
    assert all(m[1] == 60 and m[2] == -1 for m in res["markers"])
    assert res["stats"]["drops"] == 0
    assert res["stats"]["packets"] >= n
    assert res["frames"] >= n and res["bytes"] >= 60 * n


def test_blocks_read_in_small_batches_lose_and_repeat_nothing(lab):
    h0, h1 = lab.hosts
    run, n = next(_runs), 3000
    # 4 KiB blocks hold ~30 frames: batches of 7 start and end mid-block, and the ring wraps many times.
    out = capture(lab, [dict(host=h0, count=n, run=run, dst=h1.mac)], expect=n, run=run,
                  block_size=4096, block_count=64, max_frames=7)
    (res,) = out.values()
    assert seqs(res["markers"]) == list(range(n))
    assert res["stats"]["drops"] == 0


@pytest.mark.skipif(not _cython_built(), reason="compiled fast path not built")
def test_ring_and_twin_capture_the_same_frames(lab):
    h0, h1 = lab.hosts
    run = next(_runs)
    seed = random.randrange(1 << 30)
    sends = [dict(host=h0, count=300, run=run, dst=h1.mac),
             dict(host=h1, count=200, run=run, vlan=7, size=200),
             dict(host=h0, count=100, run=run, size=1514),
             dict(host=h1, count=400, run=run, random=seed)]
    out = capture(lab, sends, expect=1000, impl="cython,python", run=run)
    ring, twin = out["cython"]["markers"], out["python"]["markers"]
    assert len(ring) == 1000, f"seed {seed}"
    rng = random.Random(seed)
    expected = [random_frame(rng, bytes(6), bytes(6), run, i) for i in range(400)]
    tagged = [len(f) > 16 and f[12:14] == b"\x81\x00" for f in expected]
    assert [m[2] >= 0 for m in ring[600:]] == tagged, f"seed {seed}"  # random tags all arrived as metadata
    assert any(tagged) and not all(tagged)
    assert [m[1] for m in ring[600:]] == [len(f) for f in expected]  # wire length counts the tag
    untagged = [f[16:] if t else f[12:] for f, t in zip(expected, tagged)]
    assert [bytes.fromhex(m[0])[12:] for m in ring[600:]] == untagged  # and the bytes are the frame without it
    assert [m[:3] for m in ring] == [m[:3] for m in twin], f"seed {seed}"  # bytes, wire length, VLAN
    assert all(m[3] > 0 for m in ring + twin)
    assert all(abs(a[3] - b[3]) < 1_000_000_000 for a, b in zip(ring, twin))


def test_kernel_drops_are_counted(lab):
    h0, h1 = lab.hosts
    run, n = next(_runs), 4000
    # Two 4 KiB blocks and nobody reading for a while: the kernel must drop, and say so.
    out = capture(lab, [dict(host=h0, count=n, run=run, dst=h1.mac)], expect=n, run=run,
                  bpf="ether proto 0x88b5", block_size=4096, block_count=2, hold=1.5, timeout=4, settle=0.2)
    (res,) = out.values()
    got = len(res["markers"])
    assert res["stats"]["drops"] > 0
    assert got + res["stats"]["drops"] == n
    assert res["stats"]["packets"] == n  # the kernel's count includes the drops
    assert len(set(seqs(res["markers"]))) == got


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="BPF filters are compiled with tcpdump")
def test_bpf_filter_keeps_only_matching_frames(lab):
    h0, h1 = lab.hosts
    run, n = next(_runs), 500
    ping = dict(host=h0, argv=["ping", "-c", "3", "-i", "0.2", "-W", "1", str(h1.ip)])
    out = capture(lab, [dict(host=h0, count=n, run=run, dst=h1.mac), ping], expect=n, run=run,
                  bpf="ether proto 0x88b5")
    (res,) = out.values()
    assert res["frames"] == n == len(res["markers"])  # no ICMP, no ARP, nothing else
    out = capture(lab, [dict(host=h0, count=n, run=run, dst=h1.mac), ping], expect=1, run=run,
                  bpf="icmp", expect_frames=6, settle=1.0)
    (res,) = out.values()
    assert res["markers"] == []
    assert res["frames"] == 6  # 3 echo requests + 3 replies, seen on the mirror port


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="BPF filters are compiled with tcpdump")
def test_bad_filter_is_a_clear_error(lab):
    out = capture(lab, [], expect=1, run=next(_runs), bpf="udp portx 53")
    assert "not a valid filter" in out["error"] and "udp portx 53" in out["error"]


def test_vlan_tag_comes_from_ring_metadata(lab):
    h0, h1 = lab.hosts
    run = next(_runs)
    sends = [dict(host=h0, count=50, run=run, vlan=42), dict(host=h1, count=50, run=run, vlan=4000),
             dict(host=h0, count=50, run=run)]
    out = capture(lab, sends, expect=150, run=run)
    (res,) = out.values()
    vlans = [m[2] for m in res["markers"]]
    assert vlans == [42] * 50 + [4000] * 50 + [-1] * 50
    # The kernel moved the tag into metadata: the frame bytes carry the inner ethertype at offset 12.
    assert all(m[0][24:28] == "88b5" for m in res["markers"])
    assert [m[1] for m in res["markers"]] == [60] * 150


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="BPF filters are compiled with tcpdump")
def test_bpf_vlan_filter_matches_the_metadata_tag(lab):
    h0, h1 = lab.hosts
    run = next(_runs)
    sends = [dict(host=h0, count=40, run=run, vlan=42), dict(host=h0, count=40, run=run, vlan=43),
             dict(host=h0, count=40, run=run)]
    out = capture(lab, sends, expect=40, run=run, bpf="vlan 42", timeout=4)
    (res,) = out.values()
    assert [m[2] for m in res["markers"]] == [42] * 40


def test_missing_interface_is_a_clear_error(lab):
    child = lab.run(lab.probe, [sys.executable, CHILD, "--iface", "nosuch0", "--run", "1", "--expect", "1"],
                    check=False)
    err = json.loads(child.stdout.strip().splitlines()[-1])
    assert child.returncode == 3
    assert "'nosuch0' does not exist" in err["error"]


def _records_frames(h0) -> list[bytes]:
    """Frames of every kind the parser decodes, rare ones (whose bytes next_records keeps) among them."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.contrib.lldp import (LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUPortID, LLDPDUSystemName,
                                    LLDPDUTimeToLive)

    me, bc = h0.mac, "ff:ff:ff:ff:ff:ff"
    dhcp = (Ether(src=me, dst=bc) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
            / BOOTP(chaddr=bytes.fromhex(me.replace(":", ""))) / DHCP(options=[("message-type", "discover"),
                                                                               ("param_req_list", [1, 3, 6]), "end"]))
    frames = [
        dhcp,
        Ether(src=me, dst=bc) / Dot1Q(vlan=5) / dhcp.payload,  # tag moves to metadata: the rare copy says 5
        Ether(src=me, dst="01:00:5e:00:00:fb") / IP(src=str(h0.ip), dst="224.0.0.251") / UDP(sport=5353, dport=5353)
        / DNS(qd=DNSQR(qname="printer.local", qtype="PTR")),
        Ether(src=me, dst="01:80:c2:00:00:0e", type=0x88CC) / LLDPDUChassisID(subtype=4, id=me)
        / LLDPDUPortID(subtype=5, id=b"eth0") / LLDPDUTimeToLive(ttl=120) / LLDPDUSystemName(system_name=b"lab-h0")
        / LLDPDUEndOfLLDPDU(),
        Ether(src=me, dst=bc) / IP(src=str(h0.ip), dst="10.255.255.255") / UDP(sport=137, dport=137) / (b"\x00" * 50),
        Ether(src=me, dst=bc) / ARP(hwsrc=me, psrc=str(h0.ip), pdst="10.0.0.99"),
        Ether(src=me, dst="02:00:00:00:00:09") / IP(src=str(h0.ip), dst="10.0.0.9") / TCP(sport=40000, dport=22, flags="S"),
        Ether(src=me, dst="02:00:00:00:00:09") / IP(src=str(h0.ip), dst="10.0.0.9") / UDP(sport=40000, dport=9) / (b"x" * 18),
    ]
    raw = [bytes(f) for f in frames]
    bad = bytearray(raw[0])
    bad[38:40] = (4000).to_bytes(2, "big")  # DHCP whose UDP length overruns the frame: malformed, bytes not kept
    return raw + [bytes(bad)]


@pytest.mark.skipif(not _cython_built(), reason="compiled fast path not built")
@pytest.mark.parametrize("ring_opts", [{}, {"block_size": 4096, "block_count": 512, "max_frames": 64, "hold": 1.5},
                                       {"block_size": 4096, "block_count": 512, "max_frames": 2048, "linger": 0.05}],
                         ids=["default", "small-blocks", "lingering"])
def test_next_records_parse_in_the_walk_as_the_twin_parses_its_frames(lab, ring_opts, tmp_path):
    """next_records (each frame parsed where the kernel put it, rare frames' bytes kept, aggregated in the
    walk) gives the same records, counts, rare frames and aggregates as the twin's parse of its own copy
    of every frame, and its aggregates are what aggregate_frames makes of its records. Small blocks
    read only after they have piled up fill the rare-frame buffer (one block) mid-walk: the walk stops
    early and loses nothing. A lingering walk waits for blocks as they fill, mid-walk, and loses nothing."""
    h0, h1 = lab.hosts
    run = next(_runs)
    frames = _records_frames(h0)
    hexfile = os.path.join(lab.tmpdir, f"frames-{run}.hex")
    with open(hexfile, "w") as fh:
        fh.write("\n".join(f.hex() for f in frames))
    rounds = 30
    sends = [dict(host=h0, count=rounds * len(frames), run=run, hexfile=hexfile, pps=5000),
             dict(host=h1, count=300, run=run, random=run, pps=5000)]
    out = capture(lab, sends, expect=1, run=run, impl="cython,python", records=True,
                  expect_frames=rounds * len(frames) + 300, settle=1.0, window=0.05, **ring_opts)
    ring, twin = out["cython"], out["python"]
    assert ring["frames"] >= rounds * len(frames) + 300
    from probe.fastpath.layout import F_MALFORMED, FRAME_DTYPE
    names = [f for f in FRAME_DTYPE.names if f != "ts_ns"]
    col = {name: i for i, name in enumerate(names)}
    wirelen, flags = col["wirelen"], col["flags"]
    h0_mac = int(h0.mac.replace(":", ""), 16)

    def ours(r):  # not the lab hosts' own chatter (IPv6, ARP after earlier tests), which may reach one read only
        if r[col["ethertype"]] == 0x88B5:
            return True
        return r[col["src_mac"]] == h0_mac and r[col["ethertype"]] != 0x86DD and \
            (r[col["ethertype"]] != 0x0806 or r[col["arp_tpa"]] == 0x0A000063)

    for res in (ring, twin):  # the counts next_records returns are its records'
        assert res["frames"] == len(res["records"])
        # aggregated in the walk (50 ms windows, so several close mid-read) as aggregate_frames
        # aggregates the records apart; the records after a window's end go apart in both
        assert res["aggregates_equal"] and res["windows"] >= 2
        assert 0 < res["aggregated"] < res["frames"]
        assert res["wire_bytes"] == sum(r[wirelen] for r in res["records"])
        assert res["malformed"] == sum(1 for r in res["records"] if r[flags] & F_MALFORMED)
        assert res["flag_counts"] == [sum(1 for r in res["records"] if r[flags] >> bit & 1) for bit in range(32)]
    sent = [[r for r in res["records"] if ours(r)] for res in (ring, twin)]
    assert len(sent[0]) == rounds * len(frames) + 300
    assert sent[0] == sent[1]
    rare = [[r[1:4] for r in res["rare"]] for res in (ring, twin)]
    assert rare[0] == rare[1]
    assert all(r[4] for r in ring["rare"] + twin["rare"])  # each rare frame's timestamp is its record's
    kept = [(bytes.fromhex(r[1]), r[3]) for r in ring["rare"]]
    for i in (0, 2, 3, 4):  # DHCP, mDNS, LLDP, NetBIOS: every one sent, bytes intact
        assert kept.count((frames[i], -1)) == rounds, i
    assert kept.count((frames[0], 5)) == rounds  # the tagged DHCP: without its tag, VLAN 5 from metadata
    assert len(kept) == 5 * rounds
    kept = [f for f, _ in kept]
    assert frames[-1] not in kept and ring["malformed"] >= rounds
