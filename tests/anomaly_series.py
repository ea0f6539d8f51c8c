"""A labelled set of probe-like series: what the `anomaly` finding should and should not fire on.

Every series is four weeks of 5-minute samples (the SNMP poll interval; capture windows are rated to
the same per-second units), starting Monday 2026-11-02 00:00 UTC. Weeks 1-3 are ordinary; in week 4
an anomalous series gets one injected anomaly at a seeded time between day 22 and day 26 (never on a
weekend day: a weekend is ordinary here), and an ordinary series stays ordinary.

The ordinary shape, per series (seeded, `make_set(seed)` gives the same set every time):
* daily profile: a night floor, a business-hours plateau 08:00-18:00 (smooth edges), per series a
  different floor and start hour (+-1 h);
* weekly profile: Saturday and Sunday run at 20-50 % of a weekday;
* noise: multiplicative lognormal for traffic, Poisson for counts (SYNs, DNS errors, interface
  errors: mostly zeros for the rare ones);
* gaps: about one poll in 200 is missing (a lost reply), and about once a week a device reboots: its
  counters reset, so the probe has no rate for the poll after it (snmp_feed skips it) and the next
  rate starts afresh;
* storage growth: a small positive rate with a nightly backup burst at 02:00 and occasional deletes.

Scales of the interface series come from the LibreNMS SNMP recordings (../shared/data/snmp/librenms):
each recorded interface's ifHCInOctets / sysUpTime is its mean bit rate, ifInErrors / sysUpTime its
error rate; without the recordings a fixed list of rates stands in.

Anomaly kinds and the window in which a finding counts as found (from the injection time):
  level_shift       the series jumps to 3x (or 0.3x) its usual level and stays   6 h
  spike             one sample 10x the usual (or, for counts, +10 usual spreads)  30 min
  slow_drift        the level climbs linearly to 3x over two days and stays       2 days
  lost_seasonality  the daily rhythm stops: the weekday mean all day, with noise  1 day
  flatline          the same value repeated (a stuck counter or agent) for 6 h    6 h
"""
from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass

import numpy as np

STEP = 300.0
DAYS = 28
START = 1793577600.0          # Monday 2026-11-02 00:00:00 UTC
WEEK = 7 * 86400.0
ORDINARY_WEEK = (3 * WEEK, 4 * WEEK)   # week 4, measured from START
KINDS = ("level_shift", "spike", "slow_drift", "lost_seasonality", "flatline")
WINDOW = {"level_shift": 6 * 3600.0, "spike": 1800.0, "slow_drift": 2 * 86400.0,
          "lost_seasonality": 86400.0, "flatline": 6 * 3600.0}
SHAPES = ("device_bytes", "device_syn", "dns_errors", "if_in_bps", "if_in_errors", "storage_growth")


@dataclass
class Series:
    key: tuple[str, str]
    shape: str
    ts: np.ndarray               # sample times (gaps left out)
    values: np.ndarray
    kind: str | None = None      # injected anomaly, None for an ordinary series
    at: float | None = None      # injection time


def recorded_rates(snmp_dir: str | None) -> list[tuple[float, float]]:
    """(mean in bits/s, mean in errors/s) of each recorded interface that carried traffic."""
    out = []
    if snmp_dir and os.path.isdir(snmp_dir):
        for path in sorted(glob.glob(os.path.join(snmp_dir, "snmprec", "*.snmprec"))):
            uptime, octets, errors = None, {}, {}
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    oid, _, rest = line.partition("|")
                    tag, _, value = rest.strip().partition("|")
                    if oid == "1.3.6.1.2.1.1.3.0" and value.isdigit():
                        uptime = int(value) / 100.0
                    elif oid.startswith("1.3.6.1.2.1.31.1.1.1.6.") and value.isdigit():
                        octets[oid.rsplit(".", 1)[1]] = int(value)
                    elif oid.startswith("1.3.6.1.2.1.2.2.1.14.") and value.isdigit():
                        errors[oid.rsplit(".", 1)[1]] = int(value)
            if not uptime:
                continue
            for idx, o in octets.items():
                bps = 8.0 * o / uptime
                if bps > 100.0:
                    out.append((bps, errors.get(idx, 0) / uptime))
    if not out:
        out = [(2e4, 0.0), (3e5, 1e-4), (4e6, 0.0), (2.5e7, 2e-3), (1.2e8, 0.0)]
    return out


