"""A capture taken with a 256-byte snap length (DHCP options lost) through `sitevigil replay`, in both
implementations: a rogue server's cut OFFER is still rogue_dhcp, cut frames are `truncated`, not
`malformed`, and the Prometheus output says the same."""
from __future__ import annotations

import json
import struct
import subprocess

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

SNAPLEN = 256
ROGUE_MAC, ROGUE_IP, REAL_SERVER = "02:66:66:66:66:66", "10.66.66.66", "128.2.6.152"


def _write_cut_pcap(path, packets, snaplen):
    """A classic pcap whose records hold at most `snaplen` bytes of each frame, with the wire length kept
    (what `tcpdump -s 256` or `editcap -s 256` write)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        for p in packets:
            raw = bytes(p)
            t = float(p.time)
            f.write(struct.pack("<IIII", int(t), int(round((t - int(t)) * 1e6)), min(len(raw), snaplen), len(raw)))
            f.write(raw[:snaplen])


@pytest.fixture(scope="module")
def cut_capture(tmp_path_factory, shared_data):
    dora = rdpcap(str(shared_data / "pcap" / "dhcp_dora.pcap"))
    offer = next(p for p in dora if p.haslayer(BOOTP) and p[BOOTP].op == 2)
    rogue = (Ether(src=ROGUE_MAC, dst=offer[Ether].dst) / IP(src=ROGUE_IP, dst=offer[IP].dst) / UDP(sport=67, dport=68)
             / BOOTP(op=2, xid=offer[BOOTP].xid, yiaddr="10.66.66.100", siaddr=ROGUE_IP, chaddr=offer[BOOTP].chaddr)
             / DHCP(options=[("message-type", "offer"), ("server_id", ROGUE_IP), ("router", ROGUE_IP), "end"]))
    rogue.time = offer.time + 0.001
    packets = sorted([*dora, rogue], key=lambda p: float(p.time))
    assert all(len(bytes(p)) > SNAPLEN for p in packets)  # every frame is cut: DHCP options are lost
    path = tmp_path_factory.mktemp("snaplen") / "dhcp_dora_rogue_s256.pcap"
    _write_cut_pcap(path, packets, SNAPLEN)
    return path, len(packets)


def _replay(cmd, env, path, impl, fmt="json"):
    env = dict(env)
    env.pop("SITEVIGIL_NO_EXTENSIONS", None)
    if impl == "python":
        env["SITEVIGIL_NO_EXTENSIONS"] = "1"
    p = subprocess.run([*cmd, "replay", str(path), "--allowed-dhcp-server", REAL_SERVER, "--format", fmt],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_cut_rogue_offer_is_rogue_dhcp_and_cut_frames_are_truncated(cut_capture, sitevigil_cmd, sitevigil_env, impl):
    path, n = cut_capture
    out = json.loads(_replay(sitevigil_cmd, sitevigil_env, path, impl))
    assert out["frames"] == n and out["malformed"] == 0 and out["truncated"] == n
    rogue = [f for f in out["findings"] if f["kind"] == "rogue_dhcp"]
    assert [(f["device"], f["severity"]) for f in rogue] == [(ROGUE_MAC, "critical")]
    ev = rogue[0]["evidence"]
    assert ev["server_id"] == ROGUE_IP and ev["replies_options_cut"] == 1 and ev["offers"] == 0
    assert not [f for f in out["findings"] if f["kind"] != "rogue_dhcp"]  # the real server's cut replies are fine
    prom = _replay(sitevigil_cmd, sitevigil_env, path, impl, fmt="prom")
    assert f"sitevigil_capture_truncated_frames_total {float(n)}" in prom
    assert "sitevigil_capture_malformed_frames_total 0.0" in prom
