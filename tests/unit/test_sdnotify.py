import socket

from probe.sdnotify import Notifier


def test_sends_ready_and_computes_watchdog_half(tmp_path):
    path = str(tmp_path / "n.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval == 2.0
    assert n.send("READY=1", "STATUS=ok")
    assert rx.recv(100) == b"READY=1\nSTATUS=ok"
    rx.close()


def test_never_blocks_when_nobody_reads(tmp_path):
    path = str(tmp_path / "n.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    n = Notifier({"NOTIFY_SOCKET": path})
    results = [n.send("WATCHDOG=1") for _ in range(2000)]  # far beyond the receive queue
    assert results[0] is True and results[-1] is False
    rx.close()


def test_disabled_without_socket_and_watchdog_for_other_pid():
    n = Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert not n.enabled and n.send("READY=1") is False
    assert n.watchdog_interval is None
