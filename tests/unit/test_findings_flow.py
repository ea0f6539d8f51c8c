"""The one findings flow: the ledger is the only episode tracker, and it is safe under concurrency.

Both bugs these tests pin were real: LAN findings reached the ledger only when an episode started, so
a duplicate address lasting two hours showed as resolved after the ledger's quiet time; and the
ledger's insert and its `SELECT last_insert_rowid()` were two calls on a connection shared by the
capture thread and the event loop, so 6,000 episodes written from two threads got fewer distinct ids.
"""
from __future__ import annotations

import multiprocessing
import threading

from scapy.layers.l2 import ARP, Ether

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.findings.pipeline import CapturePipeline
from probe.sources.frames import FrameBatch
from probe.state.store import Store

S = 10**9
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def _arp(src, psrc, pdst):
    return bytes(Ether(src=src, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=src, psrc=psrc, pdst=pdst))


def test_a_duplicate_ip_lasting_two_hours_stays_one_open_episode(tmp_path):
    """Two hosts answer for one address for two hours: the ledger, fed the way the daemon feeds it
    and closing quiet episodes on its own clock, holds one episode open the whole time."""
    store = Store(str(tmp_path))
    t0 = 1_700_000_000
    now = [float(t0)]
    ledger = Ledger(store, quiet_after=300, clock=lambda: now[0])
    pipe = CapturePipeline(CaptureConfig(window=10, max_devices=256), DetectionConfig(), findings=ledger)
    frame_a, frame_b = _arp(A, "10.0.0.50", "10.0.0.1"), _arp(B, "10.0.0.50", "10.0.0.1")
    for w in range(720):  # 2 hours of 10 s windows, both hosts claiming the address in each
        ts = (t0 + 10 * w) * S
        pipe.add_batch(FrameBatch.from_frames([frame_a, frame_b], ts_ns=[ts + S, ts + 2 * S]))
        now[0] = t0 + 10 * w + 3
        if w % 6 == 0:  # the daemon's flusher, every minute
            ledger.close_quiet()
    pipe.finish()
    dup = [e for e in ledger.open_episodes() if e.finding.kind == "duplicate_ip"]
    assert [e.finding.device for e in dup] == ["10.0.0.50"]
    assert dup[0].finding.last_seen - dup[0].finding.first_seen > 7000
    rows = store.query("SELECT resolved_at, occurrences FROM findings WHERE kind='duplicate_ip'")
    assert len(rows) == 1 and rows[0][0] is None and rows[0][1] > 700
    store.close()


def _record_many(path: str, prefix: str, n: int) -> list[tuple[int, str]]:
    store = Store(path)
    ledger = Ledger(store, max_open=100_000)
    out = [(ledger.record(Finding("port_scan", "warning", f"{prefix}-{i}")).id, f"{prefix}-{i}") for i in range(n)]
    store.close()
    return out


def _child(path, prefix, n, q):
    q.put(_record_many(path, prefix, n))


def test_ids_are_never_duplicated_or_swapped_across_threads_and_processes(tmp_path):
    store = Store(str(tmp_path))
    ledger = Ledger(store, max_open=100_000)
    got: dict[str, list] = {"t0": [], "t1": []}
    start = threading.Barrier(2)

    def work(name):
        start.wait()
        for i in range(3000):
            dev = f"{name}-{i}"
            got[name].append((ledger.record(Finding("port_scan", "warning", dev)).id, dev))

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(str(tmp_path), "proc", 1000, q))
    proc.start()
    threads = [threading.Thread(target=work, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_proc = q.get(timeout=120)
    proc.join(60)
    pairs = got["t0"] + got["t1"] + from_proc
    ids = [i for i, _ in pairs]
    assert len(set(ids)) == len(ids) == 7000 and min(ids) > 0
    on_disk = dict(store.query("SELECT id, device FROM findings"))
    assert all(on_disk[i] == dev for i, dev in pairs)  # every id names its own episode's row
    # the in-memory episodes of this process agree with the rows too
    assert all(on_disk[e.id] == e.finding.device for e in ledger.open_episodes())
    store.close()
