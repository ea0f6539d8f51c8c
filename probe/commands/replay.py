"""Run a capture file through the live pipeline and print what the probe would export and find.

Reads a pcap or pcapng file (Ethernet, or a link type the reader turns into Ethernet), parses and aggregates it in the same time windows the live
capture uses, runs the LAN detectors, and prints JSON (frames, bytes, malformed, per-device aggregates
by MAC in "devices" and by IP in "hosts" with zero counters left out (the most repeated broadcast
frame as "repeated_frame"), findings, and the LLDP/CDP/DHCP/
mDNS names seen in "discovery") or the Prometheus metric families the live probe would serve. A truncated or corrupt file is
processed up to the fault, the results printed, and the error reported (exit status 1). Frames the reader
left out (802.11 management frames, a pcapng interface of an unsupported link type...) are counted by link
type and reason in "skipped_frames", and said once each on stderr as a warning.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import sys
import time

from probe import fastpath
from probe.fastpath.layout import dup_max_fields
from probe.config import ConfigError, default_config, load_file
from probe.findings.pipeline import CapturePipeline
from probe.sources.capfile import CaptureFileError, ReaderStats, read_batches
from probe.fastpath.rare import decode_batch
from probe.state.aggregates import batch_columns, format_mac

_IDENTITY = {  # fields that make two decoded frames "the same thing seen again"
    "lldp": ("chassis_id", "port_id", "system_name"), "cdp": ("device_id", "port_id"),
    "dhcp": ("client_mac", "message_type", "hostname", "server_id"), "mdns": ("questions", "records"),
    "llmnr": ("questions", "records"), "nbns": ("name", "suffix"),
}


class Discovery:
    """Distinct decoded rare frames (LLDP/CDP neighbours, DHCP clients and servers, mDNS/LLMNR/NetBIOS names)."""

    def __init__(self, limit: int = 500):
        self.limit = limit
        self.entries: list[dict] = []
        self._seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.limit

    def add(self, decoded: list[dict]) -> None:
        for d in decoded:
            if len(self.entries) >= self.limit:
                return
            fields = _IDENTITY.get(d.get("protocol"), ())
            key = json.dumps([d.get("protocol"), d.get("src_mac"), [d.get(f) for f in fields], d.get("malformed")],
                             sort_keys=True)
            if key not in self._seen:
                self._seen.add(key)
                self.entries.append(d)


class Progress:
    """A one-line progress report on a terminal: frames, rate, share of the file, ETA."""

    def __init__(self, path: str):
        self.size = max(1, os.path.getsize(path)) if os.path.exists(path) else 1
        self.t0 = self.last = time.monotonic()
        self.frames = self.bytes = 0

    def update(self, frames: int, nbytes: int):
        self.frames += frames
        self.bytes += nbytes
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            rate = self.frames / max(now - self.t0, 1e-9)
            share = min(1.0, self.bytes / self.size)
            eta = (now - self.t0) * (1 - share) / share if share > 0 else 0
            sys.stderr.write(f"\r{self.frames:,} frames  {rate:,.0f}/s  {share:.0%}  ETA {eta:.0f}s ")
            sys.stderr.flush()

    def done(self):
        if self.last != self.t0:
            sys.stderr.write("\n")


def add_arguments(p):
    p.add_argument("file", metavar="FILE", help="pcap or pcapng capture file (Ethernet)")
    p.add_argument("--format", choices=["json", "prom"], default="json", help="output format (default: json)")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR",
                   help="record the capture's findings into the ledger in DIR, on the capture's own clock "
                        "(rebuild a past month for a report), and its span as coverage (a replayed capture): an episode still going on when the capture ends "
                        "ends a quiet time (detection.episode_quiet) after it; default: a ledger in memory")
    p.add_argument("--config.file", dest="config_file", default=None,
                   help="take capture and detection settings from this configuration file")
    p.add_argument("--window", type=float, default=None, help="capture window in seconds (default: capture.window)")
    p.add_argument("--allowed-dhcp-server", dest="allowed_dhcp", action="append", default=None, metavar="IP",
                   help="a DHCP server allowed to offer leases (repeatable; default: detection.allowed_dhcp_servers)")


def _config(args):
    cfg = load_file(args.config_file) if args.config_file else default_config()
    capture, detection = cfg.capture, cfg.detection
    if args.window is not None:
        if args.window < 1:
            raise ValueError(f"--window: must be at least 1 second, got {args.window}")
        capture = dataclasses.replace(capture, window=args.window)
    if args.allowed_dhcp:
        for a in args.allowed_dhcp:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"--allowed-dhcp-server: not an IP address: {a!r}") from None
        detection = dataclasses.replace(detection, allowed_dhcp_servers=tuple(args.allowed_dhcp))
    return capture, detection


def _repeated_frame(d: dict) -> None:
    """dup_max (packed) as the most repeated broadcast/multicast frame: copies in a row and what it was."""
    packed = d.pop("dup_max", 0)
    if packed:
        f = dup_max_fields(packed)
        d["repeated_frame"] = {**f, "ethertype": f"0x{f['ethertype']:04x}"}


def _devices(pipe: CapturePipeline) -> tuple[dict, dict]:
    macs = pipe.summaries["mac"].as_dicts(skip_zero=True)
    for d in macs.values():
        _repeated_frame(d)
        peer = d.pop("peer", 0)
        d["ipv4"] = str(ipaddress.IPv4Address(peer)) if peer else None
        d.pop("peer_changes", None), d.pop("prev_peer", None)
    ips = pipe.summaries["ip"].as_dicts(skip_zero=True)
    for d in ips.values():
        _repeated_frame(d)
        peer = d.pop("peer", 0)
        d["mac"] = format_mac(peer) if peer else None
        prev = d.pop("prev_peer", 0)
        if prev:
            d["previous_mac"] = format_mac(prev)
    return macs, ips


def report(path: str, pipe: CapturePipeline, error: str | None, after_id: int = 0,
           reader: ReaderStats | None = None) -> dict:
    macs, ips = _devices(pipe)
    reader = reader if reader is not None else ReaderStats()
    s = pipe.stats()
    return {
        "file": path,
        "frames": s.frames,
        "bytes": s.bytes,
        "malformed": s.malformed,
        "truncated": s.flag_frames.get("TRUNCATED", 0),
        "fragments": s.flag_frames.get("FRAGMENT", 0),  # IP fragments: parsed as far as they go, not malformed
        # frames the file reader left out, by link type and why (802.11 management, an unsupported interface...)
        "skipped_frames": dict(reader.skipped),
        "timestamps_out_of_range": reader.timestamps_out_of_range,
        "first_timestamp": pipe.first_ts_ns / 1e9 if pipe.first_ts_ns is not None else None,
        "last_timestamp": pipe.last_ts_ns / 1e9 if pipe.last_ts_ns is not None else None,
        "windows": s.windows,
        "window_seconds": pipe.agg.window_ns / 1e9,
        "protocols": {k.lower(): v for k, v in s.flag_frames.items() if v and k not in ("MALFORMED", "TRUNCATED")},
        "events": {k: v for k, v in s.events.items() if v},
        "table_overflow_frames": s.table_overflow_frames,
        "devices": macs,
        "hosts": ips,
        "findings": [{"id": ep.id, **ep.finding.to_dict(), "state": ep.state}
                     for ep in pipe.findings.episodes(after_id)],
        "error": error,
    }


def run(args) -> int:
    try:
        capture, detection = _config(args)
    except (ConfigError, ValueError) as exc:
        print(f"sitevigil replay: {exc}", file=sys.stderr)
        return 2
    store = ledger = None
    clock = _CaptureClock()
    if args.state_dir:
        from probe.findings.ledger import Ledger
        from probe.state.store import Store, StoreError
        try:
            store = Store(args.state_dir)
            ledger = Ledger(store, quiet_after=float(detection.episode_quiet), clock=clock)
        except StoreError as exc:
            print(f"sitevigil replay: {exc}", file=sys.stderr)
            return 1
    try:
        return _replay(args, capture, detection, ledger, clock)
    finally:
        if store is not None:
            store.close()


class _CaptureClock:
    """A replay ledger's clock: the end of the capture's latest closed window, as the pipeline's own."""

    pipe: CapturePipeline | None = None
    after = 0.0  # once the capture is over: the quiet time past its end, when its episodes end

    def __call__(self) -> float:
        return (self.pipe.now if self.pipe is not None else 0.0) + self.after


