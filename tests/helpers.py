"""Small helpers several test modules share: waiting for a condition, reading a metrics page, a clock
the test moves, a ledger that remembers what it was told, the HTTP API served for real, crafted frames
fed through the capture pipeline."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.ledger import Ledger
from probe.findings.pipeline import CapturePipeline
from probe.sources.frames import FrameBatch

T = TypeVar("T")


def _polls(pred: Callable[[], T], timeout: float, what: str, context: Callable[[], str] | None):
    """pred() until it is truthy (the generator's return value), yielding between tries for the caller to
    sleep; past `timeout` seconds an AssertionError saying `what` did not happen, then context()."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}"
                                 + (f"\n{context()}" if context is not None else ""))
        yield


def wait_for(pred: Callable[[], T], timeout: float, what: str, *, every: float = 0.2,
             context: Callable[[], str] | None = None) -> T:
    """The first truthy value of pred(), polled every `every` seconds for at most `timeout` seconds;
    else an AssertionError saying `what` did not happen in time, followed by context() (a daemon's log)."""
    polls = _polls(pred, timeout, what, context)
    while True:
        try:
            next(polls)
        except StopIteration as done:
            return done.value
        time.sleep(every)


async def wait_for_async(pred: Callable[[], T], timeout: float, what: str, *, every: float = 0.02) -> T:
    """wait_for inside an event loop: sleeps with asyncio, so the loop's own servers keep running."""
    import asyncio
    polls = _polls(pred, timeout, what, None)
    while True:
        try:
            next(polls)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(every)


def samples(text: str, name: str | None = None) -> list:
    """The samples of a Prometheus text exposition (of metric `name` only, if given)."""
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples
            if name is None or s.name == name]


def sample(text: str, name: str, **labels) -> float | None:
    """The value of the one sample of `name` with exactly `labels`, or None."""
    for s in samples(text, name):
        if s.labels == labels:
            return s.value
    return None


def recording_ledger(reports: list, clock=time.time) -> Ledger:
    """An in-memory ledger that also appends every finding reported to it to `reports`, in order."""
    ledger = Ledger.in_memory(clock=clock)
    record = ledger.record

    def recording(finding):
        reports.append(finding)
        return record(finding)

    ledger.record = recording
    return ledger


class Clock:
    """A clock the test moves by hand: `clock()` is `clock.t`."""

    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class ServedApi:
    """The probe's HTTP API served for real on 127.0.0.1 (a free port) from its own event loop in a
    thread, as the daemon serves it; `url` is where to reach it. A context manager."""

    def __init__(self, ledger, visits, *, prefix: str = "", security=None):
        from prometheus_client import CollectorRegistry

        from probe.exposition.findings_api import FindingsApi
        from probe.exposition.http import HttpApi

        async def reload():
            return True, "ok"

        self.http = HttpApi(registry=CollectorRegistry(), fastpath="test", reload=reload, is_ready=lambda: True,
                            subsystems=lambda: [], last_scrape={}, route_prefix=prefix,
                            extra_routes=FindingsApi(ledger, visits).routes(prefix), security=security)
        self.scheme = "https" if security is not None and security.config.tls_server_config else "http"
        self.prefix = prefix
        self.url = ""

    def __enter__(self) -> "ServedApi":
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.http.start("127.0.0.1", 0))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="served-api", daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("the API did not start within 10 s")
        host, port = self.http.bound[0]
        self.port = port
        self.url = f"{self.scheme}://{host}:{port}{self.prefix}"
        return self

    def __exit__(self, *exc) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.http.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def call(self, method: str, path: str, body=None, *, content_type: str = "application/json"):
        """(status, JSON document) of one request."""
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


class FrameFeed:
    """Crafted (ts_ns, frame) pairs fed through a CapturePipeline in time order, in calls that keep the
    detectors' baselines between them; finish() closes the last window and returns every finding."""

    def __init__(self, detection: DetectionConfig | None = None, window: float = 10, max_devices: int = 4096):
        self.pipe = CapturePipeline(CaptureConfig(window=window, max_devices=max_devices),
                                    detection or DetectionConfig())

    def add(self, frames_ts) -> list:
        frames_ts = sorted(frames_ts, key=lambda x: x[0])
        new = []
        for i in range(0, len(frames_ts), 4096):
            chunk = frames_ts[i:i + 4096]
            new += self.pipe.add_batch(FrameBatch.from_frames([bytes(f) for _, f in chunk], ts_ns=[t for t, _ in chunk]))
        return new

    def finish(self) -> list:
        self.pipe.finish()
        return self.pipe.findings.all_findings()


def findings_of(frames_ts, detection: DetectionConfig | None = None, window: float = 10,
                max_devices: int = 4096) -> list:
    """Every finding the pipeline raises on (ts_ns, frame) pairs."""
    feed = FrameFeed(detection, window, max_devices)
    feed.add(frames_ts)
    return feed.finish()
