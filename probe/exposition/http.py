"""The probe's HTTP API (aiohttp): /metrics, /-/healthy, /-/ready, /-/reload and the technician page
(probe/exposition/technician.py).

Subsystems may add routes (the SNMP multi-target endpoint /snmp) through `extra_routes`.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import exposition
from prometheus_client.registry import CollectorRegistry

from probe import __version__
from probe.exposition import technician

if TYPE_CHECKING:
    from probe.exposition.websecurity import WebSecurity


class HttpApi:
    def __init__(self, *, registry: CollectorRegistry, fastpath: str,
                 reload: Callable[[], Awaitable[tuple[bool, str]]],
                 is_ready: Callable[[], bool],
                 subsystems: Callable[[], Iterable],
                 last_scrape: dict,
                 route_prefix: str = "",
                 extra_routes: Iterable[web.RouteDef] = (),
                 security: "WebSecurity | None" = None):
        self.registry = registry
        self.fastpath = fastpath
        self._reload = reload
        self._is_ready = is_ready
        self._subsystems = subsystems
        self._last_scrape = last_scrape
        self.prefix = route_prefix.rstrip("/")
        self.security = security  # --web.config.file: the same for every endpoint, routes added later too
        self.app = web.Application(middlewares=[security.middleware] if security is not None else [])
        p = self.prefix
        self.app.add_routes([
            web.get(p + "/", self.landing),
            web.get(p + "/metrics", self.metrics),
            web.get(p + "/-/healthy", self.healthy),
            web.get(p + "/-/ready", self.ready),
            web.post(p + "/-/reload", self.reload),
            web.put(p + "/-/reload", self.reload),
            web.get(p + "/-/status.json", self.status_json),
        ])
        self.app.add_routes(list(extra_routes))
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        ssl_context = self.security.server_ssl_context() if self.security is not None else None
        site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        for sock in site._server.sockets if site._server else []:  # noqa: SLF001 - the only way to learn port 0
            self.bound.append(sock.getsockname()[:2])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers -------------------------------------------------------------------------------
    async def metrics(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        self._last_scrape["seconds"] = time.perf_counter() - t0
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="sitevigil is healthy.\n")

    async def ready(self, request: web.Request) -> web.Response:
        if self._is_ready():
            return web.Response(text="sitevigil is ready.\n")
        return web.Response(status=503, text="sitevigil is not ready.\n")

    async def reload(self, request: web.Request) -> web.Response:
        ok, message = await self._reload()
        return web.Response(status=200 if ok else 500, text=message.rstrip("\n") + "\n")

    def _status(self) -> dict:
        subs = []
        for s in self._subsystems():
            subs.append({"name": s.name, "health": s.status.health.value, "reason": s.status.reason,
                         "since": s.status.since, "watching": s.describe()})
        return {"version": __version__, "fastpath": self.fastpath, "subsystems": subs}

    async def status_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._status(), dumps=lambda o: json.dumps(o, default=str, indent=2))

    async def landing(self, request: web.Request) -> web.Response:
        return web.Response(text=technician.render(self._status(), self.prefix), content_type="text/html")


