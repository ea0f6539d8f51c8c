"""Live capture: the probe's ring vs tcpdump on the same trafgen stream of 60-byte frames over veth.

Topology (two network namespaces made for the run, removed afterwards whatever happens):

    <prefix>-tx: eth0  --veth-->  cap0 :<prefix>-rx   (the probe's capture port)

trafgen (netsniff-ng) sends COUNT (default 4M, --quick 300k) 60-byte UDP frames at its top rate from
one core. The probe's capture (the daemon's own code path: probe.subsystems.capture.open_ring + FramePipeline.feed_ring: the ring's walk
parses each frame and aggregates it per device, then the LAN detectors run on each closed window) and `tcpdump -i cap0 -n -w /dev/null -B 65536` capture the SAME stream
SIMULTANEOUSLY, each with a 64 MiB ring. Reported for both: frames received, kernel drops, and CPU
seconds per million frames from /proc/PID/stat (utime+stime, sampled after both are ready and after
the stream, so start-up costs are left out), and the ratio.

    python benchmarks/bench_capture.py [--quick] [--count N] [--rounds N]

Three rounds by default, each printed, then the medians: CPU time is read in 10 ms ticks and the
machine's speed drifts between runs, so a single round's ratio can be off by a tenth either way.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from probe.commands.bench import report as bench_report  # noqa: E402

TRAFGEN_CONF = """{
  eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01),
  ipv4(saddr=10.99.0.1, daddr=10.99.0.2),
  udp(sp=dinc(1024, 65000), dp=9),
  fill(0x00, 18)
}
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


class VethPair:
    def __init__(self):
        self.prefix = f"svcap{os.getpid()}"
        self.tx, self.rx = f"{self.prefix}-tx", f"{self.prefix}-rx"
        self.made: list[str] = []
        atexit.register(self.destroy)
        try:
            for ns in (self.tx, self.rx):
                _sh("ip", "netns", "add", ns)
                self.made.append(ns)
            _sh("ip", "-n", self.tx, "link", "add", "eth0", "type", "veth", "peer", "name", "cap0", "netns", self.rx)
            for ns, dev in ((self.tx, "eth0"), (self.rx, "cap0")):
                _sh("ip", "-n", ns, "link", "set", dev, "up")
                _sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                    "tx", "off", check=False)
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        for ns in reversed(self.made):
            for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)  # only processes inside our own namespaces
                except (ProcessLookupError, ValueError):
                    pass
            _sh("ip", "netns", "del", ns, check=False)
        self.made.clear()


class _TimedRing:
    """The ring as the pipeline sees it, with the thread CPU time spent inside its reads added up."""

    def __init__(self, ring):
        self.ring, self.ns = ring, 0
        self.next_batch = self._timed(ring.next_batch)
        if hasattr(ring, "next_records"):
            self.next_records = self._timed(ring.next_records)

    def _timed(self, read):
        def timed(*args):
            t0 = time.thread_time_ns()
            try:
                return read(*args)
            finally:
                self.ns += time.thread_time_ns() - t0
        return timed


def child(interface: str) -> int:
    """The probe side: open the ring as the daemon does and feed the pipeline until SIGINT/SIGTERM."""
    from probe import fastpath
    from probe.config import CaptureConfig, default_config
    from probe.subsystems.capture import FramePipeline, make_analysis, open_ring

    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    cfg = CaptureConfig(interface=interface)
    ring = open_ring(cfg)
    pipeline = FramePipeline(analysis=make_analysis(default_config().replace(capture=cfg)))
    print("READY", flush=True)
    timed = _TimedRing(ring)
    clock = time.thread_time_ns
    pipe_ns = 0
    while not stop:
        t0 = clock()
        pipeline.feed_ring(timed, 0.1)  # what the daemon's capture thread runs
        pipe_ns += clock() - t0
    ring_ns = timed.ns
    pipe_ns -= ring_ns
    c = pipeline.counters
    c.add_kernel(ring.statistics())
    ring.close()
    print(json.dumps({"frames": c.frames, "bytes": c.bytes, "kernel_drops": c.kernel_drops,
                      "kernel_packets": c.kernel_packets, "implementation": fastpath.IMPLEMENTATION,
                      "ring_ns": ring_ns, "pipeline_ns": pipe_ns, "ring_parses": hasattr(ring, "next_records"),
                      "stages": ("parse + aggregate + detect" if pipeline.analysis is not None else
                                 "parse" if pipeline.parses else "")}), flush=True)
    return 0


