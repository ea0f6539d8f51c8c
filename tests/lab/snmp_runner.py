"""Run SNMP client operations from inside a lab namespace and print the outcome as JSON.

    ip netns exec <probe ns> python -m tests.lab.snmp_runner '<json spec>'

The spec: {"host", "port", "timeout", "retries", "max_repetitions", "credentials": [credential fields],
"ops": [["walk", "1.3.6.1.2.1.2"], ["get", ["1.3.6.1.2.1.1.5.0"]], ["touch", PATH], ["wait_file", PATH],
["skew_clock", SECONDS]], "pause": {"pid", "after_pdus", "seconds"}, "repeat": N, "concurrent": bool,
"reference": "pysnmp"}. `reference` runs v3 credentials through pysnmp (tests/snmp_pysnmp_usm.py). Each credential (which may name its own "host") runs every
op on its own session, one after the other or all at once; the output is one record per credential.
`pause` stops the agent (SIGSTOP) once the session has sent `after_pdus` PDUs, i.e. in the middle of a
walk, and resumes it (SIGCONT) `seconds` later: the pid namespace is shared with the lab's agents.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from probe.config.schema import Secret
from probe.config.snmp import SnmpCredential
from probe.sources.snmp.client import SnmpError, format_oid, parse_oid
from probe.sources.snmp.engine import Engine


def credential(d: dict) -> SnmpCredential:
    d = dict(d)
    for key in ("community", "auth_key", "priv_key"):
        if d.get(key) is not None:
            d[key] = Secret(d[key])
    return SnmpCredential(**d)


class Pausing:
    """A transport wrapper that pauses the agent after N PDUs (and resumes it later)."""

    def __init__(self, inner, pid: int, after: int, seconds: float):
        self.inner, self.pid, self.after, self.seconds = inner, pid, after, seconds
        self.version = inner.version
        self.count = 0
        self.paused_at = self.resumed_at = None

    async def send(self, *a, **kw):
        self.count += 1
        if self.count == self.after + 1:
            os.kill(self.pid, signal.SIGSTOP)
            self.paused_at = time.monotonic()

            def resume():
                os.kill(self.pid, signal.SIGCONT)
                self.resumed_at = time.monotonic()

            asyncio.get_running_loop().call_later(self.seconds, resume)
        return await self.inner.send(*a, **kw)

    async def alive(self, timeout):
        return await self.inner.alive(timeout)


async def main(spec: dict) -> list[dict]:
    engine = Engine.for_running_loop()
    if spec.get("concurrent"):  # every credential at once, on one engine (e.g. one per host)
        out = list(await asyncio.gather(*(run_credential(engine, spec, cd) for cd in spec["credentials"])))
    else:
        out = [await run_credential(engine, spec, cd) for cd in spec["credentials"]]
    engine.close()
    return out


async def run_credential(engine, spec: dict, cd: dict) -> dict:
    cd = dict(cd)
    host = cd.pop("host", spec.get("host"))
    cred = credential(cd)
    make = engine.session
    if spec.get("reference") == "pysnmp" and cred.version == "3":  # the reference our v3 path is held to
        from tests.snmp_pysnmp_usm import pysnmp_session as make
    session = await make(host, cred, port=spec.get("port", 161),
                         timeout=spec.get("timeout", 1.0), retries=spec.get("retries", 1),
                         max_repetitions=spec.get("max_repetitions", 25))
    pause = spec.get("pause")
    if pause:
        session.transport = Pausing(session.transport, pause["pid"], pause["after_pdus"], pause["seconds"])
    rec: dict = {"name": cred.name, "host": host, "ok": True, "results": []}
    t0 = time.monotonic()
    try:
        for _ in range(spec.get("repeat", 1)):
            for op, arg in spec["ops"]:
                if op == "touch":  # tell the test we got here
                    open(arg, "w").close()
                    rec["results"].append([])
                    continue
                if op == "wait_file":  # until the test did something (e.g. restarted the agent)
                    deadline = time.monotonic() + 30
                    while not os.path.exists(arg) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    rec["results"].append([])
                    continue
                if op == "skew_clock":  # our notion of the agent's v3 clock moves by `arg` seconds
                    peer = session.transport._peer
                    peer.time = max(0, peer.time + arg)
                    rec["results"].append([])
                    continue
                if op == "walk":
                    rows = await session.walk(parse_oid(arg), max_rows=spec.get("max_rows", 100000))
                else:
                    rows = await session.get([parse_oid(a) for a in arg])
                rec["results"].append([[format_oid(vb.oid), vb.type, _plain(vb.value)] for vb in rows])
    except SnmpError as exc:
        rec.update(ok=False, error_kind=exc.kind, error=str(exc))
    rec["seconds"] = time.monotonic() - t0
    s = session.stats
    rec["stats"] = {"pdus": s.pdus, "retries": s.retries, "timeouts": s.timeouts, "varbinds": s.varbinds}
    rec["repetitions"] = session.repetitions
    if pause:
        p = session.transport
        rec["paused"] = p.paused_at is not None
        if p.paused_at is not None and p.resumed_at is None:  # never leave the agent stopped
            await asyncio.sleep(max(0.0, p.paused_at + p.seconds - time.monotonic()))
            if p.resumed_at is None:
                os.kill(p.pid, signal.SIGCONT)
    return rec


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, tuple):
        return format_oid(value)
    return value


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
