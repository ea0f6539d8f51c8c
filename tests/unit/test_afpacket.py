"""AF_PACKET helpers that need no namespace: filter compilation, interface counters, ring arguments."""
from __future__ import annotations

import errno
import shutil

import pytest

from probe.sources import afpacket
from probe.sources.afpacket import CaptureError, compile_filter, interface_counters


def test_empty_filter_keeps_everything_without_tcpdump():
    assert compile_filter("   ", tcpdump="/nonexistent/tcpdump") == []


def test_missing_tcpdump_is_explained():
    with pytest.raises(CaptureError, match="needs tcpdump"):
        compile_filter("udp", tcpdump=None) if shutil.which("tcpdump") is None else \
            compile_filter("udp", tcpdump="/nonexistent/tcpdump")


def test_ddd_output_is_checked():
    assert afpacket._parse_ddd("2\n40 0 0 12\n6 0 0 262144\n", "x") == [(40, 0, 0, 12), (6, 0, 0, 262144)]
    for bad in ("", "3\n40 0 0 12\n", "1\n40 0 12\n", "x\n"):
        with pytest.raises(CaptureError, match="unexpected tcpdump -ddd output"):
            afpacket._parse_ddd(bad, "x")


def test_interface_counters_read_sysfs(tmp_path):
    stats = tmp_path / "mirror0" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_dropped").write_text("17\n")
    (stats / "rx_missed_errors").write_text("3\n")
    assert interface_counters("mirror0", str(tmp_path)) == {"rx_dropped": 17, "rx_missed_errors": 3}
    assert interface_counters("gone0", str(tmp_path)) == {}


@pytest.mark.parametrize("kw, msg", [
    (dict(block_size=3000), "power of two"),
    (dict(block_size=1 << 12, block_count=1), "at least 2"),
    (dict(frame_size=3000), "frame_size"),
])
def test_ring_arguments_are_checked_before_any_socket(impl, kw, msg):
    with pytest.raises(ValueError, match=msg):
        impl.PacketRing("mirror0", **kw)


def test_missing_interface_is_named():
    with pytest.raises(CaptureError) as exc:
        afpacket.interface_index("nosuch-if0")
    assert exc.value.errno == errno.ENODEV and "'nosuch-if0' does not exist" in str(exc.value)


def test_no_permission_says_which_capability(monkeypatch):
    def refuse(*a, **kw):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(afpacket, "interface_index", lambda name: 7)
    monkeypatch.setattr(afpacket.socket, "socket", refuse)
    with pytest.raises(CaptureError) as exc:
        afpacket.open_packet_socket("mirror0")
    assert exc.value.errno == errno.EPERM
    assert str(exc.value).startswith("capturing on 'mirror0' needs CAP_NET_RAW")
