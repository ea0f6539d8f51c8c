"""LAN findings decided from capture aggregates: scans, floods, ARP and DHCP abuse, storms, DNS/ICMP/TCP health.

Every threshold lives in DetectionConfig (probe/config/detection.py) and applies to what the detectors are
shown: the last two capture windows together (probe.findings.pipeline). What
each detector calls a problem, and why the defaults are where they are:

- port_scan: one source's connection attempts reach >= 25 distinct ports (and at least 3x as many
  ports as hosts), and at least half fail (no SYN-ACK, or an ICMP unreachable back); for UDP, whose
  answers cannot be counted, the spread over >= 25 ports of requests alone (nmap -sU). nmap's default
  1000-port scan sends hundreds per second; a browser reaches a handful of ports, mostly answered.
  Stealth probes (FIN, NULL, Xmas: TCP with none of SYN/ACK/RST, which no live connection sends) count
  as failed attempts. Probes that carry ACK (ACK, window, Maimon scans) look like live traffic, so they
  are judged by their answers: resets from >= 25 distinct service ports (each at or below the port it
  resets) that its own SYN/stealth probes do not explain. The evidence names the scan type.
- mac_flood: >= 1000 source MACs in a window that were never seen before, each sent at most 2 frames
  and received none (plus frames that overflowed the bounded MAC table), and they are at least half of
  the window's MACs (macof sends thousands per second to fill switch CAM tables; a busy LAN's devices
  talk both ways and are remembered from earlier windows).
- host_sweep: one source probes >= 64 distinct hosts (ARP who-has, SYN, ICMP echo) and at least half
  get no answer. `nmap -sn` on a /24 asks for 254; a router refreshing ARP gets its replies.
- syn_flood: >= 100 connection attempts that never complete at >= 100/s, >= 80% of its SYNs, from one
  source that is not scanning (hping3 -S --flood), or LAN-wide from sources that are each too small to
  flag (spoofed). Never complete: no SYN-ACK, or a SYN-ACK the initiator answered with a bare reset (a
  flood at an open port: the attacker's kernel resets each SYN-ACK it did not expect, without ACK;
  a client's abortive close of a connection it used is RST+ACK).
- icmp_flood / udp_flood: one source sends >= 200 ICMP echo requests, or >= 1000 small (<= 256-byte,
  non-DNS) unicast UDP datagrams, per second per host it targets, and at least 1000 of them; UDP only
  when less than a quarter as much comes back (voice calls are small datagrams both ways; backups and
  video are large ones). Judged by MAC too, so one machine's spoofed source IPs (--rand-source) are
  caught; floods from many machines at once are not judged here.
- arp_spoofing / duplicate_ip: two MACs claim one IP in ARP within a minute of each other (further apart:
  the address was reassigned, no finding). Counts are over the claim's life (arp_binding_ttl). It is
  arp_spoofing when the claimant poisons caches (>= 5 gratuitous ARPs for the address, or >= 3 replies
  that are not announcements and more than twice as many as its holder sent after the window the
  claim began in:
  both hosts of a duplicate answer the same requests, a host coming up announces itself 1-3 times,
  arpspoof repeats its reply every 2 s unasked) or when remote traffic then arrives from it instead of
  the other MAC (a man in the middle; also when a MAC claiming several IPs takes over off-LAN traffic).
  It is duplicate_ip (a misconfiguration) once the claimant asks who-has with the address, answers
  who-has as its holder does, or announced it and fell silent for 15 s while the holder kept using it;
  until one of these, a few replies or announcements decide nothing yet. The evidence says which signs
  were seen: unsolicited replies, a claim on the gateway's address (held by a MAC that off-LAN traffic
  comes from), traffic redirected, and for a duplicate whether both MACs sent their own IP traffic
  from the address.
  gratuitous_arp_storm: >= 20 gratuitous ARPs from one MAC.
- rogue_dhcp: a server offers/acks that is not in allowed_dhcp_servers (empty: the first one seen is
  taken as the LAN's server); a BOOTREPLY from port 67 whose options the snap length cut counts too,
  judged by its IP source (its server identifier was cut). dhcp_starvation: >= 30 distinct client MACs ask for leases (dhcpstarv,
  yersinia). dhcp_flood: one client sends >= 50 DHCP messages with few client addresses.
- broadcast_storm / multicast_storm: >= 1000 broadcast / 5000 multicast frames per second on the LAN.
- forwarding_loop: one byte-identical broadcast/multicast frame seen >= 20 times in a row, each copy
  within ~100 ms of the previous (probe.fastpath.layout.DUP_RUN_GAP_NS), and its sender's repeated frames at >= 10/s
  over the window (a switching loop circulates every broadcast thousands of times a second and a mirror
  port sees each pass; ARP retries at 1/s start a new run each time, mDNS is sent 2-3 times, a SPAN
  session that shows every frame twice makes runs of 2), from at least 2 senders (a loop carries every
  sender's broadcasts). multicast_flood: the same, but from one sender alone: that host floods one
  identical group-addressed frame by itself (named as the device). Frames that differ (IP ID, counters)
  are not repeats at all.
- dns_failure, icmp_unreachable, tcp_reset: health findings per client (and per resolver for DNS):
  info when failures are the majority, warning from 10, and never from one flow or a handful of packets:
  the failures must span several distinct flows (the flow bitmaps of probe/fastpath/layout.py). DNS: >= 3
  distinct failed transactions (client, server, client port, query ID: one missing name is an A and an
  AAAA lookup), or for unanswered queries >= 2 (one query retried to one server is one; asked of a second
  server that is silent too, two). icmp_unreachable: >= 3 distinct destinations (address, protocol, ports
  of the quoted packet); port unreachables quoting a UDP datagram from port 53 are DNS answers that came
  after the client gave up, ordinary, and not counted. tcp_reset: >= 3 distinct connections reset; once a
  device's baseline is learned (probe.state.baselines), only a refused share above its own usual one
  (mean + 4 mean absolute deviations) counts: a monitoring host that probes closed ports every minute
  is not flagged every minute.
- tcp_retransmissions: per source IP, on >= 3 distinct connections (one lossy transfer is that transfer's
  path), >= 3 retransmitted segments (warning from 10) and a retransmitted
  share of its data segments above its own baseline (mean + 4 deviations, never below 2%); before the
  baseline has 6 windows with >= 20 segments, above 5%. A healthy wired LAN retransmits well under 1%;
  10% packet loss shows ~10%. Counted as Wireshark flags them (retransmission, fast retransmission or
  out-of-order): a segment with data, SYN-ACK or FIN whose sequence end is not beyond the flow's highest;
  SPAN copies (same seq and IPv4 ID) and bare SYNs (judged as unanswered/refused handshakes) left out.
"""
from __future__ import annotations