def _tcpdump_stats(text: str) -> tuple[int, int]:
    captured = dropped = -1
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "packets" and parts[2] == "captured":
            captured = int(parts[0])
        if "dropped by kernel" in line:
            dropped = int(parts[0])
    return captured, dropped


def measure(count: int) -> dict:
    """One round: a fresh veth pair, both capturers started, COUNT frames sent, both stopped."""
    lab = VethPair()
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="svcap-bench-")
    try:
        conf = os.path.join(tmp, "trafgen.cfg")
        with open(conf, "w") as fh:
            fh.write(TRAFGEN_CONF)
        env = dict(os.environ, PYTHONPATH=REPO)
        ours = subprocess.Popen(["ip", "netns", "exec", lab.rx, sys.executable, os.path.abspath(__file__),
                                 "--child", "cap0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        procs.append(ours)
        tcpdump = subprocess.Popen(["ip", "netns", "exec", lab.rx, "tcpdump", "-i", "cap0", "-n", "-w", "/dev/null",
                                    "-B", "65536"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        procs.append(tcpdump)
        if ours.stdout.readline().strip() != "READY":
            raise RuntimeError(f"probe capture did not start: {ours.communicate(timeout=10)[1].strip()}")
        deadline = time.monotonic() + 10
        while "listening on" not in (line := tcpdump.stderr.readline()):
            if time.monotonic() > deadline or tcpdump.poll() is not None:
                raise RuntimeError(f"tcpdump did not start: {line}")
        time.sleep(0.5)
        cpu0 = {"ours": cpu_seconds(ours.pid), "tcpdump": cpu_seconds(tcpdump.pid)}
        t0 = time.monotonic()
        tg = subprocess.run(["ip", "netns", "exec", lab.tx, "trafgen", "--dev", "eth0", "--conf", conf, "-n",
                             str(count), "--cpus", "1"], capture_output=True, text=True, timeout=120)
        send_s = time.monotonic() - t0
        if tg.returncode:
            raise RuntimeError(f"trafgen failed: {tg.stderr.strip()[-500:]}")
        time.sleep(1.0)  # let both drain the last partly filled blocks (block timeouts are 100 ms or less)
        cpu1 = {"ours": cpu_seconds(ours.pid), "tcpdump": cpu_seconds(tcpdump.pid)}
        for proc in (ours, tcpdump):
            os.kill(proc.pid, signal.SIGINT)  # our own children, by pid: both print their counts on SIGINT
        out, err = ours.communicate(timeout=20)
        _, tcpdump_err = tcpdump.communicate(timeout=20)
        res = json.loads(out.strip().splitlines()[-1])
        td_frames, td_drops = _tcpdump_stats(tcpdump_err)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        lab.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    cpu_ours, cpu_td = cpu1["ours"] - cpu0["ours"], cpu1["tcpdump"] - cpu0["tcpdump"]
    per_m_ours = cpu_ours / max(res["frames"], 1) * 1e6
    per_m_td = cpu_td / max(td_frames, 1) * 1e6
    return dict(res=res, send_s=send_s, td_frames=td_frames, td_drops=td_drops, cpu_ours=cpu_ours, cpu_td=cpu_td,
                per_m_ours=per_m_ours, per_m_td=per_m_td,
                ratio=per_m_td / per_m_ours if per_m_ours > 0 else float("inf"))


def report(count: int, r: dict) -> None:
    res = r["res"]
    if res.get("ring_parses") and res["stages"].startswith("parse + aggregate"):
        walk = "ring walk + parse + aggregate"  # next_records aggregates into the open window in its walk
    elif res.get("ring_parses") and res["stages"]:
        walk = "ring walk + parse"
    else:
        walk = "ring walk + copy"
    stages = res["stages"].replace("parse + ", "").replace("aggregate + ", "") if res.get("ring_parses") else res["stages"]
    what = walk + " + count" + (f" + {stages}" if stages else " (no parser in this build)")
    print(f"capture: {count:,} x 60-byte frames from trafgen on 1 core over veth "
          f"({count / r['send_s'] / 1e3:,.0f}k pps offered), captured simultaneously by both")
    print(f"  {'':34} {'frames':>11} {'kernel drops':>13} {'CPU s':>7} {'CPU s/Mframe':>13}")
    print(f"  {'sitevigil (' + res['implementation'] + ')':34} {res['frames']:>11,} "
          f"{res['kernel_drops']:>13,} {r['cpu_ours']:>7.2f} {r['per_m_ours']:>13.3f}")
    print(f"  {'tcpdump -w /dev/null -B 65536':34} {r['td_frames']:>11,} {r['td_drops']:>13,} {r['cpu_td']:>7.2f} "
          f"{r['per_m_td']:>13.3f}")
    per_frame = lambda ns: ns / max(res["frames"], 1)  # noqa: E731
    print(f"  probe pipeline: {what}; its thread CPU per frame: {walk} {per_frame(res['ring_ns']):.0f} ns, "
          f"the rest {per_frame(res['pipeline_ns']):.0f} ns")
    print(f"  ratio: tcpdump CPU per frame / ours = {r['ratio']:.2f}x "
          f"(>= 1 means the probe costs no more per frame); drops ours {res['kernel_drops']} vs tcpdump {r['td_drops']}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_capture")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds, each on a fresh veth pair (default 3, 1 with --quick); the summary gives medians")
    p.add_argument("--child", metavar="IFACE", help=argparse.SUPPRESS)
    a = p.parse_args(argv or [])
    if a.child:
        return child(a.child)
    count = min(a.count or (300_000 if a.quick else 4_000_000), 20_000_000)
    rounds = max(1, min(a.rounds or (1 if a.quick else 3), 20))
    if os.geteuid() != 0:
        print("bench capture: needs root (network namespaces)", file=sys.stderr)
        return 2
    missing = [t for t in ("trafgen", "tcpdump", "ip") if shutil.which(t) is None]
    if missing:
        print(f"bench capture: needs {', '.join(missing)} (Debian netsniff-ng, tcpdump, iproute2)", file=sys.stderr)
        return 2
    results = []
    for i in range(rounds):
        if rounds > 1:
            print(f"round {i + 1} of {rounds}")
        bench_report().progress(f"round {i + 1} of {rounds}: {count:,} frames from trafgen, captured by both")
        results.append(measure(count))
        report(count, results[-1])
    med = lambda key: statistics.median(r[key] for r in results)  # noqa: E731
    if rounds > 1:
        print(f"summary over {rounds} rounds (medians; CPU time is read in 10 ms ticks, so single rounds vary): "
              f"ours {med('per_m_ours'):.3f} CPU s/Mframe, tcpdump {med('per_m_td'):.3f}, "
              f"ratio tcpdump/ours {med('ratio'):.2f}x; kernel drops ours "
              f"{sum(r['res']['kernel_drops'] for r in results)} vs tcpdump {sum(r['td_drops'] for r in results)} in all")
    bench_report().figure("capture CPU per frame (median of rounds)", med("per_m_ours"), "CPU s per M frames",
                    peer=med("per_m_td"), peer_name="tcpdump -w /dev/null -B 65536", ratio=med("ratio"),
                    ratio_meaning="peer / ours (>= 1: the probe costs no more per frame)")
    bench_report().figure("capture kernel drops", sum(r["res"]["kernel_drops"] for r in results), "frames",
                    peer=sum(r["td_drops"] for r in results), peer_name="tcpdump", ratio_meaning="ours / peer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
