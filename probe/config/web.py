"""web: and log: sections."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from probe.config.schema import setting

# 9100 node, 9115 blackbox, 9116 snmp, 9182 windows: 9847 clashes with none of the common exporters.
DEFAULT_PORT = 9847


def _check_listen(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return f"invalid listen address {value!r} (expected HOST:PORT or :PORT, e.g. :{DEFAULT_PORT})"
    return None


def split_listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = setting(f":{DEFAULT_PORT}", doc="HOST:PORT to serve /metrics on", check=_check_listen)
    route_prefix: str = setting("", doc="path prefix when served behind a reverse proxy")


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warn", "error"] = setting("info")
    format: Literal["logfmt", "json"] = setting("logfmt")
