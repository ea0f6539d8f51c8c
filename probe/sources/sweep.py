"""Active discovery: who answers on the client's subnets, with which MAC, and does it speak SNMP.

    result = sweep(plan_sweep(subnets, credentials), rate_pps=200)

Three phases, each bounded in packets per second and in time:
1. ARP for addresses on a subnet one of the probe's interfaces sits on. Who-has frames are built once
   (one template; only the target address changes) and sent in rate-limited batches on a raw
   AF_PACKET socket, while a receive thread collects the replies (scapy's srp loop is far too slow
   for this). Unanswered addresses are asked again once, as arp-scan does.
2. ICMP echo for addresses beyond the local subnets (routed subnets), the same way on a raw ICMP socket.
3. An SNMP GET of a few system scalars to every live host, trying the subnet's credentials in order,
   many hosts at once but starting at most rate_pps GETs a second; an ICMP port-unreachable for
   UDP/161 ends a host's probe early (no agent there).

Everything here is about the wire. What the answers mean (vendor, device type, inventory) is
decided downstream in probe/state.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from probe.sources import interfaces
from probe.sources.snmp.client import SnmpError, Varbind, format_oid, parse_oid
from probe.sources.snmp.engine import Engine

if TYPE_CHECKING:
    from probe.config import SnmpCredential

_log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_ALL = 0x0003

# One GET, the scalars that say what a device is. Missing ones come back as noSuch*.
IDENTITY_OIDS: dict[str, str] = {
    "sys_descr": "1.3.6.1.2.1.1.1.0",
    "sys_object_id": "1.3.6.1.2.1.1.2.0",
    "sys_name": "1.3.6.1.2.1.1.5.0",
    "sys_services": "1.3.6.1.2.1.1.7.0",
    "ip_forwarding": "1.3.6.1.2.1.4.1.0",             # IP-MIB: 1 = forwarding (a router)
    "bridge_ports": "1.3.6.1.2.1.17.1.2.0",           # BRIDGE-MIB dot1dBaseNumPorts (a switch)
    "printer_name": "1.3.6.1.2.1.43.5.1.1.16.1",      # Printer-MIB prtGeneralPrinterName.1
    "ups_model": "1.3.6.1.2.1.33.1.1.2.0",            # UPS-MIB upsIdentModel
}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class SweepError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# What to sweep


@dataclass(frozen=True)
class SweepTarget:
    """One subnet to sweep, and how: on which interface by ARP, else by ICMP."""

    network: ipaddress.IPv4Network
    interface: str | None = None           # ARP out of this interface; None: ICMP (not on a local link)
    src_mac: str | None = None
    src_ip: ipaddress.IPv4Address | None = None
    credentials: tuple["SnmpCredential", ...] = ()
    exclude: frozenset[ipaddress.IPv4Address] = frozenset()  # the probe's own addresses

    @property
    def method(self) -> str:
        return "arp" if self.interface else "icmp"

    def addresses(self, limit: int) -> list[ipaddress.IPv4Address]:
        out = []
        for addr in self.network.hosts() if self.network.prefixlen < 31 else self.network:
            if addr in self.exclude:
                continue
            out.append(addr)
            if len(out) >= limit:
                break
        return out


def plan_sweep(networks: Iterable[tuple[ipaddress.IPv4Network, tuple["SnmpCredential", ...]]], *,
               method: str = "auto", local: Sequence[interfaces.LocalInterface] | None = None) -> list[SweepTarget]:
    """Targets for (network, credentials) pairs: ARP where an interface of ours is on the subnet."""
    if local is None:
        local = interfaces.local_interfaces()
    own = frozenset(a.ip for i in local for a in i.addresses)
    plan = []
    for net, creds in networks:
        if net.version != 4:
            raise SweepError(f"{net}: only IPv4 subnets can be swept")
        iface = None
        if method in ("auto", "arp"):
            for li in local:
                for a in li.addresses:
                    if net.subnet_of(a.network) or a.network.subnet_of(net):
                        iface = (li, a)
                        break
                if iface:
                    break
            if iface is None and method == "arp":
                raise SweepError(f"{net}: no interface of this probe is on that subnet, so it cannot be ARP-swept "
                                 f"(use ICMP: --method icmp)")
        if iface and iface[0].mac:
            link = iface[1].network
            if net.subnet_of(link):
                plan.append(SweepTarget(net, iface[0].name, iface[0].mac, iface[1].ip, tuple(creds), own))
            else:  # a larger subnet than the link: ARP on the link, ICMP for the rest
                plan.append(SweepTarget(link, iface[0].name, iface[0].mac, iface[1].ip, tuple(creds), own))
                for rest in sorted(net.address_exclude(link)):
                    plan.append(SweepTarget(rest, None, None, None, tuple(creds), own))
        else:
            plan.append(SweepTarget(net, None, None, None, tuple(creds), own))
    return plan


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class SnmpIdentity:
    address: str
    credential: str                 # name of the credential that answered
    values: dict[str, Any]          # IDENTITY_OIDS name -> value (str for text, int, dotted OID)

    @property
    def sys_descr(self) -> str | None:
        return self.values.get("sys_descr")

    @property
    def sys_object_id(self) -> str | None:
        return self.values.get("sys_object_id")

    @property
    def sys_name(self) -> str | None:
        return self.values.get("sys_name")

    def as_dict(self) -> dict[str, Any]:
        return {"credential": self.credential, **self.values}


@dataclass
class LiveHost:
    ip: str
    mac: str | None                  # None when found by ICMP (beyond the local link)
    method: str                      # "arp" or "icmp"
    rtt: float | None = None         # seconds from our last request to the reply
    other_macs: list[str] = field(default_factory=list)  # more than one MAC answered: an address conflict
    snmp: SnmpIdentity | None = None


@dataclass
class SweepResult:
    started: float
    duration: float
    hosts: list[LiveHost]
    targets: list[SweepTarget]
    sent: int = 0
    addresses: int = 0
    warnings: list[str] = field(default_factory=list)
    complete: bool = True            # False when the time bound cut it short


# ---------------------------------------------------------------------------------------------------
# Pacing


class Pacer:
    """Token bucket: at most `rate` packets per second, sent in small batches (one per ~10 ms tick)."""

    def __init__(self, rate: float, *, clock=time.monotonic, sleep=time.sleep):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = max(1.0, self.rate / 100.0)
        self._clock, self._sleep = clock, sleep
        self._tokens = 1.0
        self._last = clock()

    def take(self, want: int) -> int:
        """Block until at least one packet may go; return how many (<= want) may go now."""
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                n = min(want, int(self._tokens))
                self._tokens -= n
                return n
            self._sleep(max((1.0 - self._tokens) / self.rate, 0.001))


# ---------------------------------------------------------------------------------------------------
# ARP


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _fmt_mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def arp_request_template(src_mac: str, src_ip: str) -> bytes:
    """A broadcast ARP who-has from us, padded to the 60-byte minimum; bytes 38:42 are the target.

    Packed by hand rather than with scapy: importing scapy costs a one-shot `sitevigil sweep` more
    than sending the whole sweep does (the unit tests check the frame with scapy's decoder)."""
    mac = _mac_bytes(src_mac)
    frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(src_ip)
             + b"\0" * 6 + b"\0\0\0\0")
    return frame.ljust(60, b"\0")


