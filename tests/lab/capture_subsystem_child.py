"""Run the capture subsystem inside the probe namespace and report what it exported.

    ip netns exec NS python tests/lab/capture_subsystem_child.py --iface mirror0 --expect 1000 [--bpf EXPR] [--fanout 2]

Prints one JSON line {"health", "reason"} once started ("READY" state), then, when `expect` frames
were counted (or --timeout passed) and one more statistics round went by, one JSON line with the
health and the Prometheus text exposition of its collectors.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from probe.config import load_text  # noqa: E402
from probe.subsystems.capture import CaptureSubsystem  # noqa: E402
from probe.subsystems.base import Context  # noqa: E402


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--bpf", default="")
    p.add_argument("--fanout", type=int, default=1)
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_args()
    cfg = load_text(json.dumps({"capture": {"interface": a.iface, "bpf_filter": a.bpf, "fanout": a.fanout,
                                            "block_count": 8, "block_timeout": "20ms"}}))
    sub = CaptureSubsystem(cfg, Context(store=None), stats_seconds=0.2, retry_seconds=0.5)
    await sub.start()
    print(json.dumps({"health": sub.status.health.value, "reason": sub.status.reason}), flush=True)
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and (a.expect == 0 or sub.snapshot()["counters"].frames < a.expect):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)  # one more statistics round
    reg = CollectorRegistry(auto_describe=False)
    for coll in sub.collectors():
        reg.register(coll)
    text = generate_latest(reg).decode()
    health, reason = sub.status.health.value, sub.status.reason
    await sub.stop()
    print(json.dumps({"health": health, "reason": reason, "metrics": text, "describe": sub.describe()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
