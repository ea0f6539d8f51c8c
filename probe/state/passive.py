"""Passive discovery: what devices say about themselves on the wire, turned into observations.

    for obs in observations(frame_bytes, ts):
        inventory.observe(obs.mac, obs.ip, obs.name, obs.source, obs.ts, facts=obs.facts)

Understood: ARP (who is at which address), DHCP (client hostname, vendor class, option-55 list; the
server), mDNS and LLMNR answers (host names, advertised services), NetBIOS name registrations and
answers, LLDP and CDP (neighbour name, description, capabilities, management address).

This runs off the hot path: `is_discovery_frame()` is a few byte comparisons that pick the frames
worth decoding; the live capture bounds how many it decodes per second (probe.subsystems.capture.
PassiveFeed), so a DHCP flood or an mDNS storm costs a bounded amount of CPU. ARP is decoded by hand; the rest by the capture path's own
decoders (probe.fastpath.rare), so every source of frames learns the same.
"""
from __future__ import annotations

import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probe import fastpath
from probe.fastpath.rare import decode_rare

_log = logging.getLogger(__name__)

LLDP_MULTICAST = (b"\x01\x80\xc2\x00\x00\x0e", b"\x01\x80\xc2\x00\x00\x03", b"\x01\x80\xc2\x00\x00\x00")
CDP_MULTICAST = b"\x01\x00\x0c\xcc\xcc\xcc"
UDP_PORTS = {67: "dhcp", 68: "dhcp", 5353: "mdns", 5355: "llmnr", 137: "netbios"}


@dataclass
class Observation:
    mac: str | None
    ip: str | None
    name: str | None
    source: str
    ts: float
    facts: dict[str, Any] = field(default_factory=dict)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _l3_offset(frame: bytes) -> tuple[int, int]:
    """(ethertype, offset of its payload), looking through up to two VLAN tags."""
    off = 12
    etype = struct.unpack_from("!H", frame, off)[0] if len(frame) >= 14 else 0
    for _ in range(2):
        if etype in (0x8100, 0x88A8) and len(frame) >= off + 6:
            off += 4
            etype = struct.unpack_from("!H", frame, off)[0]
    return etype, off + 2


def is_discovery_frame(frame: bytes) -> str | None:
    """The protocol name when the frame may carry discovery information, else None (cheap)."""
    if len(frame) < 14:
        return None
    dst = frame[:6]
    if dst in LLDP_MULTICAST and _l3_offset(frame)[0] == 0x88CC:
        return "lldp"
    if dst == CDP_MULTICAST:
        return "cdp"
    etype, off = _l3_offset(frame)
    if etype == 0x0806:
        return "arp"
    if etype == 0x0800 and len(frame) >= off + 28 and frame[off + 9] == 17:
        ihl = (frame[off] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", frame, off + ihl)
        return UDP_PORTS.get(sport) or UDP_PORTS.get(dport)
    if etype == 0x86DD and len(frame) >= off + 48 and frame[off + 6] == 17:
        sport, dport = struct.unpack_from("!HH", frame, off + 40)
        proto = UDP_PORTS.get(sport) or UDP_PORTS.get(dport)
        return proto if proto in ("mdns", "llmnr") else None
    return None


def _arp(frame: bytes, ts: float) -> list[Observation]:
    etype, off = _l3_offset(frame)
    if len(frame) < off + 28:
        return []
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, off)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        return []
    sha, spa = frame[off + 8:off + 14], frame[off + 14:off + 18]
    if spa == b"\0\0\0\0":  # ARP probe (RFC 5227): the sender has no address yet
        return [Observation(_mac(sha), None, None, "arp", ts)]
    return [Observation(_mac(sha), socket.inet_ntoa(spa), None, "arp", ts)]


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    v = str(v).strip("\0").strip()
    return v or None


def _dns_name(v: Any) -> str | None:
    n = _text(v)
    if not n:
        return None
    n = n.rstrip(".")
    return n[:-6] if n.lower().endswith(".local") else n


_CDP_CAPS = ((0x01, "router"), (0x02, "trans-bridge"), (0x04, "source-route-bridge"), (0x08, "switch"),
             (0x10, "host"), (0x20, "igmp"), (0x40, "repeater"), (0x80, "phone"))


def observations(frame: bytes, ts: float | None = None) -> list[Observation]:
    """What one Ethernet frame says about the devices on the LAN (empty when nothing).

    The same decoders as the live capture path: the fast path's parser finds the layers, the rare-frame
    decoder (probe.fastpath.rare) reads DHCP, mDNS, LLMNR, NetBIOS, LLDP and CDP, and from_decoded()
    turns that into observations, so a frame teaches the inventory the same from a capture file, a
    test or the mirror port."""
    ts = time.time() if ts is None else ts
    proto = is_discovery_frame(frame)
    if proto is None:
        return []
    if proto == "arp":
        return _arp(frame, ts)
    record = _parse_one(frame, ts)
    info = decode_rare(frame, record)
    if info is None:
        return []
    if info.get("malformed"):
        _log.debug("passive: cannot decode %s frame: %s", info.get("protocol"), info["malformed"])
        return []
    info["ts"] = ts
    src_ip = int(record["src_ip"])
    return from_decoded(info, socket.inet_ntoa(src_ip.to_bytes(4, "big")) if src_ip else None)