import collections
import ipaddress

import numpy as np

from probe.fastpath.layout import dup_max_fields
from probe.config.detection import DetectionConfig
from probe.findings.base import Detector, WindowContext, WindowDetectors
from probe.findings.model import Finding
from probe.state.aggregates import TableSnapshot, WindowAggregates, format_ip_key, format_mac
from probe.state.baselines import RatioBaseline

ATTACK_KINDS = ("port_scan", "host_sweep", "syn_flood", "icmp_flood", "udp_flood", "mac_flood", "arp_spoofing",
                "duplicate_ip", "gratuitous_arp_storm", "rogue_dhcp", "dhcp_starvation", "dhcp_flood", "broadcast_storm",
                "multicast_storm", "forwarding_loop", "multicast_flood")
HEALTH_KINDS = ("dns_failure", "icmp_unreachable", "tcp_reset", "tcp_retransmissions")
KINDS = ATTACK_KINDS + HEALTH_KINDS
LAN = "lan"


def _ip4(value: int) -> str:
    return str(ipaddress.IPv4Address(int(value) & 0xFFFFFFFF))


def _mac_dev(snap: TableSnapshot, i: int) -> str:
    return format_mac(snap.keys[i, 0])


def _ip_dev(snap: TableSnapshot, i: int) -> str:
    return format_ip_key(snap.keys[i, 0], snap.keys[i, 1])


def _span(snap: TableSnapshot, i: int) -> tuple[float, float]:
    return int(snap.col("first_seen_ns")[i]) / 1e9, int(snap.col("last_seen_ns")[i]) / 1e9


def _finding(kind, severity, device, evidence, snap=None, i=None, window=None) -> Finding:
    if snap is not None:
        first, last = _span(snap, i)
    else:
        first, last = window.totals_first_ns / 1e9, window.totals_last_ns / 1e9
    return Finding(kind, severity, device, evidence, first, last)


def _peer_ip(snap: TableSnapshot, i: int) -> str | None:
    peer = int(snap.col("peer")[i])
    return _ip4(peer) if peer else None


def _mac_already(snap: TableSnapshot, i: int, found: set[str], ctx: WindowContext, *kinds: str) -> bool:
    """A MAC row whose traffic was already reported through an IP row (its own or one it sent from)."""
    mac, ip = _mac_dev(snap, i), _peer_ip(snap, i)
    return mac in found or ip in found or ctx.is_flagged(mac, *kinds) or (ip is not None and ctx.is_flagged(ip, *kinds))


def _sent_by_flagged(snap: TableSnapshot, i: int, ctx: WindowContext, *kinds: str) -> bool:
    """An IP row whose traffic came from a MAC already flagged (spoofed sources of one flooder)."""
    peer = int(snap.col("peer")[i])
    return peer != 0 and ctx.is_flagged(format_mac(peer), *kinds)


def _remember(snap: TableSnapshot, i: int, dev, is_mac: bool, found: set[str]) -> None:
    found.add(dev(snap, i))
    if not is_mac and int(snap.col("peer")[i]):
        found.add(format_mac(snap.col("peer")[i]))  # the MAC it came from: do not report it again


def _tables(window: WindowAggregates):
    """(snapshot, device-name function, is_mac) for the IP table first, then the MAC table."""
    return ((window.ips, _ip_dev, False), (window.macs, _mac_dev, True))


def _u(col) -> np.ndarray:
    return col.astype(np.int64)


class PortScanDetector:
    kinds = ("port_scan",)

    def detect(self, window: WindowAggregates, ctx: WindowContext) -> list[Finding]:
        c = ctx.config
        out = []
        found: set[str] = set()
        for snap, dev, is_mac in _tables(window):
            if not len(snap):
                continue
            ports, hosts = snap.distinct("dst_ports"), snap.distinct("dst_hosts")
            syn, synack = _u(snap.col("tcp_syn")), _u(snap.col("tcp_synack_rcvd"))
            stealth = _u(snap.col("tcp_stealth"))
            unreach = _u(snap.col("icmp_unreach_rcvd"))
            udp = _u(snap.col("udp_probe"))
            attempts = syn + stealth + unreach
            failed = np.maximum(syn - synack, 0) + stealth + unreach
            spread = (ports >= c.port_scan_min_ports) & (ports >= 3 * np.maximum(hosts, 1))
            tcp_scan = (attempts >= c.port_scan_min_ports) & (failed >= c.port_scan_failed_ratio * attempts)
            # UDP answers cannot be told from new traffic, and closed ports answer ICMP rate-limited
            # (Linux: ~1/s), so a UDP scan is judged by its spread alone
            udp_scan = udp >= c.port_scan_min_ports
            # ACK/window/Maimon probes pass for live traffic: judged by the resets they draw
            rst_ports = snap.distinct("rst_ports")
            rst_unexplained = np.maximum(_u(snap.col("tcp_rst_rcvd")) - syn - stealth, 0)
            ack_scan = ((rst_ports >= c.port_scan_min_ports) & (rst_unexplained >= c.port_scan_min_ports)
                        & (rst_ports >= 3 * np.maximum(hosts, 1)))
            cand = (spread & (tcp_scan | udp_scan)) | ack_scan
            for i in np.flatnonzero(cand):
                if is_mac and _mac_already(snap, i, found, ctx, "port_scan"):
                    continue
                _remember(snap, i, dev, is_mac, found)
                ev = {"distinct_dst_ports": int(ports[i]), "distinct_dst_hosts": int(hosts[i]),
                      "tcp_syn": int(syn[i]), "tcp_synack_received": int(synack[i]),
                      "tcp_rst_received": int(snap.col("tcp_rst_rcvd")[i]), "icmp_unreach_received": int(unreach[i]),
                      "udp_probes": int(udp[i]), "tcp_stealth": int(stealth[i]),
                      "distinct_resetting_ports": int(rst_ports[i]),
                      "scan_type": _scan_type(int(syn[i]), int(stealth[i]), int(udp[i]), int(rst_unexplained[i]))}
                ev["mac" if not is_mac else "ip"] = (format_mac(snap.col("peer")[i]) if not is_mac else _peer_ip(snap, i))
                sev = "critical" if max(ports[i], rst_ports[i]) >= 20 * c.port_scan_min_ports else "warning"
                out.append(_finding("port_scan", sev, dev(snap, i), ev, snap, i))
        return out


def _scan_type(syn: int, stealth: int, udp: int, ack: int) -> str:
    """syn (SYN or connect), stealth (FIN/NULL/Xmas), ack (ACK/window/Maimon: seen by their resets) or udp."""
    return max((syn, "syn"), (stealth, "stealth"), (ack, "ack"), (udp, "udp"))[1]


