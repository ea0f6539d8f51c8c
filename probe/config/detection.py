"""detection: section: thresholds of the LAN findings and the anomaly scoring."""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.schema import setting


def _ratio(value: float) -> str | None:
    return None if 0.0 < value < 1.0 else f"must be between 0 and 1 (exclusive), got {value}"


@dataclass(frozen=True)
class DetectionConfig:
    enabled: bool = setting(True)
    allowed_dhcp_servers: tuple[str, ...] = setting((), doc="IPs allowed to offer leases; empty: learn the first")
    # scores are -log10(tail probability) / 12: 0.5 is one in a million for that series; the kernel
    # itself opens an episode at 0.35 (probe/_twin/score.py), and NAB's best threshold was ~0.36
    anomaly_threshold: float = setting(0.5, doc="score at or above which a series is anomalous "
                                                "(0.5: one in a million for that series)", check=_ratio)
    anomaly_top_n: int = setting(20, doc="most anomalous series exported",
                                 check=lambda n: None if 1 <= n <= 1000 else f"must be between 1 and 1000, got {n}")
    anomaly_max_series: int = setting(100_000, doc="series scored at once; the least recently updated make room",
                                      check=lambda n: None if 1 <= n <= 10_000_000
                                      else f"must be between 1 and 10000000, got {n}")