def parse_arp_reply(frame: bytes) -> tuple[str, str] | None:
    """(sender IP, sender MAC) of an Ethernet ARP reply, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4 or op != 2:
        return None
    return socket.inet_ntoa(frame[28:32]), _fmt_mac(frame[22:28])


class _Listener(threading.Thread):
    """Reads replies from a socket until stopped; bounded by the number of addresses it waits for."""

    def __init__(self, sock: socket.socket, parse: Callable[[bytes], tuple[str, Any] | None], wanted: set[str]):
        super().__init__(daemon=True, name="sweep-listener")
        self.sock, self.parse, self.wanted = sock, parse, wanted
        self.answers: dict[str, list[tuple[Any, float]]] = {}
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                r, _, _ = select.select([self.sock], [], [], 0.02)
                if not r:
                    continue
                for _ in range(256):  # drain what is queued, bounded per wake-up
                    try:
                        data = self.sock.recv(2048, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    got = self.parse(data)
                    if got is None or got[0] not in self.wanted:
                        continue
                    with self.lock:
                        seen = self.answers.setdefault(got[0], [])
                        if len(seen) < 8 and all(v != got[1] for v, _ in seen):
                            seen.append((got[1], time.monotonic()))
        except BaseException as exc:  # surfaced by the sender
            self.error = exc

    def answered(self, addr: str) -> bool:
        return addr in self.answers

    def stop(self) -> None:
        self.stop_event.set()
        self.join(2.0)


def _run_probe(send_one: Callable[[str], None], sock: socket.socket, parse, addrs: list[str], *, pacer: Pacer,
               attempts: int, retry_after: float, wait: float, deadline: float, phase: str,
               progress: Progress | None, stop: threading.Event | None = None,
               ) -> tuple[dict[str, list[tuple[Any, float]]], dict[str, float], int, bool]:
    """Send to every address (paced), again to the silent ones, then wait for late replies."""
    listener = _Listener(sock, parse, set(addrs))
    listener.start()
    sent_at: dict[str, float] = {}
    sent = 0
    complete = True
    total = len(addrs) * attempts
    try:
        for attempt in range(attempts):
            todo = [a for a in addrs if not listener.answered(a)]
            if not todo:
                break
            i = 0
            while i < len(todo):
                if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    complete = False
                    break
                if attempt:
                    # every request gets retry_after to be answered before it is asked again
                    pause = sent_at[todo[i]] + retry_after - time.monotonic()
                    if pause > 0:
                        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                        continue
                    if listener.answered(todo[i]):
                        i += 1
                        continue
                n = pacer.take(1 if attempt else len(todo) - i)
                for addr in todo[i:i + n]:
                    sent_at[addr] = time.monotonic()
                    send_one(addr)
                    sent += 1
                i += n
                if progress:
                    progress(phase, attempt * len(addrs) + i, total)
                if listener.error:
                    raise listener.error
            if not complete:
                break
        # Late replies: wait until everyone answered or `wait` after the last request.
        end = min(time.monotonic() + wait, deadline)
        while time.monotonic() < end and len(listener.answers) < len(addrs) and not (stop and stop.is_set()):
            time.sleep(0.01)
        if progress:
            progress(phase, total, total)
    finally:
        listener.stop()
    if listener.error:
        raise listener.error
    return dict(listener.answers), sent_at, sent, complete


def arp_sweep(interface: str, src_mac: str, src_ip: str, addrs: Sequence[str], *, rate_pps: float,
              attempts: int = 2, retry_after: float = 0.5, wait: float = 0.5, deadline: float | None = None,
              progress: Progress | None = None, stop: threading.Event | None = None,
              ) -> tuple[list[LiveHost], int, bool]:
    """ARP who-has for every address; returns (live hosts, frames sent, finished within the deadline)."""
    template = bytearray(arp_request_template(src_mac, src_ip))
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    except PermissionError:
        raise SweepError("ARP sweep needs root or CAP_NET_RAW (raw packet socket)") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            sock.bind((interface, ETH_P_ARP))
        except OSError as exc:
            raise SweepError(f"cannot open interface {interface} for ARP: {exc.strerror}") from None

        def send_one(addr: str) -> None:
            template[38:42] = socket.inet_aton(addr)
            try:
                sock.send(template)
            except OSError as exc:
                if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise SweepError(f"sending ARP on {interface}: {exc.strerror}") from None

        answers, sent_at, sent, complete = _run_probe(
            send_one, sock, parse_arp_reply, list(addrs), pacer=Pacer(rate_pps), attempts=attempts,
            retry_after=retry_after, wait=wait, deadline=deadline or time.monotonic() + 3600, phase="arp",
            progress=progress, stop=stop)
    finally:
        sock.close()
    hosts = []
    for addr in addrs:
        seen = answers.get(addr)
        if seen:
            macs = [m for m, _ in seen]
            hosts.append(LiveHost(addr, macs[0], "arp", max(0.0, seen[0][1] - sent_at.get(addr, seen[0][1])),
                                  other_macs=macs[1:]))
    return hosts, sent, complete


# ---------------------------------------------------------------------------------------------------
# ICMP echo


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def icmp_echo_request(ident: int, seq: int, payload: bytes = b"sitevigil-sweep") -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = _checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload


def parse_icmp_reply(ident: int) -> Callable[[bytes], tuple[str, int] | None]:
    def parse(packet: bytes) -> tuple[str, int] | None:
        if len(packet) < 28 or packet[0] >> 4 != 4:
            return None
        ihl = (packet[0] & 0x0F) * 4
        if len(packet) < ihl + 8 or packet[ihl] != 0:  # echo reply
            return None
        rid, seq = struct.unpack_from("!HH", packet, ihl + 4)
        if rid != ident:
            return None
        return socket.inet_ntoa(packet[12:16]), seq
    return parse


def icmp_sweep(addrs: Sequence[str], *, rate_pps: float, attempts: int = 2, retry_after: float = 1.0,
               wait: float = 1.0, deadline: float | None = None, progress: Progress | None = None,
               stop: threading.Event | None = None) -> tuple[list[LiveHost], int, bool]:
    """ICMP echo to every address; returns (live hosts, packets sent, finished within the deadline)."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except PermissionError:
        raise SweepError("ICMP sweep needs root or CAP_NET_RAW (raw ICMP socket)") from None
    ident = (os.getpid() ^ random.getrandbits(16)) & 0xFFFF
    seqs = {}
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

        def send_one(addr: str) -> None:
            seq = seqs.setdefault(addr, len(seqs) & 0xFFFF)
            try:
                sock.sendto(icmp_echo_request(ident, seq), (addr, 0))
            except OSError as exc:  # unreachable network, no route: the host is simply not found
                if exc.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                     errno.EACCES, errno.EINVAL):
                    raise SweepError(f"sending ICMP echo to {addr}: {exc.strerror}") from None

        answers, sent_at, sent, complete = _run_probe(
            send_one, sock, parse_icmp_reply(ident), list(addrs), pacer=Pacer(rate_pps), attempts=attempts,
            retry_after=retry_after, wait=wait, deadline=deadline or time.monotonic() + 3600, phase="icmp",
            progress=progress, stop=stop)
    finally:
        sock.close()
    hosts = [LiveHost(a, None, "icmp", max(0.0, answers[a][0][1] - sent_at.get(a, answers[a][0][1])))
             for a in addrs if a in answers]
    return hosts, sent, complete