class HostSweepDetector:
    kinds = ("host_sweep",)

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        found: set[str] = set()
        for snap, dev, is_mac in _tables(window):
            if not len(snap):
                continue
            hosts = snap.distinct("dst_hosts")
            attempts = (_u(snap.col("arp_request")) + _u(snap.col("tcp_syn")) + _u(snap.col("tcp_stealth"))
                        + _u(snap.col("icmp_echo_request")))
            answered = (_u(snap.col("arp_reply_rcvd")) + _u(snap.col("tcp_synack_rcvd")) + _u(snap.col("tcp_rst_rcvd"))
                        + _u(snap.col("icmp_echo_reply_rcvd")))
            unanswered = np.maximum(attempts - answered, 0)
            cand = ((hosts >= c.host_sweep_min_hosts) & (attempts >= c.host_sweep_min_hosts)
                    & (unanswered >= c.host_sweep_unanswered_ratio * attempts))
            for i in np.flatnonzero(cand):
                if is_mac and _mac_already(snap, i, found, ctx, "host_sweep"):
                    continue
                _remember(snap, i, dev, is_mac, found)
                ev = {"distinct_dst_hosts": int(hosts[i]), "probes": int(attempts[i]), "answered": int(answered[i]),
                      "arp_requests": int(snap.col("arp_request")[i]), "tcp_syn": int(snap.col("tcp_syn")[i]),
                      "icmp_echo_requests": int(snap.col("icmp_echo_request")[i])}
                if is_mac:
                    ev["ip"] = _peer_ip(snap, i)
                else:
                    ev["mac"] = format_mac(snap.col("peer")[i])
                out.append(_finding("host_sweep", "warning", dev(snap, i), ev, snap, i))
        return out


class SynFloodDetector:
    kinds = ("syn_flood",)

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        flooders: set[str] = set()
        mac_flood_syns = 0  # SYNs of floods found only by MAC (spoofed source IPs, one sender)
        for snap, dev, is_mac in _tables(window):
            if not len(snap):
                continue
            syn, synack = _u(snap.col("tcp_syn")), _u(snap.col("tcp_synack_rcvd"))
            # never completed: no SYN-ACK, or a SYN-ACK its own kernel reset (a flood at an open port; the
            # reset carries no ACK, unlike the abortive close of a connection that was used)
            reset = np.minimum(synack, _u(snap.col("tcp_rst_bare")))
            unanswered = np.maximum(syn - synack, 0) + reset
            span = np.maximum(_u(snap.col("last_seen_ns")) - _u(snap.col("first_seen_ns")), 1_000_000) / 1e9
            cand = ((unanswered >= c.syn_flood_min_syns) & (unanswered >= c.syn_flood_unanswered_ratio * syn)
                    & (unanswered / span >= c.syn_flood_min_rate))
            if cand.any():
                ports, hosts = snap.distinct("dst_ports"), snap.distinct("dst_hosts")
            for i in np.flatnonzero(cand):
                d = dev(snap, i)
                if ctx.is_flagged(d, "port_scan", "host_sweep") or (
                        is_mac and _mac_already(snap, i, flooders, ctx, "port_scan", "host_sweep")):
                    continue
                _remember(snap, i, dev, is_mac, flooders)
                if is_mac:
                    mac_flood_syns += int(syn[i])
                ev = {"tcp_syn": int(syn[i]), "tcp_synack_received": int(synack[i]),
                      "synack_reset_by_initiator": int(reset[i]),
                      "unanswered_per_second": round(float(unanswered[i] / span[i]), 1),
                      "distinct_dst_ports": int(ports[i]), "distinct_dst_hosts": int(hosts[i])}
                ev["ip" if is_mac else "mac"] = _peer_ip(snap, i) if is_mac else format_mac(snap.col("peer")[i])
                out.append(_finding("syn_flood", "critical", d, ev, snap, i))
        # spoofed sources: each too small to flag, together a flood
        flagged_syns = mac_flood_syns
        ips = window.ips
        for i in np.flatnonzero(_u(ips.col("tcp_syn")) > 0) if len(ips) else ():
            d = _ip_dev(ips, i)
            if d in flooders or ctx.is_flagged(d, "port_scan", "host_sweep"):
                flagged_syns += int(ips.col("tcp_syn")[i])
        syn_total = window.total("tcp_syn") - flagged_syns
        unanswered = syn_total - window.total("tcp_synack")
        span = max(window.totals_last_ns - window.totals_first_ns, 1_000_000) / 1e9
        if (syn_total > 0 and unanswered >= c.syn_flood_min_syns and unanswered >= c.syn_flood_unanswered_ratio * syn_total
                and unanswered / span >= c.syn_flood_min_rate):
            sources = int(np.count_nonzero(_u(window.ips.col("tcp_syn")) > 0)) if len(window.ips) else 0
            ev = {"tcp_syn": int(syn_total), "tcp_synack": window.total("tcp_synack"),
                  "unanswered_per_second": round(unanswered / span, 1), "sources": sources,
                  "sources_overflowed": int(window.ips.overflow_frames),
                  "distinct_dst_hosts": window.total_distinct("dst_hosts")}
            out.append(_finding("syn_flood", "critical", LAN, ev, window=window))
        return out


class PacketFloodDetector:
    """icmp_flood / udp_flood: one source sending echo requests or small datagrams far faster, per host it
    targets, than any legitimate host does (by IP; by MAC too, which catches spoofed source IPs)."""
    kinds = ("icmp_flood", "udp_flood")

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        for kind, col, limit in (("icmp_flood", "icmp_echo_request", c.icmp_flood_pps),
                                 ("udp_flood", "udp_small", c.udp_flood_pps)):
            found: set[str] = set()
            for snap, dev, is_mac in _tables(window):
                if not len(snap):
                    continue
                sent = _u(snap.col(col))
                cand = sent >= c.flood_min_packets
                if not cand.any():
                    continue
                span = np.maximum(_u(snap.col("last_seen_ns")) - _u(snap.col("first_seen_ns")), 1_000_000) / 1e9
                hosts = np.maximum(snap.distinct("dst_hosts"), 1)
                cand &= sent / span / hosts >= limit
                back = _u(snap.col("rx_frames"))
                if kind == "udp_flood":  # voice and games are small datagrams both ways
                    cand &= back < c.udp_flood_answered_ratio * sent
                for i in np.flatnonzero(cand):
                    d = dev(snap, i)
                    if ctx.is_flagged(d, "port_scan", "host_sweep") or (
                            is_mac and _mac_already(snap, i, found, ctx, kind, "port_scan", "host_sweep")):
                        continue
                    _remember(snap, i, dev, is_mac, found)
                    ev = {"protocol": "icmp" if kind == "icmp_flood" else "udp", "packets": int(sent[i]),
                          "packets_per_second": round(float(sent[i] / span[i]), 1), "distinct_dst_hosts": int(hosts[i]),
                          "frames_received": int(back[i]), "bytes": int(snap.col("bytes")[i])}
                    if kind == "icmp_flood":
                        ev["echo_replies_received"] = int(snap.col("icmp_echo_reply_rcvd")[i])
                    ev["ip" if is_mac else "mac"] = _peer_ip(snap, i) if is_mac else format_mac(snap.col("peer")[i])
                    out.append(_finding(kind, "critical", d, ev, snap, i))
        return out