def _parse_one(frame: bytes, ts: float):
    """The FRAME_DTYPE record of one frame."""
    n = len(frame)
    records, _malformed = fastpath.parse_frames(
        np.frombuffer(frame, np.uint8) if n else np.zeros(1, np.uint8), np.zeros(1, np.int64),
        np.array([n], np.uint32), np.array([n], np.uint32), np.array([int(ts * 1e9)], np.int64),
        np.array([-1], np.int32))
    return records[0]


# ---------------------------------------------------------------------------------------------------
# The rare-frame decoder's dicts (probe.fastpath.rare: decode_batch/decode_rare) -> observations: what
# the live capture path, replay and observations() above all go through.

_RARE_LLDP_CAPS = {"wlan_ap": "wlan access point", "c_vlan": "bridge", "s_vlan": "bridge", "tpmr": "bridge"}


def from_decoded(info: dict, src_ip: str | None = None) -> list[Observation]:
    """Observations from one decoded rare frame ({"protocol": "dhcp"|"lldp"|"cdp"|"mdns"|"llmnr"|"nbns",
    "src_mac": ..., "ts": ...}); `src_ip` is the frame's IPv4 source when the caller has it."""
    if not isinstance(info, dict) or info.get("malformed"):
        return []
    proto, src, ts = info.get("protocol"), info.get("src_mac"), float(info.get("ts") or time.time())
    if proto == "dhcp":
        if info.get("op") == "request":
            facts: dict[str, Any] = {}
            if info.get("vendor_class"):
                facts["dhcp_vendor_class"] = info["vendor_class"]
            if info.get("parameter_request_list"):
                facts["dhcp_params"] = [int(x) for x in info["parameter_request_list"]]
            return [Observation(info.get("client_mac") or src, info.get("ciaddr"), info.get("hostname"), "dhcp", ts,
                                facts)]
        out = []
        if info.get("message_type") == "ack" and info.get("yiaddr") and info.get("client_mac"):
            out.append(Observation(info["client_mac"], info["yiaddr"], None, "dhcp", ts))
        if info.get("message_type") in ("offer", "ack", "nak"):
            out.append(Observation(src, src_ip or info.get("server_id"), None, "dhcp", ts, {"dhcp_server": True}))
        return out
    if proto in ("mdns", "llmnr"):
        if not info.get("response"):
            return []
        name = None
        services: list[str] = []
        for rec in info.get("records") or []:
            rname = str(rec.get("name") or "")
            if rec.get("type") == "A" and src_ip and rec.get("address") == src_ip:
                name = _dns_name(rname)
            elif rec.get("type") in ("A", "AAAA") and name is None:
                name = _dns_name(rname)
            elif rec.get("type") == "PTR" and rname.startswith("_") and ("._tcp" in rname or "._udp" in rname):
                svc = rname.rstrip(".").removesuffix(".local")
                if svc not in services and len(services) < 16:
                    services.append(svc)
        if src_ip is None:  # the A record naming the sender gives its IPv4 address
            src_ip = next((r.get("address") for r in info.get("records") or []
                           if r.get("type") == "A" and name and _dns_name(str(r.get("name") or "")) == name), None)
        if name is None and not services:
            return []
        return [Observation(src, src_ip, name, proto, ts, {"mdns_services": services} if services else {})]
    if proto == "nbns":
        opcode, response = info.get("opcode"), info.get("response")
        if not (opcode in (5, 8) or (response and opcode == 0)) or info.get("suffix") not in (0x00, 0x20):
            return []
        name = (info.get("name") or "").strip()
        return [Observation(src, src_ip, name, "netbios", ts)] if name and name != "*" else []
    if proto == "lldp":
        caps = [_RARE_LLDP_CAPS.get(c, c) for c in info.get("capabilities") or []]
        mgmt = next(iter(info.get("management_addresses") or []), None)
        neighbor = {k: v for k, v in {
            "chassis_id": info.get("chassis_id"), "port_id": info.get("port_id"),
            "port_description": info.get("port_description"), "system_name": info.get("system_name"),
            "description": info.get("system_description"), "capabilities": caps,
            "management_address": mgmt}.items() if v not in (None, "", [])}
        chassis = info.get("chassis_id") or ""
        key = chassis if len(chassis) == 17 and chassis.count(":") == 5 else src
        return [Observation(key, mgmt, info.get("system_name"), "lldp", ts, {"neighbor": neighbor})]
    if proto == "cdp":
        caps_text = info.get("capabilities")  # CDP TLV 4: capability bits
        if isinstance(caps_text, int):
            caps_text = [label for bit, label in _CDP_CAPS if caps_text & bit]
        mgmt = next(iter(info.get("addresses") or []), None)
        descr = " ".join(x for x in (info.get("platform"), info.get("software_version")) if x) or None
        neighbor = {k: v for k, v in {
            "system_name": info.get("device_id"), "port_id": info.get("port_id"), "platform": info.get("platform"),
            "description": descr, "capabilities": caps_text, "management_address": mgmt}.items()
            if v not in (None, "", [])}
        return [Observation(src, mgmt, info.get("device_id"), "cdp", ts, {"neighbor": neighbor})]
    return []
