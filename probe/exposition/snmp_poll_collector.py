"""How the SNMP polls went, per device and module: up, last success, duration, PDUs, retries,
timeouts, error class. What the devices said (interface counters, storage...) is the SNMP data
collector's job (snmp_collector.py); this one only reads the poller's bookkeeping, so a scrape never
waits for a device.

The poller hands it `devices()`: objects with `target` (label), `credential` (name or None) and
`modules`: {module name: state with result (.ok, .error_class, .duration_seconds), last_success,
polls, pdus, retries, timeouts, errors {class: count}}.
"""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


def poll_health_families() -> list:
    """The poll-health families, empty: declared once, here, for the live poller's collector and for
    plain DeviceResults (probe/exposition/snmp_collector.py health_families), so the two cannot differ.
    In order: up, last success, duration, polls, PDUs, retries, timeouts, errors, error info."""
    lm = ["target", "module"]
    return [
        GaugeMetricFamily("sitevigil_snmp_up", "Whether the last poll of this module on this device succeeded.",
                          labels=lm),
        GaugeMetricFamily("sitevigil_snmp_last_success_timestamp_seconds",
                          "When this module last polled this device successfully.", labels=lm),
        GaugeMetricFamily("sitevigil_snmp_poll_duration_seconds",
                          "How long the last poll of this module on this device took.", labels=lm),
        CounterMetricFamily("sitevigil_snmp_polls", "Polls of this module on this device.", labels=lm),
        CounterMetricFamily("sitevigil_snmp_pdus", "SNMP request PDUs sent (retries included).", labels=lm),
        CounterMetricFamily("sitevigil_snmp_retries", "SNMP requests sent again after a timeout.", labels=lm),
        CounterMetricFamily("sitevigil_snmp_timeouts", "SNMP requests that got no answer in time.", labels=lm),
        CounterMetricFamily("sitevigil_snmp_poll_errors", "Failed polls by error class.", labels=lm + ["class"]),
        GaugeMetricFamily("sitevigil_snmp_poll_error_info",
                          "The error class of the last poll of this module, when it failed "
                          "(timeout, auth, protocol, bad_value, internal, skipped, unreachable).",
                          labels=lm + ["class"]),
    ]


class SnmpPollCollector(Collector):
    def __init__(self, devices: Callable[[], Iterable]):
        self._devices = devices

    def collect(self):
        up, last, dur, polls, pdus, retries, timeouts, errors, err_now = poll_health_families()
        cred = GaugeMetricFamily("sitevigil_snmp_credential_info", "The credential (by name) this device answers to.",
                                 labels=["target", "credential"])
        n = 0
        for dev in self._devices():
            n += 1
            if dev.credential:
                cred.add_metric([dev.target, dev.credential], 1.0)
            for name, st in sorted(dev.modules.items()):
                labels = [dev.target, name]
                r = st.result
                if r is not None:
                    up.add_metric(labels, 1.0 if r.ok else 0.0)
                    dur.add_metric(labels, float(r.duration_seconds))
                    if not r.ok:
                        err_now.add_metric(labels + [r.error_class or "internal"], 1.0)
                if st.last_success is not None:
                    last.add_metric(labels, st.last_success)
                polls.add_metric(labels, st.polls)
                pdus.add_metric(labels, st.pdus)
                retries.add_metric(labels, st.retries)
                timeouts.add_metric(labels, st.timeouts)
                for cls, count in sorted(st.errors.items()):
                    errors.add_metric(labels + [cls], count)
        targets = GaugeMetricFamily("sitevigil_snmp_targets", "Devices the SNMP poller is polling.")
        targets.add_metric([], n)
        yield from (up, last, dur, polls, pdus, retries, timeouts, errors, err_now, cred, targets)


def data_collector(devices):
    """The SNMP data collector (probe/exposition/snmp_collector.py, from the modules' side) over `devices()`."""
    from probe.exposition import snmp_collector

    return snmp_collector.for_devices(devices)
