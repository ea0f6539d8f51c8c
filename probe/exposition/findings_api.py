"""GET /api/findings?state=open|all&since=EPOCH: the findings ledger as JSON."""
from __future__ import annotations

from aiohttp import web

from probe.findings.ledger import Ledger


class FindingsApi:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    async def __call__(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "open")
        if state == "open":
            doc = [ep.as_dict() for ep in self.ledger.open_episodes()]
        elif state == "all":
            try:
                since = float(request.query.get("since", "0"))
            except ValueError:
                return web.json_response({"error": "since: expected seconds since the epoch"}, status=400)
            doc = self.ledger.history(since=since)
        else:
            return web.json_response({"error": f"state: unknown value {state!r} (expected open or all)"}, status=400)
        return web.json_response({"findings": doc})
