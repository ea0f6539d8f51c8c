"""The probe's own network interfaces and the subnets they sit on (netifaces)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import netifaces


@dataclass(frozen=True)
class LocalInterface:
    name: str
    mac: str | None
    addresses: tuple[ipaddress.IPv4Interface, ...]

    @property
    def subnets(self) -> tuple[ipaddress.IPv4Network, ...]:
        return tuple(a.network for a in self.addresses)


def local_interfaces() -> list[LocalInterface]:
    """Non-loopback interfaces with their IPv4 addresses (link-local excluded)."""
    out = []
    for name in netifaces.interfaces():
        info = netifaces.ifaddresses(name)
        addrs = []
        for a in info.get(netifaces.AF_INET, []):
            try:
                iface = ipaddress.ip_interface(f"{a['addr']}/{a.get('netmask', '255.255.255.255')}")
            except (KeyError, ValueError):
                continue
            if iface.ip.is_loopback or iface.ip.is_link_local:
                continue
            addrs.append(iface)
        link = info.get(netifaces.AF_LINK, [{}])
        mac = link[0].get("addr") if link else None
        if addrs:
            out.append(LocalInterface(name, mac or None, tuple(addrs)))
    return out


def discovered_subnets(max_prefix_hosts: int | None = None) -> list[ipaddress.IPv4Network]:
    """Subnets of the probe's interfaces, deduplicated, in interface order."""
    seen: list[ipaddress.IPv4Network] = []
    for iface in local_interfaces():
        for net in iface.subnets:
            if net.prefixlen == 32 or net in seen:
                continue
            seen.append(net)
    return seen


def default_route_interface() -> str | None:
    """The interface of the IPv4 default route, else the first non-loopback interface with an address."""
    try:
        gw = netifaces.gateways().get("default", {}).get(netifaces.AF_INET)
    except Exception:  # netifaces raises plain errors on odd routing tables
        gw = None
    if gw:
        return gw[1]
    ifaces = local_interfaces()
    return ifaces[0].name if ifaces else None
