"""Every SNMP module against every LibreNMS recording, through the fake client, compared with what
LibreNMS discovered from the same recording (tests/snmp_expected.py holds the generic comparison
and the documented systematic differences)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from probe.sources.snmp.modules import DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.conftest import shared_data_dir
from tests.snmp_expected import compare, load_expected, required_areas

RECORDINGS = sorted((shared_data_dir() / "snmp" / "librenms" / "snmprec").glob("*.snmprec"))


def _expected(path: Path) -> dict:
    return load_expected(path.parent.parent / "expected" / (path.stem + ".json"))


@pytest.mark.parametrize("rec", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_recording_matches_librenms(rec, shared_data):
    client = SnmprecClient.from_file(rec)
    exp = _expected(rec)
    result = asyncio.run(poll_device(client, DeviceMemory(), target=rec.stem, now=1000.0))
    data = result.data()
    assert "errors" not in data, data["errors"]
    json.loads(json.dumps(data, allow_nan=False))  # the `sitevigil snmp --format json` output is plain JSON
    cmp = compare(rec.stem, data, exp, rec=client)
    assert not cmp.mismatches, "\n".join(cmp.mismatches[:30])
    need = required_areas(exp, rec=client)
    unchecked = sorted(a for a in need if not cmp.checked.get(a))
    assert not unchecked, f"{rec.stem}: LibreNMS has {unchecked} but nothing of ours was compared"
    # The automatic module choice picked what the device is.
    assert ("printer" in result.modules) == ("printer" in need), list(result.modules)
    if "ups" in need:
        assert "ups" in result.modules
    if {"storage", "processors"} & need:
        assert "hostresources" in result.modules


@pytest.mark.parametrize("rec", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_second_poll_reads_counters_by_index_and_agrees(rec, shared_data):
    client = SnmprecClient.from_file(rec)
    mem = DeviceMemory()
    first = asyncio.run(poll_device(client, mem, now=1000.0, modules=["system", "interfaces"]))
    walks_first, gets_first = client.stats.walks, client.stats.get_varbinds
    second = asyncio.run(poll_device(client, mem, now=1060.0, modules=["system", "interfaces"]))
    assert client.stats.walks == walks_first, "labels were walked again though nothing changed"
    a, b = first.data()["interfaces"], second.data()["interfaces"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("delta", "total", "last_change_at")} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    for row in b:  # an unchanged recording: every known counter moved by exactly 0
        assert all(v == 0.0 for v in row["delta"].values()), row
    assert second.data()["interfaces_poll"]["labels"] == "cached"
    if a:  # counters came from GETs by index: at least one varbind per known row
        assert client.stats.get_varbinds - gets_first >= len(a) + 3
