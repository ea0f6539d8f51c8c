"""Anomaly scores as Prometheus gauges, with bounded label sets.

Never one series per flow or per interface: only the `top_n` most anomalous series
(sitevigil_anomaly_score{device,series}) and each device's highest score
(sitevigil_anomaly_device_score_max{device}), plus how many series are tracked, above the
threshold, and forgotten to stay within the bound. Scores are tail probabilities on a log scale
(-log10(p)/12, capped at 1): the same value means the same rarity on every series.
"""
from __future__ import annotations

import time
from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from probe.state.anomaly import AnomalyScores


class AnomalyCollector(Collector):
    def __init__(self, scores: AnomalyScores, *, top_n: int, threshold: float, stale_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        self.scores = scores
        self.top_n = top_n
        self.threshold = threshold
        self.stale_seconds = stale_seconds   # series without a sample for this long are not exported
        self.clock = clock

    def collect(self):
        since = self.clock() - self.stale_seconds
        top = GaugeMetricFamily("sitevigil_anomaly_score",
                                f"Anomaly score (0-1, a tail probability on a log scale) of the {self.top_n} "
                                "most anomalous series.", labels=["device", "series"])
        for (device, series), score in self.scores.top(self.top_n, since=since):
            top.add_metric([device, series], score)
        yield top
        dev = GaugeMetricFamily("sitevigil_anomaly_device_score_max",
                                "Highest anomaly score among each device's series.", labels=["device"])
        for device, score in sorted(self.scores.device_max(since=since).items()):
            dev.add_metric([device], score)
        yield dev
        above = GaugeMetricFamily("sitevigil_anomaly_series_above_threshold",
                                  "Series whose anomaly score is at or above detection.anomaly_threshold.")
        above.add_metric([], self.scores.count_at_or_above(self.threshold, since=since))
        yield above
        tracked = GaugeMetricFamily("sitevigil_anomaly_series", "Series whose baseline is being learnt.")
        tracked.add_metric([], len(self.scores))
        yield tracked
        limit = GaugeMetricFamily("sitevigil_anomaly_series_limit", "Most series scored at once.")
        limit.add_metric([], self.scores.max_series)
        yield limit
        evicted = CounterMetricFamily("sitevigil_anomaly_series_evicted",
                                      "Series forgotten to make room (least recently updated first).")
        evicted.add_metric([], self.scores.evicted_total)
        yield evicted
        samples = CounterMetricFamily("sitevigil_anomaly_samples", "Samples scored.")
        samples.add_metric([], self.scores.samples_total)
        yield samples
