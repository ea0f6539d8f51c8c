"""An idle SMB client's TCP keep-alives through `sitevigil replay`: no retransmissions, no
tcp_retransmissions finding; the crafted capture checked against Wireshark's own analysis (tshark)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from probe.sources.capfile import write_pcap
from probe.sources.frames import FrameBatch

CLIENT, SERVER = ("02:00:00:00:00:20", "10.0.0.20"), ("02:00:00:00:00:05", "10.0.0.5")
T0 = 1_700_000_000 * 10**9
S = 10**9


def idle_smb_client(connections=3, keepalives=30, every_s=2):
    """`connections` SMB sessions that exchange a request and an answer, go idle, and are then held open by
    the client's 1-byte keep-alives (seq one before the next, as Windows sends them), each ACKed."""
    events = []  # (time, sender, seq, ack, flags, payload)
    for c in range(connections):
        isn_c, isn_s, t = 1_000_000 * (c + 1), 7_000_000 * (c + 1), c * 0.01
        port = 50000 + c
        events += [(t, "c", port, isn_c, 0, "S", b""), (t + 0.001, "s", port, isn_s, isn_c + 1, "SA", b""),
                   (t + 0.002, "c", port, isn_c + 1, isn_s + 1, "A", b""),
                   (t + 0.003, "c", port, isn_c + 1, isn_s + 1, "PA", b"q" * 100),
                   (t + 0.004, "s", port, isn_s + 1, isn_c + 101, "PA", b"r" * 200),
                   (t + 0.005, "c", port, isn_c + 101, isn_s + 201, "A", b"")]
        for k in range(keepalives):
            tk = 20 + k * every_s + c * 0.01
            events += [(tk, "c", port, isn_c + 100, isn_s + 201, "A", b"\0"),
                       (tk + 0.001, "s", port, isn_s + 201, isn_c + 101, "A", b"")]
    events.sort()
    frames, ts, ids = [], [], {"c": 0, "s": 0}
    for t, who, port, seq, ack, flags, payload in events:
        (smac, sip), (dmac, dip) = (CLIENT, SERVER) if who == "c" else (SERVER, CLIENT)
        sport, dport = (port, 445) if who == "c" else (445, port)
        ids[who] += 1
        frames.append(bytes(Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip, id=ids[who])
                            / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=8192) / payload))
        ts.append(T0 + int(t * S))
    return frames, ts


def _tshark_count(path, display_filter) -> int:
    p = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return len(p.stdout.splitlines())


def test_idle_smb_client_keep_alives_are_no_retransmissions(tmp_path, sitevigil_cmd, sitevigil_env):
    frames, ts = idle_smb_client()
    path = tmp_path / "smb_idle_keepalive.pcap"
    write_pcap(str(path), [FrameBatch.from_frames(frames, ts_ns=ts)])
    p = subprocess.run([*sitevigil_cmd, "replay", str(path), "--format", "json"], capture_output=True, text=True,
                       env=sitevigil_env, timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["malformed"] == 0
    assert r["events"].get("tcp_retrans", 0) == 0
    # the request and the answer of each session are data; the 90 keep-alives are not
    assert r["events"]["tcp_data"] == 3 * 3  # SYN-ACK, request, answer
    assert "tcp_retransmissions" not in {f["kind"] for f in r["findings"]}, r["findings"]


@pytest.mark.peer
def test_keep_alives_as_wireshark_flags_them(tmp_path):
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    frames, ts = idle_smb_client()
    path = tmp_path / "smb_idle_keepalive.pcap"
    write_pcap(str(path), [FrameBatch.from_frames(frames, ts_ns=ts)])
    assert _tshark_count(path, "tcp.analysis.keep_alive") == 3 * 30  # the capture is what it says
    assert _tshark_count(path, "tcp.analysis.retransmission or tcp.analysis.fast_retransmission "
                               "or tcp.analysis.out_of_order") == 0
