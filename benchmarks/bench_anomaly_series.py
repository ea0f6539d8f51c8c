"""Precision and recall of the `anomaly` finding on labelled probe-like series (tests/anomaly_series.py).

600 series of four weeks at 5-minute polls (device traffic, SYNs, DNS errors; interface traffic and
errors scaled from the LibreNMS SNMP recordings; storage growth), daily and weekly rhythm, gaps and
counter resets; 300 stay ordinary, 60 of each anomaly kind get one injection in week 4. Fed through
AnomalyScores + AnomalyAlerts as the daemon does, at the default threshold. The peer figure is the
bound the issue sets: at most one finding per 100 ordinary series in an ordinary week.
"""
from __future__ import annotations

import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from probe.commands.bench import report  # noqa: E402

from tests import anomaly_series as A  # noqa: E402

BOUND_PER_100 = 1.0


def main(argv: list[str]) -> int:
    base = os.environ.get("SITEVIGIL_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
    snmp_dir = os.path.join(base, "snmp", "librenms")
    quick = "--quick" in argv
    series = A.make_set(150 if quick else 300, 20 if quick else 60, snmp_dir=snmp_dir)
    report().progress(f"scoring {len(series)} series")
    t0 = time.perf_counter()
    findings = A.run_findings(series)
    took = time.perf_counter() - t0
    quality, week4, weeks23 = A.judge(series, findings)
    print(f"labelled probe-like series: {len(series)} series, {sum(len(s.ts) for s in series):,} samples, "
          f"{len(findings)} findings ({took:.1f} s)")
    print(f"  {'anomaly kind':<18}{'injected':>9}{'found':>7}{'recall':>8}{'precision':>11}")
    for q in quality.values():
        print(f"  {q.kind:<18}{q.injected:>9}{q.found:>7}{q.recall:>8.2f}{q.precision:>11.2f}")
    ratio = week4 / BOUND_PER_100
    print(f"ordinary week 4: {week4:.1f} findings per 100 ordinary series (bound {BOUND_PER_100:.1f}; "
          f"ours / bound {ratio:.1f}); weeks 2-3: {weeks23:.1f} per 100 series per week")
    print(f"target: <= {BOUND_PER_100} finding per 100 series per ordinary week: "
          f"{'MET' if week4 <= BOUND_PER_100 else 'NOT MET'}")
    report().figure("anomaly findings on an ordinary week", week4, "findings per 100 series", peer=BOUND_PER_100,
                    peer_name="issue 14's bound", ratio_meaning="ours / bound", target="<= 1 per 100 series",
                    met=week4 <= BOUND_PER_100)
    for q in quality.values():
        report().figure(f"anomaly recall, {q.kind}", q.recall, "share of injected anomalies found")
        report().figure(f"anomaly precision, {q.kind}", q.precision, "share of findings that were injected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
