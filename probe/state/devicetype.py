"""What a device is (printer, switch, router/firewall...) from what it said about itself, with the evidence.

Every rule looks at one fact (sysObjectID, sysDescr, a standard MIB answering, LLDP/CDP capabilities,
DHCP vendor class and option-55 list, host names, the MAC's vendor) and, when it matches, votes for a
type with a weight that says how much that kind of fact can be trusted: a device answering the
Printer-MIB is a printer; a vendor that also makes laptops is only a hint. The type with the most
weight wins; the evidence keeps every vote, and names the one that decided.

Rules are about kinds of facts, never about single devices: patterns in product words the industry
uses (LaserJet, Smart-UPS, Catalyst), IANA enterprise numbers of vendors that make one kind of thing,
and the capability bits standards define.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

TYPES = ("printer", "switch", "router", "access_point", "ups", "nas", "server", "workstation", "phone",
         "camera", "unknown")

# How much each kind of fact counts.
W_STANDARD_MIB = 100  # the device answers a MIB only that kind of device implements
W_CAPABILITY = 70     # LLDP/CDP capabilities the device announces about itself
W_DESCR = 60          # product words in sysDescr / LLDP system description
W_OBJECT_ID = 55      # sysObjectID under a vendor that makes one kind of device
W_DHCP_CLASS = 45     # DHCP vendor class (option 60)
W_NAME = 35           # host names (DHCP, mDNS, NetBIOS, LLMNR, sysName)
W_SERVICES = 30       # sysServices layers / ipForwarding / bridge ports
W_FINGERPRINT = 25    # DHCP parameter request list (option 55)
W_VENDOR = 20         # the MAC's vendor

# IANA private enterprise numbers (1.3.6.1.4.1.N) of vendors whose SNMP agents are one kind of device,
# and a few product subtrees of vendors that make several kinds.
ENTERPRISE_TYPES: dict[tuple[int, ...], str] = {
    (318,): "ups", (534,): "ups", (705,): "ups", (3808,): "ups", (935,): "ups", (4555,): "ups",  # APC, Eaton, MGE, CyberPower, Socomec, Riello/Netman
    (11, 2, 3, 9): "printer", (367,): "printer", (1602,): "printer", (2435,): "printer", (641,): "printer",
    (253,): "printer", (1347,): "printer", (18334,): "printer", (1248,): "printer", (2385,): "printer",  # HP JetDirect, Ricoh, Canon, Brother, Lexmark, Xerox, Kyocera, Konica Minolta, Epson, Sharp
    (11, 2, 3, 7): "switch", (9, 6, 1): "switch", (4526,): "switch", (47196,): "switch", (1916,): "switch",
    (1991,): "switch", (171,): "switch", (11863,): "switch", (6027,): "switch", (30065,): "switch",  # ProCurve, Cisco SB, Netgear, Aruba CX, Extreme, Foundry, D-Link, TP-Link, Force10, Arista
    (12325,): "router", (12356,): "router", (25461,): "router", (8741,): "router", (3097,): "router",
    (2620,): "router", (14988,): "router", (41112, 1, 5): "router",  # pfSense, Fortinet, Palo Alto, SonicWall, WatchGuard, Check Point, MikroTik, Ubiquiti EdgeMAX
    (14823,): "access_point", (25053,): "access_point", (10002,): "access_point", (14179,): "access_point",
    (41112, 1, 6): "access_point", (29671,): "access_point",  # Aruba, Ruckus, Ubiquiti AirOS, Cisco Airespace WLC/AP, UniFi, Meraki
    (6574,): "nas", (24681,): "nas", (4526, 100, 16): "nas", (5227,): "nas",  # Synology, QNAP, ReadyNAS, Buffalo
    (6876,): "server", (7244,): "server", (674, 10892): "server", (232,): "server",  # VMware, Supermicro, Dell OpenManage, HPE Insight
    (311, 1, 1, 3, 1, 1): "workstation", (311, 1, 1, 3, 1, 2): "server", (311, 1, 1, 3, 1, 3): "server",  # Windows workstation, server, domain controller
    (368,): "camera", (39165,): "camera", (1004849,): "camera",  # Axis, Hikvision, Dahua
    (13885,): "phone", (37459,): "phone", (1526,): "phone",  # Polycom, Yealink, Snom
}

DESCR_PATTERNS: list[tuple[str, re.Pattern]] = [(t, re.compile(p, re.I)) for t, p in [
    ("printer", r"printer|laserjet|officejet|deskjet|designjet|pagewide|jetdirect|ethernet multi-environment|\bmfp\b"
                r"|imagerunner|imageclass|bizhub|workcentre|versalink|altalink|docuprint|docucentre|apeosport"
                r"|aficio|ecosys|taskalfa|\blbp ?\d|\bmfc-|\bhl-\d|\bdcp-|brother nc-|phaser|lexmark|kyocera"
                r"|sharp mx-|okilan|epson .*(series|wf-|et-)|zebra .*(zt|zd|gk)\d|samsung (clx|ml|scx|sl)-"),
    ("ups", r"\bups\b|smart-ups|symmetra|back-ups|powerware|uninterruptible|ups network management|netman"
            r"|powerchute|web/snmp management card|liebert gxt|\bgxt\d|smartonline"),
    ("switch", r"\bswitch\b|switching|procurve|catalyst|nexus|\bstack\b|edgeswitch|\busw\b|usw-|\bsg\d{3}|\bsf\d{3}"
               r"|\bcbs\d{3}|\bgs\d{3}|\bjgs\d|\bdgs-\d|jetstream|powerconnect|dell (emc )?networking|\bos10\b|comware"
               r"|icx\d|fastiron|aruba ?os-cx|aruba \d{4}|extremexos|\bex\d{4}\b|ws-c\d|\bc(2960|3560|3650|3750|3850|9200|9300)"),
    ("router", r"firewall|pfsense|opnsense|fortigate|fortios|sonicwall|sonicos|watchguard|fireware|palo alto|pan-os"
               r"|adaptive security appliance|\basa\d|routeros|mikrotik|\brouter\b|edgeos|edgerouter|vyos"
               r"|\bsrx\d|\bmx\d{2,4}\b|ios xr|\bisr\d|\bc(19\d\d|29[0-5]\d|39\d\d|8\d\d)\b|\basr\d|check point|\bgaia\b|sophos"
               r"|untangle|meraki mx|draytek|vigor|zywall|\busg\b"),
    ("access_point", r"access point|\bwap\b|\buap\b|uap-|aironet|cisco ap software|air-c?ap|arubaos \(model"
                     r"|aruba ap|instant ap|\bwlan\b|wireless (lan|ap)|ruckus|unleashed|eap\d{3}|omada|airos"
                     r"|nanostation|meraki mr|cnpilot"),
    ("nas", r"synology|diskstation|rackstation|qnap|\bqts\b|\bts-\d{3}|\btvs-\d|readynas|truenas|freenas"
            r"|terastation|linkstation|asustor|\bnas\b|netapp|ontap|isilon"),
    ("camera", r"camera|ipcam|network video|video (encoder|server)|hikvision|dahua|\bnvr\b|\bdvr\b|\baxis\b"),
    ("phone", r"\bip phone|\bphone\b|polycom|yealink|\bsnom\b|grandstream|\bsip-t\d|\bvvx\b|cisco cp-|mitel|avaya"),
    ("server", r"vmware esxi|esxi|windows server|hyper-v|proxmox|xenserver|xcp-ng|\bsmartos\b|ubuntu server"
               r"|red hat enterprise|\.el[6-9]|centos|rocky|almalinux|freebsd|openbsd|solaris|aix\b"
               r"|integrated lights-out|\bilo ?\d|idrac|openmanage|supermicro|\bipmi\b|\bbmc\b"),
    ("workstation", r"windows (10|11|7|8|xp|vista)|\bdarwin\b|mac ?os|windows workstation"),
]]

NAME_PATTERNS: list[tuple[str, re.Pattern]] = [(t, re.compile(p, re.I)) for t, p in [
    ("printer", r"print|\bprn|^npi[0-9a-f]{6}|^brn|^brw|^epson|^canon|^hp[0-9a-f]{6}|^kyocera|^ricoh|^lexmark"
                r"|^xrx|^km[0-9a-f]{6}|mfp|laserjet|officejet"),
    ("switch", r"^sw[-_0-9]|switch|-sw\d*$|^core-|^access-sw"),
    ("router", r"^fw[-_0-9]|firewall|^gw[-_0-9]|gateway|router|^rtr|^edge-?r|pfsense|opnsense|fortigate|^usg"),
    ("access_point", r"^ap[-_0-9]|-ap\d*$|^wap|^uap|access-?point|^eap\d"),
    ("ups", r"^ups[-_0-9]?|-ups\d*$|smart-?ups"),
    ("nas", r"^nas[-_0-9]?|-nas\d*$|diskstation|synology|^qnap|^ds\d{3}|readynas|truenas"),
    ("camera", r"^cam[-_0-9]|camera|^ipc|-cam\d*$|^axis-|^hikvision|^nvr|^dvr"),
    ("phone", r"^sep[0-9a-f]{12}$|iphone|android|galaxy|pixel|^phone|-phone|yealink|polycom|^sip"),
    ("server", r"^srv|server|^win-[0-9a-z]{11}$|^dc\d*[-_.]|^dc\d+$|^esx|^pve|^hyperv|^vm[-_0-9]|^sql|^exch"),
    ("workstation", r"^desktop-[0-9a-z]{7}$|^laptop|-pc$|^pc[-_0-9]|macbook|imac|^mac-?mini|^ws[-_0-9]|workstation"
                    r"|thinkpad|^nb[-_0-9]"),
]]

DHCP_CLASS_PATTERNS: list[tuple[str, re.Pattern]] = [(t, re.compile(p, re.I)) for t, p in [
    ("phone", r"android-dhcp|ip phone|polycom|yealink|aastra|mitel|avaya|grandstream|snom|cisco systems, inc\. ip phone"),
    ("printer", r"jetdirect|laserjet|printer|brother|canon|epson|lexmark|xerox|kyocera|ricoh"),
    ("camera", r"axis|hikvision|dahua|camera"),
    ("access_point", r"aruba ?ap|ruckus|cisco ap c|airespace|meraki mr|ubnt|unifi"),
    ("workstation", r"^msft 5\.0$|^msft 98$"),
    ("nas", r"synology|qnap"),
]]

# Vendors (from the MAC's OUI) that make essentially one kind of device on a client LAN.
VENDOR_PATTERNS: list[tuple[str, re.Pattern]] = [(t, re.compile(p, re.I)) for t, p in [
    ("printer", r"brother industries|lexmark|kyocera|ricoh|xerox|konica minolta|seiko epson|zebra technologies|oki data"
                r"|sharp corporation|canon inc"),
    ("ups", r"american power conversion|schneider electric.*apc|cyber ?power|eaton|riello|socomec|vertiv|liebert"),
    ("camera", r"axis communications|hikvision|dahua|hanwha|vivotek|mobotix|reolink|amcrest|uniview"),
    ("phone", r"polycom|yealink|snom|grandstream|mitel|aastra|avaya|gigaset"),
    ("nas", r"synology|qnap|buffalo|western digital"),
    ("router", r"fortinet|palo alto|sonicwall|watchguard|check point|netgate|mikrotik|routerboard|draytek|zyxel"),
    ("access_point", r"ruckus|aruba|aerohive|cambium|engenius|meraki"),
    ("server", r"super ?micro|vmware|dell emc|hewlett packard enterprise"),
    ("workstation", r"intel corporate|liteon|azurewave|hon hai|wistron|compal|quanta|pegatron|lcfc|chicony"),
    ("phone", r"samsung electronics|xiaomi|oneplus|huawei device|oppo|vivo mobile|motorola mobility"),
]]

# DNS-SD service types a device advertises over mDNS that only one kind of device offers.
MDNS_SERVICE_TYPES = {
    "_ipp": "printer", "_ipps": "printer", "_printer": "printer", "_pdl-datastream": "printer",
    "_scanner": "printer", "_uscan": "printer", "_adisk": "nas",
    "_workstation": "workstation", "_rfb": "workstation", "_companion-link": "phone",
    "_axis-video": "camera",
}

LLDP_CAPABILITIES = {  # LLDP system capabilities (IEEE 802.1AB) and CDP capability names -> type
    "router": "router", "bridge": "switch", "switch": "switch", "wlan": "access_point", "wlan access point": "access_point",
    "telephone": "phone", "phone": "phone", "docsis": "router", "station": "workstation", "host": "workstation",
    "trans-bridge": "switch", "source-route-bridge": "switch", "repeater": "switch",
}


@dataclass
class Vote:
    type: str
    weight: int
    rule: str
    value: Any

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "weight": self.weight, "rule": self.rule, "value": self.value}


@dataclass
class DeviceType:
    type: str
    rule: str | None = None          # the vote that decided (heaviest for the winning type)
    value: Any = None
    score: int = 0
    votes: list[Vote] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        return {"type": self.type, "rule": self.rule, "value": self.value, "score": self.score,
                "votes": [v.as_dict() for v in self.votes]}


def _oid_tuple(oid: Any) -> tuple[int, ...]:
    if isinstance(oid, (tuple, list)):
        return tuple(int(x) for x in oid)
    try:
        return tuple(int(x) for x in str(oid).strip().strip(".").split(".") if x)
    except ValueError:
        return ()


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _match(patterns, text: str) -> Iterable[tuple[str, str]]:
    for kind, rx in patterns:
        m = rx.search(text)
        if m:
            yield kind, m.group(0)


def _snmp_votes(snmp: Mapping[str, Any]) -> list[Vote]:
    votes: list[Vote] = []
    if snmp.get("printer_name") not in (None, ""):
        votes.append(Vote("printer", W_STANDARD_MIB, "snmp.printer_mib", _text(snmp["printer_name"])))
    if snmp.get("ups_model") not in (None, ""):
        votes.append(Vote("ups", W_STANDARD_MIB, "snmp.ups_mib", _text(snmp["ups_model"])))
    oid = _oid_tuple(snmp.get("sys_object_id"))
    if oid[:6] == (1, 3, 6, 1, 4, 1) and len(oid) > 6:
        tail = oid[6:]
        for n in range(len(tail), 0, -1):  # the most specific subtree wins
            kind = ENTERPRISE_TYPES.get(tail[:n])
            if kind:
                votes.append(Vote(kind, W_OBJECT_ID + 5 * (n - 1), "snmp.sys_object_id", ".".join(map(str, oid))))
                break
    descr = _text(snmp.get("sys_descr"))
    for kind, word in _match(DESCR_PATTERNS, descr):
        votes.append(Vote(kind, W_DESCR, "snmp.sys_descr", word))
    if descr.lower().startswith("linux") and not any(v.rule == "snmp.sys_descr" for v in votes):
        votes.append(Vote("server", W_SERVICES, "snmp.sys_descr", "Linux"))  # a Linux box running an agent
    services = snmp.get("sys_services")
    if isinstance(services, int) and 0 < services < 128:
        layers = {n + 1 for n in range(7) if services & (1 << n)}
        if layers and layers <= {1, 2}:
            votes.append(Vote("switch", W_SERVICES, "snmp.sys_services", f"{services} (layers {sorted(layers)})"))
        elif 3 in layers and not layers & {4, 7}:
            votes.append(Vote("router", W_SERVICES, "snmp.sys_services", f"{services} (layers {sorted(layers)})"))
    ports = snmp.get("bridge_ports")
    if isinstance(ports, int) and ports >= 5:
        votes.append(Vote("switch", W_SERVICES, "snmp.bridge_ports", ports))
    if snmp.get("ip_forwarding") == 1 and not any(v.type == "switch" for v in votes):
        votes.append(Vote("router", W_SERVICES // 2, "snmp.ip_forwarding", 1))
    return votes


def classify(*, snmp: Mapping[str, Any] | None = None, vendor: str | None = None,
             dhcp_vendor_class: str | None = None, dhcp_params: Sequence[int] | None = None,
             names: Iterable[str] = (), capabilities: Iterable[str] = (),
             neighbor_descr: str | None = None, services: Iterable[str] = ()) -> DeviceType:
    """The most likely type of a device, with every vote for it and against it."""
    votes: list[Vote] = []
    if snmp:
        votes += _snmp_votes(snmp)
    caps = {c.strip().lower() for c in capabilities if c}
    for cap in sorted(caps):
        kind = LLDP_CAPABILITIES.get(cap)
        if kind:
            votes.append(Vote(kind, W_CAPABILITY, "lldp_cdp.capabilities", cap))
    if caps & {"router"} and caps & {"bridge", "switch"}:
        votes.append(Vote("switch", 10, "lldp_cdp.capabilities", "router+bridge (layer-3 switch)"))
    if neighbor_descr:
        for kind, word in _match(DESCR_PATTERNS, neighbor_descr):
            votes.append(Vote(kind, W_DESCR, "lldp_cdp.description", word))
    if dhcp_vendor_class:
        for kind, word in _match(DHCP_CLASS_PATTERNS, dhcp_vendor_class):
            votes.append(Vote(kind, W_DHCP_CLASS, "dhcp.vendor_class", dhcp_vendor_class))
    if dhcp_params:
        kind = _fingerprint_type(list(dhcp_params))
        if kind:
            votes.append(Vote(kind, W_FINGERPRINT, "dhcp.parameter_list", ",".join(map(str, dhcp_params))))
    for svc in dict.fromkeys(s.lower() for s in services if s):
        kind = MDNS_SERVICE_TYPES.get(svc.split(".")[0])
        if kind:
            votes.append(Vote(kind, W_NAME, "mdns.service", svc))
    for name in dict.fromkeys(n for n in names if n):
        short = name.split(".")[0]
        for kind, word in _match(NAME_PATTERNS, short):
            votes.append(Vote(kind, W_NAME, "name", name))
    if vendor:
        for kind, word in _match(VENDOR_PATTERNS, vendor):
            votes.append(Vote(kind, W_VENDOR, "mac.vendor", vendor))
            break
    if not votes:
        return DeviceType("unknown")
    score: dict[str, int] = {}
    for v in votes:
        score[v.type] = score.get(v.type, 0) + v.weight
    best = max(score, key=lambda t: (score[t], -TYPES.index(t)))
    decider = max((v for v in votes if v.type == best), key=lambda v: v.weight)
    return DeviceType(best, decider.rule, decider.value, score[best], votes)


def _fingerprint_type(params: list[int]) -> str | None:
    """Operating-system families by the DHCP options they ask for (option 55), as DHCP fingerprinting does."""
    p = set(params)
    if {43, 44, 46, 47, 249, 252} <= p or {31, 33, 43, 44, 46, 47, 121, 249} <= p:
        return "workstation"          # Windows asks for NetBIOS (44, 46, 47), vendor info (43) and 249
    if {95, 114, 119, 252} <= p or (params[:3] == [1, 121, 3] and 95 in p):
        return "workstation"          # macOS asks for LDAP (95) and the captive-portal URL (114)
    if params[:3] == [1, 121, 3] and 119 in p and 95 not in p:
        return "phone"                # iOS/iPadOS: the macOS list without LDAP
    if {26, 28, 51, 58, 59, 43} <= p and 249 not in p and 252 not in p and 12 not in p:
        return "phone"                # Android's dhcpcd-derived list without a hostname request
    return None
