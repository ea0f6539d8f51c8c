"""Passive discovery: what devices say about themselves on the wire, turned into observations.

    for obs in observations(frame_bytes, ts):
        inventory.observe(obs.mac, obs.ip, obs.name, obs.source, obs.ts, facts=obs.facts)

Understood: ARP (who is at which address), DHCP (client hostname, vendor class, option-55 list; the
server), mDNS and LLMNR answers (host names, advertised services), NetBIOS name registrations and
answers, LLDP and CDP (neighbour name, description, capabilities, management address).

This runs off the hot path: `is_discovery_frame()` is a few byte comparisons that pick the frames
worth decoding, and `PassiveLearner` bounds how many are decoded per second, so a DHCP flood or an
mDNS storm costs a bounded amount of CPU. ARP is decoded by hand; the rest with scapy.
"""
from __future__ import annotations

import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

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


def _dhcp(pkt, ts: float) -> list[Observation]:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP

    if not pkt.haslayer(BOOTP):
        return []
    bootp = pkt[BOOTP]
    opts: dict[str, Any] = {}
    if pkt.haslayer(DHCP):
        for o in pkt[DHCP].options:
            if isinstance(o, tuple) and len(o) >= 2:
                opts[o[0]] = o[1] if len(o) == 2 else list(o[1:])
    msg = opts.get("message-type")
    out = []
    if bootp.op == 1:  # from the client
        mac = _mac(bytes(bootp.chaddr)[:6])
        facts: dict[str, Any] = {}
        if "vendor_class_id" in opts:
            facts["dhcp_vendor_class"] = _text(opts["vendor_class_id"])
        if "param_req_list" in opts:
            p = opts["param_req_list"]
            facts["dhcp_params"] = [int(x) for x in (p if isinstance(p, list) else [p])]
        ip = None
        if bootp.ciaddr and bootp.ciaddr != "0.0.0.0":
            ip = bootp.ciaddr
        elif msg == 3 and opts.get("requested_addr"):
            ip = None  # asked for, not yet granted: the ACK says
        out.append(Observation(mac, ip, _text(opts.get("hostname")), "dhcp", ts, facts))
    else:  # from the server
        if msg == 5 and bootp.yiaddr and bootp.yiaddr != "0.0.0.0":  # ACK: the client now has this address
            out.append(Observation(_mac(bytes(bootp.chaddr)[:6]), bootp.yiaddr, None, "dhcp", ts))
        if pkt.haslayer(IP) and msg in (2, 5, 6):
            out.append(Observation(pkt.src, pkt[IP].src, None, "dhcp", ts, {"dhcp_server": True}))
    return out


def _dns_name(v: Any) -> str | None:
    n = _text(v)
    if not n:
        return None
    n = n.rstrip(".")
    return n[:-6] if n.lower().endswith(".local") else n


def _mdns(pkt, ts: float, source: str) -> list[Observation]:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP
    from scapy.layers.llmnr import LLMNRResponse

    dns = pkt.getlayer(DNS) if source == "mdns" else pkt.getlayer(LLMNRResponse)
    if dns is None or not dns.qr:
        return []  # only answers say who the sender is
    src_ip = pkt[IP].src if pkt.haslayer(IP) else None
    name = None
    services: list[str] = []
    records = []
    for section in (dns.an, dns.ar):
        try:
            records += list(section or [])
        except TypeError:
            continue
    for rr in records:
        rtype = getattr(rr, "type", None)
        rrname = _text(getattr(rr, "rrname", None)) or ""
        if rtype == 1 and src_ip and _text(getattr(rr, "rdata", None)) == src_ip:
            name = _dns_name(rrname)
        elif rtype in (1, 28) and name is None:
            name = _dns_name(rrname)
        elif rtype == 12 and rrname.startswith("_") and ("._tcp" in rrname or "._udp" in rrname):
            svc = rrname.rstrip(".").removesuffix(".local")
            if svc not in services and len(services) < 16:
                services.append(svc)
    if name is None and not services:
        return []
    facts = {"mdns_services": services} if services else {}
    return [Observation(pkt.src, src_ip, name, source, ts, facts)]


def _nbname(data: bytes, off: int) -> str | None:
    """First-level decode of a NetBIOS name (RFC 1002 4.1)."""
    if len(data) < off + 34 or data[off] != 32:
        return None
    enc = data[off + 1:off + 33]
    try:
        raw = bytes(((enc[i] - 0x41) << 4) | (enc[i + 1] - 0x41) for i in range(0, 32, 2))
    except ValueError:
        return None
    suffix = raw[15]
    if suffix not in (0x00, 0x20):  # workstation / server service names are the host's name
        return None
    return raw[:15].decode("ascii", "replace").strip() or None


def _netbios(pkt, ts: float) -> list[Observation]:
    from scapy.layers.inet import IP, UDP

    if not pkt.haslayer(UDP) or not pkt.haslayer(IP):
        return []
    data = bytes(pkt[UDP].payload)
    if len(data) < 12 + 34:
        return []
    flags = struct.unpack_from("!H", data, 2)[0]
    response, opcode = bool(flags & 0x8000), (flags >> 11) & 0x0F
    if not (opcode in (5, 8) or (response and opcode == 0)):  # registration/refresh, or an answer
        return []
    name = _nbname(data, 12)
    if not name or name == "*":
        return []
    return [Observation(pkt.src, pkt[IP].src, name, "netbios", ts)]


_LLDP_CAPS = (("other", "other"), ("repeater", "repeater"), ("mac_bridge", "bridge"),
              ("wlan_access_point", "wlan access point"), ("router", "router"), ("telephone", "telephone"),
              ("docsis_cable_device", "docsis"), ("station_only", "station"))


