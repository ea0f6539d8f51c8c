"""What each kind of finding is called where technicians read it (the technician page, the API's
`title`): short and technical. The client's words for the same kinds, in the monthly report, are in
probe/exposition/report_words.py; a test holds the two to the same kinds."""
from __future__ import annotations

TITLES: dict[str, str] = {
    "port_scan": "Port scan",
    "host_sweep": "Sweep of the network's addresses",
    "syn_flood": "SYN flood",
    "icmp_flood": "ICMP flood",
    "udp_flood": "UDP flood",
    "mac_flood": "MAC address flood",
    "arp_spoofing": "ARP spoofing (someone claims another device's address)",
    "duplicate_ip": "Two devices share an IP address",
    "gratuitous_arp_storm": "Storm of gratuitous ARP",
    "rogue_dhcp": "Unknown DHCP server",
    "dhcp_starvation": "DHCP starvation",
    "dhcp_flood": "DHCP flood",
    "broadcast_storm": "Broadcast storm",
    "multicast_storm": "Multicast storm",
    "forwarding_loop": "Forwarding loop",
    "multicast_flood": "Multicast flood from one host",
    "dns_failure": "Names fail to resolve (DNS)",
    "icmp_unreachable": "Hosts unreachable",
    "tcp_reset": "Connections refused",
    "tcp_retransmissions": "Packets being resent (TCP retransmissions)",
    "device_new": "New device on the network",
    "device_gone": "Device gone",
    "device_returned": "Device back",
    "device_ip_changed": "Device changed its IP address",
    "device_name_changed": "Device changed its name",
    "device_unreachable": "Device not answering",
    "device_rebooted": "Device restarted",
    "interface_errors_rising": "Errors on a network port",
    "interface_flapping": "Network port going up and down",
    "storage_filling": "Storage filling up",
    "printer_supply_low": "Printer supply low",
    "ups_on_battery": "UPS on battery",
    "ups_runtime_short": "UPS runtime short",
    "ups_battery_low": "UPS battery low",
    "ups_battery_replace": "UPS battery to replace",
    "anomaly": "Unusual behaviour",
    "uplink_down": "Uplink port down",
    "printer_alert": "Printer alert",
    "ups_alarm": "UPS alarm",
    "snmp_auth_failure": "SNMP authentication failures",
    "snmp_trap_unknown_source": "Traps from a device nobody set up",
}


def humanize(kind: str) -> str:
    """printer_jam -> "Printer jam"."""
    text = " ".join(kind.replace("-", "_").split("_")).strip() or "problem"
    return text[0].upper() + text[1:]


def title(kind: str) -> str:
    """The technicians' name of `kind`; a kind not listed (a person-reported one) reads as its words."""
    return TITLES.get(kind) or humanize(kind)
