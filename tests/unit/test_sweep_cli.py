"""`sitevigil sweep` and `sitevigil devices`: argument errors, output of a recorded inventory, progress bar."""
import io
import json
import subprocess

from probe.commands.sweep import ProgressBar
from probe.state.inventory import Inventory
from probe.state.oui import OuiTable
from probe.state.store import Store


def run(cmd, env, *args):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=60)


def test_sweep_rejects_bad_arguments_clearly(sitevigil_cmd, sitevigil_env):
    r = run(sitevigil_cmd, sitevigil_env, "sweep", "10.0.0.0/33")
    assert r.returncode == 2 and "invalid subnet '10.0.0.0/33'" in r.stderr
    r = run(sitevigil_cmd, sitevigil_env, "sweep", "10.0.0.0/24", "--rate", "0")
    assert r.returncode == 2 and "--rate must be between 1 and 10000" in r.stderr
    r = run(sitevigil_cmd, sitevigil_env, "sweep", "fd00::/120")
    assert r.returncode == 2 and "only IPv4" in r.stderr


def test_sweep_reports_config_errors_with_location(sitevigil_cmd, sitevigil_env, tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("sweep:\n  rate_pps: 0\n")
    r = run(sitevigil_cmd, sitevigil_env, "sweep", "--config.file", str(cfg), "10.0.0.0/24")
    assert r.returncode == 1 and f"{cfg}:2: sweep.rate_pps: must be between 1 and 10000, got 0" in r.stderr


def test_devices_prints_the_recorded_inventory(sitevigil_cmd, sitevigil_env, tmp_path):
    store = Store(str(tmp_path))
    inv = Inventory(store, oui=OuiTable({"00c0ee": "Kyocera Display Corporation"}))
    inv.observe("00:c0:ee:00:00:01", "10.0.0.30", "prn-2", source="snmp",
                facts={"snmp": {"sys_descr": "KYOCERA Document Solutions Printing System", "credential": "public"}})
    inv.observe("da:a1:19:00:00:01", "10.0.0.31", "Annas-iPhone", source="mdns")
    inv.flush()
    store.close()
    r = run(sitevigil_cmd, sitevigil_env, "devices", "--state-dir", str(tmp_path), "--format", "json")
    assert r.returncode == 0, r.stderr
    devs = {d["ip"]: d for d in json.loads(r.stdout)["devices"]}
    assert devs["10.0.0.30"]["type"] == "printer" and devs["10.0.0.30"]["name"] == "prn-2"
    assert devs["10.0.0.31"]["type"] == "phone" and devs["10.0.0.31"]["randomised"] is True
    r = run(sitevigil_cmd, sitevigil_env, "devices", "--state-dir", str(tmp_path))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["IP", "MAC", "VENDOR", "TYPE", "NAME"]
    assert any("10.0.0.31" in line and "(randomised MAC)" in line and "phone" in line for line in lines)
    assert "2 devices (2 present, 0 gone)" in r.stdout


def test_devices_without_an_inventory(sitevigil_cmd, sitevigil_env, tmp_path):
    r = run(sitevigil_cmd, sitevigil_env, "devices", "--state-dir", str(tmp_path / "none"))
    assert r.returncode == 0 and "no inventory yet" in r.stderr
    assert not (tmp_path / "none").exists()  # reading never creates state


def test_progress_bar_draws_on_its_stream():
    out = io.StringIO()
    bar = ProgressBar(stream=out, width=10)
    bar("arp", 5, 10)
    bar("arp", 10, 10)
    bar.close()
    assert "arp   [#####.....] 5/10" in out.getvalue() and "[##########] 10/10" in out.getvalue()