class MacFloodDetector:
    """mac_flood: a burst of never-seen source MACs that each send a frame or two and receive nothing
    (macof, yersinia, mausezahn: switch CAM table overflow). Remembers MACs that talked (bounded), so a
    busy LAN's own devices are not new."""
    kinds = ("mac_flood",)

    def __init__(self, max_known: int = 65536):
        self.max_known = max_known
        self.known: collections.OrderedDict[int, None] = collections.OrderedDict()

    def detect(self, window, ctx):
        c = ctx.config
        snap = window.macs
        rows, overflow = len(snap), int(snap.overflow_frames)
        if not rows:
            return []
        keys = snap.keys[:, 0]
        one_shot = (_u(snap.col("frames")) <= 2) & (_u(snap.col("rx_frames")) == 0)
        known = self.known
        new = np.array([i for i in np.flatnonzero(one_shot).tolist() if int(keys[i]) not in known], np.int64)
        flood = len(new) + overflow
        flooded = flood >= c.mac_flood_min_macs and flood >= c.mac_flood_new_ratio * (rows + overflow)
        # known from now on: every MAC of a window without a flood (quiet devices that only answer now
        # and then included), only the ones that talked both ways of a window with one
        for k in (keys[~one_shot] if flooded else keys).tolist():
            if k in known:
                known.move_to_end(k)
            else:
                known[k] = None
        while len(known) > self.max_known:
            known.popitem(last=False)
        if not flooded:
            return []
        nk = keys[new]
        first = int(_u(snap.col("first_seen_ns"))[new].min()) if len(new) else window.totals_first_ns
        last = int(_u(snap.col("last_seen_ns"))[new].max()) if len(new) else window.totals_last_ns
        vlans = _u(snap.col("vlan"))[new]
        vlans = vlans[vlans > 0]
        vlan = int(np.bincount(vlans).argmax()) - 1 if len(vlans) else None
        share = (lambda bit: round(float(np.count_nonzero((nk >> np.uint64(40 + bit)) & np.uint64(1))) / max(len(nk), 1), 3))
        ev = {"new_one_shot_macs": int(len(new)), "table_overflow_frames": overflow, "distinct_macs": rows,
              "macs_per_second": round(flood / max((last - first) / 1e9, 1.0), 1),
              "locally_administered_share": share(1), "group_bit_share": share(0), "vlan": vlan}
        return [Finding("mac_flood", "critical", LAN if vlan is None else f"vlan{vlan}", ev, first / 1e9, last / 1e9)]


_FIRST, _LAST, _REPLIES, _GRATUITOUS, _POISONED, _REQUESTS, _HOLDER_BEFORE = range(7)  # an ARP claim's fields


