"""sitevigil diag's checks: each says ok, warn, fail or skip, what it saw and what to do."""
from __future__ import annotations

import argparse
import sqlite3

from probe.commands import diag
from probe.config import default_config
from probe.config.machine import resolve_defaults


def test_capabilities_are_read_from_the_effective_set():
    # CapEff with bits 12 (NET_ADMIN) and 13 (NET_RAW) set, and with only NET_RAW
    assert diag.capabilities("Name:\tx\nCapEff:\t0000000000003000\n") == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert diag.capabilities("CapEff:\t0000000000002000\n") == {"CAP_NET_RAW"}
    c = diag.check_capabilities({"CAP_NET_RAW"})
    assert c.status == "fail" and "CAP_NET_ADMIN" in c.detail and "promiscuous" in c.detail
    assert "AmbientCapabilities" in c.hint
    assert diag.check_capabilities({"CAP_NET_RAW", "CAP_NET_ADMIN"}).status == "ok"


def test_config_errors_fail_with_the_problems():
    c = diag.check_config({"config_errors": ["a.yml:2: snmp.retries: expected an integer, got 'x'"]})
    assert c.status == "fail" and "a.yml:2" in c.detail and "check-config" in c.hint


def _cfg(tmp_path, **capture):
    cfg = resolve_defaults(default_config().replace(state_dir=str(tmp_path)))
    if capture:
        import dataclasses
        cfg = cfg.replace(capture=dataclasses.replace(cfg.capture, **capture))
    return cfg


def test_a_small_ring_is_a_warning(tmp_path):
    from probe.config import ByteSize

    checks = diag.check_capture({"capture_capable": False}, _cfg(tmp_path, block_size=ByteSize(1 << 20),
                                                                 block_count=2), 0)
    ring = checks[0]
    assert ring.name == "capture ring" and ring.status == "warn" and "2 MiB" in ring.detail


def test_a_damaged_state_database_fails(tmp_path):
    cfg = _cfg(tmp_path)
    db = tmp_path / "sitevigil.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(x)")
    con.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    con.commit()
    con.close()
    raw = bytearray(db.read_bytes())
    raw[4096: 4096 + 16] = b"\xff" * 16   # the second page's b-tree header scribbled over
    db.write_bytes(bytes(raw))
    report = {"state_database": {"path": str(db), "exists": True, "bytes": len(raw)}, "state_disk_free_bytes": 1 << 40}
    c = diag.check_state(report, cfg)
    assert c.status == "fail" and str(db) in c.detail, c


def test_a_healthy_state_database_and_low_disk(tmp_path):
    cfg = _cfg(tmp_path)
    db = tmp_path / "sitevigil.db"
    sqlite3.connect(db).close()
    report = {"state_database": {"path": str(db), "exists": True, "bytes": 0}, "state_disk_free_bytes": 1 << 40}
    assert diag.check_state(report, cfg).status == "ok"
    report["state_disk_free_bytes"] = 100 << 20
    low = diag.check_state(report, cfg)
    assert low.status == "warn" and "0.1 GiB free" in low.detail


def test_no_target_skips_snmp_and_a_bad_one_fails(tmp_path):
    cfg = _cfg(tmp_path)
    assert diag.check_snmp(cfg, None)[0].status == "skip"
    bad = diag.check_snmp(cfg, "[::1")
    assert bad[0].status == "fail"


def test_a_bad_listen_duration_is_bad_usage(capsys):
    args = argparse.Namespace(config_file=None, state_dir=None, target=None, listen="soon", format="text")
    assert diag.run(args) == 2
    assert "--listen" in capsys.readouterr().err
