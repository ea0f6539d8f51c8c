"""sweep: section: the active discovery of devices on the configured subnets."""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.schema import Duration, setting


@dataclass(frozen=True)
class SweepConfig:
    enabled: bool = setting(True)
    interval: Duration = setting(Duration(3600), check=lambda d: None if d >= 60 else "must be at least 60s")
    rate_pps: int = setting(500, doc="probe packets per second (arp-scan's pace), so a sweep never floods the LAN",
                            check=lambda n: None if 1 <= n <= 10000 else f"must be between 1 and 10000, got {n}")
    max_hosts: int = setting(4096, doc="largest subnet swept (addresses)",
                             check=lambda n: None if n >= 1 else f"must be at least 1, got {n}")
    device_gone_after: Duration = setting(Duration(86400), doc="absence after which a device is reported gone")
    device_forget_after: Duration = setting(Duration(90 * 86400), doc="absence after which a device is dropped")
    max_devices: int = setting(10000, doc="inventory size bound; beyond it the longest-absent devices are dropped",
                               check=lambda n: None if n >= 1 else f"must be at least 1, got {n}")
    device_info_limit: int = setting(1000, doc="at most this many sitevigil_device_info series (most recently seen)",
                                     check=lambda n: None if n >= 0 else f"must be at least 0, got {n}")
