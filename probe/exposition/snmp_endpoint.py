"""GET /snmp?target=HOST[:PORT]&module=M[,M...]: poll one device now, snmp_exporter style.

Answers Prometheus text. Only devices inside the client subnets (Config.subnets) or configured as snmp
targets may be asked: anything else is HTTP 403 with the reason, so the probe cannot be used to scan
other networks. The poll is bounded by the scrape's timeout (X-Prometheus-Scrape-Timeout-Seconds);
past it, the latest results of that device are served.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from probe.exposition.snmp_poll_collector import SnmpPollCollector, data_collector
from probe.sources.snmp.poller import SnmpPoller, modules_package, split_target

_log = logging.getLogger("probe.subsystems.snmp")

DEFAULT_SCRAPE_TIMEOUT = 10.0


class SnmpEndpoint:
    def __init__(self, poller: SnmpPoller, config: Callable):
        self.poller = poller
        self.config = config  # the running Config, read at each request (reloads change it)

    async def __call__(self, request: web.Request) -> web.Response:
        config = self.config()
        target = request.query.get("target", "").strip()
        if not target:
            return web.Response(status=400, text="missing 'target' parameter (e.g. /snmp?target=192.168.1.20)\n")
        try:
            host, port = split_target(target, None)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        if not config.snmp.enabled:
            return web.Response(status=403, text="SNMP polling is disabled (snmp.enabled: false)\n")
        why = self.poller.allowed(host)
        if why is None:
            nets = ", ".join(str(s.cidr) for s in config.subnets) or "none"
            return web.Response(status=403, text=f"target {host} refused: it is outside the client subnets ({nets}) "
                                                 f"and not a configured snmp target\n")
        modules = [m.strip() for v in request.query.getall("module", []) for m in v.split(",") if m.strip()] or None
        if modules:
            known = modules_package().MODULES
            unknown = [m for m in modules if m not in known]
            if unknown:
                return web.Response(status=400, text=f"unknown module(s): {', '.join(unknown)} "
                                                     f"(known: {', '.join(known)})\n")
        try:
            budget = float(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds", DEFAULT_SCRAPE_TIMEOUT))
        except ValueError:
            budget = DEFAULT_SCRAPE_TIMEOUT
        budget = max(0.5, budget - 0.5)  # leave time to answer
        dev = self.poller.device(host, port)
        t0 = time.monotonic()
        poll = asyncio.ensure_future(self.poller.poll(dev, modules))
        done, _ = await asyncio.wait({poll}, timeout=budget)
        late = not done
        if late:
            # Let it finish in the background (results land in the device's state for next time).
            poll.add_done_callback(lambda f: f.cancelled() or f.exception())
        elif poll.exception() is not None:
            _log.error("SNMP /snmp poll of %s failed", dev.target, exc_info=poll.exception())
            return web.Response(status=500, text=f"poll of {dev.target} failed: {poll.exception()}\n")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnmpPollCollector(lambda: [dev]))
        registry.register(data_collector(lambda: [dev]))
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        resp.headers["X-Sitevigil-Poll-Seconds"] = f"{time.monotonic() - t0:.3f}"
        if late:
            resp.headers["X-Sitevigil-Stale"] = "poll still running after the scrape timeout; latest results served"
        return resp