class ArpDetector:
    """ARP spoofing, duplicate IPs and gratuitous ARP storms; remembers IP->MAC claims (bounded).

    Two MACs claiming one IP at the same time is a spoofer or a misconfiguration; what they do over time
    tells them apart. Signs of spoofing, each named in the evidence: unsolicited replies (gratuitous
    announcements of an address another MAC holds, or far more replies for it than its holder sends:
    both hosts of a duplicate answer the same who-has), a claim on the gateway's address (held by the
    MAC that off-LAN traffic arrives from), and remote traffic redirected (its next-hop MAC moved to the
    claimant). Unsolicited replies or redirection make arp_spoofing; a contest without them is a
    duplicate_ip, whose evidence says which signs were looked for and not seen."""
    kinds = ("arp_spoofing", "duplicate_ip", "gratuitous_arp_storm")

    # 8,192 addresses (32 full /24s): a claim costs ~1 kB in Python, so a flood of spoofed ARP holds
    # ~8 MiB here at most; the least recently claimed addresses go first, the LAN's own re-claim theirs
    def __init__(self, max_ips: int = 8192, max_macs_per_ip: int = 8):
        self.max_ips, self.max_macs_per_ip = max_ips, max_macs_per_ip
        # ip -> {mac: [first_ns, last_ns, replies, gratuitous, poisoned (1 once it showed unsolicited
        # replies: a poisoner stays one), requests, the most replies another MAC had sent for the ip by the
        # end of the window this one first claimed it in]}, least recently claimed first
        self.claims: collections.OrderedDict[int, dict[int, list[int]]] = collections.OrderedDict()
        # mac -> (last seen ns, the other MAC, switches): remote IPs that arrived from it and another MAC
        self.switched: collections.OrderedDict[int, tuple[int, int, int]] = collections.OrderedDict()
        # ip -> when its contest was first left undecided (bounded): judged again in later windows
        self.undecided: collections.OrderedDict[int, int] = collections.OrderedDict()
        # mac -> last seen ns: MACs that off-LAN traffic arrived from (a gateway's), bounded
        self.gateways: collections.OrderedDict[int, int] = collections.OrderedDict()

    def _learn(self, window: WindowAggregates, ttl_ns: int):
        """Adds the newest window's ARP rows to the claims (each window is added once: totals over the
        claim's life, not one window's)."""
        snap = window.arp
        first, last, replies = snap.col("first_seen_ns"), snap.col("last_seen_ns"), snap.col("arp_reply")
        garp, requests = snap.col("arp_gratuitous"), snap.col("arp_request")
        new: list[tuple[int, int]] = []
        for i in range(len(snap)):
            ip, mac = int(snap.keys[i, 0]), int(snap.keys[i, 1])
            macs = self.claims.pop(ip, {})
            cur = macs.get(mac)
            if cur is None:
                if len(macs) >= self.max_macs_per_ip:
                    macs.pop(min(macs, key=lambda m: macs[m][_LAST]))
                macs[mac] = [int(first[i]), int(last[i]), int(replies[i]), int(garp[i]), 0, int(requests[i]), 0]
                new.append((ip, mac))
            else:
                cur[_FIRST] = min(cur[_FIRST], int(first[i]))
                cur[_LAST] = max(cur[_LAST], int(last[i]))
                cur[_REPLIES] += int(replies[i])
                cur[_GRATUITOUS] += int(garp[i])
                cur[_REQUESTS] += int(requests[i])
            self.claims[ip] = macs
        # A window holds counts, not their order: the holder's replies in the window a claim began may
        # have come before it (arpspoof's first reply beside the gateway's usual answers), so they are
        # not counted as answers given beside the claimant's.
        for ip, mac in new:
            macs = self.claims.get(ip, {})
            if mac in macs:
                macs[mac][_HOLDER_BEFORE] = max((v[_REPLIES] for m, v in macs.items() if m != mac), default=0)
        while len(self.claims) > self.max_ips:
            self.claims.popitem(last=False)
        horizon = window.end_ns - ttl_ns
        for ip in list(self.claims):
            macs = self.claims[ip]
            for mac in [m for m, v in macs.items() if v[_LAST] < horizon]:
                del macs[mac]
            if not macs:
                del self.claims[ip]

    def _learn_routes(self, window: WindowAggregates, horizon: int):
        """Off-LAN traffic (IPv4 sources no MAC claims in ARP, two or more behind one MAC) names the gateway
        MACs; remote traffic whose MAC changed is remembered as a switch between the two."""
        ips = window.ips
        if len(ips):
            peer, keys = _u(ips.col("peer")), ips.keys
            remote = np.array([int(keys[i, 0]) == 0 and (int(keys[i, 1]) >> 32) == 0xFFFF
                               and (int(keys[i, 1]) & 0xFFFFFFFF) not in self.claims for i in range(len(ips))], bool)
            behind = collections.Counter(int(m) for m in peer[remote] if m)
            for mac, n in behind.items():
                if n >= 2:
                    self.gateways.pop(mac, None)
                    self.gateways[mac] = window.end_ns
            changes = _u(ips.col("peer_changes"))
            for i in np.flatnonzero((changes > 0) & remote):
                a, b = int(peer[i]), int(ips.col("prev_peer")[i])
                for x, y in ((a, b), (b, a)):
                    prev = self.switched.pop(x, None)
                    self.switched[x] = (window.end_ns, y, max(prev[2] if prev else 0, int(changes[i])))
            for table in (self.switched, self.gateways):
                while len(table) > self.max_ips:
                    table.popitem(last=False)
        for mac in [m for m, v in self.switched.items() if v[0] < horizon]:
            del self.switched[mac]
        for mac in [m for m, v in self.gateways.items() if v < horizon]:
            del self.gateways[mac]

    def _both_sent_from(self, window: WindowAggregates, ip: int, macs) -> bool:
        """IP traffic from `ip` came from two of `macs` in this window (each used it as its own source)."""
        ips = window.ips
        for i in range(len(ips)):
            if int(ips.keys[i, 0]) == 0 and int(ips.keys[i, 1]) == (0xFFFF << 32) | ip:
                return (int(ips.col("peer_changes")[i]) > 0 and int(ips.col("peer")[i]) in macs
                        and int(ips.col("prev_peer")[i]) in macs)
        return False

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        ttl_ns = int(c.arp_binding_ttl * 1e9)
        self._learn(ctx.latest or window, ttl_ns)
        self._learn_routes(window, window.end_ns - ttl_ns)
        quiet_ns = int(c.arp_announce_quiet * 1e9)
        overlap_ns = int(c.duplicate_ip_overlap * 1e9)
        ips_of: dict[int, set[int]] = collections.defaultdict(set)
        for ip, macs in self.claims.items():
            for mac in macs:
                ips_of[mac].add(ip)
        now_ips = {int(k[0]) for k in window.arp.keys}
        # contests left undecided that may be decided by silence (announcements that stopped)
        for ip in [x for x, since in self.undecided.items() if since < window.end_ns - ttl_ns or x not in self.claims]:
            del self.undecided[ip]
        spoofers: dict[int, dict] = {}
        duplicates = []
        for ip in sorted(now_ips | set(self.undecided)):
            macs = self.claims.get(ip, {})
            if len(macs) < 2:
                continue
            owner = min(macs, key=lambda m: macs[m][0])
            for mac in macs:
                if mac == owner or macs[mac][0] - macs[owner][1] > overlap_ns:
                    continue  # claimed after the holder went quiet: the address was reassigned
                others = [m for m in macs if m != mac]
                claim = macs[mac]
                gratuitous, replies, requests = claim[_GRATUITOUS], claim[_REPLIES], claim[_REQUESTS]
                # Announcements may be requests or replies; the split is not kept, so the replies that
                # are not announcements (answers to a who-has, or unasked) are known within bounds: the
                # least of them decides poisoning, the most of them an answer given by both hosts.
                directed = max(replies - gratuitous, 0)
                directed_most = replies - max(gratuitous - requests, 0)
                asked_with = max(requests - gratuitous, 0)  # who-has sent from the address
                holder = max(macs[m][_REPLIES] for m in others)
                holder_since = max(holder - claim[_HOLDER_BEFORE], 0)  # the holder's replies since the claim
                unsolicited = gratuitous >= c.arp_poison_min_unsolicited or (
                    directed >= c.arp_poison_min_replies and directed > 2 * holder_since)
                # a poisoner stays one (arpspoof's parting replies restore the holder's MAC)
                claim[_POISONED] |= unsolicited
                unsolicited = bool(claim[_POISONED])
                gateway = any(m in self.gateways for m in others)
                redirected = mac in self.switched and self.switched[mac][1] in others
                signs = {"unsolicited_replies": unsolicited, "claims_gateway_ip": gateway,
                         "traffic_redirected": redirected}
                ev = {"ip": _ip4(ip), "previous_mac": format_mac(owner),
                      "claimed_ips": sorted(_ip4(x) for x in ips_of[mac])[:16], "arp_replies": claim[_REPLIES],
                      "gratuitous_arps": gratuitous, "holder_arp_replies": holder_since, "signs": signs}
                if unsolicited or redirected:
                    seen = [k.replace("_", " ") for k, v in signs.items() if v]
                    spoofers.setdefault(mac, dict(ev, reason="claimed an IP another MAC holds, with "
                                                  + ", ".join(seen)))
                    self.undecided.pop(ip, None)
                    continue
                answered_by_both = directed_most and holder_since and directed <= 2 * holder_since
                holder_kept_it = max(macs[m][_LAST] for m in others) > claim[_FIRST]
                announced_then_quiet = (gratuitous and claim[_LAST] + quiet_ns <= window.end_ns
                                        and holder_kept_it)
                if asked_with or answered_by_both or announced_then_quiet:
                    duplicates.append((ip, macs, signs))
                    self.undecided.pop(ip, None)
                else:  # undecided: unasked replies or announcements still coming, too few yet to call
                    # poisoning; a duplicate answers who-has as its holder does, asks with the address,
                    # or stops announcing it while its holder keeps using it (judged again when quiet)
                    self.undecided.setdefault(ip, window.end_ns)
                    while len(self.undecided) > self.max_ips:
                        self.undecided.popitem(last=False)
        # man in the middle: remote traffic moved to this MAC while it claims several IPs in ARP
        for mac, (_, other, n) in self.switched.items():
            if mac in spoofers or len(ips_of.get(mac, ())) < 2:
                continue
            spoofers[mac] = {"claimed_ips": sorted(_ip4(x) for x in ips_of[mac])[:16], "previous_mac": format_mac(other),
                             "remote_ip_switches": n,
                             "signs": {"traffic_redirected": True,
                                       "claims_gateway_ip": other in self.gateways},
                             "reason": "remote traffic moved between this MAC and another while it claims several IPs"}
        for mac, ev in spoofers.items():
            dev = format_mac(mac)
            first, last = window.start_ns / 1e9, window.end_ns / 1e9
            for ip in ips_of[mac]:
                v = self.claims.get(ip, {}).get(mac)
                if v:
                    first, last = min(first, v[_FIRST] / 1e9), max(last, v[_LAST] / 1e9)
            out.append(Finding("arp_spoofing", "critical", dev, ev, first, last))
        spoof_macs = set(spoofers)
        reported = set()
        for ip, macs, signs in duplicates:
            if spoof_macs & set(macs) or ip in reported:
                continue
            reported.add(ip)
            both = self._both_sent_from(window, ip, set(macs))
            why = ("both MACs answer ARP for it" + (" and send their own traffic from it" if both else "")
                   + "; no unsolicited replies, no traffic redirected"
                   + ("; it is the gateway's address" if signs["claims_gateway_ip"] else ""))
            out.append(Finding("duplicate_ip", "warning", _ip4(ip),
                               {"macs": sorted(format_mac(m) for m in macs), "both_send_from_it": both,
                                "signs": signs, "reason": why},
                               min(v[0] for v in macs.values()) / 1e9, max(v[1] for v in macs.values()) / 1e9))
        snap = window.macs
        if len(snap):
            garp = _u(snap.col("arp_gratuitous"))
            for i in np.flatnonzero(garp >= c.garp_storm_min):
                out.append(_finding("gratuitous_arp_storm", "warning", _mac_dev(snap, i),
                                    {"gratuitous_arps": int(garp[i]), "ip": _peer_ip(snap, i)}, snap, i))
        return out


