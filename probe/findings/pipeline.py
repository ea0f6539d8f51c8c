"""The capture pipeline after the source: parse -> aggregate per window -> LAN findings, plus running totals.

    pipe = CapturePipeline(config.capture, config.detection)
    for batch in frames:                    # FrameBatch from the live ring or probe.sources.capfile
        new_findings = pipe.add_batch(batch)
    pipe.finish()                           # close the last window (replay; the daemon calls pipe.tick(now_ns))
    pipe.stats()                            # CaptureStats for probe.exposition.capture_collector

Detectors see each closed window merged with the one before it (when consecutive), so a scan or flood
that straddles a window boundary is judged whole. What they see in each window is reported to
`findings`, the ledger (probe.findings.ledger): the daemon's, or, for a replay or a test, one in memory
whose clock is the capture's own time, so a past capture is judged as the live probe would have.

Used by `sitevigil replay` and meant for the live capture subsystem, so both export and find the same.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from probe import fastpath
from probe.fastpath.layout import COUNTERS, FLAG_NAMES, FRAME_DTYPE, N_COUNTERS, NON_ADDITIVE
from probe.config.capture import CaptureConfig
from probe.config.detection import DetectionConfig
from probe.findings.base import WindowDetectors
from probe.findings.ledger import Ledger
from probe.findings.lan import lan_engine
from probe.findings.model import Finding
from probe.sources.frames import FrameBatch
from probe.state.aggregates import (CaptureAggregator, DeviceSummary, WindowAggregates, batch_columns,
                                    format_ip_key, format_mac, merge_windows)

_log = logging.getLogger("sitevigil.capture")

# Kinds where the probe's own address is the victim, not the culprit (someone else uses its IP).
_OWN_ADDRESS_KINDS = {"duplicate_ip"}

_ADDITIVE = np.array([n not in NON_ADDITIVE for n in COUNTERS])


@dataclass
class CaptureStats:
    """A consistent snapshot of what the pipeline has seen, for exporters."""
    frames: int
    bytes: int
    malformed: int
    flag_frames: dict[str, int]          # frames per FRAME flag (protocols, broadcast, truncated...)
    events: dict[str, int]               # additive window-total counters summed over closed windows
    windows: int
    last_window: WindowAggregates | None
    table_overflow_frames: dict[str, int]
    clock_jumps: int = 0                 # frames from more than a window before the open one (clock set back)


class CapturePipeline:
    def __init__(self, capture: CaptureConfig, detection: DetectionConfig, *, kernels=fastpath,
                 engine: WindowDetectors | None = None, summarize_devices: bool = False,
                 own_devices: Iterable[str] = (), on_window: Callable[[WindowAggregates], None] | None = None,
                 findings: Ledger | None = None):
        """`own_devices`: the probe's own MACs and IPs (its sweeps and SNMP polls are not findings);
        `on_window`: called with each closed window, after detection (anomaly scores, passive learning);
        `findings`: the ledger that reports go to (default: one in memory on the capture's clock)."""
        self.kernels = kernels
        self.own_devices = frozenset(str(d).lower() for d in own_devices)
        self.on_window = on_window
        self._records: np.ndarray | None = None  # parse buffer, reused
        self._members: dict[int, tuple[int, int, int, np.ndarray]] = {}  # fanout workers' totals
        # each parsed batch: frames and their records (from the live ring, only the frames whose bytes
        # the rare-frame decoder reads: RARE_FLAGS, not malformed)
        self.on_records: Callable[[FrameBatch, np.ndarray], None] | None = None
        self.agg = CaptureAggregator(max_devices=capture.max_devices, window_s=capture.window, kernels=kernels)
        if engine is None:
            engine = lan_engine(detection) if detection.enabled else WindowDetectors(detection, [])
        self.engine = engine
        self.now = 0.0  # the end of the latest closed window (seconds): the capture's own clock
        self.findings = findings if findings is not None else Ledger.in_memory(
            quiet_after=float(detection.episode_quiet), clock=lambda: self.now)
        if self.own_devices:
            engine.ignore = self._own
        self._lock = threading.Lock()
        self.frames = 0
        self.bytes = 0
        self.malformed = 0
        self.flag_counts = np.zeros(32, np.int64)
        self.events = np.zeros(N_COUNTERS, np.uint64)
        self.windows = 0
        self.last_window: WindowAggregates | None = None
        self.overflow = {"mac": 0, "ip": 0, "arp": 0}
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self._prev: WindowAggregates | None = None  # detectors see the last two windows together
        self.summaries = ({"mac": DeviceSummary(capture.max_devices), "ip": DeviceSummary(capture.max_devices)}
                          if summarize_devices else None)

    def add_batch(self, batch: FrameBatch) -> list[Finding]:
        """Parse and aggregate one batch; returns what the detectors saw in the windows it closed
        (already reported to `findings`)."""
        if not len(batch):
            return []
        if self._records is None or len(self._records) < len(batch):
            self._records = np.zeros(max(len(batch), 4096), dtype=FRAME_DTYPE)
        # one buffer reused for every batch: nothing below keeps the records past this call
        records, malformed = self.kernels.parse_frames(*batch_columns(batch), out=self._records)
        if self.on_records is not None:
            try:
                self.on_records(batch, records)
            except Exception:  # a consumer's bug must not stop the capture
                _log.exception("capture batch consumer failed")
        return self.add_records(records, malformed)

    def add_parsed(self, records: np.ndarray, malformed: int, rare=None, totals=None, flag_counts=None,
                   aggregated: int = 0) -> list[Finding]:
        """Records a source parsed itself (the live ring parses inside its block walk, PacketRing.
        next_records): `rare` is None or (index, FrameBatch) with the bytes of the records at `index`
        that on_records needs (RARE_FLAGS, not malformed); on_records gets those frames and records.
        `totals` and `flag_counts`, when the source took them too, are record_totals' answer for these
        records and the flag bits it counted (int64[32], this batch's only). `aggregated`: how many leading
        records the source already added to the open window (with ring_target()'s tables)."""
        if rare is not None and self.on_records is not None:
            index, frames = rare
            try:
                self.on_records(frames, records[index])
            except Exception:  # a consumer's bug must not stop the capture
                _log.exception("capture batch consumer failed")
        return self.add_records(records, malformed, totals, flag_counts, aggregated)

    def ring_target(self) -> tuple:
        """The open window's tables for a ring that aggregates in its walk (CaptureAggregator.ring_target)."""
        return self.agg.ring_target()

    def add_records(self, records: np.ndarray, malformed: int, totals=None, flag_counts=None,
                    aggregated: int = 0) -> list[Finding]:
        """Parsed records of one batch: running totals, then aggregation and detection (`totals` and
        `flag_counts` as in add_parsed, else record_totals runs here)."""
        if not len(records):
            return []
        records = np.ascontiguousarray(records)
        with self._lock:
            if totals is None:
                nbytes, lo, hi = self.kernels.record_totals(records, self.flag_counts)
            else:
                nbytes, lo, hi = totals
                self.flag_counts += flag_counts
            self.frames += len(records)
            self.bytes += int(nbytes)
            self.malformed += int(malformed)
            self.first_ts_ns = lo if self.first_ts_ns is None else min(self.first_ts_ns, lo)
            self.last_ts_ns = hi if self.last_ts_ns is None else max(self.last_ts_ns, hi)
        return self._windows(self.agg.add(records, hi, aggregated))

    def add_windows(self, windows: list[WindowAggregates]) -> list[Finding]:
        """Closed windows aggregated elsewhere (the fanout workers', merged per time slot)."""
        return self._windows(windows)

    def set_member_totals(self, member: int, frames: int, nbytes: int, malformed: int, flag_counts) -> None:
        """Running totals of a fanout worker that parses for this pipeline (cumulative, replaced)."""
        with self._lock:
            self._members[member] = (int(frames), int(nbytes), int(malformed), np.asarray(flag_counts, np.int64))

    def retire_members(self) -> None:
        """The workers are gone (restarted): keep what they counted, so the totals never go back."""
        with self._lock:
            for f, b, m, fl in self._members.values():
                self.frames, self.bytes, self.malformed = self.frames + f, self.bytes + b, self.malformed + m
                self.flag_counts += fl
            self._members.clear()

    def tick(self, now_ns: int) -> list[Finding]:
        """Close the window in progress if its time is up (quiet links in the live probe)."""
        return self._windows(self.agg.roll_if_due(now_ns))

    def finish(self) -> list[Finding]:
        w = self.agg.flush()
        return self._windows([w] if w is not None else [])

    def _windows(self, windows: list[WindowAggregates]) -> list[Finding]:
        new = []
        for w in windows:
            with self._lock:
                self.windows += 1
                self.last_window = w
                self.events[_ADDITIVE] += w.totals[_ADDITIVE]
                self.overflow["mac"] += w.macs.overflow_frames
                self.overflow["ip"] += w.ips.overflow_frames
                self.overflow["arp"] += w.arp.overflow_frames
            if self.summaries is not None:
                self.summaries["mac"].merge(w.macs, lambda k: format_mac(k[0]))
                self.summaries["ip"].merge(w.ips, lambda k: format_ip_key(k[0], k[1]))
            prev, self._prev = self._prev, w
            view = merge_windows(prev, w) if prev is not None and prev.end_ns == w.start_ns else w
            seen = self.engine.process(view, w)
            self.now = max(self.now, w.end_ns / 1e9)
            for finding in seen:
                self.findings.record(finding)
            new.extend(seen)
            if self.on_window is not None:
                try:
                    self.on_window(w)
                except Exception:  # a consumer's bug must not stop the capture
                    _log.exception("capture window consumer failed")
        return new

    def _own(self, finding: Finding) -> bool:
        """A finding about the probe itself: its own sweeps and polls, seen on the mirror port."""
        if not self.own_devices or finding.kind in _OWN_ADDRESS_KINDS:
            return False
        if finding.device in self.own_devices:
            return True
        ev = finding.evidence
        return any(isinstance(ev.get(k), str) and ev[k] in self.own_devices for k in ("mac", "ip"))

    def stats(self) -> CaptureStats:
        with self._lock:
            frames, nbytes, malformed, flags = self.frames, self.bytes, self.malformed, self.flag_counts.copy()
            for f, b, m, fl in self._members.values():
                frames, nbytes, malformed = frames + f, nbytes + b, malformed + m
                flags += fl
            return CaptureStats(
                frames, nbytes, malformed,
                {name: int(flags[i]) for i, name in enumerate(FLAG_NAMES)},
                {name: int(self.events[i]) for i, name in enumerate(COUNTERS) if name not in NON_ADDITIVE},
                self.windows, self.last_window, dict(self.overflow), self.agg.clock_jumps)