def _daily(hours: np.ndarray, start_hour: float, floor: float) -> np.ndarray:
    up = 1.0 / (1.0 + np.exp(-(hours - start_hour) * 2.0))
    down = 1.0 / (1.0 + np.exp((hours - (start_hour + 10.0)) * 2.0))
    return floor + (1.0 - floor) * up * down


def _ordinary(rng, shape: str, t: np.ndarray, rates) -> tuple[np.ndarray, np.ndarray]:
    """(expected value, sampled value) of one ordinary series at times t."""
    rel = t - START
    hours = (rel % 86400.0) / 3600.0
    dow = (rel // 86400.0) % 7            # 0 Monday
    profile = _daily(hours, 8.0 + rng.uniform(-1, 1), rng.uniform(0.05, 0.4))
    profile = profile * np.where(dow >= 5, rng.uniform(0.2, 0.5), 1.0)
    if shape == "device_bytes":
        mean = rng.lognormal(math.log(5e4), 1.0) * profile
        return mean, mean * rng.lognormal(0.0, 0.2, len(t))
    if shape == "device_syn":
        mean = rng.uniform(0.05, 3.0) * profile
        return mean, rng.poisson(mean * STEP) / STEP
    if shape == "dns_errors":
        mean = rng.uniform(0.0005, 0.01) * profile
        return mean, rng.poisson(mean * STEP) / STEP
    if shape == "if_in_bps":
        bps, _ = rates[rng.integers(len(rates))]
        mean = bps * profile / max(profile.mean(), 1e-9)
        return mean, mean * rng.lognormal(0.0, 0.25, len(t))
    if shape == "if_in_errors":
        _, eps = rates[rng.integers(len(rates))]
        mean = max(eps, 2e-4) * (0.5 + profile)
        return mean, rng.poisson(mean * STEP) / STEP
    if shape == "storage_growth":
        base = rng.uniform(1e3, 5e4)
        mean = base * (0.5 + profile)
        backup = (np.abs(hours - 2.0) < 0.3) * base * 20.0
        v = mean * rng.lognormal(0.0, 0.3, len(t)) + backup * rng.uniform(0.8, 1.2, len(t))
        deletes = rng.random(len(t)) < 0.002
        v[deletes] = -base * rng.uniform(5, 50, int(deletes.sum()))
        return mean + backup, v
    raise ValueError(f"unknown shape {shape!r}")


def _inject(rng, kind: str, t: np.ndarray, mean: np.ndarray, v: np.ndarray, shape: str) -> tuple[np.ndarray, float]:
    while True:   # a weekday between day 22 and day 26, inside the working day or outside it
        at = START + 21 * 86400.0 + rng.uniform(0.0, 5 * 86400.0)
        if ((at - START) // 86400.0) % 7 < 5:
            break
    i = int(np.searchsorted(t, at))
    at = float(t[min(i, len(t) - 1)])
    v = v.copy()
    counts = shape in ("device_syn", "dns_errors", "if_in_errors")
    spread = np.sqrt(np.maximum(mean, 1e-12) / STEP) if counts else 0.25 * mean
    if kind == "level_shift":
        factor = 3.0 if rng.random() < 0.5 or counts else 0.3
        v[i:] = v[i:] * factor if not counts else v[i:] + 2.0 * mean[i:] + 6.0 * spread[i:]
    elif kind == "spike":
        v[i] = mean[i] * 10.0 + 10.0 * spread[i] if counts else v[i] * 10.0
    elif kind == "slow_drift":
        ramp = np.clip((t[i:] - at) / (2 * 86400.0), 0.0, 1.0)
        v[i:] = v[i:] * (1.0 + 2.0 * ramp) + (ramp * (2.0 * mean[i:] + 6.0 * spread[i:]) if counts else 0.0)
    elif kind == "lost_seasonality":
        weekday = (((t - START) // 86400.0) % 7) < 5
        flat = float(mean[weekday].mean())
        noise = v[i:] / np.maximum(mean[i:], 1e-12) if not counts else None
        v[i:] = flat * noise if noise is not None else np.random.default_rng(rng.integers(1 << 32)).poisson(
            flat * STEP, len(t) - i) / STEP
    elif kind == "flatline":
        j = int(np.searchsorted(t, at + WINDOW["flatline"]))
        v[i:j] = v[i - 1]
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    return v, at


def make_series(rng, n: int, shape: str, kind: str | None, rates) -> Series:
    t = START + STEP * np.arange(int(DAYS * 86400 / STEP), dtype=np.float64)
    mean, v = _ordinary(rng, shape, t, rates)
    at = None
    if kind is not None:
        v, at = _inject(rng, kind, t, mean, v, shape)
    keep = rng.random(len(t)) >= 0.005                       # lost replies
    for _ in range(DAYS // 7):                                # a reboot a week: no rate after it
        r = int(rng.integers(len(t)))
        keep[r:r + 2] = False
    if kind is not None:                                      # the injection itself is seen
        keep[int(np.searchsorted(t, at))] = True
    return Series((f"dev{n:04d}", f"{shape}{'' if kind is None else ':' + kind}"), shape, t[keep], v[keep], kind, at)


def make_set(n_ordinary: int = 300, n_per_kind: int = 60, *, seed: int = 14, snmp_dir: str | None = None) -> list[Series]:
    """n_ordinary ordinary series and n_per_kind of each anomaly kind, shapes taken in turn."""
    rng = np.random.default_rng(seed)
    rates = recorded_rates(snmp_dir)
    out = []
    for i in range(n_ordinary):
        out.append(make_series(rng, len(out), SHAPES[i % len(SHAPES)], None, rates))
    for kind in KINDS:
        for i in range(n_per_kind):
            out.append(make_series(rng, len(out), SHAPES[i % len(SHAPES)], kind, rates))
    return out


def run_findings(series: list[Series], params=None, *, alert_threshold: float = 0.5):
    """Feed every series through AnomalyScores + AnomalyAlerts in time order (all series interleaved,
    as the daemon does); the findings raised, each with its series."""
    from probe.findings.anomaly import AnomalyAlerts
    from probe.state.anomaly import AnomalyScores

    found = []
    alerts = AnomalyAlerts(found.append, warn_threshold=0.75, params=params)
    scores = AnomalyScores(len(series) + 1, params=params, on_alert=alerts, alert_threshold=alert_threshold)
    keys = np.concatenate([np.full(len(s.ts), i) for i, s in enumerate(series)])
    ts = np.concatenate([s.ts for s in series])
    values = np.concatenate([s.values for s in series])
    order = np.argsort(ts, kind="stable")
    keys, ts, values = keys[order], ts[order], values[order]
    names = [s.key for s in series]
    bounds = np.flatnonzero(np.diff(ts)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(ts)]):
        scores.update([names[k] for k in keys[a:b].tolist()], ts[a:b], values[a:b])
    by_key = {s.key: s for s in series}
    return [(by_key[(f.device, f.evidence["series"])], f) for f in found]


@dataclass
class Quality:
    kind: str
    injected: int
    found: int           # injected anomalies with a finding inside their window
    true_findings: int
    false_findings: int  # findings in week 4 outside the window, on series of this kind

    @property
    def recall(self) -> float:
        return self.found / self.injected if self.injected else 0.0

    @property
    def precision(self) -> float:
        n = self.true_findings + self.false_findings
        return self.true_findings / n if n else 1.0


def judge(series: list[Series], findings) -> tuple[dict[str, Quality], float, float]:
    """Per anomaly kind: recall and precision in week 4; and the findings per 100 ordinary series in
    week 4 and in weeks 2-3 (week 1 is learning) on every series."""
    lo, hi = START + ORDINARY_WEEK[0], START + ORDINARY_WEEK[1]
    quality = {}
    for kind in KINDS:
        mine = [s for s in series if s.kind == kind]
        hits = {id(s): 0 for s in mine}
        true_f = false_f = 0
        for s, f in findings:
            if s.kind != kind or not lo <= f.first_seen < hi:
                continue
            if s.at <= f.first_seen <= s.at + WINDOW[kind]:
                hits[id(s)] += 1
                true_f += 1
            else:
                false_f += 1
        quality[kind] = Quality(kind, len(mine), sum(1 for v in hits.values() if v), true_f, false_f)
    ordinary = [s for s in series if s.kind is None]
    week4 = sum(1 for s, f in findings if s.kind is None and lo <= f.first_seen < hi)
    early = sum(1 for s, f in findings if START + WEEK <= f.first_seen < START + 3 * WEEK
                and (s.kind is None or f.first_seen < s.at))
    per_100_week4 = 100.0 * week4 / max(len(ordinary), 1)
    per_100_weeks23 = 100.0 * early / max(len(series), 1) / 2.0
    return quality, per_100_week4, per_100_weeks23
