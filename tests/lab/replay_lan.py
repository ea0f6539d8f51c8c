"""A small simulated client LAN in network namespaces, captured to a pcap, for replaying real tools' traffic.

A switch namespace holds a bridge in hub mode (ageing 0); each host namespace has one veth into it. A
tcpdump on the bridge (promiscuous, so the bridge passes every frame up) writes what a mirror port
would see. Names carry a prefix with the pid; everything is torn down by `close()`, also on failure.
Traffic stays inside the namespaces: the bridge has no uplink and the hosts no default route.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

__all__ = ["Lan", "lab_available"]


def lab_available() -> str | None:
    """None when the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def _run(*cmd, timeout=20, check=True):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=check)


class Lan:
    def __init__(self, tag: str):
        self.prefix = f"svp{os.getpid()}{tag}"
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, str] = {}   # name -> namespace
        self.procs: list[subprocess.Popen] = []
        self.namespaces: list[str] = []
        self._capture: subprocess.Popen | None = None
        self._ns(self.switch)
        _run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge", "ageing_time", "0")
        _run("ip", "-n", self.switch, "link", "set", "br0", "up")

    def _ns(self, name: str):
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str, cidr: str, mac: str) -> str:
        ns = f"{self.prefix}-{name}"
        self._ns(ns)
        port = f"p{len(self.hosts)}"
        _run("ip", "link", "add", "eth0", "netns", ns, "address", mac, "type", "veth", "peer", "name", port,
             "netns", self.switch)
        _run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        _run("ip", "-n", ns, "addr", "add", cidr, "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        if shutil.which("ethtool"):  # veth offloads would coalesce segments into giant frames
            _run("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tso", "off", "gso", "off", "gro", "off",
                 check=False)
        self.hosts[name] = ns
        return ns

    def exec(self, host: str, *cmd, timeout=30, check=True):
        return _run("ip", "netns", "exec", self.hosts[host], *cmd, timeout=timeout, check=check)

    def spawn(self, host: str, *cmd) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.hosts[host], *cmd], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def start_capture(self, path: str):
        self._capture = subprocess.Popen(
            ["ip", "netns", "exec", self.switch, "tcpdump", "-i", "br0", "-n", "-s", "0", "-U", "-w", path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(self._capture)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # tcpdump says "listening on" once the socket is open
            if os.path.exists(path) and os.path.getsize(path) >= 24:
                time.sleep(0.3)
                return
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start")

    def stop_capture(self):
        if self._capture is not None:
            time.sleep(0.3)
            self._stop(self._capture)
            self._capture = None

    @staticmethod
    def _stop(p: subprocess.Popen):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # our own session: the tool and its children only
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)

    def close(self):
        for p in self.procs:
            try:
                self._stop(p)
            except Exception:
                pass
        for ns in reversed(self.namespaces):
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
