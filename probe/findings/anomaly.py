"""Findings from anomaly scores: a series scoring at or above the threshold is an `anomaly` finding.

The scoring kernel (probe.fastpath.score_samples, behind probe.state.anomaly.AnomalyScores) already
reports each episode once and silences its followers, and the ledger keeps one open episode per
(kind, device), so a device whose traffic or counters stay strange raises one finding, not one per
sample. The evidence says which series, the value, the score and what the score means: how rare such
a value is for that series ("one in N" of its own samples), so a technician can judge it.

    alerts = AnomalyAlerts(ledger.record, warn_threshold=0.75)
    scores = AnomalyScores(20_000, on_alert=alerts, alert_threshold=0.5)

Which samples alert is AnomalyScores' alert_threshold alone; AnomalyAlerts only grades them.
"""
from __future__ import annotations

import datetime
import math
from typing import Callable

from probe import fastpath
from probe.fastpath.layout import SCORE_PARAM_NAMES
from probe.findings.model import Finding

KIND = "anomaly"
_LOG_SCALE = SCORE_PARAM_NAMES.index("log_scale")


class AnomalyAlerts:
    """Turns (series key, ts, value, score) from AnomalyScores' on_alert into `anomaly` findings for `emit`:
    warning from warn_threshold, info below it."""

    def __init__(self, emit: Callable[[Finding], object], *, warn_threshold: float, params=None):
        self.emit = emit
        self.warn_threshold = warn_threshold
        params = fastpath.score_default_params() if params is None else params
        self.log_scale = float(params[_LOG_SCALE])
        self.raised_total = 0

    def __call__(self, key: tuple[str, str], ts: float, value: float, score: float, usual=None) -> None:
        device, series = key
        severity = "warning" if score >= self.warn_threshold else "info"
        one_in = 10.0 ** (score * self.log_scale)  # score = -log10(p) / log_scale
        evidence = {"series": series, "value": _num(value), "score": round(float(score), 4),
                    "one_in": int(min(one_in, 1e18)),
                    "meaning": f"a value this unusual for this series: about one sample in {_human(one_in)}"}
        if usual is not None and math.isfinite(ts):
            when = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
            typical, miss = usual
            evidence["usual"] = _num(typical)
            evidence["explanation"] = (
                f"usually about {_fmt(typical)} (give or take {_fmt(miss)}) at {when:%H}:00 UTC on any day; "
                f"on {when:%A} at {when:%H:%M} UTC it was {_fmt(value)}; about one sample in {_human(one_in)} "
                f"is this unusual for this series")
        self.raised_total += 1
        self.emit(Finding(KIND, severity, device, evidence, ts, ts))


def _fmt(value: float) -> str:
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _num(value: float) -> float:
    v = float(value)
    return round(v, 6) if math.isfinite(v) else v


def _human(n: float) -> str:
    if n >= 1e18:
        return "more than a billion billion"
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if n >= size:
            return f"{n / size:.3g} {word}"
    return f"{n:.0f}"
