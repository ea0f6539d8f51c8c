"""A simulated client LAN built from network namespaces, for tests and benchmarks.

    with Lab(hosts=4, snmp_hosts=1) as lab:
        lab.run(lab.hosts[0], ["ping", "-c1", str(lab.hosts[1].ip)])
        proc = lab.popen(lab.probe, [...])          # ended and reaped at teardown

Topology (all inside namespaces this object creates; nothing touches the machine's own namespace):

    host namespaces (h0..hN, gw, probe)      switch namespace (sw)
      eth0 (own MAC/IP)  <-- veth -->  pN  --+
      ...                                    +-- br0 (Linux bridge = the switch)
    probe: eth0 (management, has an IP) ----+
           mirror0  <-- veth -- span          every host-facing port's ingress is mirrored to `span`
                                              (tc u32 + mirred), so mirror0 sees every frame: a SPAN port.

Names carry a per-run prefix (pid + counter), teardown is unconditional (context manager, and an
atexit hook for the case where the test process is interrupted), processes are ended by their pid.
"""
from __future__ import annotations

import atexit
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Sequence

_counter = itertools.count()
_live_labs: "set[Lab]" = set()


class LabError(Exception):
    pass


def lab_available() -> str | None:
    """None when labs can be built here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (Debian iproute2)"
    return None


def _sh(cmd: Sequence[str], *, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class Host:
    name: str                      # short name inside the lab: h0, gw, probe
    ns: str                        # network namespace name
    ip: ipaddress.IPv4Address
    mac: str
    iface: str = "eth0"
    port: str = ""                 # its switch port (in the switch namespace)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}({self.ip})"


@dataclass
class Snmpd:
    host: Host
    pid: int
    port: int
    community: str
    v3_users: list[dict]
    conf_path: str
    proc: subprocess.Popen

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


class Lab:
    """A client LAN of `hosts` ordinary hosts, a gateway (.1) and the probe (.2), on `subnet`."""

    def __init__(self, hosts: int = 3, *, snmp_hosts: int = 0, subnet: str | None = None,
                 mirror: bool = True, prefix: str | None = None):
        if (why := lab_available()) is not None:
            raise LabError(why)
        n = next(_counter)
        self.prefix = prefix or f"sv{os.getpid()}x{n}"
        # A /24 that only ever exists inside this lab's namespaces.
        self.subnet = ipaddress.ip_network(subnet or f"10.{200 + (os.getpid() % 50)}.{n % 250}.0/24")
        self._addrs = self.subnet.hosts()
        self.switch_ns = f"{self.prefix}-sw"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.hosts: list[Host] = []
        self.snmpds: list[Snmpd] = []
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        os.chmod(self.tmpdir, 0o755)
        self.mirror = mirror
        self._next_port = 0
        self._destroyed = False
        _live_labs.add(self)
        try:
            self._make_ns(self.switch_ns)
            self._ip_sw("link", "add", "br0", "type", "bridge")
            # No STP delay, and learn as a switch does (a port then sees only its own unicast).
            self._ip_sw("link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
            self._ip_sw("link", "set", "br0", "up")
            self.gateway = self._add_host("gw", next(self._addrs))
            self.probe = self._add_host("probe", next(self._addrs))
            if mirror:
                self._make_mirror()
            for i in range(hosts):
                self.hosts.append(self._add_host(f"h{i}", next(self._addrs)))
            for i in range(snmp_hosts):
                self.start_snmpd(self.hosts[i])
        except BaseException:
            self.destroy()
            raise

    # -- building -------------------------------------------------------------------------------
    def _make_ns(self, ns: str) -> None:
        _sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        _sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _ip_sw(self, *args: str) -> None:
        _sh(["ip", "-n", self.switch_ns, *args])

    @staticmethod
    def _offloads_off(ns: str, dev: str) -> None:
        # veth would otherwise coalesce segments into 64 KiB frames no real NIC puts on a wire.
        if shutil.which("ethtool"):
            _sh(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                 "tx", "off"], check=False)

    def _mac(self, index: int) -> str:
        # Locally administered, unique per lab and host.
        lab_id = hash(self.prefix) & 0xFFFF
        return "02:5e:%02x:%02x:%02x:%02x" % (lab_id >> 8, lab_id & 0xFF, (index >> 8) & 0xFF, index & 0xFF)

    def _add_host(self, name: str, ip: ipaddress.IPv4Address) -> Host:
        ns = f"{self.prefix}-{name}"
        port = f"p{self._next_port}"
        mac = self._mac(self._next_port + 1)
        self._next_port += 1
        self._make_ns(ns)
        # Create the pair inside the switch namespace, then move the host end into the host namespace.
        self._ip_sw("link", "add", port, "type", "veth", "peer", "name", "eth0")
        self._ip_sw("link", "set", "eth0", "netns", ns)
        self._ip_sw("link", "set", port, "master", "br0")
        self._ip_sw("link", "set", port, "up")
        _sh(["ip", "-n", ns, "link", "set", "eth0", "address", mac])
        _sh(["ip", "-n", ns, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0"])
        _sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        host = Host(name, ns, ip, mac, "eth0", port)
        if name != "gw" and hasattr(self, "gateway"):
            _sh(["ip", "-n", ns, "route", "add", "default", "via", str(self.gateway.ip)], check=False)
        self._offloads_off(ns, "eth0")
        self._offloads_off(self.switch_ns, port)
        if self.mirror and hasattr(self, "span_port"):
            self._mirror_port(port)
        return host

    def _make_mirror(self) -> None:
        """The probe's second interface `mirror0` receives a copy of every frame entering the switch."""
        self.span_port = "span"
        self._mirrored: list[str] = []
        self._span_pair()
        for h in (self.gateway, self.probe):
            self._mirror_port(h.port)

    def _span_pair(self) -> None:
        self._ip_sw("link", "add", "span", "type", "veth", "peer", "name", "mirror0")
        self._ip_sw("link", "set", "mirror0", "netns", self.probe.ns)
        self._ip_sw("link", "set", "span", "up")
        _sh(["ip", "-n", self.probe.ns, "link", "set", "mirror0", "up"])
        self._offloads_off(self.switch_ns, "span")
        self._offloads_off(self.probe.ns, "mirror0")
        self.probe.extra["mirror"] = "mirror0"

    def _mirror_port(self, port: str, *, again: bool = False) -> None:
        sw = ["ip", "netns", "exec", self.switch_ns]
        if again:  # the SPAN port was recreated: the old filter's mirror target is gone
            _sh(sw + ["tc", "filter", "del", "dev", port, "parent", "ffff:"], check=False)
        else:
            _sh(sw + ["tc", "qdisc", "add", "dev", port, "ingress"])
            self._mirrored.append(port)
        _sh(sw + ["tc", "filter", "add", "dev", port, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
                  "0", "0", "action", "mirred", "egress", "mirror", "dev", "span"], check=not again)  # (a loop's end may be gone)

    def unplug_mirror(self) -> None:
        """Delete the probe's mirror port (both ends of its veth pair), as when a USB NIC is pulled."""
        _sh(["ip", "-n", self.probe.ns, "link", "del", "mirror0"], check=False, timeout=10)

    def replug_mirror(self) -> None:
        """Create the mirror port again under the same name (a new interface index), mirroring as before."""
        self._span_pair()
        for port in self._mirrored:
            self._mirror_port(port, again=True)

    def add_host(self, name: str | None = None, ip: str | None = None) -> Host:
        """Plug in one more host: the next free address, or `ip` (which may be one a host already has:
        two hosts configured with the same address)."""
        host = self._add_host(name or f"h{len(self.hosts)}",
                              ipaddress.IPv4Address(ip) if ip is not None else next(self._addrs))
        self.hosts.append(host)
        return host

    def remove_host(self, host: Host) -> None:
        """Unplug a host: its processes end, its namespace and switch port go away."""
        for proc in [p for p in self.procs if getattr(p, "_lab_ns", None) == host.ns]:
            self._end(proc)
        _sh(["ip", "netns", "del", host.ns], check=False)
        if host.ns in self.namespaces:
            self.namespaces.remove(host.ns)
        if host in self.hosts:
            self.hosts.remove(host)

    def add_loop(self, rate: str = "4mbit") -> tuple[str, str]:
        """A switching loop: a veth pair whose two ends are both ports of the switch (STP is off), so
        every broadcast circulates for ever. Each end's egress is throttled by a tc tbf qdisc to `rate`,
        so the storm cannot eat the machine; the SPAN session also mirrors the two ends (a real switch
        mirrors every port of the VLAN), so the probe sees each pass. Undo with remove_loop()."""
        n = next(_counter)
        a, b = f"lpa{n}", f"lpb{n}"
        self._ip_sw("link", "add", a, "type", "veth", "peer", "name", b)
        try:
            for end in (a, b):
                self._offloads_off(self.switch_ns, end)
                _sh(["ip", "netns", "exec", self.switch_ns, "tc", "qdisc", "add", "dev", end, "root", "tbf",
                     "rate", rate, "burst", "4kb", "latency", "10ms"])
                if self.mirror:
                    self._mirror_port(end)
            for end in (a, b):
                self._ip_sw("link", "set", end, "master", "br0")
                self._ip_sw("link", "set", end, "up")
        except BaseException:
            self.remove_loop((a, b))
            raise
        return a, b

    def remove_loop(self, loop: tuple[str, str]) -> None:
        """Unplug the loop (deleting one end of a veth pair deletes both); the storm ends at once."""
        _sh(["ip", "-n", self.switch_ns, "link", "del", loop[0]], check=False, timeout=10)

    def add_loss(self, host: Host, percent: int) -> str:
        """The switch drops `percent`% of the frames `host` sends, at random, after the mirror has seen
        them (a lossy path: the sender's TCP retransmits). nftables in the switch namespace (bridge
        forward hook, `numgen random`), because kernels without sch_netem cannot `tc ... netem loss`.
        Returns the table name for remove_loss()."""
        if shutil.which("nft") is None:
            raise LabError("needs nft (Debian package nftables)")
        table = f"loss{next(_counter)}"
        rules = (f"table bridge {table} {{\n chain drop_some {{\n"
                 "  type filter hook forward priority 0; policy accept;\n"
                 f"  ether saddr {host.mac} numgen random mod 100 < {int(percent)} drop\n }}\n}}")
        _sh(["ip", "netns", "exec", self.switch_ns, "nft", "-f", "-"], input=rules + "\n")
        return table

    def remove_loss(self, table: str) -> None:
        _sh(["ip", "netns", "exec", self.switch_ns, "nft", "delete", "table", "bridge", table], check=False)

    # -- running things -------------------------------------------------------------------------
    def cmd(self, host: Host | str, argv: Sequence[str]) -> list[str]:
        ns = host.ns if isinstance(host, Host) else host
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, host: Host | str, argv: Sequence[str], *, check: bool = True, timeout: float = 60,
            **kw) -> subprocess.CompletedProcess:
        return _sh(self.cmd(host, argv), check=check, timeout=timeout, **kw)

    def popen(self, host: Host | str, argv: Sequence[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(self.cmd(host, argv), start_new_session=True, **kw)
        proc._lab_ns = host.ns if isinstance(host, Host) else host  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def _end(self, proc: subprocess.Popen, timeout: float = 5) -> None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
                proc.terminate()
                proc.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    proc.kill()
                    proc.wait(timeout)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream:
                stream.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self, proc: subprocess.Popen, timeout: float = 5) -> None:
        self._end(proc, timeout)

    def start_capture(self, path: str, *, host: Host | None = None, iface: str | None = None, snaplen: int = 0,
                      count: int = 1_000_000, seconds: float = 300) -> subprocess.Popen:
        """tcpdump writing `path` from the probe's mirror port (or `iface` on `host`), bounded by a frame
        count and a time limit; returns once tcpdump has its socket open and the file header is written.
        End it with stop_capture()."""
        host = host or self.probe
        iface = iface or ("mirror0" if host is self.probe and self.mirror else "eth0")
        proc = self.popen(host, ["timeout", str(int(seconds)), "tcpdump", "-i", iface, "-n", "-U", "-s", str(snaplen),
                                 "-c", str(count), "-w", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (os.path.exists(path) and os.path.getsize(path) >= 24):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._end(proc)
                raise LabError(f"tcpdump on {host.name}:{iface} did not start")
            time.sleep(0.05)
        time.sleep(0.3)  # the header is written just before the socket starts delivering
        return proc

    def stop_capture(self, proc: subprocess.Popen) -> None:
        """Let the last frames reach the file, then end tcpdump (it flushes on SIGTERM)."""
        time.sleep(0.3)
        self._end(proc)

    # -- real peers -----------------------------------------------------------------------------
    def start_snmpd(self, host: Host, *, community: str = "lab-public", port: int = 161,
                    v3_users: list[dict] | None = None, sys_name: str | None = None,
                    extra_conf: str = "") -> Snmpd:
        """A real Net-SNMP agent on `host`: v2c community and v3 users (default: one authPriv
        SHA-256/AES-256 user `labv3`)."""
        snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
        if not os.path.exists(snmpd):
            raise LabError("needs snmpd (Debian package snmpd)")
        if v3_users is None:
            v3_users = [{"user": "labv3", "auth": "SHA-256", "auth_key": "authpass123",
                         "priv": "AES-256", "priv_key": "privpass123"}]
        d = tempfile.mkdtemp(prefix=f"snmpd-{host.name}-", dir=self.tmpdir)
        conf = os.path.join(d, "snmpd.conf")
        lines = [f"agentAddress udp:{host.ip}:{port}",
                 f"rocommunity {community} {self.subnet}",
                 f"sysName {sys_name or host.name + '.lab'}",
                 "sysLocation sitevigil lab", "sysContact lab@example.invalid",
                 "sysDescr Linux lab host (Net-SNMP agent for sitevigil tests)"]
        for u in v3_users:
            parts = ["createUser", u["user"]]
            if u.get("auth"):
                parts += [u["auth"], f'"{u["auth_key"]}"']
                if u.get("priv"):
                    parts += [u["priv"], f'"{u["priv_key"]}"']
            lines.append(" ".join(parts))
            level = "priv" if u.get("priv") else ("auth" if u.get("auth") else "noauth")
            lines.append(f"rouser {u['user']} {level}")
        lines.append(extra_conf)
        with open(conf, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        env = dict(os.environ, SNMP_PERSISTENT_DIR=d, MIBS="")
        proc = self.popen(host, [snmpd, "-f", "-Lo", "-C", "-I", "-smux", "-c", conf, "-p", os.path.join(d, "pid")],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The agent's pid is the one of `ip netns exec`'s exec'd child: the same pid.
        agent = Snmpd(host, proc.pid, port, community, v3_users, conf, proc)
        self._wait_snmp(agent)
        self.snmpds.append(agent)
        return agent

    def _wait_snmp(self, agent: Snmpd, timeout: float = 10) -> None:
        getter = shutil.which("snmpget")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if agent.proc.poll() is not None:
                raise LabError(f"snmpd on {agent.host} exited with {agent.proc.returncode}")
            if getter is None:
                time.sleep(0.5)
                return
            r = self.run(agent.host, [getter, "-v2c", "-c", agent.community, "-t", "0.3", "-r", "0",
                                      f"{agent.host.ip}:{agent.port}", "1.3.6.1.2.1.1.5.0"],
                         check=False, env=dict(os.environ, MIBS=""))
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise LabError(f"snmpd on {agent.host} did not answer within {timeout}s")

    def restart_snmpd(self, agent: Snmpd) -> Snmpd:
        self._end(agent.proc)
        self.snmpds.remove(agent)
        return self.start_snmpd(agent.host, community=agent.community, port=agent.port, v3_users=agent.v3_users)

    # -- teardown -------------------------------------------------------------------------------
    def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        for proc in list(self.procs):
            self._end(proc)
        for ns in reversed(self.namespaces):
            # Anything still running inside (started by a test by hand) is ended by pid first.
            r = _sh(["ip", "netns", "pids", ns], check=False)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _sh(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        _live_labs.discard(self)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def __hash__(self) -> int:
        return id(self)


@atexit.register
def _destroy_leftovers() -> None:
    for lab in list(_live_labs):
        lab.destroy()
