"""Per-window, per-device capture aggregates in bounded tables.

    agg = CaptureAggregator(max_devices=cfg.max_devices, window_s=cfg.window)
    for batch in source:                                  # FrameBatch from the ring or a file
        records, malformed = fastpath.parse_frames(*batch_columns(batch))
        for window in agg.add(records):                   # windows closed by these frames' timestamps
            findings = engine.process(window)
    last = agg.flush()                                    # close the window in progress

The tables are preallocated numpy arrays that the compiled kernel (`fastpath.aggregate_frames`)
updates in place without the GIL: a MAC table and an IP table (each `max_devices` rows plus an overflow
row plus a totals row) and an ARP binding table keyed by (IPv4, MAC). A new source address that does
not fit lands in the overflow row and is counted, so memory is fixed however many addresses a flood
spoofs. Two fixed direct-mapped tables follow what single counters cannot: repeated broadcast/multicast
frames within the window (a forwarding loop) and, across windows, each TCP direction's highest sequence
number (retransmissions). Each closed window is a `WindowAggregates`: copies of the used rows only, with cardinality
estimates from the HyperLogLog sketches.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from probe import fastpath
from probe.fastpath.twin.aggregate import key_hash
from probe.fastpath.layout import (BITMAPS, COUNTER_INDEX, COUNTERS, DUP_SLOTS, FLOW_SLOTS, HLL_REGISTERS, N_COUNTERS, N_SKETCHES,
                           NON_ADDITIVE, SKETCHES)
from probe.sources.frames import FrameBatch

__all__ = ["AggTable", "CaptureAggregator", "TableSnapshot", "WindowAggregates", "batch_columns",
           "hll_estimate", "format_mac", "format_ip_key"]

V4_MAPPED = 0xFFFF00000000


def batch_columns(batch: FrameBatch):
    """The argument tuple parse_frames takes, from a FrameBatch (arrays made contiguous if needed)."""
    return (np.ascontiguousarray(batch.data, np.uint8), np.ascontiguousarray(batch.offset, np.int64),
            np.ascontiguousarray(batch.caplen, np.uint32), np.ascontiguousarray(batch.wirelen, np.uint32),
            np.ascontiguousarray(batch.ts_ns, np.int64), np.ascontiguousarray(batch.vlan, np.int32))


def format_mac(value: int) -> str:
    return ":".join(f"{(int(value) >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def format_ip_key(k1: int, k2: int) -> str:
    k1, k2 = int(k1), int(k2)
    if k1 == 0 and (k2 >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(k2 & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((k1 << 64) | k2))


def hll_estimate(registers: np.ndarray) -> np.ndarray:
    """Cardinality estimates for rows of HLL_REGISTERS registers (HyperLogLog with small-range correction)."""
    regs = np.asarray(registers, np.float64).reshape(-1, HLL_REGISTERS)
    m = float(HLL_REGISTERS)
    alpha = 0.709  # for m = 64 (Flajolet et al.)
    raw = alpha * m * m / np.sum(np.exp2(-regs), axis=1)
    zeros = np.sum(regs == 0, axis=1)
    with np.errstate(divide="ignore"):
        linear = m * np.log(m / np.maximum(zeros, 1))
    est = np.where((raw <= 2.5 * m) & (zeros > 0), linear, raw)
    return np.rint(est).astype(np.int64)


def bitmap_estimate(bitmaps) -> np.ndarray:
    """Distinct flows per flow bitmap (layout.BITMAPS; uint64 values): the bits set while few, the linear
    counting estimate -64 ln(zeros / 64) past that (two flows share a bit now and then); a full bitmap
    says "at least 64 ln 64" (266)."""
    b = np.atleast_1d(np.asarray(bitmaps, np.uint64))
    ones = np.unpackbits(b.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)
    zeros = 64 - ones
    with np.errstate(divide="ignore"):
        linear = np.rint(64.0 * np.log(64.0 / np.maximum(zeros, 1))).astype(np.int64)
    return np.maximum(ones, linear)


_BITMAP_COLUMNS = [COUNTER_INDEX[n] for n in BITMAPS]


def _with_estimates(names_values) -> dict:
    """Counters by name, each flow bitmap as its estimate of distinct flows."""
    d = {}
    for name, v in names_values:
        d[name] = int(bitmap_estimate(v)[0]) if name in BITMAPS else int(v)
    return d


class AggTable:
    """One bounded hash table: `capacity` rows, plus the overflow row and the totals row."""

    def __init__(self, capacity: int, sketches: bool = True):
        if capacity < 1:
            raise ValueError(f"table capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        nslots = 1 << max(2, (2 * capacity - 1).bit_length())
        rows = capacity + 2
        self.slots = np.full(nslots, -1, np.int32)
        self.keys = np.zeros((rows, 2), np.uint64)
        self.counts = np.zeros((rows, N_COUNTERS), np.uint64)
        self.hll = np.zeros((rows, N_SKETCHES * HLL_REGISTERS if sketches else 0), np.uint8)
        self.meta = np.zeros(2, np.int64)
        self.reserved = 0  # rows 0..reserved-1 were given to established keys before the window began

    @property
    def spec(self):
        return (self.slots, self.keys, self.counts, self.hll, self.meta)

    @property
    def used(self) -> int:
        return int(self.meta[0])

    @property
    def overflow_frames(self) -> int:
        return int(self.meta[1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.spec)

    def snapshot(self) -> "TableSnapshot":
        n = self.used
        if self.reserved:  # a reserved row nothing touched is not in the window
            rows = np.flatnonzero(self.counts[:n, _FIRST] != 0)
            return TableSnapshot(self.keys[rows], self.counts[rows], self.hll[rows],
                                 self.counts[self.capacity].copy(), self.hll[self.capacity].copy(),
                                 self.overflow_frames, reserved=int(np.count_nonzero(rows < self.reserved)))
        return TableSnapshot(self.keys[:n].copy(), self.counts[:n].copy(), self.hll[:n].copy(),
                             self.counts[self.capacity].copy(), self.hll[self.capacity].copy(),
                             self.overflow_frames)

    def reset(self, reserve: np.ndarray | None = None):
        """Empty the table for the next window; `reserve` (uint64 [k, 2], k <= capacity) are keys given
        rows first, so they count in the next window whatever new keys fill the rest."""
        n = self.used
        self.slots.fill(-1)
        self.keys[:n] = 0
        self.counts[:n] = 0
        self.hll[:n] = 0
        self.counts[self.capacity:] = 0
        self.hll[self.capacity:] = 0
        self.meta[:] = 0
        self.reserved = 0
        if reserve is not None and len(reserve):
            self._insert(np.asarray(reserve, np.uint64)[:self.capacity])

    def _insert(self, keys: np.ndarray) -> None:
        # the kernels' own probe sequence (twin.aggregate: the same hash bit for bit), into an empty table
        mask = len(self.slots) - 1
        slots = self.slots
        for row, (k1, k2) in enumerate(keys.tolist()):
            slot = key_hash(k1, k2) & mask
            while slots[slot] >= 0:
                slot = (slot + 1) & mask
            slots[slot] = row
        self.keys[:len(keys)] = keys
        self.meta[0] = self.reserved = len(keys)


@dataclass
class TableSnapshot:
    """The used rows of a table at the end of a window (and its overflow bucket)."""
    keys: np.ndarray             # uint64 [n, 2]
    counts: np.ndarray           # uint64 [n, N_COUNTERS]
    hll: np.ndarray              # uint8 [n, N_SKETCHES * HLL_REGISTERS] (or [n, 0])
    overflow_counts: np.ndarray  # uint64 [N_COUNTERS]: frames whose source did not fit
    overflow_hll: np.ndarray
    overflow_frames: int
    reserved: int = 0            # leading rows held for established keys while the table overflows
    steady: np.ndarray | None = None  # bool [n]: in the window before too (set when the table overflowed)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def col(self, name: str) -> np.ndarray:
        return self.counts[:, COUNTER_INDEX[name]]

    def flows(self, name: str) -> np.ndarray:
        """Estimated distinct flows per row for one of the flow bitmaps (layout.BITMAPS)."""
        if name not in BITMAPS:
            raise KeyError(f"{name!r} is not a flow bitmap (one of {', '.join(BITMAPS)})")
        return bitmap_estimate(self.col(name)) if len(self) else np.zeros(0, np.int64)

    def distinct(self, sketch: str) -> np.ndarray:
        """Estimated distinct values per row for one of SKETCHES."""
        if self.hll.shape[1] == 0 or not len(self):
            return np.zeros(len(self), np.int64)
        j = SKETCHES.index(sketch)
        return hll_estimate(self.hll[:, j * HLL_REGISTERS:(j + 1) * HLL_REGISTERS])

    def row_dict(self, i: int) -> dict:
        d = _with_estimates(zip(COUNTERS, self.counts[i]))
        if self.hll.shape[1]:
            for j, s in enumerate(SKETCHES):
                d[f"distinct_{s}"] = int(hll_estimate(self.hll[i, j * HLL_REGISTERS:(j + 1) * HLL_REGISTERS])[0])
        return d


@dataclass
class WindowAggregates:
    """What one capture window showed: per-MAC, per-IP and per-(IP, MAC) ARP binding rows, and totals."""
    start_ns: int
    end_ns: int
    macs: TableSnapshot
    ips: TableSnapshot
    arp: TableSnapshot
    totals: np.ndarray     # uint64 [N_COUNTERS], every frame of the window
    totals_hll: np.ndarray
    malformed: int = 0

    def total(self, name: str) -> int:
        return int(self.totals[COUNTER_INDEX[name]])

    def total_distinct(self, sketch: str) -> int:
        j = SKETCHES.index(sketch)
        return int(hll_estimate(self.totals_hll[j * HLL_REGISTERS:(j + 1) * HLL_REGISTERS])[0])

    @property
    def totals_first_ns(self) -> int:
        return int(self.totals[COUNTER_INDEX["first_seen_ns"]])

    @property
    def totals_last_ns(self) -> int:
        return int(self.totals[COUNTER_INDEX["last_seen_ns"]])

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.end_ns - self.start_ns) / 1e9)

    def mac_rows(self) -> Iterator[tuple[str, dict]]:
        for i in range(len(self.macs)):
            yield format_mac(self.macs.keys[i, 0]), self.macs.row_dict(i)

    def ip_rows(self) -> Iterator[tuple[str, dict]]:
        for i in range(len(self.ips)):
            yield format_ip_key(self.ips.keys[i, 0], self.ips.keys[i, 1]), self.ips.row_dict(i)


# Per-device series scored for anomalies at each closed window: (series name, counters summed) as
# rates per second. "unanswered" is SYNs that got no SYN-ACK back (refused, filtered, dead hosts).
DEVICE_SERIES = (("frames", ("frames",)), ("bytes", ("bytes",)), ("tcp_syn", ("tcp_syn",)),
                 ("unanswered_syn", ()), ("dns_errors", ("dns_nxdomain_rcvd", "dns_servfail_rcvd")),
                 ("icmp_unreachable", ("icmp_unreach_rcvd",)), ("broadcast", ("broadcast",)))


def device_series(window: "WindowAggregates", max_devices: int | None = None
                  ) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """(keys, ts, values) for AnomalyScores.update: one sample per series of each MAC in the window
    (keys (MAC, series name), values per second, ts the window's end), for the `max_devices` busiest
    (by frames sent) when given: a flood of spoofed sources must not evict every real series. While the
    table overflows, only the devices it also held in the window before are scored (TableSnapshot.steady):
    the flood's addresses, new in every window, get no series."""
    snap = window.macs
    n = len(snap)
    if not n:
        return [], np.zeros(0), np.zeros(0)
    rows = np.arange(n) if snap.steady is None else np.flatnonzero(snap.steady)
    n = len(rows)
    if max_devices is not None and n > max_devices:
        rows = np.sort(rows[np.argsort(-snap.col("frames")[rows].astype(np.int64), kind="stable")[:max(0, max_devices)]])
    secs = window.seconds
    cols = []
    for name, parts in DEVICE_SERIES:
        if name == "unanswered_syn":
            v = np.maximum(snap.col("tcp_syn")[rows].astype(np.float64) - snap.col("tcp_synack_rcvd")[rows], 0.0)
        else:
            v = sum(snap.col(c)[rows].astype(np.float64) for c in parts)
        cols.append(v / secs)
    values = np.stack(cols, axis=1).reshape(-1)  # device-major: all series of one device together
    macs = [format_mac(k) for k in snap.keys[rows, 0]]
    keys = [(m, name) for m in macs for name, _ in DEVICE_SERIES]
    return keys, np.full(len(keys), window.end_ns / 1e9), values


class CaptureAggregator:
    """Splits parsed records into time windows and aggregates each in bounded tables.

    `add(records)` returns the windows that the records' timestamps closed (usually none);
    `flush()` closes the window in progress. Windows are aligned to multiples of `window_s`.
    Frames older than the window in progress (reordered captures) are counted in it, up to one window
    length; a frame older than that means the clock was set back: the window closes and the next one
    starts at the frame's time (counted in `clock_jumps`), so a clock set back an hour does not leave
    one window open for an hour.
    """

    def __init__(self, *, max_devices: int, window_s: float, kernels=fastpath):
        self.max_devices = int(max_devices)
        self.window_ns = max(1, int(round(float(window_s) * 1e9)))
        self.kernels = kernels
        self.macs = AggTable(self.max_devices)
        self.ips = AggTable(self.max_devices)
        self.arp = AggTable(self.max_devices, sketches=False)
        # repeated frames are counted per window; flows keep their highest sequence across windows
        self.recent = (np.zeros((DUP_SLOTS, 2), np.uint64), np.zeros((FLOW_SLOTS, 2), np.uint64))
        self.window_start: int | None = None
        self.malformed = 0
        self.frames_total = 0
        self.clock_jumps = 0  # frames that came more than a window before the open one: the clock went back
        self._last_keys: dict[str, np.ndarray] = {}  # each table's keys in the window closed last
        self._normal: dict[str, np.ndarray] = {}     # ... and the busiest in the last that did not overflow

    @property
    def nbytes(self) -> int:
        return self.macs.nbytes + self.ips.nbytes + self.arp.nbytes + sum(a.nbytes for a in self.recent)

    def _reserve(self, name: str, snap: "TableSnapshot") -> np.ndarray | None:
        """The keys that get rows before the next window's traffic. While a table overflows (a flood of
        new addresses, most of them spoofed), those of its keys that are not new: held in the window
        before too, or in the last window that did not overflow (the LAN as it was before the flood),
        at most half the table, the busiest first. Spoofed sources are new in every window and real
        devices are not, so the flood cannot take the real devices' rows; it still fills the other half
        and the overflow row. None, and nothing changes, while the table has room."""
        before, self._last_keys[name] = self._last_keys.get(name), snap.keys
        half = max(1, self.max_devices // 2)
        activity = (snap.col("frames") + snap.col("rx_frames")).astype(np.int64)
        if not snap.overflow_frames:
            busiest = np.sort(np.argsort(-activity, kind="stable")[:half])
            self._normal[name] = snap.keys[busiest]
            return None
        pairs = np.ascontiguousarray(snap.keys).view(_PAIR).ravel()
        known = [np.ascontiguousarray(k).view(_PAIR).ravel() for k in (before, self._normal.get(name))
                 if k is not None and len(k)]
        steady = np.zeros(len(snap), bool)
        for k in known:
            steady |= np.isin(pairs, k)
        snap.steady = steady
        rows = np.flatnonzero(steady)
        keep = snap.keys[rows[np.argsort(-activity[rows], kind="stable")]]
        normal = self._normal.get(name)
        if normal is not None and len(normal):  # quiet in this window, busy before the flood: held too
            missing = normal[~np.isin(np.ascontiguousarray(normal).view(_PAIR).ravel(), pairs)]
            keep = np.concatenate([keep, missing])
        return keep[:half]

    def _aggregate(self, records: np.ndarray):
        if len(records):
            self.kernels.aggregate_frames(records, self.macs.spec, self.ips.spec, self.arp.spec, self.recent)

    def _close(self) -> WindowAggregates:
        start = self.window_start
        w = WindowAggregates(
            start, start + self.window_ns, self.macs.snapshot(), self.ips.snapshot(), self.arp.snapshot(),
            self.macs.counts[self.macs.capacity + 1].copy(), self.macs.hll[self.macs.capacity + 1].copy(),
            int(self.macs.counts[self.macs.capacity + 1, COUNTER_INDEX["malformed"]]))
        for name, table, snap in (("macs", self.macs, w.macs), ("ips", self.ips, w.ips), ("arp", self.arp, w.arp)):
            table.reset(self._reserve(name, snap))
        self.recent[0].fill(0)
        self.window_start = None
        return w

    def ring_target(self) -> tuple:
        """What a capture ring's walk may aggregate into itself (PacketRing.next_records' `aggregate`):
        the open window's tables, its end, and the earliest time add() would count in it (older: the
        clock was set back); end 0 while no window is open (the walk then adds nothing, and add() opens
        the window from the first record's time)."""
        if self.window_start is None:
            return self.macs.spec, self.ips.spec, self.arp.spec, self.recent, 0, 0
        return (self.macs.spec, self.ips.spec, self.arp.spec, self.recent, self.window_start + self.window_ns,
                self.window_start - self.window_ns)

    def add(self, records: np.ndarray, max_ts_ns: int | None = None, aggregated: int = 0) -> list[WindowAggregates]:
        """`max_ts_ns`, the records' latest timestamp when the caller knows it (record_totals gives
        it), spares the scan for a window boundary in the usual batch that closes no window. The first
        `aggregated` records are already in the open window's tables (a ring's walk added them, up to
        ring_target()'s end): they are counted, not added again."""
        closed = []
        records = np.ascontiguousarray(records)
        self.frames_total += len(records)
        if aggregated:
            records = records[aggregated:]
        while len(records):
            ts = records["ts_ns"]
            if self.window_start is None:
                self.window_start = (int(ts[0]) // self.window_ns) * self.window_ns
            end = self.window_start + self.window_ns
            # a frame from more than a window before the open one: the clock was set back (a reordered
            # capture is off by far less); the records before it are added, then the window closes
            back = np.flatnonzero(ts < self.window_start - self.window_ns)
            if len(back) and back[0] == 0:
                closed.append(self._close())
                self.clock_jumps += 1
                continue
            head = records[:int(back[0])] if len(back) else records
            if not len(back) and max_ts_ns is not None and max_ts_ns < end:
                self._aggregate(records)
                break
            later = np.flatnonzero(head["ts_ns"] >= end)
            cut = int(later[0]) if len(later) else len(head)
            self._aggregate(records[:cut])
            if len(later):
                closed.append(self._close())
            records = records[cut:]
        return closed

    def roll_if_due(self, now_ns: int) -> list[WindowAggregates]:
        """Close the window in progress when the clock has passed its end (quiet links in the live probe),
        or went back before its start by more than a window (the clock was set back)."""
        if self.window_start is None:
            return []
        if now_ns < self.window_start - self.window_ns:
            self.clock_jumps += 1
            return [self._close()]
        return [self._close()] if now_ns >= self.window_start + self.window_ns else []


    def flush(self) -> WindowAggregates | None:
        return self._close() if self.window_start is not None else None


@dataclass
class _Acc:
    counts: np.ndarray
    hll: np.ndarray


@dataclass
class DeviceSummary:
    """Aggregates merged over many windows, per key, bounded (for replay's per-device output)."""
    max_rows: int
    rows: dict = field(default_factory=dict)
    overflow_frames: int = 0

    def merge(self, snap: TableSnapshot, key_of) -> None:
        self.overflow_frames += snap.overflow_frames
        for i in range(len(snap)):
            key = key_of(snap.keys[i])
            acc = self.rows.get(key)
            if acc is None:
                if len(self.rows) >= self.max_rows:
                    self.overflow_frames += int(snap.counts[i, COUNTER_INDEX["frames"]])
                    continue
                self.rows[key] = _Acc(snap.counts[i].copy(), snap.hll[i].copy())
                continue
            _merge_counts(acc.counts, snap.counts[i])
            np.maximum(acc.hll, snap.hll[i], out=acc.hll)

    def as_dicts(self, skip_zero: bool = False) -> dict[str, dict]:
        """Per key: counters by name (zero ones left out with skip_zero) and distinct_* estimates."""
        keys = list(self.rows)
        if not keys:
            return {}
        counts = np.stack([self.rows[k].counts for k in keys])
        hll = np.stack([self.rows[k].hll for k in keys])
        est = {}
        if hll.shape[1]:
            for j, s in enumerate(SKETCHES):
                est[f"distinct_{s}"] = hll_estimate(hll[:, j * HLL_REGISTERS:(j + 1) * HLL_REGISTERS]).tolist()
        if len(keys):
            counts = counts.copy()
            counts[:, _BITMAP_COLUMNS] = bitmap_estimate(counts[:, _BITMAP_COLUMNS].ravel()).reshape(
                len(keys), len(_BITMAP_COLUMNS))
        rows = counts.tolist()
        out = {}
        for n, key in enumerate(keys):
            d = {name: v for name, v in zip(COUNTERS, rows[n]) if v or not skip_zero or name in ("frames", "bytes")}
            for name, values in est.items():
                if values[n] or not skip_zero:
                    d[name] = values[n]
            out[key] = d
        return out


_ADD = np.array([name not in NON_ADDITIVE for name in COUNTERS])
_FIRST = COUNTER_INDEX["first_seen_ns"]
_LAST = COUNTER_INDEX["last_seen_ns"]
_LASTVAL = [COUNTER_INDEX[n] for n, how in NON_ADDITIVE.items() if how == "last"]
_MAXVAL = [COUNTER_INDEX[n] for n, how in NON_ADDITIVE.items() if how == "max" and n != "last_seen_ns"]
_ORVAL = [COUNTER_INDEX[n] for n, how in NON_ADDITIVE.items() if how == "or"]
assert set(NON_ADDITIVE.values()) <= {"last", "min", "max", "or"}, "a merge rule this module does not apply"


def _merge_counts(acc: np.ndarray, new: np.ndarray) -> None:
    acc[_ADD] += new[_ADD]
    if acc[_FIRST] == 0 or (new[_FIRST] != 0 and new[_FIRST] < acc[_FIRST]):
        acc[_FIRST] = new[_FIRST]
    acc[_LAST] = max(acc[_LAST], new[_LAST])
    for j in _LASTVAL:
        if new[j]:
            acc[j] = new[j]
    for j in _MAXVAL:
        acc[j] = max(acc[j], new[j])
    for j in _ORVAL:
        acc[j] |= new[j]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


_PAIR = np.dtype([("k1", "<u8"), ("k2", "<u8")])
_ADD_IDX = np.flatnonzero(_ADD)
_LASTVAL_IDX = np.array(_LASTVAL)
_PEER = COUNTER_INDEX["peer"]
_PEER_CHANGES = COUNTER_INDEX["peer_changes"]
_PREV_PEER = COUNTER_INDEX["prev_peer"]


def _merge_snapshots(a: TableSnapshot, b: TableSnapshot, peer_changes: bool = False) -> TableSnapshot:
    """Rows of two consecutive windows' tables merged by key (b is the later one)."""
    keys = np.concatenate([a.keys, b.keys])
    counts = np.concatenate([a.counts, b.counts])
    hll = np.concatenate([a.hll, b.hll])
    if not len(keys):
        return TableSnapshot(keys, counts, hll, a.overflow_counts + b.overflow_counts,
                             np.maximum(a.overflow_hll, b.overflow_hll), a.overflow_frames + b.overflow_frames)
    uniq, inv = np.unique(np.ascontiguousarray(keys).view(_PAIR).ravel(), return_inverse=True)
    inv = inv.ravel()
    n = len(uniq)
    out = np.zeros((n, counts.shape[1]), np.uint64)
    add = np.zeros((n, len(_ADD_IDX)), np.uint64)
    np.add.at(add, inv, counts[:, _ADD_IDX])
    out[:, _ADD_IDX] = add
    first = np.where(counts[:, _FIRST] == 0, np.iinfo(np.uint64).max, counts[:, _FIRST])
    f = np.full(n, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(f, inv, first)
    out[:, _FIRST] = np.where(f == np.iinfo(np.uint64).max, 0, f)
    last = np.zeros(n, np.uint64)
    np.maximum.at(last, inv, counts[:, _LAST])
    out[:, _LAST] = last
    for j in _MAXVAL:
        m = np.zeros(n, np.uint64)
        np.maximum.at(m, inv, counts[:, j])
        out[:, j] = m
    for j in _ORVAL:
        m = np.zeros(n, np.uint64)
        np.bitwise_or.at(m, inv, counts[:, j])
        out[:, j] = m
    for j in _LASTVAL_IDX:  # the later window's non-zero value wins: rows are in window order
        v = counts[:, j]
        nz = np.flatnonzero(v)
        out[inv[nz], j] = v[nz]
    if peer_changes:  # an address that arrived from one MAC in the first window and another in the second moved
        na = len(a.keys)
        pa = np.zeros(n, np.uint64)
        pa[inv[:na]] = a.counts[:, _PEER]
        pb = np.zeros(n, np.uint64)
        pb[inv[na:]] = b.counts[:, _PEER]
        moved = (pa != 0) & (pb != 0) & (pa != pb)
        out[moved, _PEER_CHANGES] += 1
        out[moved, _PREV_PEER] = pa[moved]
    out_hll = np.zeros((n, hll.shape[1]), np.uint8)
    if hll.shape[1]:
        np.maximum.at(out_hll, inv, hll)
    ov = a.overflow_counts.copy()
    _merge_counts(ov, b.overflow_counts)
    return TableSnapshot(uniq.view(np.uint64).reshape(n, 2).copy(), out, out_hll, ov,
                         np.maximum(a.overflow_hll, b.overflow_hll), a.overflow_frames + b.overflow_frames)


def merge_windows(a: WindowAggregates, b: WindowAggregates) -> WindowAggregates:
    """One view of two consecutive windows (a before b), for detectors that must not lose an event
    that straddled a window boundary. Counts add, sketches union, first/last seen span both."""
    totals = a.totals.copy()
    _merge_counts(totals, b.totals)
    return WindowAggregates(a.start_ns, b.end_ns, _merge_snapshots(a.macs, b.macs), _merge_snapshots(a.ips, b.ips, True),
                            _merge_snapshots(a.arp, b.arp), totals, np.maximum(a.totals_hll, b.totals_hll),
                            a.malformed + b.malformed)


def merge_parallel(windows: list[WindowAggregates]) -> WindowAggregates:
    """One window from several captures of the same time slot (the processes of a PACKET_FANOUT group,
    each of which saw a share of the flows): counts add, sketches union, first/last seen span all."""
    if not windows:
        raise ValueError("merge_parallel: no windows")
    out = windows[0]
    for w in windows[1:]:
        totals = out.totals.copy()
        _merge_counts(totals, w.totals)
        out = WindowAggregates(min(out.start_ns, w.start_ns), max(out.end_ns, w.end_ns),
                               _merge_snapshots(out.macs, w.macs), _merge_snapshots(out.ips, w.ips),
                               _merge_snapshots(out.arp, w.arp), totals, np.maximum(out.totals_hll, w.totals_hll),
                               out.malformed + w.malformed)
    return out