# ---------------------------------------------------------------------------------------------------
# SNMP: one GET of the identity scalars, behind one small function (swap it for the real client).


class SnmpGetter:
    """One GET with one credential, through the project's SNMP engine (probe/sources/snmp/engine.py,
    one per event loop)."""

    def __init__(self, *, timeout: float, retries: int, port: int = 161):
        self.timeout, self.retries, self.port = timeout, retries, port

    async def get(self, address: str, cred: "SnmpCredential", oids: Sequence[str]) -> list[Varbind] | None:
        """Varbinds, or None when the agent did not answer with this credential."""
        session = await Engine.for_running_loop().session(address, cred, port=self.port, timeout=self.timeout,
                                                             retries=self.retries)
        try:
            return await session.get([parse_oid(o) for o in oids])
        except SnmpError:
            return None
        finally:
            await session.close()

    def close(self) -> None:
        try:
            Engine.for_running_loop().close()
        except RuntimeError:  # no running loop: nothing was opened
            pass


def _identity_values(varbinds: Sequence[Varbind]) -> dict[str, Any]:
    by_oid = {format_oid(v.oid): v for v in varbinds}
    out: dict[str, Any] = {}
    for name, oid in IDENTITY_OIDS.items():
        v = by_oid.get(oid)
        if v is None or v.value is None:
            continue
        if isinstance(v.value, bytes):
            out[name] = v.value.decode("utf-8", "replace").strip("\0").strip()
        elif v.type == "ObjectIdentifier":
            out[name] = format_oid(v.value)
        else:
            out[name] = v.value
    return out


