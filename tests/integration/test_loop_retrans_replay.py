"""forwarding_loop and tcp_retransmissions through `sitevigil replay`: captures recorded in the lab
(tests/data/pcap/README.md), the shared captures, and SPAN-doubled copies of them; counts checked
against Wireshark's own analysis (tshark) where it is installed."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.pipeline import CapturePipeline
from probe.sources.capfile import read_batches, write_pcap
from probe.sources.frames import FrameBatch

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def replay_json(cmd, env, path, *extra):
    p = subprocess.run([*cmd, "replay", str(path), "--format", "json", *extra], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_lab_loop_capture_raises_forwarding_loop(sitevigil_cmd, sitevigil_env):
    r = replay_json(sitevigil_cmd, sitevigil_env, DATA / "lab_forwarding_loop.pcap")
    loops = [f for f in r["findings"] if f["kind"] == "forwarding_loop"]
    assert len(loops) == 1, r["findings"]
    f = loops[0]
    assert f["severity"] == "critical" and f["device"] == "lan"
    ev = f["evidence"]
    # the one ARP request arping sent, ~750 times (the hosts' MLD reports circulate too)
    assert ev["copies"] >= 500 and ev["protocol"] == "arp" and ev["ethertype"] == "0x0806" and ev["vlan"] is None
    assert ev["duplicate_frames"] >= 1500 and ev["src_mac"].startswith("02:5e:")
    top = r["devices"][ev["src_mac"]]
    assert top["dup_frames"] >= 500 and top["repeated_frame"] == {"copies": ev["copies"], "ethertype": "0x0806",
                                                                  "protocol": "arp", "vlan": None}


def split_connection(path: Path, out: Path, parts: int, port: int) -> Path:
    """The capture with its one connection cut into `parts` by time: the client's port (`port`) becomes
    port + k in the k-th part of the capture's span, both directions, so each part is a connection of its
    own with the same loss (sequence numbers go on; checksums are not fixed, the parser does not read them)."""
    frames, ts, wire = [], [], []
    for b in read_batches(str(path)):
        for i in range(len(b)):
            frames.append(bytearray(b.frame(i)))
            ts.append(int(b.ts_ns[i]))
            wire.append(int(b.wirelen[i]))
    t0, span = min(ts), max(ts) - min(ts) + 1
    for f, t in zip(frames, ts):
        if f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        tcp = 14 + (f[14] & 0xF) * 4
        k = (t - t0) * parts // span
        for at in (tcp, tcp + 2):
            if int.from_bytes(f[at:at + 2], "big") == port:
                f[at:at + 2] = (port + k).to_bytes(2, "big")
    write_pcap(str(out), [FrameBatch.from_frames([bytes(f) for f in frames], ts_ns=ts, wirelen=wire)], nanosecond=True)
    return out


@pytest.fixture(scope="module")
def loss_on_four_connections(tmp_path_factory):
    return split_connection(DATA / "lab_tcp_loss_10pct.pcap", tmp_path_factory.mktemp("loss") / "loss_4_conns.pcap",
                            4, 56334)


def test_lab_loss_capture_is_one_connection_and_no_finding(sitevigil_cmd, sitevigil_env):
    # one iperf connection with 10% loss: that transfer's trouble, and no single flow raises a finding (issue
    # 12); its counts stay exact
    r = replay_json(sitevigil_cmd, sitevigil_env, DATA / "lab_tcp_loss_10pct.pcap")
    assert [f for f in r["findings"] if f["kind"] == "tcp_retransmissions"] == [], r["findings"]
    # 2889 segments with data or FIN in tshark, the SYN left out
    assert r["hosts"]["10.203.0.3"]["tcp_retrans"] == 299 and r["hosts"]["10.203.0.3"]["tcp_data"] == 2888
    assert r["hosts"]["10.203.0.3"]["retrans_flows"] == 1
    assert "forwarding_loop" not in {f["kind"] for f in r["findings"]}
    # the receiver sent only ACKs (and its SYN-ACK): no data of its own to retransmit
    assert r["hosts"]["10.203.0.4"].get("tcp_retrans", 0) == 0


def test_lab_loss_on_four_connections_raises_tcp_retransmissions_for_the_sender(
        sitevigil_cmd, sitevigil_env, loss_on_four_connections):
    r = replay_json(sitevigil_cmd, sitevigil_env, loss_on_four_connections)
    got = [f for f in r["findings"] if f["kind"] == "tcp_retransmissions"]
    assert [f["device"] for f in got] == ["10.203.0.3"] and got[0]["severity"] == "warning", r["findings"]
    assert got[0]["evidence"]["retransmitting_connections"] >= 3 and "distinct connections" in got[0]["evidence"]["reason"]
    assert r["hosts"]["10.203.0.3"]["tcp_retrans"] >= 290
    assert r["hosts"]["10.203.0.4"].get("tcp_retrans", 0) == 0


def _tshark_retransmissions(path) -> int:
    p = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.analysis.retransmission or "
                        "tcp.analysis.fast_retransmission or tcp.analysis.out_of_order"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return len(p.stdout.splitlines())


def _pipeline(path, double=False, window=10.0):
    pipe = CapturePipeline(CaptureConfig(window=window, max_devices=4096), DetectionConfig(), summarize_devices=True)
    for b in read_batches(str(path)):
        if double:  # a SPAN session mirroring both directions: every frame twice, 20 us apart
            frames = [b.frame(i) for i in range(len(b))]
            ts = np.repeat(b.ts_ns, 2)
            ts[1::2] += 20_000
            b = FrameBatch.from_frames([f for f in frames for _ in (0, 1)], ts_ns=ts.tolist(),
                                       wirelen=np.repeat(b.wirelen, 2).tolist())
        pipe.add_batch(b)
    pipe.finish()
    return pipe


@pytest.mark.peer
@pytest.mark.parametrize("name", ["lab_tcp_loss_10pct.pcap", "shared:tcp_fast_retransmit.pcap",
                                  "shared:tcp_rto_retransmissions.pcapng", "shared:tcpreplay_mixed_test.pcap"])
def test_retransmissions_counted_as_wireshark_does(name, request):
    """Wireshark's tcp.analysis flags for a segment at or below what the flow has sent: retransmission,
    fast retransmission, or (when it comes sooner than an RTT) out-of-order."""
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    if name.startswith("shared:"):
        path = request.getfixturevalue("shared_data") / "pcap" / name.split(":", 1)[1]
    else:
        path = DATA / name
    ours = _pipeline(path).stats().events["tcp_retrans"]
    assert ours == _tshark_retransmissions(path) and ours > 0


def test_no_shared_capture_is_a_loop_even_mirrored_twice(shared_data):
    """Every shared capture, as it is and with each frame seen twice (SPAN of both directions), raises
    no forwarding_loop; and the doubled frames add no TCP retransmission."""
    for path in sorted((shared_data / "pcap").glob("*.pcap*")):
        single = _pipeline(path)
        double = _pipeline(path, double=True)
        for pipe in (single, double):
            assert "forwarding_loop" not in {f.kind for f in pipe.findings.all_findings()}, path.name
        assert double.stats().events["tcp_retrans"] == single.stats().events["tcp_retrans"], path.name
        assert double.stats().events["tcp_data"] == single.stats().events["tcp_data"], path.name
        one, two = single.stats().events, double.stats().events
        assert two["dup_frames"] >= one["broadcast"] + one["multicast"], path.name  # each second copy is a repeat


def test_one_frame_mirrored_twice_is_no_loop(tmp_path, sitevigil_cmd, sitevigil_env):
    from scapy.layers.l2 import ARP, Ether
    from probe.sources.capfile import write_pcap
    arp = bytes(Ether(src="02:00:00:00:00:0a", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.10", pdst="10.0.0.1"))
    t0 = 1_700_000_000 * 10**9
    path = tmp_path / "twice.pcap"
    write_pcap(str(path), [FrameBatch.from_frames([arp, arp], ts_ns=[t0, t0 + 20_000])])
    r = replay_json(sitevigil_cmd, sitevigil_env, path)
    assert r["findings"] == [] and r["devices"]["02:00:00:00:00:0a"]["dup_frames"] == 1


def test_the_loop_capture_mirrored_twice_is_still_one_loop():
    pipe = _pipeline(DATA / "lab_forwarding_loop.pcap", double=True)
    assert [f.device for f in pipe.findings.all_findings() if f.kind == "forwarding_loop"] == ["lan"]


@pytest.mark.parametrize("name, kind, event", [("lab_forwarding_loop.pcap", "forwarding_loop", "dup_frames"),
                                               ("loss_4_conns", "tcp_retransmissions", "tcp_retrans")])
def test_prometheus_output_has_the_new_kinds_and_events(sitevigil_cmd, sitevigil_env, name, kind, event,
                                                        loss_on_four_connections):
    from prometheus_client.parser import text_string_to_metric_families
    path = loss_on_four_connections if name == "loss_4_conns" else DATA / name
    p = subprocess.run([*sitevigil_cmd, "replay", str(path), "--format", "prom"], capture_output=True,
                       text=True, env=sitevigil_env, timeout=120)
    assert p.returncode == 0, p.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(p.stdout) for s in fam.samples}
    raised = {dict(k[1]).get("kind") for k, v in samples.items() if k[0] == "sitevigil_findings_raised_total" and v}
    assert kind in raised
    assert samples[("sitevigil_capture_events_total", (("event", event),))] > 0


def test_one_host_flooding_a_group_is_no_loop(sitevigil_cmd, sitevigil_env, tmp_path):
    """A capture of one host sending one identical frame to 239.0.0.250 at 1000/s (what mausezahn or a stuck
    application sends): multicast_flood on that host; the lab loop stays a loop; the flood tools' captures
    are no loop either."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from probe.sources.capfile import write_pcap
    mac = "02:00:00:00:00:07"
    f = bytes(Ether(src=mac, dst="01:00:5e:00:00:fa") / IP(src="10.0.0.7", dst="239.0.0.250", ttl=1, id=1)
              / UDP(sport=4000, dport=5000) / (b"x" * 40))
    path = tmp_path / "mcast_flood.pcap"
    write_pcap(str(path), [FrameBatch.from_frames([f] * 3000, ts_ns=[1_700_000_000 * 10**9 + k * 10**6
                                                                      for k in range(3000)])])
    r = replay_json(sitevigil_cmd, sitevigil_env, path)
    assert [(x["kind"], x["device"]) for x in r["findings"]] == [("multicast_flood", mac)]
    assert r["findings"][0]["evidence"]["src_ip"] == "10.0.0.7"
    for name in ("mausezahn_udp_flood_spoofed.pcap", "hping3_icmp_flood.pcap", "hping3_udp_flood.pcap",
                 "hping3_syn_flood_open_port.pcap"):
        kinds = {x["kind"] for x in replay_json(sitevigil_cmd, sitevigil_env, DATA / name)["findings"]}
        assert not kinds & {"forwarding_loop", "multicast_flood"}, (name, kinds)
