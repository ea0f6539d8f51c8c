"""Anomaly scores of many series: maps series keys to rows of the scoring kernel's state.

A key is (device, series), e.g. ("10.0.0.1", "ifHCInOctets.3"). The number of series is bounded:
when a new key arrives and every slot is taken, the least recently updated series is forgotten
(its slot is reset and reused) and counted in `evicted_total`. Scores come from the fast path's
streaming kernel (probe.fastpath.score_samples) with its one fixed configuration, its episodes
opening at `alert_threshold`; each sample is judged from its own series' past only.

The kernel reports an episode once and silences its followers, so what is exported per series is
its highest score over the last `hold_seconds` (of sample time): an alert stays visible for a few
scrapes instead of vanishing with the next sample.
"""
from __future__ import annotations

import collections
import heapq
import logging
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np

from probe import fastpath
from probe.fastpath.layout import SCORE_PARAM_NAMES

SeriesKey = tuple[str, str]   # (device, series)
# called for each sample scoring at or above alert_threshold: (key, ts, value, score, usual), usual being
# (this hour's usual value, its usual miss) from the kernel's state after it learnt the sample
AlertHook = Callable[[SeriesKey, float, float, float, tuple], None]
# the kernel's state columns for the hour of the day (probe/fastpath/twin/score.py; a test checks them)
STATE_SEAS, STATE_SEAS_ERR, N_HOURS = 32, 9, 24
P_ALERT = SCORE_PARAM_NAMES.index("alert")

_log = logging.getLogger("sitevigil.anomaly")


