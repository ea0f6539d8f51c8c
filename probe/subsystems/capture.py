"""The "capture" subsystem: read the mirror port through the TPACKET_V3 ring and feed every frame on.

    ring (probe.fastpath.PacketRing.next_records: each frame parsed in the ring's block walk)
         -> FramePipeline: count, aggregate, detect
    what the detectors see in each window -> ctx.ledger
    each closed window -> ctx.anomaly (per-device rates: frames, bytes, SYNs, unanswered SYNs, DNS errors,
                          ICMP unreachables, broadcasts) and ctx.devices (ARP IP->MAC bindings)
    rare frames (DHCP, mDNS, LLMNR, NetBIOS, LLDP, CDP) -> ctx.devices, at most PASSIVE_PER_SECOND

With capture.fanout == 1 one ring is read by a thread (the ring's C loop releases the GIL, so the event
loop keeps serving). With fanout > 1, that many worker processes each read their own ring in one
PACKET_FANOUT hash group (the kernel splits flows between them, so more than one core works), parse
and aggregate their share, and send their counters once a second and each closed window; the daemon
merges the workers' windows of one time slot and judges them as one.

Findings about the probe itself (its own MACs and addresses: its sweeps and SNMP polls cross the mirror
port like anyone's traffic) are left out, except someone else using its address (duplicate_ip).

The subsystem always says how much it missed: the kernel's PACKET_STATISTICS drops (accumulated, the
kernel resets them on every read) and the interface's own rx drops. Health is FAILED with the reason
when the interface is missing, down or not allowed (it keeps retrying), DEGRADED while the kernel is
dropping frames.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from probe import fastpath
from probe.fastpath.layout import F_IPV4, FRAME_DTYPE
from probe.config import CaptureConfig, Config, DetectionConfig
from probe.sources import afpacket
from probe.sources.frames import FrameBatch
from probe.fastpath.rare import decode_rare, rare_index
from probe.exposition.capture_collector import CaptureCollector
from probe.exposition.capture_ring_collector import CaptureRingCollector
from probe.findings.pipeline import CapturePipeline
from probe.state.aggregates import DEVICE_SERIES, device_series, format_mac, merge_parallel
from probe.subsystems.base import Activity, Context, Health, Status

_log = logging.getLogger("sitevigil.capture")

RETRY_SECONDS = 5.0       # how often a failed capture tries to open the interface again
STATS_SECONDS = 1.0       # how often kernel and interface counters are read
DROP_WINDOW_SECONDS = 60  # health stays DEGRADED this long after the kernel last dropped frames
READ_TIMEOUT = 0.2        # longest wait inside the ring, so a stop request is seen quickly
PASSIVE_PER_SECOND = 200  # rare frames (DHCP, mDNS, LLDP...) decoded for the inventory, at most, per second
RING_BATCH = 65536        # frames per ring read at most (the parse buffer: 12 MiB of records)
RING_LINGER = 0.1         # once frames came, how long a ring read keeps taking blocks as they fill (seconds)


@dataclass
class CaptureCounters:
    """What a capture has counted since the subsystem started (one member, or all of them summed)."""

    frames: int = 0
    bytes: int = 0            # wire bytes (VLAN tags included)
    malformed: int = 0        # frames the parser flagged as malformed
    kernel_packets: int = 0   # the kernel's count of frames that reached the socket, drops included
    kernel_drops: int = 0     # frames the kernel dropped because the ring was full
    kernel_freeze_queue: int = 0
    last_frame_ns: int = 0

    def __iadd__(self, other: "CaptureCounters") -> "CaptureCounters":
        for f in dataclasses.fields(self):
            if f.name == "last_frame_ns":
                self.last_frame_ns = max(self.last_frame_ns, other.last_frame_ns)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def add_kernel(self, stats: dict) -> None:
        self.kernel_packets = stats["packets"]
        self.kernel_drops = stats["drops"]
        self.kernel_freeze_queue = stats["freeze_queue_count"]


class FramePipeline:
    """What happens to every captured batch: count it, then parse, aggregate and detect.

    `analysis` is the CapturePipeline (probe.findings.pipeline: parse -> per-window, per-device
    aggregation -> LAN detectors -> its ledger). Without one (a fanout worker with nothing to judge, a
    capture test), the batch is still counted and parsed (malformed counted).
    """

    def __init__(self, counters: CaptureCounters | None = None, *, analysis=None, batch_frames: int = RING_BATCH):
        self.counters = counters if counters is not None else CaptureCounters()
        self.analysis = analysis
        self.parse_frames = None if analysis is not None else fastpath.parse_frames
        self.batch_frames = batch_frames
        self._records = None  # feed_ring's parse buffer, reused

    @property
    def parses(self) -> bool:
        return self.analysis is not None or self.parse_frames is not None

    def feed(self, batch: FrameBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        c = self._count(n, int(batch.wirelen.sum(dtype="uint64")), int(batch.ts_ns[-1]))
        if self.analysis is not None:
            self.analysis.add_batch(batch)
        elif self.parse_frames is not None:
            _records, malformed = self.parse_frames(batch.data, batch.offset, batch.caplen, batch.wirelen,
                                                    batch.ts_ns, batch.vlan)
            c.malformed += int(malformed)

    def feed_ring(self, ring, timeout: float) -> None:
        """Read the next batch from `ring` and feed it: parsed, and aggregated into the open window,
        inside the ring's block walk when the ring can (next_records: no frame bytes copied but the
        rare ones), else feed(ring.next_batch()). A read lingers up to RING_LINGER for more blocks once
        frames came, so at high rates each read (and its Python work) carries tens of thousands of frames."""
        if not self.parses or not hasattr(ring, "next_records"):
            self.feed(ring.next_batch(timeout, self.batch_frames))
            return
        if self._records is None:
            self._records = np.zeros(self.batch_frames, FRAME_DTYPE)
            self._flags = np.zeros(32, np.int64)
        flags = self._flags
        flags[:] = 0
        target = self.analysis.ring_target() if self.analysis is not None else None
        records, malformed, rare, totals, aggregated = ring.next_records(self._records, timeout, 0, flags, target,
                                                                         min(timeout, RING_LINGER))
        n = len(records)
        if n == 0:
            return
        c = self._count(n, int(totals[0]), int(totals[2]))
        if self.analysis is not None:
            self.analysis.add_parsed(records, malformed, rare, totals, flags, aggregated)
        else:
            c.malformed += int(malformed)

    def _count(self, frames: int, nbytes: int, last_ns: int) -> CaptureCounters:
        c = self.counters
        c.frames += frames
        c.bytes += nbytes
        c.last_frame_ns = max(c.last_frame_ns, last_ns)
        return c

    def tick(self, now_ns: int) -> None:
        """Close a window whose time is up even when the link is quiet."""
        if self.analysis is not None:
            self.analysis.tick(now_ns)


def make_analysis(config: Config, *, own_devices=(), on_window=None, findings=None) -> CapturePipeline:
    """The capture analysis: parse -> aggregate -> detect, what it sees reported to `findings`."""
    return CapturePipeline(config.capture, config.detection, own_devices=own_devices, on_window=on_window,
                           findings=findings)


class PassiveFeed:
    """What the capture saw, handed to the inventory (probe.subsystems.devices.Devices: learn_decoded, observe_table):
    DHCP, mDNS, LLMNR, NetBIOS, LLDP and CDP frames decoded off the hot path, at most `max_per_second`
    of them, and the ARP IP->MAC bindings of each closed window (bounded by the window's ARP table)."""

    def __init__(self, target, *, max_per_second: int = PASSIVE_PER_SECOND, clock=time.monotonic,
                 own: Iterable[str] = ()):
        self.target, self.max_per_second, self.clock = target, max_per_second, clock
        self.own = frozenset(a.lower() for a in own)  # the probe itself: not a device of the client's LAN
        self._second, self._used = -1, 0
        self.decoded_total = 0
        self.skipped_total = 0

    def frames(self, batch: FrameBatch, records) -> None:
        idx = rare_index(records)
        if not len(idx):
            return
        second = int(self.clock())
        if second != self._second:
            self._second, self._used = second, 0
        room = max(0, self.max_per_second - self._used)
        self.skipped_total += max(0, len(idx) - room)
        infos = []
        for i in idx[:room]:
            rec = records[int(i)]
            info = decode_rare(batch.frame(int(i)), rec)
            if info is None or info.get("src_mac") in self.own:
                continue
            if int(rec["flags"]) & F_IPV4 and int(rec["src_ip"]):
                info["src_ip"] = str(ipaddress.IPv4Address(int(rec["src_ip"])))
            infos.append(info)
        self._used += min(room, len(idx))
        self.decoded_total += len(infos)
        if infos:
            self.target.learn_decoded(infos)

    def window(self, window) -> None:
        # bounded like the frames: a flood of spoofed ARP must not flood the inventory
        limit = max(1, int(self.max_per_second * window.seconds))
        keys = window.arp.keys
        if len(keys) > limit:
            self.skipped_total += len(keys) - limit
            keys = keys[:limit]
        rows = [(m, str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
                for ip, mac in keys.tolist() if ip and mac and (m := format_mac(int(mac))) not in self.own]
        if rows:
            self.target.observe_table(rows, "arp", ts=window.end_ns / 1e9)


def open_ring(cfg: CaptureConfig, ring_class=None, *, fanout_group: int | None = None):
    """Compile the filter and open the ring as configured; CaptureError says what is wrong."""
    bpf = afpacket.compile_filter(cfg.bpf_filter, cfg.interface) if cfg.bpf_filter.strip() else []
    cls = ring_class or fastpath.PacketRing
    return cls(cfg.interface, block_size=int(cfg.block_size), block_count=int(cfg.block_count),
               block_timeout=float(cfg.block_timeout), promiscuous=cfg.promiscuous, bpf=bpf,
               fanout_group=fanout_group)


class CaptureSubsystem:
    name = "capture"

    def __init__(self, config: Config, ctx: Context, *, ring_class=None, sysfs: str = "/sys/class/net",
                 retry_seconds: float = RETRY_SECONDS, stats_seconds: float = STATS_SECONDS):
        self.config = config.capture
        self.full_config = config
        self.ctx = ctx
        self.status = Status()
        # Built once per configuration, so windows and finding episodes survive a ring reopening.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.own = ctx.devices.own  # the probe's own MACs and addresses, found once by the daemon
        self.passive: PassiveFeed | None = None
        self.analysis = self._make_analysis(config)
        self.ring_class = ring_class
        self.sysfs = sysfs
        self.retry_seconds = retry_seconds
        self.stats_seconds = stats_seconds
        self.counters = CaptureCounters()
        self.interface_drops: dict[str, int] = {}
        self.implementation = fastpath.IMPLEMENTATION
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_drop_at = 0.0
        self._workers: list[multiprocessing.Process] = []
        self.opens_total = 0          # captures started (rings opened, or fanout groups all ready)
        self.interruptions_total = 0  # captures that stopped while running (interface down or gone, errors)

    def _make_analysis(self, config: Config):
        # With fanout > 1 the workers parse and aggregate; this analysis judges their merged windows.
        analysis = make_analysis(config, own_devices=self.own, on_window=self._window_closed, findings=self.ctx.ledger)
        if self.passive is not None:
            analysis.on_records = self.passive.frames
        return analysis

    def _window_closed(self, window) -> None:
        """In the capture thread, after detection: score each device's rates, learn ARP bindings."""
        if self.passive is not None:
            self.passive.window(window)
        anomaly = self.ctx.anomaly
        if anomaly is not None and self._loop is not None and len(window.macs):
            # at most half the score table per window, busiest devices first
            keys, ts, values = device_series(window, max(1, anomaly.max_series // (2 * len(DEVICE_SERIES))))
            # AnomalyScores is not thread-safe: it is updated on the loop, where it is also exported
            self._loop.call_soon_threadsafe(self._score, anomaly, keys, ts, values)

    @staticmethod
    def _score(anomaly, keys, ts, values) -> None:
        try:
            anomaly.update(keys, ts, values)
        except Exception:
            _log.exception("scoring the capture window failed")

    # -- Subsystem interface ----------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if not cfg.enabled:
            self.status.set(Health.DISABLED, "capture.enabled is false")
            return
        if not cfg.interface:
            self.status.set(Health.FAILED, "no capture interface: set capture.interface (no default route "
                                           "to take it from)")
            return
        self._loop = asyncio.get_running_loop()
        self.passive = PassiveFeed(self.ctx.devices, own=self.own)
        self.analysis.on_records = self.passive.frames
        self._stop.clear()
        self._first_attempt.clear()
        target = self._run_thread if cfg.fanout == 1 else self._run_fanout
        self._thread = threading.Thread(target=target, name=f"capture-{cfg.interface}", daemon=True)
        self._thread.start()
        # Return once the first open attempt is over, so health right after start means something.
        await asyncio.to_thread(self._first_attempt.wait, 30)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    async def reload(self, config: Config) -> None:
        if config.capture == self.config and config.detection == self.full_config.detection:
            return
        _log.info("capture configuration changed: reopening the capture")
        await self.stop()
        self.config, self.full_config = config.capture, config
        self.analysis = self._make_analysis(config)
        await self.start()

    def collectors(self) -> Iterable:
        # Frames, bytes and malformed come from the analysis' collector: exported once, not twice.
        return [CaptureRingCollector(self.snapshot, frames=False), CaptureCollector(self.analysis.stats)]

    def routes(self) -> list:
        return []

    def describe(self) -> dict:
        cfg = self.config
        snap = self.snapshot()
        return {"interface": cfg.interface, "bpf_filter": cfg.bpf_filter, "promiscuous": cfg.promiscuous,
                "ring": f"{cfg.block_count} blocks x {int(cfg.block_size)} bytes", "fanout": cfg.fanout,
                "implementation": self.implementation,
                "frames": snap["counters"].frames,
                "kernel_drops": snap["counters"].kernel_drops, "interface_drops": snap["interface_drops"]}

    def activity(self) -> Activity:
        return Activity(frames=int(self.snapshot()["counters"].frames))

    def snapshot(self) -> dict:
        """Counters for the collector and describe(): a copy, consistent under the lock."""
        with self._lock:
            return {"counters": dataclasses.replace(self.counters), "interface_drops": dict(self.interface_drops),
                    "config": self.config, "implementation": self.implementation,
                    "opens": self.opens_total, "interruptions": self.interruptions_total}

    # -- one ring in a thread -----------------------------------------------------------------------
    def _run_thread(self) -> None:
        cfg = self.config
        # What earlier rings (failed ones, or before a reload) counted: counters never go backwards.
        base = self.snapshot()["counters"]
        while not self._stop.is_set():
            try:
                ring = open_ring(cfg, self.ring_class)
            except (afpacket.CaptureError, OSError) as exc:
                self._failed(str(exc))
                self._stop.wait(self.retry_seconds)
                continue
            with self._lock:
                self.opens_total += 1
            self.status.set(Health.OK, self._ok_reason())
            _log.info("capturing on %s (%s ring, %d x %d bytes)", cfg.interface, self.implementation,
                      cfg.block_count, int(cfg.block_size))
            self._first_attempt.set()
            own = CaptureCounters()
            pipeline = FramePipeline(own, analysis=self.analysis)
            next_stats = 0.0
            try:
                while not self._stop.is_set():
                    pipeline.feed_ring(ring, READ_TIMEOUT)
                    now = time.monotonic()
                    if now >= next_stats:
                        next_stats = now + self.stats_seconds
                        pipeline.tick(time.time_ns())
                        own.add_kernel(ring.statistics())
                        self._publish(base, [own])
            except (afpacket.CaptureError, OSError) as exc:
                self._interrupted()
                self._failed(str(exc))
            except Exception as exc:  # a bug downstream must not leave a dead capture looking healthy
                _log.exception("capture pipeline failed")
                self._interrupted()
                self._failed(f"capture stopped by an internal error: {exc!r} (restarting)")
            finally:
                try:
                    own.add_kernel(ring.statistics())
                except OSError:
                    pass
                ring.close()
                self._publish(base, [own])
                base += own
            if not self._stop.is_set():
                self._stop.wait(self.retry_seconds)

    def _ok_reason(self) -> str:
        cfg = self.config
        return f"capturing on {cfg.interface}" + (f" ({cfg.fanout} processes)" if cfg.fanout > 1 else "")

    def _interrupted(self) -> None:
        with self._lock:
            self.interruptions_total += 1

    def _failed(self, reason: str) -> None:
        if self.status.health != Health.FAILED or self.status.reason != reason:
            _log.error("capture: %s", reason)
        self.status.set(Health.FAILED, reason)
        self._first_attempt.set()

    def _publish(self, base: CaptureCounters, members: list[CaptureCounters]) -> None:
        total = dataclasses.replace(base)
        for m in members:
            total += m
        drops = afpacket.interface_counters(self.config.interface, self.sysfs)
        now = time.monotonic()
        with self._lock:
            if total.kernel_drops > self.counters.kernel_drops:
                self._last_drop_at = now
            self.counters = total
            self.interface_drops = drops
        if self.status.health in (Health.OK, Health.DEGRADED):
            if self._last_drop_at and now - self._last_drop_at < DROP_WINDOW_SECONDS:
                self.status.set(Health.DEGRADED, f"the kernel dropped frames in the last {DROP_WINDOW_SECONDS}s "
                                                 f"({total.kernel_drops} in all): the capture ring overflows; raise "
                                                 f"capture.block_count or capture.fanout")
            else:
                self.status.set(Health.OK, self._ok_reason())

    # -- several rings in worker processes (PACKET_FANOUT) --------------------------------------------
    def _from_worker(self, member: int, kind: str, payload, latest: list, slots: dict) -> None:
        if kind == "counters":
            latest[member] = payload
        elif kind == "totals":
            self.analysis.set_member_totals(member, *payload)
        elif kind == "window":
            slots.setdefault(payload.start_ns, []).append(payload)
        elif kind == "rare" and self.passive is not None:
            try:
                self.passive.target.learn_decoded(payload)
            except Exception:
                _log.exception("learning from a capture worker's frames failed")

    def _judge_slots(self, slots: dict, now_ns: int | None) -> None:
        """Merge each time slot's windows once every worker has had time to close its own (they close
        on their clocks' tick, once per stats period), then judge them as one (None: all, now)."""
        grace_ns = int((2 * self.stats_seconds + READ_TIMEOUT + 0.5) * 1e9)

        for start in sorted(slots):
            windows = slots[start]
            if now_ns is not None and now_ns < max(w.end_ns for w in windows) + grace_ns:
                break
            del slots[start]
            try:
                self.analysis.add_windows([merge_parallel(windows)])
            except Exception:
                _log.exception("judging the capture workers' windows failed")

    def _run_fanout(self) -> None:
        cfg = self.config
        group = os.getpid() & 0xFFFF
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop and threads
        base = self.snapshot()["counters"]
        while not self._stop.is_set():
            stop = ctx.Event()
            conns, latest = [], []
            self._workers = []
            for member in range(cfg.fanout):
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_fanout_worker,
                                   args=(cfg, group, child, stop, self.stats_seconds, self.passive is not None,
                                         self.own),
                                   name=f"sitevigil-capture-{member}", daemon=True)
                proc.start()
                child.close()
                self._workers.append(proc)
                conns.append(parent)
                latest.append(CaptureCounters())
            error = None
            ready = 0
            slots: dict[int, list] = {}  # window start -> the workers' windows of that time slot
            while not self._stop.is_set() and error is None:
                for conn in multiprocessing.connection.wait(conns, timeout=READ_TIMEOUT):
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        error = "a capture worker process exited unexpectedly"
                        break
                    if kind == "error":
                        error = payload
                        break
                    if kind == "ready":
                        ready += 1
                        if ready == cfg.fanout:
                            with self._lock:
                                self.opens_total += 1
                            self.status.set(Health.OK, self._ok_reason())
                            self._first_attempt.set()
                        continue
                    self._from_worker(conns.index(conn), kind, payload, latest, slots)
                else:
                    if ready == cfg.fanout:
                        self._publish(base, latest)
                self._judge_slots(slots, time.time_ns())
            stop.set()
            for proc in self._workers:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()  # our own worker, by its pid
                    proc.join(1)
            for conn in conns:
                while conn.poll(0):  # the workers' last counters
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        break
                    if kind != "error":
                        self._from_worker(conns.index(conn), kind, payload, latest, slots)
                conn.close()
            self._judge_slots(slots, None)
            self.analysis.retire_members()
            self._publish(base, latest)
            for m in latest:
                base += m
            self._workers = []
            if error is not None:
                if ready == cfg.fanout:
                    self._interrupted()
                self._failed(error)
                self._stop.wait(self.retry_seconds)


class _SendDecoded:
    """A fanout worker's stand-in for the daemon's Devices: decoded rare frames go to the parent."""

    def __init__(self, conn):
        self.conn = conn

    def learn_decoded(self, infos) -> None:
        self.conn.send(("rare", list(infos)))


def _fanout_worker(cfg: CaptureConfig, group: int, conn, stop, stats_seconds: float, learn: bool = False,
                   own: Iterable[str] = ()) -> None:
    """One member of the fanout group, in its own process: read its ring, send counters each second.

    It parses and aggregates its share of the flows and sends each closed window (and its running totals)
    to the parent, which merges the members' windows per time slot and judges them; with `learn`, the rare
    frames it decodes too (bounded per second)."""
    try:
        ring = open_ring(cfg, fanout_group=group)
    except (afpacket.CaptureError, OSError) as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:  # a bug: say what it was instead of "exited unexpectedly"
        conn.send(("error", f"capture worker failed: {exc!r}"))
        raise
    conn.send(("ready", None))
    counters = CaptureCounters()
    analysis = CapturePipeline(cfg, DetectionConfig(enabled=False), on_window=lambda w: conn.send(("window", w)))
    if learn:
        analysis.on_records = PassiveFeed(_SendDecoded(conn), max_per_second=max(1, PASSIVE_PER_SECOND // cfg.fanout),
                                          own=own).frames
    pipeline = FramePipeline(counters, analysis=analysis)
    next_stats = 0.0
    parent = os.getppid()
    try:
        while not stop.is_set() and os.getppid() == parent:  # never outlive a killed daemon
            pipeline.feed_ring(ring, READ_TIMEOUT)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + stats_seconds
                pipeline.tick(time.time_ns())
                counters.add_kernel(ring.statistics())
                conn.send(("counters", counters))
                conn.send(("totals", _totals(analysis)))
    except (afpacket.CaptureError, OSError) as exc:
        conn.send(("error", str(exc)))
    finally:
        try:
            counters.add_kernel(ring.statistics())
        except OSError:
            pass
        ring.close()
        try:
            analysis.finish()  # the window in progress goes to the parent too
            conn.send(("totals", _totals(analysis)))
            conn.send(("counters", counters))
        except OSError:
            pass


def _totals(analysis) -> tuple:
    return analysis.frames, analysis.bytes, analysis.malformed, analysis.flag_counts.copy()


def factory(config: Config, ctx: Context) -> CaptureSubsystem:
    return CaptureSubsystem(config, ctx)