class DhcpDetector:
    """Rogue DHCP servers, starvation and floods; learns the LAN's server when none is configured."""
    kinds = ("rogue_dhcp", "dhcp_starvation", "dhcp_flood")

    def __init__(self, allowed: tuple[str, ...] = ()):
        self.allowed = {str(ipaddress.ip_address(a)) for a in allowed}
        self.learned: set[str] = set()

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        snap = window.macs
        if not len(snap):
            return out
        # a reply whose options the snap length cut (no message type, no server identifier) still offers
        # an address: judged by the IP it came from
        served = (_u(snap.col("dhcp_offer")) + _u(snap.col("dhcp_ack")) + _u(snap.col("dhcp_nak"))
                  + _u(snap.col("dhcp_reply_cut")))
        servers = sorted(np.flatnonzero(served > 0), key=lambda i: int(snap.col("first_seen_ns")[i]))
        allowed = self.allowed or self.learned
        for i in servers:
            sid = int(snap.col("dhcp_server_id")[i]) or int(snap.col("peer")[i])
            server = _ip4(sid) if sid else _mac_dev(snap, i)
            if not self.allowed and not self.learned:
                self.learned.add(server)
                continue
            if server in allowed:
                continue
            out.append(_finding("rogue_dhcp", "critical", _mac_dev(snap, i), {
                "server_id": server, "offers": int(snap.col("dhcp_offer")[i]), "acks": int(snap.col("dhcp_ack")[i]),
                "replies_options_cut": int(snap.col("dhcp_reply_cut")[i]),
                "allowed": sorted(allowed), "allowed_learned": not self.allowed}, snap, i))
        clients = snap.distinct("dhcp_clients")
        msgs = _u(snap.col("dhcp_discover")) + _u(snap.col("dhcp_request")) + _u(snap.col("dhcp_inform"))
        for i in np.flatnonzero(clients >= c.dhcp_starvation_min_clients):
            out.append(_finding("dhcp_starvation", "critical", _mac_dev(snap, i), {
                "distinct_client_macs": int(clients[i]), "discovers": int(snap.col("dhcp_discover")[i])}, snap, i))
        if not out or all(f.kind != "dhcp_starvation" for f in out):
            total_clients = window.total_distinct("dhcp_clients")
            if total_clients >= c.dhcp_starvation_min_clients:
                out.append(_finding("dhcp_starvation", "critical", LAN, {
                    "distinct_client_macs": total_clients, "discovers": window.total("dhcp_discover")}, window=window))
        for i in np.flatnonzero((msgs >= c.dhcp_flood_min_messages) & (clients <= 3)):
            out.append(_finding("dhcp_flood", "warning", _mac_dev(snap, i), {
                "messages": int(msgs[i]), "discovers": int(snap.col("dhcp_discover")[i]),
                "requests": int(snap.col("dhcp_request")[i]), "informs": int(snap.col("dhcp_inform")[i]),
                "distinct_client_macs": int(clients[i])}, snap, i))
        return out


class StormDetector:
    kinds = ("broadcast_storm", "multicast_storm")

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        for kind, col, limit in (("broadcast_storm", "broadcast", c.broadcast_storm_pps),
                                 ("multicast_storm", "multicast", c.multicast_storm_pps)):
            total = window.total(col)
            pps = total / window.seconds
            if pps < limit:
                continue
            device, top_share = LAN, 0.0
            if len(window.macs):
                per = _u(window.macs.col(col))
                top = int(np.argmax(per))
                top_share = per[top] / total
                if top_share >= 0.5:
                    device = _mac_dev(window.macs, top)
            out.append(_finding(kind, "critical", device, {
                "frames": total, "frames_per_second": round(pps, 1), "top_source_share": round(float(top_share), 3)},
                window=window))
        return out


