"""The probe's own web page, for the technician on site or on the VPN: what needs attention (open and
acknowledged findings with their evidence in words), buttons to acknowledge, resolve or dismiss each
with a note, problems reported by people, visits, and what the probe is watching.

The page is one static file (static/technician.html) that drives the JSON API
(probe/exposition/findings_api.py); only "what this probe is watching" is rendered here, so it reads
without JavaScript too.
"""
from __future__ import annotations

import html
import json
from importlib import resources

_PAGE = resources.files("probe.exposition").joinpath("static/technician.html").read_text(encoding="utf-8")
MAX_ITEMS = 20  # of a list shown in the watching section ("… and 180 more")


def render(status: dict, prefix: str) -> str:
    """The page for `status` (HttpApi._status: version, fast path, subsystems and what each watches)."""
    rows = []
    for s in status["subsystems"]:
        reason = f" — {html.escape(s['reason'])}" if s["reason"] else ""
        items = "".join(f"<dt>{html.escape(_label(k))}</dt><dd>{html.escape(_words(k, v))}</dd>"
                        for k, v in s["watching"].items())
        rows.append(f"<tr><td>{html.escape(s['name'])}</td><td class='health-{html.escape(s['health'])}'>"
                    f"{html.escape(s['health'])}{reason}</td><td><dl class='evidence'>{items}</dl></td></tr>")
    watching = ("<table id='subsystems'><tr><th>Part</th><th>State</th><th>Watching</th></tr>"
                + "".join(rows) + "</table>")
    return (_PAGE.replace("__PREFIX_JSON__", json.dumps(prefix).replace("</", "<\\/"))
            .replace("__PREFIX__", html.escape(prefix))
            .replace("__VERSION__", html.escape(status["version"]))
            .replace("__FASTPATH__", html.escape(status["fastpath"]))
            .replace("__WATCHING__", watching))


def _label(key) -> str:
    key = str(key)
    for suffix in ("_seconds", "_bytes"):
        key = key.removesuffix(suffix)
    return key.replace("_", " ")


def _words(key, value) -> str:
    """A value as a person reads it: lists as lists, mappings as "name value" pairs, never a repr."""
    key = str(key)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)} {_words(k, v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple, set)):
        items = list(value)
        text = ", ".join(_words("", v) for v in items[:MAX_ITEMS])
        return (text + (f" … and {len(items) - MAX_ITEMS} more" if len(items) > MAX_ITEMS else "")) or "none"
    if isinstance(value, float):
        if key.endswith("_seconds"):
            return _duration(value)
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:g} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