class AsyncPacer:
    """At most `rate` request starts per second across every coroutine that awaits it."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def snmp_identify(getter: SnmpGetter, address: str, credentials: Sequence["SnmpCredential"],
                        pacer: AsyncPacer | None = None) -> SnmpIdentity | None:
    """The first credential that gets an answer, and the identity scalars it got."""
    for cred in credentials:
        if pacer is not None:
            await pacer.wait()
        vbs = await getter.get(address, cred, list(IDENTITY_OIDS.values()))
        if vbs is not None:
            return SnmpIdentity(address, cred.name, _identity_values(vbs))
    return None


class _PortUnreachable(threading.Thread):
    """Watches for ICMP port-unreachable about UDP/161: that host runs no agent, stop waiting for it."""

    def __init__(self, on_closed: Callable[[str], None], port: int = 161):
        super().__init__(daemon=True, name="sweep-icmp-unreach")
        self.on_closed, self.port = on_closed, port
        self.stop_event = threading.Event()
        try:
            self.sock: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except OSError:
            self.sock = None

    def run(self) -> None:
        if self.sock is None:
            return
        while not self.stop_event.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                pkt = self.sock.recv(2048, socket.MSG_DONTWAIT)
            except OSError:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            # ICMP type 3 code 3, quoting our IP header and UDP header
            if len(pkt) < ihl + 8 + 20 + 8 or pkt[ihl] != 3 or pkt[ihl + 1] != 3:
                continue
            inner = pkt[ihl + 8:]
            iihl = (inner[0] & 0x0F) * 4
            if inner[9] != 17 or len(inner) < iihl + 4:
                continue
            dport = struct.unpack_from("!H", inner, iihl + 2)[0]
            if dport == self.port:
                self.on_closed(socket.inet_ntoa(inner[16:20]))

    def stop(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(1.0)
        if self.sock is not None:
            self.sock.close()


async def snmp_probe(hosts: Sequence[LiveHost], credentials_for: Callable[[str], Sequence["SnmpCredential"]], *,
                     timeout: float, retries: int, concurrency: int = 64, deadline: float | None = None,
                     progress: Progress | None = None, getter: SnmpGetter | None = None,
                     rate_pps: float | None = None) -> None:
    """Fill host.snmp for every host whose agent answers one of its credentials; the GETs start at
    most `rate_pps` per second, like the sweep's other probes."""
    pacer = AsyncPacer(rate_pps) if rate_pps else None
    loop = asyncio.get_running_loop()
    own_getter = getter is None
    getter = getter or SnmpGetter(timeout=timeout, retries=retries)
    sem = asyncio.Semaphore(max(1, concurrency))
    tasks: dict[str, asyncio.Task] = {}
    done = 0

    def closed(addr: str) -> None:
        task = tasks.get(addr)
        if task is not None and not task.done():
            task.cancel()

    watcher = _PortUnreachable(lambda a: loop.call_soon_threadsafe(closed, a))
    watcher.start()

    async def one(host: LiveHost) -> None:
        nonlocal done
        creds = credentials_for(host.ip)
        try:
            if creds:
                async with sem:
                    host.snmp = await snmp_identify(getter, host.ip, creds, pacer)
        except asyncio.CancelledError:
            pass  # port unreachable: no agent
        except Exception as exc:  # one odd agent must not end the sweep
            _log.debug("SNMP probe of %s failed: %s", host.ip, exc)
        finally:
            done += 1
            if progress:
                progress("snmp", done, len(hosts))

    try:
        for h in hosts:
            tasks[h.ip] = asyncio.ensure_future(one(h))
        if tasks:
            remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
            _, pending = await asyncio.wait(list(tasks.values()), timeout=remaining)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
    finally:
        watcher.stop()
        if own_getter:
            getter.close()


