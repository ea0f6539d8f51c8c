"""detection: section: thresholds of the LAN findings and the anomaly scoring."""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.schema import Duration, setting


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"


def _at_least(low: int):
    return lambda n: None if n >= low else f"must be at least {low}, got {n}"


def _ratio(value: float) -> str | None:
    return None if 0.0 < value < 1.0 else f"must be between 0 and 1 (exclusive), got {value}"


@dataclass(frozen=True)
class DetectionConfig:
    enabled: bool = setting(True)
    allowed_dhcp_servers: tuple[str, ...] = setting((), doc="IPs allowed to offer leases; empty: learn the first")
    # scores are -log10(tail probability) / 12: 0.5 is one in a million for that series; the kernel
    # itself opens an episode at 0.35 (probe/fastpath/twin/score.py), and NAB's best threshold was ~0.36
    anomaly_threshold: float = setting(0.5, doc="score at or above which a series is anomalous "
                                                "(0.5: one in a million for that series)", check=_ratio)
    anomaly_findings: bool = setting(True, doc="raise an `anomaly` finding when a series scores at or above "
                                               "anomaly_threshold (once per episode)")
    anomaly_warn_threshold: float = setting(0.75, doc="score at or above which an anomaly finding is a warning "
                                                      "(0.75: one in a billion), below it info", check=_ratio)
    anomaly_top_n: int = setting(20, doc="most anomalous series exported",
                                 check=lambda n: None if 1 <= n <= 1000 else f"must be between 1 and 1000, got {n}")

    # LAN findings from the capture. Counts are per capture window (capture.window, default 10s).
    episode_quiet: Duration = setting(Duration(300), doc="a finding's episode ends after this long without evidence",
                                      check=_positive)
    port_scan_min_ports: int = setting(25, doc="distinct destination ports of failed connection attempts from one source",
                                       check=_at_least(2))
    port_scan_failed_ratio: float = setting(0.5, doc="share of attempts unanswered or refused", check=_ratio)
    host_sweep_min_hosts: int = setting(64, doc="distinct hosts probed (ARP who-has, SYN, ICMP echo) by one source",
                                        check=_at_least(2))
    host_sweep_unanswered_ratio: float = setting(0.5, doc="share of probes that got no answer", check=_ratio)
    syn_flood_min_syns: int = setting(100, doc="unanswered SYNs in a window (one source, or the LAN for spoofed floods)",
                                      check=_at_least(1))
    syn_flood_min_rate: float = setting(100.0, doc="unanswered SYNs per second over the burst", check=_positive)
    syn_flood_unanswered_ratio: float = setting(0.8, doc="share of SYNs without SYN-ACK", check=_ratio)
    icmp_flood_pps: float = setting(200.0, doc="ICMP echo requests per second from one source per host it pings (ping "
                                    "sends 1/s; hping3 -1 --flood, ping -f: thousands)", check=_positive)
    udp_flood_pps: float = setting(1000.0, doc="small (<= 256-byte) non-DNS unicast UDP datagrams per second from one "
                                   "source per host it sends to, mostly unanswered", check=_positive)
    udp_flood_answered_ratio: float = setting(0.25, doc="a source receiving back at least this share of the small "
                                              "datagrams it sends is in a conversation (voice, games), not flooding",
                                              check=_ratio)
    flood_min_packets: int = setting(1000, doc="packets of one kind (ICMP echo, small UDP) before a flood is judged",
                                     check=_at_least(1))
    mac_flood_min_macs: int = setting(1000, doc="new source MACs that sent at most 2 frames and received none (plus "
                                      "frames that overflowed the MAC table) in a window: CAM table flooding",
                                      check=_at_least(2))
    mac_flood_new_ratio: float = setting(0.5, doc="share of the window's source MACs that must be such one-shot new "
                                         "MACs", check=_ratio)
    arp_binding_ttl: Duration = setting(Duration(600), doc="how long an IP-to-MAC claim is remembered", check=_positive)
    duplicate_ip_overlap: Duration = setting(Duration(60), doc="two MACs claiming one IP this close in time are a "
                                             "duplicate (further apart: the address was reassigned)", check=_positive)
    garp_storm_min: int = setting(20, doc="gratuitous ARPs from one MAC in a window", check=_at_least(1))
    arp_poison_min_unsolicited: int = setting(5, doc="gratuitous ARPs over the claim's life for an IP another MAC "
                                              "holds that make a claim poisoning, not a duplicate address (a "
                                              "host coming up announces itself 1-3 times)", check=_at_least(1))
    arp_poison_min_replies: int = setting(3, doc="replies that are not announcements, over the claim's life, for "
                                          "an IP another MAC holds, and more than twice as many as the holder "
                                          "sent since the claim began, that make a claim poisoning (both hosts "
                                          "of a duplicate answer the same who-has; arpspoof repeats its "
                                          "reply every 2 s unasked)", check=_at_least(1))
    arp_announce_quiet: Duration = setting(Duration(15), doc="a claimant that announced an IP another MAC holds, "
                                           "then fell silent this long while the holder kept using it, is a "
                                           "duplicate address (a booting host announces 1-3 times in a few "
                                           "seconds; poisoners repeat every 1-10 s)", check=_positive)
    dhcp_starvation_min_clients: int = setting(30, doc="distinct client MACs asking for leases in a window",
                                               check=_at_least(2))
    dhcp_flood_min_messages: int = setting(50, doc="DHCP client messages from one device in a window",
                                           check=_at_least(2))
    broadcast_storm_pps: float = setting(1000.0, doc="broadcast frames per second on the LAN", check=_positive)
    multicast_storm_pps: float = setting(5000.0, doc="multicast frames per second on the LAN", check=_positive)
    dns_failure_ratio: float = setting(0.5, doc="NXDOMAIN+SERVFAIL (or unanswered) share of a client's or resolver's DNS",
                                       check=_ratio)
    dns_failure_info_min: int = setting(1, doc="failures for an info finding", check=_at_least(1))
    dns_failure_warn_min: int = setting(10, doc="failures for a warning", check=_at_least(1))
    dns_unanswered_min: int = setting(3, doc="queries without any answer from one client", check=_at_least(1))
    # no single flow or handful of packets is a finding: one lookup of a name that does not exist (an A and
    # an AAAA query, NXDOMAIN), one refused connection, one lossy transfer, the port unreachables a late DNS
    # answer draws, are ordinary; the same across several flows, queries or peers is worth a look
    dns_failure_min_queries: int = setting(3, doc="distinct DNS transactions (client, server, client port, query "
                                           "ID) answered NXDOMAIN or SERVFAIL before a client's or resolver's "
                                           "failure share is a finding", check=_at_least(1))
    dns_unanswered_min_queries: int = setting(2, doc="distinct DNS transactions among a client's unanswered "
                                              "queries (a query retried to one server is one; the same query "
                                              "to a second server that is silent too is two)", check=_at_least(1))
    icmp_unreach_info_min: int = setting(1, doc="ICMP unreachables received by one device, info", check=_at_least(1))
    icmp_unreach_warn_min: int = setting(10, doc="ICMP unreachables received by one device, warning", check=_at_least(1))
    icmp_unreach_min_flows: int = setting(3, doc="distinct destinations (address, protocol, ports of the quoted "
                                          "packet) among them; port unreachables for late DNS answers (quoting "
                                          "a UDP datagram from port 53) are not counted at all", check=_at_least(1))
    tcp_reset_info_min: int = setting(1, doc="connection attempts refused by RST for one device, info", check=_at_least(1))
    tcp_reset_warn_min: int = setting(10, doc="connection attempts refused by RST for one device, warning",
                                      check=_at_least(1))
    tcp_reset_ratio: float = setting(0.5, doc="share of a device's connection attempts refused", check=_ratio)
    tcp_reset_min_flows: int = setting(3, doc="distinct connections (peer address and port, own port) those "
                                       "resets came on", check=_at_least(1))
    # a switching loop circulates every broadcast unchanged thousands of times a second; a host resending
    # one frame (ARP retries at 1/s, mDNS announcing 2-3 times, a SPAN session showing each frame twice)
    # stays far below both limits
    forwarding_loop_min_copies: int = setting(20, doc="copies in a row of one byte-identical broadcast/multicast "
                                              "frame, each within ~100 ms of the previous", check=_at_least(3))
    forwarding_loop_min_rate: float = setting(10.0, doc="repeated frames per second from that frame's sender over "
                                              "the window", check=_positive)
    forwarding_loop_min_sources: int = setting(2, doc="senders whose frames repeat so, for a loop (fewer: a "
                                               "multicast_flood from that one sender)", check=_at_least(1))
    # retransmissions: judged against the device's own usual share (TCP over Wi-Fi or a WAN link
    # retransmits more than a wired LAN host); before warm-up against tcp_retrans_cold_ratio
    tcp_retrans_min: int = setting(3, doc="retransmitted segments from one device in a window, info", check=_at_least(1))
    tcp_retrans_warn_min: int = setting(10, doc="retransmitted segments from one device in a window, warning",
                                        check=_at_least(1))
    tcp_retrans_min_flows: int = setting(3, doc="distinct TCP connections those retransmissions belong to (one "
                                         "lossy transfer is that transfer's path, not the device's network)",
                                         check=_at_least(1))
    tcp_retrans_cold_ratio: float = setting(0.05, doc="retransmitted share of a device's data segments that is a "
                                            "finding before its baseline is learned", check=_ratio)
    tcp_retrans_floor_ratio: float = setting(0.02, doc="retransmitted share never a finding below, whatever the "
                                             "baseline", check=_ratio)
    baseline_spread_factor: float = setting(4.0, doc="a device's ratio is above its baseline at mean + this many "
                                            "mean absolute deviations (retransmissions, resets)", check=_positive)
    baseline_warmup: int = setting(6, doc="windows with traffic before a device's baseline is used",
                                   check=_at_least(1))
    baseline_alpha: float = setting(0.1, doc="weight of each new window in a device's baseline (EWMA)",
                                    check=lambda v: None if 0.0 < v <= 1.0 else f"must be in (0, 1], got {v}")
    baseline_min_segments: int = setting(20, doc="TCP segments (or attempts) a device's window needs to teach its "
                                         "baseline", check=_at_least(1))
    anomaly_max_series: int = setting(20_000, doc="series scored at once; the least recently updated make room",
                                      check=lambda n: None if 1 <= n <= 10_000_000
                                      else f"must be between 1 and 10000000, got {n}")
