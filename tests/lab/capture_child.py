"""Capture marker frames with one or both PacketRing implementations (run inside the probe namespace).

    ip netns exec NS python tests/lab/capture_child.py --iface mirror0 --run 7 --expect 1000 --impl cython,python

Prints "READY" on stdout once every ring is open, then reads until each ring has seen `expect` marker
frames of the run (or --timeout passes), then one JSON line: per implementation the marker frames in
arrival order (hex, wire length, VLAN), all frames counted and the kernel statistics. With --records
it reads through next_records instead and reports every record (ts_ns left out), the rare frames kept
(position, hex, wire length, VLAN) and the counts next_records returned; each ring's reads are also
aggregated in its walk (next_records' `aggregate`, windows of --window seconds) and, apart, from the
records it returned (aggregate_frames of the same implementation): "aggregates_equal" says whether every
closed window's tables agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from probe.sources.afpacket import CaptureError, compile_filter  # noqa: E402
from tests.lab.send_frames import marker_seq  # noqa: E402


def module(name: str):
    if name == "cython":
        import probe._fastpath as m
    elif name == "python":
        import probe.fastpath.twin as m
    else:
        from probe import fastpath as m
    return m


def _compare_closed(o: dict) -> None:
    """Compare the windows both aggregations have closed so far, then drop them (memory stays flat)."""
    import numpy as np

    walk, apart = o["closed"]
    if len(walk) != len(apart):  # the same records: the same windows close at the same read
        o["aggregates_equal"] = False
    for w, b in zip(walk, apart):
        same = (w.start_ns, w.end_ns) == (b.start_ns, b.end_ns) and all(
            np.array_equal(getattr(getattr(w, name), part), getattr(getattr(b, name), part))
            for name in ("macs", "ips", "arp") for part in ("keys", "counts", "hll"))
        o["aggregates_equal"] = o["aggregates_equal"] and same
    o["windows"] += len(walk)
    walk.clear()
    apart.clear()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--expect", type=int, required=True, help="marker frames to wait for")
    p.add_argument("--expect-frames", type=int, default=0, help="or frames of any kind to wait for")
    p.add_argument("--impl", default="facade")
    p.add_argument("--bpf", default="")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--block-size", type=int, default=1 << 20)
    p.add_argument("--block-count", type=int, default=16)
    p.add_argument("--max-frames", type=int, default=4096)
    p.add_argument("--hold", type=float, default=0, help="do not read for this long after READY (to force drops)")
    p.add_argument("--settle", type=float, default=0.5, help="keep reading this long after the expected count")
    p.add_argument("--window", type=float, default=0.5, help="aggregation window (seconds) with --records")
    p.add_argument("--linger", type=float, default=0.0, help="next_records' linger (seconds) with --records")
    p.add_argument("--records", action="store_true",
                   help="read with next_records: report every record (ts_ns left out) and the rare frames kept")
    a = p.parse_args()
    try:
        bpf = compile_filter(a.bpf, a.iface)
        rings = {name: module(name).PacketRing(a.iface, block_size=a.block_size, block_count=a.block_count,
                                               block_timeout=0.02, bpf=bpf)
                 for name in a.impl.split(",")}
    except (CaptureError, ValueError) as exc:
        print(json.dumps({"error": str(exc), "errno": getattr(exc, "errno", None)}), flush=True)
        return 3
    print("READY", flush=True)
    if a.hold:
        time.sleep(a.hold)
    out = {name: {"markers": [], "frames": 0, "bytes": 0} for name in rings}
    deadline = time.monotonic() + a.timeout
    done_at = None
    if a.records:
        import numpy as np

        from probe.fastpath.layout import FRAME_DTYPE
        buf = {name: np.zeros(a.max_frames, FRAME_DTYPE) for name in rings}
        fields = [f for f in FRAME_DTYPE.names if f != "ts_ns"]  # the two sockets stamp frames apart
        from probe.state.aggregates import CaptureAggregator

        for name, o in out.items():
            o.update(records=[], rare=[], malformed=0, wire_bytes=0, flag_counts=np.zeros(32, np.int64),
                     aggregated=0, windows=0, aggregates_equal=True)
            # [in the walk, from the records]
            o["aggs"] = [CaptureAggregator(max_devices=256, window_s=a.window, kernels=module(name)) for _ in (0, 1)]
            o["closed"] = [[], []]
    while time.monotonic() < deadline:
        for name, ring in rings.items():
            if a.records:
                o = out[name]
                walk, apart = o["aggs"]
                records, malformed, rare, (wire_bytes, lo, hi), aggregated = ring.next_records(
                    buf[name], 0.02, 0, o["flag_counts"], walk.ring_target(), a.linger)
                if len(records):
                    assert (lo, hi) == (int(records["ts_ns"].min()), int(records["ts_ns"].max()))
                    o["aggregated"] += aggregated
                    o["closed"][0] += walk.add(records, hi, aggregated)
                    o["closed"][1] += apart.add(records.copy(), hi)
                    _compare_closed(o)
                first = o["frames"]
                o["frames"] += len(records)
                o["malformed"] += int(malformed)
                o["wire_bytes"] += int(wire_bytes)
                o["records"] += [[int(v) for v in row] for row in records[fields].tolist()]
                if rare is not None:
                    index, frames = rare
                    assert len(index) == len(frames)
                    o["rare"] += [[first + int(i), frames.frame(k).hex(), int(frames.wirelen[k]), int(frames.vlan[k]),
                                   int(frames.ts_ns[k]) == int(records["ts_ns"][i])] for k, i in enumerate(index)]
                continue
            batch = ring.next_batch(0.02, a.max_frames)
            o = out[name]
            o["frames"] += len(batch)
            o["bytes"] += int(batch.caplen.sum())
            for i in range(len(batch)):
                frame = batch.frame(i)
                if marker_seq(frame, a.run) is not None:
                    o["markers"].append([frame.hex(), int(batch.wirelen[i]), int(batch.vlan[i]), int(batch.ts_ns[i])])
        if done_at is None and all(len(o["markers"]) >= a.expect or 0 < a.expect_frames <= o["frames"]
                                   for o in out.values()):
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() - done_at >= a.settle:
            break
    for name, ring in rings.items():
        out[name]["stats"] = ring.statistics()
        if a.records:
            o = out[name]
            o["flag_counts"] = o["flag_counts"].tolist()
            for k in (0, 1):
                last = o["aggs"][k].flush()
                o["closed"][k] += [last] if last is not None else []
            _compare_closed(o)
            del o["aggs"], o["closed"]
        ring.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
