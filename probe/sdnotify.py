"""systemd notification protocol (sd_notify): READY=1, STOPPING=1, WATCHDOG=1, STATUS=..."""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            # systemd's advice: ping at half the timeout.
            self.watchdog_interval = int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        try:
            # Non-blocking: a notification socket nobody drains must never stall the event loop.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                sock.connect(addr)
                sock.send("\n".join(fields).encode())
            return True
        except OSError:  # includes BlockingIOError when the receiver's queue is full
            return False