class AnomalyScores:
    def __init__(self, max_series: int, *, hold_seconds: float = 600.0, params: np.ndarray | None = None,
                 on_alert: AlertHook | None = None, alert_threshold: float = 0.5):
        """`on_alert` hears of every sample scoring at least `alert_threshold` (the kernel scores only
        an episode's first sample, or a clearly stronger one, that high): probe.findings.anomaly."""
        if max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {max_series}")
        self.max_series = max_series
        self.params = fastpath.score_default_params() if params is None else np.asarray(params, dtype=np.float64)
        self._state = fastpath.score_state_new(max_series)
        self._slots: collections.OrderedDict[Hashable, int] = collections.OrderedDict()  # LRU first
        self._keys: list[SeriesKey | None] = [None] * max_series
        self.hold_seconds = hold_seconds
        self._score = np.zeros(max_series)      # each slot's highest score within hold_seconds
        self._score_ts = np.full(max_series, -np.inf)   # ... and when it was reached
        self._updated = np.zeros(max_series)    # timestamp of each slot's last sample
        self._free = list(range(max_series - 1, -1, -1))
        self.evicted_total = 0
        self.samples_total = 0
        self.on_alert = on_alert
        self.alert_threshold = alert_threshold

    @property
    def alert_threshold(self) -> float:
        return self._alert_threshold

    @alert_threshold.setter
    def alert_threshold(self, value: float) -> None:
        # The kernel reports an episode's first sample at its `alert` score and silences the followers
        # unless one is clearly stronger. An episode must open where a finding is raised: opened lower,
        # a score that climbs (a flatline getting rarer with every repeat, a slow drift) is silenced
        # below the finding threshold and never raises one.
        self._alert_threshold = float(value)
        self.params = self.params.copy()
        self.params[P_ALERT] = self._alert_threshold

    def __len__(self) -> int:
        return len(self._slots)

    def _slot(self, key: SeriesKey, pending: set[int], flush) -> int:
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        if self._free:
            slot = self._free.pop()
        else:
            old_key, slot = next(iter(self._slots.items()))
            if slot in pending:   # every slot is in this batch: score what we have before reusing one
                flush()
            del self._slots[old_key]
            self.evicted_total += 1
        self._state[slot] = 0.0
        self._score[slot] = 0.0
        self._score_ts[slot] = -np.inf
        self._keys[slot] = key
        self._slots[key] = slot
        return slot

    def update(self, keys: Sequence[SeriesKey], ts: Sequence[float], values: Sequence[float]) -> np.ndarray:
        """Score samples (in arrival order; several per key allowed) and return their scores."""
        n = len(keys)
        if len(ts) != n or len(values) != n:
            raise ValueError(f"keys, ts and values differ in length ({n}, {len(ts)}, {len(values)})")
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros(n)
        slots = np.empty(n, dtype=np.int64)
        pending: set[int] = set()
        start = 0

        def flush(end: int) -> None:   # score samples [start, end) before a slot they use is reused
            nonlocal start
            if end > start:
                idx = slots[start:end]
                out[start:end] = fastpath.score_samples(self._state, self.params, idx, ts[start:end],
                                                        values[start:end])
                t = np.where(np.isfinite(ts[start:end]), ts[start:end], self._updated[idx])
                self._hold(idx, t, out[start:end])
                np.maximum.at(self._updated, idx, t)
                if self.on_alert is not None:
                    for i in (start + np.flatnonzero(out[start:end] >= self.alert_threshold)).tolist():
                        when = float(t[i - start])
                        self._alert(keys[i], when, float(values[i]), float(out[i]), self._usual(int(slots[i]), when))
            start = end
            pending.clear()

        for i in range(n):
            slots[i] = self._slot(keys[i], pending, lambda: flush(i))
            pending.add(int(slots[i]))
        flush(n)
        self.samples_total += n
        return out

    def _usual(self, slot: int, ts: float) -> tuple[float, float]:
        row = self._state[slot]
        hour = int((ts // 3600.0) % N_HOURS) if np.isfinite(ts) else 0
        return float(row[STATE_SEAS + hour]), float(row[STATE_SEAS_ERR])

    def _alert(self, key: SeriesKey, ts: float, value: float, score: float, usual: tuple) -> None:
        try:
            self.on_alert(key, ts, value, score, usual)
        except Exception:  # a consumer's bug must not stop the scoring
            _log.exception("anomaly alert consumer failed for %s", key)

    def _hold(self, idx: np.ndarray, t: np.ndarray, scores: np.ndarray) -> None:
        peak, peak_ts, hold = self._score, self._score_ts, self.hold_seconds
        for slot, when, score in zip(idx.tolist(), t.tolist(), scores.tolist()):
            # in order: a later, lower score must not hide an earlier peak until it is hold_seconds old
            if score >= peak[slot] or when - peak_ts[slot] > hold:
                peak[slot] = score
                peak_ts[slot] = when

    def score_of(self, key: SeriesKey) -> float | None:
        slot = self._slots.get(key)
        return None if slot is None else float(self._score[slot])

    def forget(self, keys: Iterable[SeriesKey]) -> None:
        """Drop series that no longer exist (an interface removed, a device gone)."""
        for key in keys:
            slot = self._slots.pop(key, None)
            if slot is not None:
                self._keys[slot] = None
                self._score[slot] = 0.0
                self._free.append(slot)

    def top(self, n: int, *, since: float = float("-inf")) -> list[tuple[SeriesKey, float]]:
        """The n series with the highest last score (updated at or after `since`), highest first."""
        live = [(float(self._score[s]), k) for k, s in self._slots.items() if self._updated[s] >= since]
        best = heapq.nlargest(n, live, key=lambda item: item[0])
        return [(k, s) for s, k in best]

    def device_max(self, *, since: float = float("-inf")) -> dict[str, float]:
        """Each device's highest last score among its series (one entry per device with a tracked series)."""
        out: dict[str, float] = {}
        for key, s in self._slots.items():
            if self._updated[s] < since:
                continue
            device = key[0]
            score = float(self._score[s])
            if score > out.get(device, -1.0):
                out[device] = score
        return out

    def count_at_or_above(self, threshold: float, *, since: float = float("-inf")) -> int:
        used = np.fromiter(self._slots.values(), dtype=np.int64, count=len(self._slots))
        if not len(used):
            return 0
        fresh = self._updated[used] >= since
        return int(((self._score[used] >= threshold) & fresh).sum())
