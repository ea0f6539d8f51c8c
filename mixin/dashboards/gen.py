"""Writes the Grafana dashboards in this folder (one JSON file each) from the panels below.

    python mixin/dashboards/gen.py          # rewrite the JSON files
    python mixin/dashboards/gen.py --check  # exit 1 if a JSON file differs from what this writes

Every dashboard has the variables datasource (Prometheus), job and instance (a probe), and the device
dashboards a target (a polled device); every query selects job=~"$job", instance=~"$instance"; counters
appear only through rate() or increase() over $__rate_interval; every panel has a unit and a description.
tests/integration/test_dashboards.py holds them to those rules (grafana's dashboard-linter's, which it
implements) and tests/lab/test_dashboards_lab.py holds every query to what a probe in the lab exports.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
S = 'job=~"$job", instance=~"$instance"'
T = S + ', target=~"$target"'
RI = "[$__rate_interval]"
DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(title, desc, unit, targets, kind="timeseries", w=12, h=8, **extra):
    p = {"type": kind, "title": title, "description": desc, "datasource": DS,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": legend, "refId": chr(65 + i)}
                     for i, (e, legend) in enumerate(targets)],
         "gridPos": {"w": w, "h": h}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    p.update(extra)
    return p


def variables(target: bool = False):
    def query(name, q, label):
        return {"name": name, "label": label, "type": "query", "datasource": DS, "query": q,
                "definition": q, "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+",
                "current": {"selected": True, "text": "All", "value": "$__all"}, "sort": 1}
    v = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
          "current": {}, "refresh": 1},
         query("job", "label_values(sitevigil_build_info, job)", "Job"),
         query("instance", 'label_values(sitevigil_build_info{job=~"$job"}, instance)', "Probe")]
    if target:
        v.append(query("target", f"label_values(sitevigil_snmp_up{{{S}}}, target)", "Device"))
    return {"list": v}


def dashboard(uid, title, desc, panels, target=False):
    x = y = 0
    for i, p in enumerate(panels):  # left to right, then down
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + h
        p["gridPos"].update(x=x, y=y)
        p["id"] = i + 1
        x += w
    return {"uid": uid, "title": title, "description": desc, "tags": ["sitevigil"], "timezone": "browser",
            "editable": True, "schemaVersion": 38, "version": 1, "time": {"from": "now-24h", "to": "now"},
            "refresh": "1m", "templating": variables(target), "annotations": {"list": []}, "panels": panels,
            "links": [{"title": "sitevigil dashboards", "type": "dashboards", "tags": ["sitevigil"], "asDropdown": True}]}


def overview():
    f = f'sitevigil_findings_open{{{S}, state="open"'
    return dashboard("sitevigil-overview", "sitevigil / Site overview",
                     "One site at a glance: its devices, the findings open now, and whether the probe is doing its job.", [
        panel("Devices", "Devices the probe knows on this site (sweeps, SNMP and the capture), by state.", "none",
              [(f"sum by (state) (sitevigil_devices{{{S}}})", "{{state}}")], kind="stat", w=6, h=4),
        panel("Critical findings open", "Open findings of critical severity: a technician should act now.", "none",
              [(f'sum({f}, severity="critical"}}) or vector(0)', "critical")], kind="stat", w=6, h=4),
        panel("Warnings open", "Open findings of warning severity: worth a look this week.", "none",
              [(f'sum({f}, severity="warning"}}) or vector(0)', "warning")], kind="stat", w=6, h=4),
        panel("Subsystems not doing their job", "Subsystems (capture, SNMP, sweep...) that are failed or starting; "
              "0 is healthy.", "none", [(f"count(sitevigil_subsystem_up{{{S}}} == 0) or vector(0)", "down")],
              kind="stat", w=6, h=4),
        panel("Open findings by kind", "Findings open or acknowledged, by kind and severity.", "none",
              [(f"sum by (kind, severity, state) (sitevigil_findings_open{{{S}}})", "{{kind}} ({{severity}}, {{state}})")],
              kind="table", w=12),
        panel("Findings raised", "Finding episodes the probe opened, by kind.", "none",
              [(f"sum by (kind) (increase(sitevigil_findings_raised_total{{{S}}}{RI}))", "{{kind}}")], w=12),
        panel("Findings resolved", "Finding episodes resolved, by kind and by whom (the probe when the condition "
              "stopped, or a technician).", "none",
              [(f"sum by (kind, by) (increase(sitevigil_findings_resolved_total{{{S}}}{RI}))", "{{kind}} by {{by}}")], w=12),
        panel("Traffic on the LAN", "Bits per second the capture saw on the mirror port.", "bps",
              [(f"sum(rate(sitevigil_capture_bytes_total{{{S}}}{RI})) * 8", "captured")], w=12),
    ])


def device():
    return dashboard("sitevigil-device", "sitevigil / Device detail",
                     "One polled device: whether it answers, its uptime, load, memory and disks.", [
        panel("Modules answering", "1 when the last poll of the module succeeded.", "none",
              [(f"sitevigil_snmp_up{{{T}}}", "{{target}} {{module}}")], w=12),
        panel("Uptime", "Time since the device's SNMP agent last started (a drop is a reboot).", "s",
              [(f"sitevigil_snmp_uptime_seconds{{{T}}}", "{{target}}")], w=6),
        panel("Reboots", "Agent restarts the probe saw (sysUpTime went back).", "none",
              [(f"sum by (target) (increase(sitevigil_snmp_restarts_total{{{T}}}{RI}))", "{{target}}")], w=6),
        panel("Processor load", "hrProcessorLoad per processor, last minute average.", "percentunit",
              [(f"sitevigil_snmp_processor_load_ratio{{{T}}}", "{{target}} cpu {{index}}")], w=12),
        panel("Memory in use", "Physical memory in use as a share of all (HOST-RESOURCES-MIB).", "percentunit",
              [(f"sitevigil_snmp_memory_used_bytes{{{T}}} / sitevigil_snmp_memory_size_bytes{{{T}}}", "{{target}}")], w=12),
        panel("Storage in use", "Each storage's used share (disks, RAM, swap).", "percentunit",
              [(f"sitevigil_snmp_storage_used_bytes{{{T}}} / sitevigil_snmp_storage_size_bytes{{{T}}}",
                "{{target}} {{descr}}")], w=12),
        panel("Poll duration", "How long the last poll of each module took.", "s",
              [(f"sitevigil_snmp_poll_duration_seconds{{{T}}}", "{{target}} {{module}}")], w=12),
        panel("Poll errors", "Failed polls per second by error class (timeout, auth...).", "reqps",
              [(f"sum by (target, class) (rate(sitevigil_snmp_poll_errors_total{{{T}}}{RI}))", "{{target}} {{class}}")], w=12),
    ], target=True)


def interfaces():
    def pair(metric, mult=""):
        return [(f"rate(sitevigil_snmp_if_receive_{metric}_total{{{T}}}{RI}){mult}", "{{target}} {{ifname}} in"),
                (f"rate(sitevigil_snmp_if_transmit_{metric}_total{{{T}}}{RI}){mult}", "{{target}} {{ifname}} out")]
    return dashboard("sitevigil-interfaces", "sitevigil / Interfaces",
                     "Every interface of the polled devices: traffic, errors, discards and link changes.", [
        panel("Traffic", "Bits per second in and out of each interface.", "bps", pair("bytes", " * 8"), w=24),
        panel("Errors", "Packets with errors per second, in and out (a bad cable, a duplex mismatch).", "pps",
              pair("errors"), w=12),
        panel("Discards", "Packets discarded per second, in and out (congestion, buffers).", "pps",
              pair("discards"), w=12),
        panel("Link up", "1 when the interface's operational status is up.", "none",
              [(f"sitevigil_snmp_if_oper_up{{{T}}}", "{{target}} {{ifname}}")], w=12),
        panel("Link changes", "Operational status changes seen (a flapping port).", "none",
              [(f"increase(sitevigil_snmp_if_status_changes_total{{{T}}}{RI})", "{{target}} {{ifname}}")], w=12),
        panel("Utilisation", "Traffic in as a share of the interface's speed.", "percentunit",
              [(f"rate(sitevigil_snmp_if_receive_bytes_total{{{T}}}{RI}) / (sitevigil_snmp_if_speed_bytes{{{T}}} > 0)",
                "{{target}} {{ifname}} in")], w=24),
    ], target=True)


def printers_ups():
    return dashboard("sitevigil-printers-ups", "sitevigil / Printers and UPSes",
                     "Printer supplies (toner, drums) and UPS batteries of the polled devices.", [
        panel("Printer supplies left", "Remaining share of each printer supply (Printer-MIB).", "percentunit",
              [(f"sitevigil_snmp_printer_supply_remaining_ratio{{{T}}}", "{{target}} {{descr}}")], w=24),
        panel("UPS battery charge", "Battery charge of each UPS.", "percentunit",
              [(f"sitevigil_snmp_ups_battery_charge_ratio{{{T}}}", "{{target}}")], w=12),
        panel("UPS runtime left", "Estimated runtime on battery.", "s",
              [(f"sitevigil_snmp_ups_battery_runtime_seconds{{{T}}}", "{{target}}")], w=12),
        panel("UPS on battery", "1 while the UPS runs on battery (mains lost).", "none",
              [(f"sitevigil_snmp_ups_on_battery{{{T}}}", "{{target}}")], w=8),
        panel("UPS load", "Output load, highest phase.", "percentunit",
              [(f"sitevigil_snmp_ups_output_load_ratio{{{T}}}", "{{target}}")], w=8),
        panel("UPS battery to replace", "1 when the UPS asks for a new battery.", "none",
              [(f"sitevigil_snmp_ups_battery_replace_needed{{{T}}}", "{{target}}")], w=8),
    ], target=True)


def capture():
    return dashboard("sitevigil-capture", "sitevigil / Capture and traffic",
                     "What the passive capture on the mirror port sees, and what it misses.", [
        panel("Frames", "Frames per second captured on the mirror port.", "pps",
              [(f"sum(rate(sitevigil_capture_frames_total{{{S}}}{RI}))", "frames")], w=12),
        panel("Bits", "Bits per second captured.", "bps",
              [(f"sum(rate(sitevigil_capture_bytes_total{{{S}}}{RI})) * 8", "bits")], w=12),
        panel("By protocol", "Frames per second by protocol.", "pps",
              [(f"sum by (protocol) (rate(sitevigil_capture_protocol_frames_total{{{S}}}{RI}))", "{{protocol}}")], w=12),
        panel("LAN events", "Events per second in closed windows (SYNs, resets, DNS errors, ARP...).", "pps",
              [(f"sum by (event) (rate(sitevigil_capture_events_total{{{S}}}{RI}))", "{{event}}")], w=12),
        panel("Missed frames", "Frames per second the kernel dropped (ring full) and the interface lost.", "pps",
              [(f"sum(rate(sitevigil_capture_kernel_drops_total{{{S}}}{RI}))", "kernel drops"),
               (f"sum by (counter) (rate(sitevigil_capture_interface_drops_total{{{S}}}{RI}))", "interface {{counter}}")],
              w=12),
        panel("Malformed and truncated", "Frames per second the parser found malformed, or cut by the snap length.",
              "pps", [(f"sum(rate(sitevigil_capture_malformed_frames_total{{{S}}}{RI}))", "malformed"),
                      (f"sum(rate(sitevigil_capture_truncated_frames_total{{{S}}}{RI}))", "truncated")], w=12),
        panel("Table overflow", "Frames per second whose source did not fit the window's table (a flood of "
              "spoofed addresses, or a LAN larger than capture.max_devices).", "pps",
              [(f"sum by (table) (rate(sitevigil_capture_table_overflow_frames_total{{{S}}}{RI}))", "{{table}}")], w=12),
        panel("Top talkers", "Frames the busiest devices sent in the last capture window.", "none",
              [(f"sitevigil_capture_top_device_frames{{{S}}}", "{{mac}}")], w=12),
    ])


def probe_health():
    return dashboard("sitevigil-probe", "sitevigil / Probe health",
                     "The probe itself: its subsystems, its scrapes, its state database, its memory.", [
        panel("Subsystems up", "1 when the subsystem does its job (ok or degraded).", "none",
              [(f"sitevigil_subsystem_up{{{S}}}", "{{subsystem}}")], w=12),
        panel("Scrape duration", "How long each collector took in the previous scrape.", "s",
              [(f"sitevigil_scrape_collector_duration_seconds{{{S}}}", "{{collector}}")], w=12),
        panel("State database", "Writes waiting for a retry (a full disk) and writes failing per second.", "none",
              [(f"sitevigil_state_write_backlog{{{S}}}", "backlog"),
               (f"rate(sitevigil_state_write_failures_total{{{S}}}{RI})", "failures/s")], w=12),
        panel("Interruptions", "Capture interruptions (interface down or gone) and wall-clock steps.", "none",
              [(f"increase(sitevigil_capture_interruptions_total{{{S}}}{RI})", "capture interruptions"),
               (f"increase(sitevigil_clock_jumps_total{{{S}}}{RI})", "clock steps")], w=12),
        panel("Memory", "Resident memory of the probe process.", "bytes",
              [(f"process_resident_memory_bytes{{{S}}}", "resident")], w=12),
        panel("CPU", "CPU seconds per second the probe process uses.", "percentunit",
              [(f"rate(process_cpu_seconds_total{{{S}}}{RI})", "cpu")], w=12),
        panel("Anomaly series", "Series whose baseline is learnt, beside the bound.", "none",
              [(f"sitevigil_anomaly_series{{{S}}}", "tracked"), (f"sitevigil_anomaly_series_limit{{{S}}}", "limit")], w=12),
        panel("SNMP polls", "Polls per second, by module.", "reqps",
              [(f"sum by (module) (rate(sitevigil_snmp_polls_total{{{S}}}{RI}))", "{{module}}")], w=12),
    ])


DASHBOARDS = {"overview.json": overview, "device.json": device, "interfaces.json": interfaces,
              "printers-ups.json": printers_ups, "capture.json": capture, "probe.json": probe_health}


def render(make) -> str:
    return json.dumps(make(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, make in DASHBOARDS.items():
        path, text = HERE / name, render(make)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run python mixin/dashboards/gen.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
