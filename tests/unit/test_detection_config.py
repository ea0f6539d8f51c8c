"""The detection thresholds load from YAML, with located errors for bad values."""
from __future__ import annotations

import pytest

from probe.config import ConfigError, load_text


def test_thresholds_load_and_default():
    cfg = load_text("detection:\n  port_scan_min_ports: 100\n  episode_quiet: 10m\n  allowed_dhcp_servers: [192.168.1.5]\n")
    d = cfg.detection
    assert d.port_scan_min_ports == 100 and d.episode_quiet == 600 and d.allowed_dhcp_servers == ("192.168.1.5",)
    assert d.host_sweep_min_hosts == 64 and d.syn_flood_min_rate == 100.0


def test_bad_thresholds_are_located():
    with pytest.raises(ConfigError) as info:
        load_text("detection:\n  port_scan_failed_ratio: 1.5\n  garp_storm_min: 0\n", file="x.yml")
    text = str(info.value)
    assert "x.yml:2: detection.port_scan_failed_ratio: must be between 0 and 1" in text
    assert "x.yml:3: detection.garp_storm_min: must be at least 1, got 0" in text
