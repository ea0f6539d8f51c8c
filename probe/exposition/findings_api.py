"""The findings ledger and the visits as a JSON HTTP API: what the technician page and scripts use, the
same operations as `sitevigil findings` and `sitevigil visits`.

    GET  /api/findings?state=active|all|open,acknowledged,...&since=EPOCH&until=EPOCH
    GET  /api/findings/{id}                      one finding, its events and the visits that served it
    POST /api/findings/{id}/ack|resolve|dismiss  {"note": "...", "by": "alice"}
    POST /api/findings/{id}/notes                {"note": "...", "by": "alice"}
    POST /api/findings                           {"kind", "device", "note", "reported_by": client|visit,
                                                  "by", "severity"?}: a problem the probe did not find
    GET  /api/visits?since=EPOCH&until=EPOCH
    POST /api/visits                             {"start": EPOCH, "minutes", "technician", "mode",
                                                  "summary", "findings": [ids] | "reason": planned|...}
    GET  /api/annotations?from=MS&to=MS          Grafana annotations: when findings opened and ended

Answers: 200 (201 for a new record) with the record as JSON; 400 for a bad request, 404 for an unknown
id, 409 when the finding's state does not allow it, 503 when the state database cannot be written
(nothing was changed); each with {"error": "..."} saying what. A POST must send
`Content-Type: application/json`: a cross-site HTML form cannot, so another web page a technician has
open cannot act on the ledger through their browser.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from aiohttp import web

from probe.findings.ledger import Ledger, LedgerError, NoSuchFinding, StateConflict, parse_states
from probe.findings.titles import title
from probe.findings.visits import Visits
from probe.state.store import StoreError

ACTIONS = {"ack": "acknowledged", "resolve": "resolved", "dismiss": "dismissed"}
MAX_BODY = 64 * 1024  # a note or a visit; nothing a person types is larger


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class FindingsApi:
    def __init__(self, ledger: Ledger, visits: Visits, *, clock: Callable[[], float] | None = None):
        self.ledger = ledger
        self.visits = visits
        self.clock = clock or ledger.clock  # "now" as the ledger keeps it

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        p = prefix.rstrip("/") + "/api"
        return [
            web.get(p + "/findings", self._handler(self.list_findings)),
            web.post(p + "/findings", self._handler(self.add_finding)),
            web.get(p + "/findings/{id}", self._handler(self.show_finding)),
            web.post(p + "/findings/{id}/notes", self._handler(self.add_note)),
            web.post(p + "/findings/{id}/{action}", self._handler(self.transition)),
            web.get(p + "/visits", self._handler(self.list_visits)),
            web.post(p + "/visits", self._handler(self.add_visit)),
            web.get(p + "/annotations", self._handler(self.annotations)),
        ]

    def _handler(self, fn):
        async def handle(request: web.Request) -> web.Response:
            try:
                body = await _body(request) if request.method == "POST" else None
                # the ledger and the database are blocking: off the event loop, which the capture
                # feed and the SNMP polls share
                status, doc = await asyncio.get_running_loop().run_in_executor(None, fn, request, body)
            except ApiError as exc:
                status, doc = exc.status, {"error": str(exc)}
            except NoSuchFinding as exc:
                status, doc = 404, {"error": str(exc)}
            except StateConflict as exc:
                status, doc = 409, {"error": str(exc)}
            except LedgerError as exc:
                status, doc = 400, {"error": str(exc)}
            except StoreError as exc:
                status, doc = 503, {"error": str(exc)}
            return web.json_response(doc, status=status, dumps=lambda o: json.dumps(o, default=str))
        return handle

    # -- findings -------------------------------------------------------------------------------
    def list_findings(self, request: web.Request, _body) -> tuple[int, Any]:
        q = request.query
        states = parse_states(q.get("state", "active"))
        rows = self.ledger.listing(states=states, since=_number(q, "since", 0.0), until=_number(q, "until", None),
                                   limit=int(_number(q, "limit", 1000)))
        return 200, {"findings": [_titled(ep) for ep in rows]}

    def show_finding(self, request: web.Request, _body) -> tuple[int, Any]:
        fid = _id(request)
        ep = self.ledger.show(fid)
        ep["visits"] = self.visits.for_finding(fid)
        return 200, _titled(ep)

    def transition(self, request: web.Request, body: dict) -> tuple[int, Any]:
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise ApiError(404, f"unknown action {action!r} (expected {', '.join(ACTIONS)} or notes)")
        ep = self.ledger.transition(_id(request), ACTIONS[action], _text(body, "note"), _text(body, "by"))
        return 200, _titled(ep)

    def add_note(self, request: web.Request, body: dict) -> tuple[int, Any]:
        fid = _id(request)
        self.ledger.add_note(fid, _text(body, "note"), _text(body, "by"))
        return 201, _titled(self.ledger.show(fid))

    def add_finding(self, _request, body: dict) -> tuple[int, Any]:
        _only(body, {"kind", "device", "note", "reported_by", "by", "severity", "subject"})
        ep = self.ledger.add_reported(_text(body, "kind"), _text(body, "device"), _text(body, "note"),
                                      _text(body, "reported_by"), _text(body, "by"),
                                      severity=body.get("severity", "warning"), subject=body.get("subject", ""))
        return 201, ep

    # -- visits ---------------------------------------------------------------------------------
    def list_visits(self, request: web.Request, _body) -> tuple[int, Any]:
        q = request.query
        return 200, {"visits": self.visits.listing(since=_number(q, "since", 0.0), until=_number(q, "until", None))}

    def add_visit(self, _request, body: dict) -> tuple[int, Any]:
        _only(body, {"start", "minutes", "technician", "mode", "summary", "findings", "reason"})
        findings = body.get("findings", [])
        if not isinstance(findings, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                     for i in findings):
            raise ApiError(400, "findings: expected a list of finding ids")
        minutes = _json_number(body, "minutes")
        start = _json_number(body, "start") if "start" in body else self.clock() - minutes * 60
        v = self.visits.add(start=start, minutes=minutes, technician=_text(body, "technician"),
                            mode=_text(body, "mode"), summary=_text(body, "summary"), findings=findings,
                            reason=body.get("reason"))
        return 201, v

    # -- Grafana --------------------------------------------------------------------------------
    def annotations(self, request: web.Request, _body) -> tuple[int, Any]:
        """`from`/`to` in milliseconds (Grafana's ${__from} and ${__to}); the last 7 days by default."""
        q = request.query
        now = self.clock()
        until = _number(q, "to", now * 1000) / 1000
        since = _number(q, "from", (now - 7 * 86400) * 1000) / 1000
        return 200, self.ledger.annotations(since, until)


async def _body(request: web.Request) -> dict:
    if request.content_type != "application/json":
        raise ApiError(415, f"send the request as JSON (Content-Type: application/json), "
                            f"not {request.content_type or 'nothing'}")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body too large ({request.content_length} bytes; at most {MAX_BODY})")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"request body too large (at most {MAX_BODY} bytes)")
    try:
        doc = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "request body: expected a JSON object")
    return doc


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise ApiError(404, f"no finding with id {raw!r}")
    return int(raw)


def _text(body: dict, key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ApiError(400, f"{key}: some text is needed")
    return v


def _json_number(body: dict, key: str) -> float:
    v = body.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(400, f"{key}: expected a number, got {json.dumps(v)}")
    return float(v)


def _only(body: dict, keys: set[str]) -> None:
    unknown = sorted(set(body) - keys)
    if unknown:
        raise ApiError(400, f"unknown field {', '.join(map(repr, unknown))} (expected {', '.join(sorted(keys))})")


def _number(query, key: str, default):
    if key not in query:
        return default
    try:
        return float(query[key])
    except ValueError:
        raise ApiError(400, f"{key}: expected a number, got {query[key]!r}") from None


def _titled(ep: dict) -> dict:
    """An episode as the API gives it: with the technicians' name of its kind (probe/findings/titles.py)."""
    ep["title"] = title(ep["kind"])
    return ep