def _lldp(pkt, ts: float) -> list[Observation]:
    from scapy.contrib import lldp as L

    chassis_mac = None
    neighbor: dict[str, Any] = {}
    mgmt_ip = None
    layer = pkt.getlayer(L.LLDPDU)
    while layer is not None and not isinstance(layer, L.LLDPDUEndOfLLDPDU):
        if isinstance(layer, L.LLDPDUChassisID):
            if layer.subtype == 4 and isinstance(layer.id, str):
                chassis_mac = layer.id
            else:
                neighbor["chassis_id"] = _text(layer.id)
        elif isinstance(layer, L.LLDPDUPortID):
            neighbor["port_id"] = _text(layer.id)
        elif isinstance(layer, L.LLDPDUPortDescription):
            neighbor["port_description"] = _text(layer.description)
        elif isinstance(layer, L.LLDPDUSystemName):
            neighbor["system_name"] = _text(layer.system_name)
        elif isinstance(layer, L.LLDPDUSystemDescription):
            neighbor["description"] = _text(layer.description)
        elif isinstance(layer, L.LLDPDUSystemCapabilities):
            neighbor["capabilities"] = [label for fld, label in _LLDP_CAPS if getattr(layer, f"{fld}_enabled", 0)]
        elif isinstance(layer, L.LLDPDUManagementAddress):
            if layer.management_address_subtype == 1 and len(bytes(layer.management_address)) == 4:
                mgmt_ip = socket.inet_ntoa(bytes(layer.management_address))
                neighbor["management_address"] = mgmt_ip
        layer = layer.payload if layer.payload and layer.payload.name != "NoPayload" else None
        if layer is not None and not isinstance(layer, L.LLDPDU):
            break
    return [Observation(chassis_mac or pkt.src, mgmt_ip, neighbor.get("system_name"), "lldp", ts,
                        {"neighbor": neighbor})]


_CDP_CAPS = ((0x01, "router"), (0x02, "trans-bridge"), (0x04, "source-route-bridge"), (0x08, "switch"),
             (0x10, "host"), (0x20, "igmp"), (0x40, "repeater"), (0x80, "phone"))


def _cdp(pkt, ts: float) -> list[Observation]:
    from scapy.contrib import cdp as C

    if not pkt.haslayer(C.CDPv2_HDR):
        return []
    neighbor: dict[str, Any] = {}
    mgmt_ip = None
    for msg in pkt[C.CDPv2_HDR].msg or []:
        if isinstance(msg, C.CDPMsgDeviceID):
            neighbor["system_name"] = _text(msg.val)
        elif isinstance(msg, C.CDPMsgPortID):
            neighbor["port_id"] = _text(msg.iface)
        elif isinstance(msg, C.CDPMsgPlatform):
            neighbor["platform"] = _text(msg.val)
        elif isinstance(msg, C.CDPMsgSoftwareVersion):
            neighbor["description"] = _text(msg.val)
        elif isinstance(msg, C.CDPMsgCapabilities):
            neighbor["capabilities"] = [label for bit, label in _CDP_CAPS if int(msg.cap) & bit]
        elif isinstance(msg, C.CDPMsgAddr):
            for rec in msg.addr or []:
                if isinstance(rec, C.CDPAddrRecordIPv4) and mgmt_ip is None:
                    mgmt_ip = rec.addr
                    neighbor["management_address"] = mgmt_ip
    if neighbor.get("platform") and neighbor.get("description"):
        neighbor["description"] = f"{neighbor['platform']} {neighbor['description']}"
    return [Observation(pkt.src, mgmt_ip, neighbor.get("system_name"), "cdp", ts, {"neighbor": neighbor})]


_contrib_loaded = False


def observations(frame: bytes, ts: float | None = None) -> list[Observation]:
    """What one Ethernet frame says about the devices on the LAN (empty when nothing)."""
    global _contrib_loaded
    ts = time.time() if ts is None else ts
    proto = is_discovery_frame(frame)
    if proto is None:
        return []
    if proto == "arp":
        return _arp(frame, ts)
    from scapy.layers.l2 import Ether

    if not _contrib_loaded:
        from scapy.main import load_contrib
        load_contrib("lldp")
        load_contrib("cdp")
        _contrib_loaded = True
    try:
        pkt = Ether(frame)
        if proto == "dhcp":
            return _dhcp(pkt, ts)
        if proto in ("mdns", "llmnr"):
            return _mdns(pkt, ts, proto)
        if proto == "netbios":
            return _netbios(pkt, ts)
        if proto == "lldp":
            return _lldp(pkt, ts)
        if proto == "cdp":
            return _cdp(pkt, ts)
    except Exception as exc:  # a malformed frame is skipped, never fatal
        _log.debug("passive: cannot decode %s frame: %s", proto, exc)
    return []


class PassiveLearner:
    """Decodes at most `max_per_second` discovery frames per second; the rest are counted, not decoded."""

    def __init__(self, max_per_second: int = 500, clock=time.monotonic):
        self.max_per_second, self.clock = max_per_second, clock
        self._window, self._used = 0, 0
        self.decoded_total = 0
        self.skipped_total = 0

    def feed(self, frames: Iterable[tuple[bytes, float]]) -> list[Observation]:
        out: list[Observation] = []
        for frame, ts in frames:
            if is_discovery_frame(frame) is None:
                continue
            second = int(self.clock())
            if second != self._window:
                self._window, self._used = second, 0
            if self._used >= self.max_per_second:
                self.skipped_total += 1
                continue
            self._used += 1
            self.decoded_total += 1
            out += observations(frame, ts)
        return out


# ---------------------------------------------------------------------------------------------------
# The capture path's own decoder (probe.sources.rare: decode_batch/decode_rare dicts) -> observations,
# so live capture feeds the inventory without scapy. Same meaning as the scapy decoders above.

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
