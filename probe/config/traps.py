"""snmp.traps: section: the SNMP notification receiver (probe/subsystems/snmp_traps.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from probe.config.schema import setting
from probe.config.web import DEFAULT_PORT, _check_listen


def _at_least(low: float):
    return lambda n: None if n >= low else f"must be at least {low:g}, got {n}"


def _positive(value) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def _listen(value: str) -> str | None:
    msg = _check_listen(value)
    return msg.replace(f":{DEFAULT_PORT})", ":162)") if msg else None


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression {value!r}: {exc}"
    return None


def _engine_id(value: str) -> str | None:
    if not value:
        return None
    try:
        n = len(bytes.fromhex(value))
    except ValueError:
        return f"engine ID {value!r} is not hex digits (e.g. 80000000050102030405060708)"
    return None if 5 <= n <= 32 else f"engine ID of {n} octets (RFC 3411: 5 to 32)"


@dataclass(frozen=True)
class TrapUplinks:
    device: str = setting(doc="address of a polled device (as in snmp.targets or found by the sweep)")
    interfaces: tuple[str, ...] = setting(doc="its uplink interfaces: ifName, ifDescr or ifIndex")


@dataclass(frozen=True)
class TrapsConfig:
    """Notifications (v1 traps, v2c and v3 traps and informs) from the devices; the community must be one
    of snmp.credentials' v1/v2c communities, the v3 user one of its version 3 usernames."""

    enabled: bool = setting(True)
    listen_address: str = setting(":162", check=_listen, doc="UDP address to receive on (HOST:PORT or :PORT)")
    engine_id: str = setting("", check=_engine_id, doc="SNMPv3 engine ID (hex) v3 informs are sent to; default: "
                                                       "generated once, kept in state_dir")
    queue_size: int = setting(1024, check=_at_least(1), doc="notifications waiting to be handled; beyond, dropped")
    rate_per_source: float = setting(50.0, check=_positive, doc="notifications a second one source may send")
    burst_per_source: int = setting(200, check=_at_least(1), doc="how many above the rate a source may send at once")
    max_sources: int = setting(1024, check=_at_least(1), doc="sources whose rate is tracked (least recent forgotten)")
    confirm_poll: bool = setting(True, doc="poll a device as soon as it sends a notification, to confirm it")
    unknown_source_severity: Literal["info", "warning"] = setting(
        "warning", doc="severity of the finding raised when a device the probe does not poll sends notifications")
    uplinks: tuple[TrapUplinks, ...] = setting((), doc="interfaces whose linkDown is a finding, besides those whose "
                                                       "ifAlias matches uplink_alias or that have an LLDP neighbour")
    uplink_alias: str = setting(r"(?i)\b(uplink|trunk|core|wan)\b", check=_regex,
                                doc="ifAlias pattern of uplinks (empty: none by alias)")
    metric_sources_max: int = setting(64, check=_at_least(1), doc="distinct source labels on the received counter; "
                                                                  "the rest are counted as \"other\"")
    metric_traps_max: int = setting(64, check=_at_least(1), doc="distinct trap labels on the received counter; "
                                                                "the rest are counted as \"other\"")
