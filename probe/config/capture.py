"""capture: section: the passive capture on the mirror port."""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.schema import ByteSize, Duration, setting


def _block_size(value: int) -> str | None:
    if value < 4096 or value & (value - 1):
        return f"must be a power of two of at least 4KiB, got {value}"
    return None


@dataclass(frozen=True)
class CaptureConfig:
    enabled: bool = setting(True)
    interface: str | None = setting(None, doc="mirror port; default: the interface of the default route")
    promiscuous: bool = setting(True)
    bpf_filter: str = setting("", doc="tcpdump-style filter; empty keeps every frame")
    block_size: ByteSize = setting(ByteSize(1 << 20), check=_block_size)
    block_count: int = setting(64, check=lambda n: None if n >= 2 else f"must be at least 2, got {n}")
    block_timeout: Duration = setting(Duration(0.1), check=lambda d: None if 0 < d <= 10 else "must be between 1ms and 10s")
    fanout: int = setting(1, check=lambda n: None if 1 <= n <= 64 else f"must be between 1 and 64, got {n}")
    window: Duration = setting(Duration(10), check=lambda d: None if d >= 1 else "must be at least 1s")
    max_devices: int = setting(4096, check=lambda n: None if n >= 16 else f"must be at least 16, got {n}",
                               doc="rows per window for MACs, for IPs and for ARP bindings; a source beyond them "
                                   "is counted in the overflow row (sitevigil_capture_table_overflow_frames_total). "
                                   "While a table overflows, half its rows are held for the devices it held in "
                                   "the window before, so a flood of spoofed addresses cannot evict real devices")