class DnsDetector:
    kinds = ("dns_failure",)

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        snap = window.ips
        if not len(snap):
            return out
        err_rx = _u(snap.col("dns_nxdomain_rcvd")) + _u(snap.col("dns_servfail_rcvd"))
        resp_rx = _u(snap.col("dns_response_rcvd"))
        queries = _u(snap.col("dns_query"))
        unanswered = np.maximum(queries - resp_rx, 0)
        servfail_tx = _u(snap.col("dns_servfail"))
        err_tx = _u(snap.col("dns_nxdomain")) + servfail_tx
        resp_tx = _u(snap.col("dns_response"))
        failed = snap.flows("dns_error_flows")  # distinct failed transactions, as client or as resolver
        asked = snap.flows("dns_query_flows")
        for i in np.flatnonzero((failed >= c.dns_failure_min_queries) | (asked >= c.dns_unanswered_min_queries)):
            ev, sev = None, "info"
            many_failed = failed[i] >= c.dns_failure_min_queries
            if many_failed and err_rx[i] >= c.dns_failure_info_min and err_rx[i] >= c.dns_failure_ratio * resp_rx[i]:
                ev = {"role": "client", "responses": int(resp_rx[i]), "nxdomain": int(snap.col("dns_nxdomain_rcvd")[i]),
                      "servfail": int(snap.col("dns_servfail_rcvd")[i]), "failed_queries": int(failed[i]),
                      "reason": f"{int(err_rx[i])} of its {int(resp_rx[i])} DNS answers were NXDOMAIN or SERVFAIL, "
                                f"for {int(failed[i])} distinct queries"}
                sev = "warning" if err_rx[i] >= c.dns_failure_warn_min else "info"
            elif (asked[i] >= c.dns_unanswered_min_queries and unanswered[i] >= c.dns_unanswered_min
                  and unanswered[i] >= c.dns_failure_ratio * queries[i]):
                ev = {"role": "client", "queries": int(queries[i]), "responses": int(resp_rx[i]),
                      "distinct_queries": int(asked[i]),
                      "reason": f"{int(unanswered[i])} of its {int(queries[i])} DNS queries ({int(asked[i])} distinct "
                                f"server/query pairs) got no answer"}
                sev = "warning" if resp_rx[i] == 0 or unanswered[i] >= c.dns_failure_warn_min else "info"
            elif many_failed and (
                    (servfail_tx[i] >= c.dns_failure_info_min and servfail_tx[i] >= c.dns_failure_ratio * resp_tx[i])
                    or (err_tx[i] >= c.dns_failure_warn_min and err_tx[i] >= c.dns_failure_ratio * resp_tx[i])):
                # a resolver is at fault for SERVFAIL; NXDOMAIN only says the name does not exist,
                # unless it is most of many answers (a broken search domain or upstream filter)
                ev = {"role": "resolver", "responses": int(resp_tx[i]), "nxdomain": int(snap.col("dns_nxdomain")[i]),
                      "servfail": int(servfail_tx[i]), "failed_queries": int(failed[i]),
                      "reason": f"it answered {int(servfail_tx[i])} of {int(resp_tx[i])} queries SERVFAIL and "
                                f"{int(snap.col('dns_nxdomain')[i])} NXDOMAIN, {int(failed[i])} distinct queries"}
                sev = "warning" if err_tx[i] >= c.dns_failure_warn_min else "info"
            if ev is not None:
                out.append(_finding("dns_failure", sev, _ip_dev(snap, i), ev, snap, i))
        return out


class IcmpUnreachableDetector:
    kinds = ("icmp_unreachable",)

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        snap = window.ips
        if not len(snap):
            return out
        late_dns = _u(snap.col("icmp_unreach_dns_rcvd"))
        # late DNS answers left out: the client that sent the unreachable had given up on the answer
        got = _u(snap.col("icmp_unreach_rcvd")) - late_dns
        dsts = snap.flows("unreach_dsts")
        for i in np.flatnonzero((got >= c.icmp_unreach_info_min) & (dsts >= c.icmp_unreach_min_flows)):
            d = _ip_dev(snap, i)
            if ctx.is_flagged(d, "port_scan", "host_sweep", "udp_flood") or _sent_by_flagged(
                    snap, i, ctx, "port_scan", "host_sweep", "udp_flood", "syn_flood"):
                continue
            sev = "warning" if got[i] >= c.icmp_unreach_warn_min else "info"
            out.append(_finding("icmp_unreachable", sev, d, {
                "unreachables_received": int(got[i]), "distinct_destinations": int(dsts[i]),
                "late_dns_answers_left_out": int(late_dns[i]),
                "reason": f"told {int(got[i])} times that {int(dsts[i])} distinct destinations (address, protocol, "
                          f"port) cannot be reached"}, snap, i))
        return out


def _baseline(config: DetectionConfig) -> RatioBaseline:
    return RatioBaseline(alpha=config.baseline_alpha, warmup=config.baseline_warmup)


def _above_baseline(baseline: RatioBaseline, c: DetectionConfig, device: str, hits, trials, *, min_hits: int,
                    floor: float, cold: float) -> tuple[bool, float, float]:
    """(fire, ratio, limit): is this window's hits/trials share at or above the device's own limit
    (its baseline, or `cold` before warm-up; never below `floor`) with at least `min_hits`."""
    ratio = hits / trials
    limit = baseline.limit(device, floor=floor, cold=cold, spread_factor=c.baseline_spread_factor, trials=int(trials))
    return hits >= min_hits and ratio >= limit, ratio, limit


class TcpResetDetector:
    """Connection attempts refused by RST; above the device's own usual share once that is learned."""
    kinds = ("tcp_reset",)

    def __init__(self, config: DetectionConfig | None = None):
        self.baseline = _baseline(config or DetectionConfig())

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        snap = window.ips
        if not len(snap):
            return out
        syn, rst = _u(snap.col("tcp_syn")), _u(snap.col("tcp_rst_rcvd"))
        refused = np.minimum(syn, rst)
        flows = snap.flows("rst_flows")
        # the baseline only raises the limit above tcp_reset_ratio: rows below it cannot fire, and
        # only rows with enough attempts teach (a spoofed flood's thousands of one-SYN sources do neither)
        maybe = (refused >= c.tcp_reset_info_min) & (refused >= c.tcp_reset_ratio * syn) & (flows >= c.tcp_reset_min_flows)
        for i in np.flatnonzero(maybe | (syn >= c.baseline_min_segments)):
            d = _ip_dev(snap, i)
            fire, ratio, _limit = _above_baseline(self.baseline, c, d, refused[i], syn[i],
                                                  min_hits=c.tcp_reset_info_min, floor=c.tcp_reset_ratio,
                                                  cold=c.tcp_reset_ratio)
            if syn[i] >= c.baseline_min_segments:  # few attempts say little about what is usual
                self.baseline.update(d, float(ratio))
            if not fire or ctx.is_flagged(d, "port_scan", "host_sweep", "syn_flood") or _sent_by_flagged(
                    snap, i, ctx, "port_scan", "host_sweep", "syn_flood"):
                continue
            if flows[i] < c.tcp_reset_min_flows:
                continue  # a connection or two reset: one closed port, not a pattern
            sev = "warning" if refused[i] >= c.tcp_reset_warn_min else "info"
            ev = {"tcp_syn": int(syn[i]), "tcp_rst_received": int(rst[i]), "distinct_reset_connections": int(flows[i]),
                  "reason": f"{int(refused[i])} of its {int(syn[i])} connection attempts were refused by a reset, on "
                            f"{int(flows[i])} distinct connections"}
            if self.baseline.warmed(d):
                b = self.baseline.get(d)
                ev["baseline_ratio"] = round(b.mean, 4)
            out.append(_finding("tcp_reset", sev, d, ev, snap, i))
        return out


