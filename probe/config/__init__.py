"""The probe's configuration: YAML parsed once at the edge into frozen values.

    cfg = load_file("sitevigil.yml")      # raises ConfigError listing every problem with FILE:LINE
    cfg = default_config()                 # the built-in defaults, no file

Nothing deeper in the package reads files or the environment for settings: it is handed these values.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass

import yaml

from probe.config.capture import CaptureConfig
from probe.config.detection import DetectionConfig
from probe.config.report import ReportConfig
from probe.config.schema import ByteSize, ConfigError, Duration, Problem, Secret, load_node, setting
from probe.config.snmp import SnmpConfig, SnmpCredential, SnmpTarget
from probe.config.sweep import SweepConfig
from probe.config.web import DEFAULT_PORT, LogConfig, WebConfig, split_listen_address

__all__ = [
    "ByteSize", "CaptureConfig", "Config", "ConfigError", "DEFAULT_PORT", "DetectionConfig", "Duration",
    "LogConfig", "Problem", "ReportConfig", "Secret", "SnmpConfig", "SnmpCredential", "SnmpTarget", "SubnetConfig",
    "SweepConfig", "WebConfig", "default_config", "load_file", "load_text", "split_listen_address",
]

@dataclass(frozen=True)
class SubnetConfig:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network = setting(doc="a client subnet, e.g. 192.168.1.0/24")
    credentials: tuple[str, ...] = setting((), doc="SNMP credential names to try here; default: all")
    sweep: bool = setting(True, doc="sweep this subnet for devices")


@dataclass(frozen=True)
class Config:
    web: WebConfig = setting(default_factory=WebConfig)
    log: LogConfig = setting(default_factory=LogConfig)
    state_dir: str | None = setting(None, doc="where the embedded SQLite database lives; default: /var/lib/sitevigil as root")
    subnets: tuple[SubnetConfig, ...] = setting((), doc="client subnets; default: those of the probe's interfaces")
    snmp: SnmpConfig = setting(default_factory=SnmpConfig)
    capture: CaptureConfig = setting(default_factory=CaptureConfig)
    sweep: SweepConfig = setting(default_factory=SweepConfig)
    detection: DetectionConfig = setting(default_factory=DetectionConfig)
    report: ReportConfig = setting(default_factory=ReportConfig)
    # Where this config came from; set by the loader, not a key of the file.
    source: str = dataclasses.field(default="(built-in defaults)", compare=False, metadata={"internal": True})

    def __post_init__(self):
        names = {c.name for c in self.snmp.credentials}
        for s in self.subnets:
            unknown = [c for c in s.credentials if c not in names]
            if unknown:
                raise ValueError(f"subnets {s.cidr}: unknown credentials: {', '.join(unknown)}")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def default_config() -> Config:
    return Config()


def load_text(text: str, *, file: str = "<string>", base_dir: str = ".", env=None) -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([Problem(file, line, "", f"invalid YAML: {exc.problem}")]) from None
    cfg = load_node(node, Config, file=file, base_dir=base_dir, env=env)
    return dataclasses.replace(cfg, source=file)


def load_file(path: str, *, env=None) -> Config:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Problem(path, 0, "", f"cannot read config file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(path, 0, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return load_text(text, file=path, base_dir=os.path.dirname(os.path.abspath(path)), env=env)