def _replay(args, capture, detection, ledger, clock: _CaptureClock) -> int:
    before = ledger.last_id if ledger is not None else 0
    pipe = CapturePipeline(capture, detection, summarize_devices=True, findings=ledger)
    clock.pipe = pipe
    discovery = Discovery()
    progress = Progress(args.file) if sys.stderr.isatty() else None
    error = None
    reader = ReaderStats()
    try:
        for batch in read_batches(args.file, stats=reader):
            records, malformed = fastpath.parse_frames(*batch_columns(batch))
            pipe.add_records(records, malformed)
            if args.format == "json" and not discovery.full:
                discovery.add(decode_batch(batch, records, limit=discovery.limit))
            if progress:
                progress.update(len(batch), int(batch.caplen.sum()) + 16 * len(batch))
    except CaptureFileError as exc:
        error = str(exc)
    if progress:
        progress.done()
    pipe.finish()
    if ledger is not None:  # nothing more will be reported: episodes end as quiet ones do in the daemon
        clock.after = float(detection.episode_quiet)
        ledger.close_quiet()
        if pipe.first_ts_ns is not None:  # the report counts the capture's span as watched, "replayed capture"
            from probe.state.coverage import Coverage
            Coverage(ledger.store).record_span(pipe.first_ts_ns / 1e9, pipe.last_ts_ns / 1e9, source="replay",
                                               frames=pipe.stats().frames, label=os.path.basename(args.file))
    if args.format == "json":
        out = report(args.file, pipe, error, after_id=before, reader=reader)
        out["discovery"] = discovery.entries
        json.dump(out, sys.stdout, indent=1, sort_keys=False)
        sys.stdout.write("\n")
    else:
        from prometheus_client import CollectorRegistry, generate_latest

        from probe.exposition.capture_collector import CaptureCollector

        from probe.findings.ledger import LedgerCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(CaptureCollector(pipe.stats))
        # Findings as the live probe exports them: from the one ledger the JSON output lists too.
        registry.register(LedgerCollector(pipe.findings))
        sys.stdout.write(generate_latest(registry).decode())
    for warning in reader.warnings:
        print(f"sitevigil replay: warning: {warning}", file=sys.stderr)
    if error:
        print(f"sitevigil replay: {error}", file=sys.stderr)
        return 1
    return 0