class TcpRetransmissionDetector:
    """A device retransmitting a larger share of its TCP data than it usually does (loss on its path)."""
    kinds = ("tcp_retransmissions",)

    def __init__(self, config: DetectionConfig | None = None):
        self.baseline = _baseline(config or DetectionConfig())

    def detect(self, window, ctx):
        c = ctx.config
        out = []
        snap = window.ips
        if not len(snap):
            return out
        data, retrans = _u(snap.col("tcp_data")), _u(snap.col("tcp_retrans"))
        synack = _u(snap.col("tcp_synack"))
        flows = snap.flows("retrans_flows")
        attacked = any(ctx.flagged.get(k) for k in ("port_scan", "host_sweep", "syn_flood"))
        maybe = (retrans >= c.tcp_retrans_min) & (retrans >= c.tcp_retrans_floor_ratio * data)  # limit >= floor
        for i in np.flatnonzero((data > 0) & (maybe | (data >= c.baseline_min_segments))):
            d = _ip_dev(snap, i)
            fire, ratio, limit = _above_baseline(self.baseline, c, d, retrans[i], data[i],
                                                 min_hits=c.tcp_retrans_min, floor=c.tcp_retrans_floor_ratio,
                                                 cold=c.tcp_retrans_cold_ratio)
            b = self.baseline.get(d)
            warmed = self.baseline.warmed(d)
            # every window with enough segments teaches, findings too: a device that always retransmits
            # this much (Wi-Fi, a WAN link) stops being news once it is its usual
            if data[i] >= c.baseline_min_segments:
                self.baseline.update(d, float(ratio))
            if not fire or flows[i] < c.tcp_retrans_min_flows or ctx.is_flagged(d, "syn_flood", "port_scan"):
                continue  # (one lossy transfer is its own path's trouble)
            if attacked and retrans[i] <= synack[i]:
                continue  # a scanned or flooded host resending SYN-ACKs the scanner never acknowledged
            ev = {"tcp_data_segments": int(data[i]), "tcp_retransmissions": int(retrans[i]),
                  "retransmission_ratio": round(float(ratio), 4), "limit_ratio": round(float(limit), 4),
                  "baseline_ratio": round(b.mean, 4) if warmed else None, "baseline_learned": warmed,
                  "retransmissions_per_second": round(retrans[i] / window.seconds, 2),
                  "retransmitting_connections": int(flows[i]),
                  "reason": f"{int(retrans[i])} of its {int(data[i])} TCP data segments ({ratio:.1%}) were sent again, "
                            f"on {int(flows[i])} distinct connections, above its limit of {limit:.1%}"}
            peer = int(snap.col("peer")[i])
            if peer:
                ev["mac"] = format_mac(peer)
            sev = "warning" if retrans[i] >= c.tcp_retrans_warn_min else "info"
            out.append(_finding("tcp_retransmissions", sev, d, ev, snap, i))
        return out


class ForwardingLoopDetector:
    """The same broadcast/multicast frame over and over, faster than any sender repeats itself.

    A loop circulates every group-addressed frame that enters it, whoever sent it: within a window the
    repeated frames come from more than one sender (the lab loop: an ARP request and three hosts' MLD
    reports). Repeats from one sender alone are that sender flooding (an application or mausezahn /
    hping3 to a group address): multicast_flood on that MAC, fixed at the host, not the cabling.
    """
    kinds = ("forwarding_loop", "multicast_flood")

    def detect(self, window, ctx):
        c = ctx.config
        snap = window.macs
        if not len(snap):
            return []
        copies = (snap.col("dup_max") >> np.uint64(32)).astype(np.int64)
        dup = _u(snap.col("dup_frames"))
        secs = window.seconds
        cand = np.flatnonzero((copies >= c.forwarding_loop_min_copies) & (dup / secs >= c.forwarding_loop_min_rate))
        if not len(cand):
            return []
        top = int(cand[np.argmax(copies[cand])])
        what = dup_max_fields(int(snap.col("dup_max")[top]))
        total_dup = window.total("dup_frames")
        ev = {"copies": what["copies"],
              "duplicate_frames": total_dup, "duplicate_frames_per_second": round(total_dup / secs, 1),
              "src_mac": _mac_dev(snap, top), "ethertype": f"0x{what['ethertype']:04x}", "protocol": what["protocol"],
              "vlan": what["vlan"], "sources_repeated": len(cand),
              "top_source_duplicate_frames": int(dup[top])}
        ip = _peer_ip(snap, top)
        if ip:
            ev["src_ip"] = ip
        first, last = _span(snap, top)
        if len(cand) < c.forwarding_loop_min_sources:
            ev["reason"] = (f"only {len(cand)} sender repeats frames (a loop repeats every sender's broadcasts): "
                            "this host sends the same frame itself")
            ev["frames"] = int(snap.col("frames")[top])
            ev["frames_per_second"] = round(int(snap.col("frames")[top]) / secs, 1)
            return [Finding("multicast_flood", "warning", _mac_dev(snap, top), ev, first, last)]
        device = LAN if what["vlan"] is None else f"vlan {what['vlan']}"
        return [Finding("forwarding_loop", "critical", device, ev, first, last)]


def lan_detectors(config: DetectionConfig) -> list[Detector]:
    """The LAN detectors in the order they must run (scans first: floods and resets defer to them)."""
    return [PortScanDetector(), HostSweepDetector(), SynFloodDetector(), PacketFloodDetector(), MacFloodDetector(),
            ArpDetector(), DhcpDetector(config.allowed_dhcp_servers), StormDetector(), ForwardingLoopDetector(),
            DnsDetector(), IcmpUnreachableDetector(), TcpResetDetector(config), TcpRetransmissionDetector(config)]


def lan_engine(config: DetectionConfig) -> WindowDetectors:
    return WindowDetectors(config, lan_detectors(config))
