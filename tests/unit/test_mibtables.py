"""The committed numeric MIB tables are exactly what mibs/generate.py builds from mibs/."""
from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO_ROOT


def _load_generator():
    spec = importlib.util.spec_from_file_location("mibs_generate", REPO_ROOT / "mibs" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_tables_match_a_fresh_build(tmp_path):
    pytest.importorskip("pysmi", reason="pysmi (test extra) is needed to compile the MIBs")
    gen = _load_generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    fresh = (tmp_path / "mibtables.py").read_text()
    committed = (REPO_ROOT / "probe" / "sources" / "snmp" / "mibtables.py").read_text()
    assert fresh == committed, "probe/sources/snmp/mibtables.py is stale: run mibs/generate.py and commit"


def test_tables_are_consistent():
    from probe.sources.snmp import mibtables as t

    # Every row knows its index objects and columns, and every column lives under its row.
    for row, idx in t.INDEX.items():
        assert idx, row
        for col in t.COLUMNS[row]:
            assert t.OID[col][:-1] == t.OID[row]
        for i in idx:
            assert i in t.SYNTAX, f"{row}: index {i} has no type"
    # Known anchors (RFC 2863, RFC 3805, RFC 1628): a wrong walk root would go unnoticed otherwise.
    assert t.OID["ifHCInOctets"] == (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)
    assert t.SYNTAX["ifHCInOctets"] == "Counter64"
    assert t.ENUMS["ifOperStatus"][7] == "lowerLayerDown"
    assert t.INDEX["ifXEntry"] == ("ifIndex",)  # AUGMENTS ifEntry
    assert t.INDEX["prtMarkerSuppliesEntry"] == ("hrDeviceIndex", "prtMarkerSuppliesIndex")
    assert t.UNITS["upsEstimatedMinutesRemaining"] == "minutes"
    assert t.ENUMS["hrStorageType"][4] == "hrStorageFixedDisk"
    assert t.SYNTAX["upsAdvBatteryRunTimeRemaining"] == "TimeTicks"


def test_runtime_tables_import_nothing_and_ship_no_mib_module():
    # A compiled SNMPv2-MIB on the path would shadow pysnmp's own; the runtime tables are plain literals.
    assert not list((REPO_ROOT / "probe").rglob("SNMPv2-MIB*")), "do not ship compiled MIB modules"
    src = (REPO_ROOT / "probe" / "sources" / "snmp" / "mibtables.py").read_text()
    assert not [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
