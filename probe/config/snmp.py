"""snmp: section: credentials, explicit targets, schedule and limits of the poller."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from probe.config.schema import Duration, Secret, setting
from probe.config.traps import TrapsConfig

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
# AES192/AES256: draft-blumenthal key extension (Net-SNMP's AES-192/AES-256); AES192C/AES256C: the
# Reeder extension Cisco uses (Net-SNMP's AES-192-C/AES-256-C).
PRIV_PROTOCOLS = ("DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C")


def _positive(value) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


@dataclass(frozen=True)
class SnmpCredential:
    name: str = setting(doc="name other sections refer to")
    version: Literal["1", "2c", "3"] = setting("2c")
    community: Secret | None = setting(None, doc="v1/v2c community")
    username: str | None = setting(None, doc="v3 USM user")
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = setting(None)
    auth_key: Secret | None = setting(None)
    priv_protocol: Literal["DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C"] | None = setting(None)
    priv_key: Secret | None = setting(None)
    context: str = setting("", doc="v3 context name")

    def __post_init__(self):
        if self.version in ("1", "2c"):
            if self.community is None:
                raise ValueError(f"credential {self.name!r}: version {self.version} needs a community")
            if self.username or self.auth_key or self.priv_key:
                raise ValueError(f"credential {self.name!r}: username/auth_key/priv_key are for version 3 only")
        else:
            if not self.username:
                raise ValueError(f"credential {self.name!r}: version 3 needs a username")
            if self.community is not None:
                raise ValueError(f"credential {self.name!r}: community is for versions 1 and 2c only")
            if (self.auth_protocol is None) != (self.auth_key is None):
                raise ValueError(f"credential {self.name!r}: auth_protocol and auth_key go together")
            if (self.priv_protocol is None) != (self.priv_key is None):
                raise ValueError(f"credential {self.name!r}: priv_protocol and priv_key go together")
            if self.priv_protocol is not None and self.auth_protocol is None:
                raise ValueError(f"credential {self.name!r}: privacy (priv_protocol) needs authentication too")
            for what, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
                if key is not None and len(key.reveal()) < 8:
                    raise ValueError(f"credential {self.name!r}: {what} must be at least 8 characters (RFC 3414)")

    @property
    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


@dataclass(frozen=True)
class SnmpTarget:
    address: str = setting(doc="IP address or host name of the device")
    port: int = setting(161, check=lambda p: None if 0 < p < 65536 else f"invalid port {p}")
    name: str | None = setting(None, doc="display name; default: sysName")
    credentials: tuple[str, ...] = setting((), doc="credential names to try in order; default: all")
    modules: tuple[str, ...] = setting((), doc="modules to poll; default: chosen from sysObjectID/sysDescr")
    timeout: Duration | None = setting(None, check=_positive, doc="per-request timeout; default: snmp.timeout")
    retries: int | None = setting(None, check=lambda r: None if 0 <= r <= 10 else f"must be between 0 and 10, got {r}",
                                  doc="retries per request; default: snmp.retries")


def _ratio(value: float) -> str | None:
    return None if 0.0 < value < 1.0 else f"must be between 0 and 1 (exclusive), got {value}"


def _at_least(low: int):
    return lambda n: None if n >= low else f"must be at least {low}, got {n}"


@dataclass(frozen=True)
class SnmpFindingsConfig:
    """Thresholds of the findings raised from what polled devices say (probe/findings/snmp_rules.py)."""

    errors_min: int = setting(10, doc="new in+out errors on one interface between two polls", check=_at_least(1))
    flaps_min: int = setting(3, doc="link state changes within flap_window", check=_at_least(2))
    flap_window: Duration = setting(Duration(900), check=_positive)
    storage_full_days: float = setting(7.0, doc="raise when the projection says full within this many days",
                                       check=_positive)
    storage_full_ratio: float = setting(0.95, doc="raise when used/size is at least this", check=_ratio)
    storage_min_span: Duration = setting(Duration(600), doc="samples must span this long before projecting "
                                                            "days-to-full", check=_positive)
    supply_low_ratio: float = setting(0.10, doc="printer supply remaining share below which it is low", check=_ratio)
    ups_runtime_min: Duration = setting(Duration(600), doc="UPS runtime remaining below which it is short",
                                        check=_positive)
    unreachable_polls: int = setting(3, doc="polls in a row without an answer before a device is unreachable",
                                     check=_at_least(1))
    clear_polls: int = setting(2, doc="polls the condition must be gone before its episode ends", check=_at_least(1))


@dataclass(frozen=True)
class SnmpConfig:
    enabled: bool = setting(True)
    credentials: tuple[SnmpCredential, ...] = setting(
        (SnmpCredential(name="public", version="2c", community=Secret("public", "default")),),
        doc="tried in order until one answers; the one that worked is remembered per device")
    targets: tuple[SnmpTarget, ...] = setting((), doc="devices polled besides those the sweep finds")
    poll_discovered: bool = setting(True, doc="also poll devices the sweep finds answering SNMP")
    counters_interval: Duration = setting(Duration(60), check=_positive)
    inventory_interval: Duration = setting(Duration(900), check=_positive)
    timeout: Duration = setting(Duration(2), check=_positive)
    retries: int = setting(1, check=lambda r: None if 0 <= r <= 10 else f"must be between 0 and 10, got {r}")
    max_repetitions: int = setting(25, check=lambda r: None if 1 <= r <= 200 else f"must be between 1 and 200, got {r}")
    max_rows_per_table: int = setting(10000, check=_positive)
    max_concurrent_devices: int = setting(32, check=_positive)
    findings: SnmpFindingsConfig = setting(default_factory=SnmpFindingsConfig)
    traps: TrapsConfig = setting(default_factory=TrapsConfig, doc="the notification receiver (traps, informs)")

    def __post_init__(self):
        names = [c.name for c in self.credentials]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"snmp.credentials: duplicate credential names: {', '.join(dup)}")
        for t in self.targets:
            unknown = [c for c in t.credentials if c not in names]
            if unknown:
                raise ValueError(f"snmp.targets {t.address}: unknown credentials: {', '.join(unknown)}")