# ---------------------------------------------------------------------------------------------------
# The whole sweep


def expected_duration(n_arp: int, n_icmp: int, rate_pps: float, attempts: int = 2) -> float:
    """How long the packet phases should take at `rate_pps`, for the overall time bound."""
    return (n_arp + n_icmp) * attempts / rate_pps + 3.0


def sweep(targets: Sequence[SweepTarget], *, rate_pps: float, max_hosts: int = 4096, attempts: int = 2,
          snmp: bool = True, snmp_timeout: float = 2.0, snmp_retries: int = 1, snmp_concurrency: int = 64,
          max_duration: float | None = None, progress: Progress | None = None,
          stop: threading.Event | None = None) -> SweepResult:
    """Sweep every target (ARP or ICMP), then SNMP-probe the live hosts. Bounded by `max_duration`."""
    started_wall, t0 = time.time(), time.monotonic()
    warnings: list[str] = []
    arp_jobs: dict[tuple, list[str]] = {}
    icmp_addrs: list[str] = []
    creds_by_addr: dict[str, tuple] = {}
    budget = max_hosts
    for t in targets:
        addrs = t.addresses(budget)
        usable = t.network.num_addresses - (2 if t.network.prefixlen < 31 else 0)
        if usable > len(addrs) + sum(1 for a in t.exclude if a in t.network):
            warnings.append(f"{t.network}: only the first {len(addrs)} addresses swept (sweep.max_hosts={max_hosts})")
        budget -= len(addrs)
        for a in addrs:
            s = str(a)
            if s in creds_by_addr:
                continue
            creds_by_addr[s] = t.credentials
            if t.interface:
                arp_jobs.setdefault((t.interface, t.src_mac, str(t.src_ip)), []).append(s)
            else:
                icmp_addrs.append(s)
        if budget <= 0:
            break
    n_arp = sum(len(v) for v in arp_jobs.values())
    if max_duration is None:
        max_duration = 2 * expected_duration(n_arp, len(icmp_addrs), rate_pps, attempts) + 4 * snmp_timeout * (snmp_retries + 1)
    deadline = t0 + max_duration
    hosts: list[LiveHost] = []
    sent = 0
    complete = True
    for (iface, mac, ip), addrs in arp_jobs.items():
        found, n, ok = arp_sweep(iface, mac, ip, addrs, rate_pps=rate_pps, attempts=attempts, deadline=deadline,
                                 progress=progress, stop=stop)
        hosts += found
        sent += n
        complete &= ok
    if icmp_addrs:
        found, n, ok = icmp_sweep(icmp_addrs, rate_pps=rate_pps, attempts=attempts, deadline=deadline,
                                  progress=progress, stop=stop)
        hosts += found
        sent += n
        complete &= ok
    for h in hosts:
        if h.other_macs:
            warnings.append(f"{h.ip}: answered by several MACs ({', '.join([h.mac or '?'] + h.other_macs)}): "
                            f"an address conflict or ARP spoofing")
    if snmp and hosts and any(creds_by_addr.get(h.ip) for h in hosts) and not (stop and stop.is_set()):
        asyncio.run(snmp_probe(hosts, lambda a: creds_by_addr.get(a, ()), timeout=snmp_timeout,
                               retries=snmp_retries, concurrency=snmp_concurrency, deadline=deadline,
                               progress=progress, rate_pps=rate_pps))
    if time.monotonic() >= deadline:
        complete = False
        warnings.append(f"sweep cut short at its time bound ({max_duration:.0f}s)")
    hosts.sort(key=lambda h: ipaddress.ip_address(h.ip))
    return SweepResult(started_wall, time.monotonic() - t0, hosts, list(targets), sent,
                       len(creds_by_addr), warnings, complete)
