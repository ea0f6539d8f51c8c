"""Each finding in words a business owner understands: what happened, why it mattered, and whether it
needs the owner's decision (a purchase, an approval). Built from the finding's kind and evidence; a
kind not listed here still gets a plain sentence from its name and the detector's own summary.

`describe(ep, name)` takes an episode as the ledger's `listing`/`show` gives it and the device's name
as the report shows it; returns a Words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from probe.findings.titles import humanize

# Categories, in the order the report charts them.
CATEGORIES = ("security", "network", "devices and power", "unusual traffic", "devices coming and going",
              "reported by people")

_SECURITY = ("port_scan", "host_sweep", "syn_flood", "icmp_flood", "udp_flood", "mac_flood", "arp_spoofing",
             "gratuitous_arp_storm", "rogue_dhcp", "dhcp_starvation", "dhcp_flood", "snmp_auth_failure")
_NETWORK = ("duplicate_ip", "broadcast_storm", "multicast_storm", "forwarding_loop", "multicast_flood",
            "dns_failure", "icmp_unreachable", "tcp_reset", "tcp_retransmissions", "interface_errors_rising",
            "interface_flapping", "uplink_down")
_DEVICES = ("storage_filling", "printer_supply_low", "ups_on_battery", "ups_runtime_short", "ups_battery_replace",
            "ups_battery_low", "device_unreachable", "device_rebooted", "ups_alarm", "printer_alert")
_COMING_GOING = ("device_new", "device_returned", "device_gone", "device_ip_changed", "device_name_changed",
                 "snmp_trap_unknown_source")


@dataclass(frozen=True)
class Words:
    title: str      # a heading: "The file server's disk was filling up"
    what: str       # what happened, in one or two sentences
    why: str        # why it mattered
    category: str   # one of CATEGORIES
    decision: str   # what the owner would need to decide or buy while it is open ("" when nothing)


def category(kind: str, source: str = "probe") -> str:
    if source != "probe":
        return "reported by people"
    if kind in _SECURITY:
        return "security"
    if kind in _NETWORK:
        return "network"
    if kind in _DEVICES:
        return "devices and power"
    if kind == "anomaly":
        return "unusual traffic"
    if kind in _COMING_GOING:
        return "devices coming and going"
    return "network"


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _pct(v) -> str:
    n = _num(v)
    return f"{n:.0%}" if n is not None else ""


def _subject(ep: dict, prefix: str) -> str:
    s = ep.get("subject") or ""
    return s[len(prefix):].strip() if s.startswith(prefix) else s


def _storage(ep, dev):
    ev = ep["evidence"]
    disk = _subject(ep, "storage ") or "a disk"
    days = _num(ev.get("days_to_full"))
    used = _pct(ev.get("used_ratio"))
    what = f"The disk {disk} on {dev} was {used} full" if used else f"The disk {disk} on {dev} was filling up"
    if days is not None:
        what += f"; at the rate it was filling it would have been full in {_days(days)}"
    return Words(f"A disk on {dev} was filling up", what + ".",
                 "A full disk stops the programs that save to it: files, email, the accounts database.",
                 "devices and power", "more disk space (a larger disk) or archiving old files")


def _days(d: float) -> str:
    if d < 1:
        return "less than a day"
    n = round(d)
    return f"{n} day" if n == 1 else f"{n} days"


def _supply(ep, dev):
    ev = ep["evidence"]
    supply = _subject(ep, "supply ") or "a supply"
    left = _pct(ev.get("remaining_ratio"))
    return Words(f"The printer {dev} was running out of {supply}",
                 f"{dev} had {left + ' ' if left else 'little '}of its {supply} left.",
                 "Replaced in time, the printer does not stop when it runs out.", "devices and power",
                 f"buying a replacement {supply}")


def _ups_battery(ep, dev):
    return Words(f"The battery backup (UPS) {dev} was on battery power",
                 f"{dev}, the battery that keeps equipment running in a power cut, was running on its battery: "
                 f"the mains power had failed" + _runtime(ep) + ".",
                 "Without it the equipment plugged into it would have switched off at once, and unsaved work "
                 "would have been lost.", "devices and power", "")


def _runtime(ep) -> str:
    rt = _num(ep["evidence"].get("runtime_seconds"))
    return f"; it could have lasted about {rt / 60:.0f} more minutes" if rt is not None else ""


def _ups_short(ep, dev):
    return Words(f"The battery backup (UPS) {dev} would not last long",
                 f"In a power cut {dev} would keep the equipment running for only a few minutes" + _runtime(ep) + ".",
                 "Too short a runtime means servers are cut off before they can shut down cleanly.",
                 "devices and power", "a new UPS battery")


def _ups_replace(ep, dev):
    return Words(f"The battery backup (UPS) {dev} needs a new battery",
                 f"{dev} reported that its battery has worn out and should be replaced.",
                 "A worn battery fails exactly when the power does.", "devices and power", "a new UPS battery")


def _ups_low(ep, dev):
    status = str(ep["evidence"].get("battery_status") or "low")
    return Words(f"The battery backup (UPS) {dev} reported its battery {status}",
                 f"{dev}, the battery that keeps equipment running in a power cut, reported its battery {status}.",
                 "A battery in this state will not carry the equipment through a power cut; if it does not "
                 "recover on mains power, it is worn out.", "devices and power",
                 "a new UPS battery, if the technician finds it worn out")


def _unreachable(ep, dev):
    n = _num(ep["evidence"].get("failed_polls"))
    return Words(f"{dev} stopped answering",
                 f"{dev} did not answer the probe's checks" + (f" ({n:.0f} in a row)" if n else "") + ".",
                 "A device that does not answer may be switched off, broken or cut off from the network.",
                 "devices and power", "")


def _simple(title: str, what: str, why: str, cat: str, decision: str = "") -> Callable:
    def words(ep, dev):
        subj = ep.get("subject") or ""
        return Words(title.format(dev=dev, subj=subj), what.format(dev=dev, subj=subj), why, cat, decision)
    return words


def _port_scan(ep, dev):
    ev = ep["evidence"]
    ports, hosts = _num(ev.get("distinct_dst_ports")), _num(ev.get("distinct_dst_hosts"))
    detail = ", ".join(x for x in ((f"{ports:.0f} doors (ports)" if ports else ""),
                                   (f"on {hosts:.0f} devices" if hosts and hosts > 1 else "")) if x)
    return Words(f"{dev} was trying the doors of other computers",
                 f"{dev} was checking other computers for open doors (a port scan{': ' + detail if detail else ''}).",
                 "This is how an attacker or a virus looks for a way in; sometimes it is an IT tool, which the "
                 "technician checks.", "security", "")


def _rogue_dhcp(ep, dev):
    server = ep["evidence"].get("server_id")
    return Words("An unknown device was handing out network addresses",
                 f"{dev}{f' ({server})' if server else ''} was giving computers their network settings without "
                 "being the office's router.",
                 "Computers that take its settings can lose the internet, or have their traffic sent through it.",
                 "security", "")


_WORDS: dict[str, Callable] = {
    "storage_filling": _storage,
    "printer_supply_low": _supply,
    "ups_on_battery": _ups_battery,
    "ups_runtime_short": _ups_short,
    "ups_battery_replace": _ups_replace,
    "ups_battery_low": _ups_low,
    "device_unreachable": _unreachable,
    "device_rebooted": _simple("{dev} restarted", "{dev} restarted by itself.",
                               "Restarts nobody asked for can mean failing power or hardware.", "devices and power"),
    "interface_errors_rising": _simple("A network connection on {dev} was making errors",
                                       "The connection {subj} on {dev} was producing errors.",
                                       "Errors slow the network down and usually mean a faulty cable or port.",
                                       "network"),
    "interface_flapping": _simple("A network connection on {dev} kept dropping",
                                  "The connection {subj} on {dev} kept dropping and coming back.",
                                  "Whatever is plugged in there loses the network each time.", "network"),
    "port_scan": _port_scan,
    "host_sweep": _simple("{dev} was listing every device on the network",
                          "{dev} tried to reach every address on the network, one after another.",
                          "It is often the first step of an attack, or of an IT inventory tool.", "security"),
    "syn_flood": _simple("A flood of connection attempts", "{dev} was flooded with connection attempts.",
                         "A flood like this can make a server or the internet connection unusable.", "security"),
    "icmp_flood": _simple("A flood of network traffic", "{dev} sent a flood of ping traffic.",
                          "Floods slow down or stop the network for everyone.", "security"),
    "udp_flood": _simple("A flood of network traffic", "{dev} sent a flood of traffic.",
                         "Floods slow down or stop the network for everyone.", "security"),
    "mac_flood": _simple("The network switches were flooded",
                         "Thousands of made-up device addresses appeared on {dev}.",
                         "It can make switches send everyone's traffic everywhere, where it can be read.", "security"),
    "arp_spoofing": _simple("{dev} was pretending to be another device",
                            "{dev} claimed an address that belongs to another device (ARP spoofing).",
                            "It is a way to intercept other people's traffic.", "security"),
    "gratuitous_arp_storm": _simple("{dev} kept announcing itself",
                                    "{dev} sent an unusual number of address announcements.",
                                    "It can confuse other devices about where to send traffic.", "security"),
    "rogue_dhcp": _rogue_dhcp,
    "dhcp_starvation": _simple("Someone was grabbing all the network addresses",
                               "{dev} asked for network addresses for a great many made-up devices.",
                               "When the addresses run out, new computers and phones cannot join the network.",
                               "security"),
    "dhcp_flood": _simple("{dev} kept asking for a network address",
                          "{dev} sent many more address requests than a device needs.",
                          "A misbehaving device can keep others from getting an address.", "security"),
    "duplicate_ip": _simple("Two devices used the same address",
                            "Two devices were using the same network address {dev}.",
                            "They keep interrupting each other's connections.", "network"),
    "broadcast_storm": _simple("The network was flooded", "A storm of broadcast traffic filled the network.",
                               "A storm can bring the whole office network to a halt.", "network"),
    "multicast_storm": _simple("The network was flooded", "A storm of multicast traffic filled the network.",
                               "A storm can bring the whole office network to a halt.", "network"),
    "multicast_flood": _simple("One device flooded the network", "{dev} sent the same message to many devices "
                               "over and over.", "It slows every device on the network; the device needs fixing.",
                               "network"),
    "forwarding_loop": _simple("A network loop", "The same traffic was going round and round the network "
                               "(a cable plugged in at both ends, usually).",
                               "A loop can bring the whole office network to a halt.", "network"),
    "dns_failure": _simple("Looking up web addresses failed", "{dev} could not look up web and email addresses.",
                           "Websites and email stop working when lookups fail.", "network"),
    "icmp_unreachable": _simple("Connections could not get through", "{dev} was told many times that the "
                                "place it tried to reach could not be reached.",
                                "Something it needs (a server, a printer, the internet) was not there.", "network"),
    "tcp_reset": _simple("Connections were refused", "Many of {dev}'s connections were refused.",
                         "A program or service it relies on was not answering.", "network"),
    "tcp_retransmissions": _simple("The network was slow for {dev}", "{dev} had to send data again and again.",
                                   "Repeated sending is what a slow or faulty network feels like.", "network"),
    "anomaly": _simple("Unusual traffic from {dev}", "{dev} did something far outside its usual pattern.",
                       "Unusual behaviour is worth a look: a backup gone wrong, a new program, or an intruder.",
                       "unusual traffic"),
    "device_new": _simple("A new device joined the network", "{dev} appeared on the network for the first time.",
                          "Knowing every device keeps strangers off the network.", "devices coming and going"),
    "device_returned": _simple("{dev} came back", "{dev} was on the network again after an absence.",
                               "Worth knowing when a device disappears and returns.", "devices coming and going"),
    "device_gone": _simple("{dev} left the network", "{dev} has not been seen on the network for a while.",
                           "A missing device may be broken, switched off or taken away.", "devices coming and going"),
    "device_ip_changed": _simple("{dev} changed address", "{dev} started using a different network address.",
                                 "Usually harmless; it matters for devices others must find (printers).",
                                 "devices coming and going"),
    "device_name_changed": _simple("{dev} changed its name", "{dev} started calling itself by another name.",
                                   "Usually harmless; it can also be a different device.", "devices coming and going"),
    # from SNMP notifications (probe/findings/trap_rules.py)
    "uplink_down": _simple("A main network link of {dev} went down",
                           "{dev} reported that its link {subj} to the rest of the network went down.",
                           "Everything connected through that link loses the network until it is back.", "network"),
    "ups_alarm": _simple("The UPS {dev} raised an alarm", "The UPS {dev} reported a problem ({subj}).",
                         "A UPS with a problem may not keep the equipment running in a power cut.",
                         "devices and power"),
    "printer_alert": _simple("The printer {dev} needed attention", "The printer {dev} reported {subj}.",
                             "Nobody can print on it until someone deals with it.", "devices and power"),
    "snmp_auth_failure": _simple("Someone tried to read {dev} with a wrong password",
                                 "{dev} refused a management request with a wrong password (SNMP community).",
                                 "It may be a misconfigured tool, or someone probing the network equipment.",
                                 "security"),
    "snmp_trap_unknown_source": _simple("A device nobody set up was sending alerts",
                                        "{dev} sends management alerts, but it is not a device the probe looks "
                                        "after.", "An unmanaged device is one whose problems nobody sees.",
                                        "devices coming and going"),
}


def describe(ep: dict, dev: str) -> Words:
    """What `ep` (an episode as the ledger lists it) means to a business owner; `dev` names the device."""
    kind, ev = ep["kind"], ep.get("evidence") or {}
    if ep.get("source", "probe") != "probe":
        who = "reported by the client" if ep["source"] == "client" else "found by the technician on a visit"
        note = str(ev.get("reported") or "").strip()
        return Words(f"{humanize(kind)} ({dev})", (note.rstrip(".") + "." if note else f"{humanize(kind)} on {dev}.")
                     + f" This was {who}: the probe did not see it.",
                     "A problem people noticed first shows where the probe cannot look.", "reported by people", "")
    words = _WORDS.get(kind)
    if words is not None:
        return words(ep, dev)
    summary = str(ev.get("summary") or "").strip()
    return Words(f"{humanize(kind)} on {dev}",
                 (summary.rstrip(".") + "." if summary else f"The probe saw a problem of the kind "
                                                             f"“{humanize(kind).lower()}” on {dev}."),
                 "The technician's notes below say what it meant and what was done.", category(kind), "")
