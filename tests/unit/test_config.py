"""The config loader: strict, every problem reported at once with file, line and key path."""
import dataclasses
from pathlib import Path

import pytest

from probe.config import ConfigError, Duration, ByteSize, default_config, load_file, load_text

CONFIGS = Path(__file__).resolve().parent.parent / "data" / "config"

# Exact messages, pinned: changing one is a user-visible change.
EXPECTED = {
    "invalid-unknown-keys.yml": [
        "{f}:2: web.listen_adress: unknown key (expected one of: listen_address, route_prefix)",
        "{f}:4: snmp.credentails: unknown key (expected one of: {snmp_keys})",
        "{f}:5: colour: unknown key (expected one of: capture, detection, log, report, snmp, state_dir, subnets, sweep, web)",
    ],
    "invalid-types.yml": [
        "{f}:2: snmp.retries: expected an integer, got 'many'",
        "{f}:3: snmp.timeout: invalid duration 'soon' (expected a number with a unit: ms, s, m, h, d, w)",
        "{f}:4: snmp.enabled: expected a boolean (true or false), got 'yes'",
        "{f}:6: capture.block_count: expected an integer, got 1.5",
        "{f}:7: capture.max_devices: expected an integer, got a list",
        "{f}:8: subnets: expected a list, got a string",
    ],
    "invalid-values.yml": [
        "{f}:2: web.listen_address: invalid listen address 'localhost' (expected HOST:PORT or :PORT, e.g. :9847)",
        "{f}:4: log.level: unknown value 'verbose' (expected one of debug, info, warn, error)",
        "{f}:6: snmp.max_repetitions: must be between 1 and 200, got 0",
        "{f}:11: snmp.credentials[0].auth_protocol: unknown value 'SHA3' (expected one of MD5, SHA, SHA224, SHA256, SHA384, SHA512)",
        "{f}:14: capture.block_size: must be a power of two of at least 4KiB, got 3145728",
        "{f}:16: subnets[0].cidr: invalid network '10.0.0.0/33' (expected a CIDR network such as 192.168.1.0/24)",
    ],
    "invalid-credentials.yml": [
        "{f}:3: snmp.credentials[0]: credential 'v2': version 2c needs a community",
        "{f}:5: snmp.credentials[1]: credential 'v3': auth_key must be at least 8 characters (RFC 3414)",
        "{f}:12: snmp.credentials[2].community: environment variable SITEVIGIL_TEST_UNSET_VARIABLE is not set",
    ],
    "invalid-report.yml": [
        "{f}:2: report.msp_name: must not be empty (leave the key out to use the default)",
        "{f}:3: report.client_name: expected a string, got 42",
        "{f}:4: report.monthly: expected a boolean (true or false), got 'sometimes'",
        "{f}:5: report.logo: unknown key (expected one of: client_name, monthly, msp_name)",
    ],
    "invalid-yaml.yml": [
        "{f}:3: invalid YAML: expected <block end>, but found '<block mapping start>'",
    ],
    "invalid-secret-file.yml": [
        "{f}:5: snmp.credentials[0].community: cannot read secret file {d}/does-not-exist.secret: No such file or directory",
        "{f}:8: snmp.credentials[1].community: expected a string, {{env: NAME}} or {{file: PATH}}",
    ],
}


def _snmp_keys() -> str:
    from probe.config.snmp import SnmpConfig
    return ", ".join(sorted(f.name for f in dataclasses.fields(SnmpConfig)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_file_reports_every_problem_exactly(name):
    path = CONFIGS / name
    with pytest.raises(ConfigError) as info:
        load_file(str(path), env={})
    want = [m.format(f=str(path), d=str(CONFIGS), snmp_keys=_snmp_keys()) for m in EXPECTED[name]]
    assert str(info.value).splitlines() == want


def test_every_invalid_fixture_is_pinned():
    on_disk = {p.name for p in CONFIGS.glob("invalid-*.yml")}
    assert on_disk == set(EXPECTED)


def test_valid_full_file_loads_into_frozen_values():
    cfg = load_file(str(CONFIGS / "valid-full.yml"), env={"TEST_AUTH_KEY": "authkey-from-env"})
    assert cfg.web.listen_address == "127.0.0.1:19847"
    assert cfg.log.format == "json"
    v3, v2 = cfg.snmp.credentials
    assert v3.auth_key.reveal() == "authkey-from-env" and v3.auth_key.source == "env:TEST_AUTH_KEY"
    assert v3.priv_key.reveal() == "privpass-from-file"  # trailing newline of the file dropped
    assert v3.security_level == "authPriv"
    assert v2.community.reveal() == "s3cret-community"
    assert cfg.snmp.timeout == 1.5 and cfg.snmp.counters_interval == 30
    assert cfg.capture.block_size == 4 * 2**20 and cfg.capture.block_timeout == pytest.approx(0.05)
    assert cfg.snmp.targets[0].modules == ("system", "interfaces")
    assert str(cfg.subnets[0].cidr) == "192.168.1.0/24"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.web.listen_address = ":1"  # type: ignore[misc]


def test_secrets_never_show_in_repr_or_str():
    cfg = load_file(str(CONFIGS / "valid-full.yml"), env={"TEST_AUTH_KEY": "authkey-from-env"})
    text = repr(cfg) + str(cfg)
    for secret in ("authkey-from-env", "privpass-from-file", "s3cret-community"):
        assert secret not in text


def test_empty_file_is_the_defaults():
    assert load_text("", file="empty.yml") == default_config()
    assert load_text("# only a comment\n", file="c.yml") == default_config()


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError) as info:
        load_text("- a\n- b\n", file="list.yml")
    assert str(info.value) == "list.yml:1: (top level): expected a mapping, got a list"


def test_duplicate_keys_are_errors():
    with pytest.raises(ConfigError) as info:
        load_text("web:\n  listen_address: ':1'\nweb: {}\n", file="dup.yml")
    assert str(info.value) == "dup.yml:3: web: duplicate key (first given on line 1)"


def test_cross_references_checked():
    text = "snmp:\n  credentials: [{name: a, community: x}]\nsubnets:\n  - {cidr: 10.1.0.0/16, credentials: [b]}\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, file="x.yml")
    assert str(info.value) == "x.yml:1: (top level): subnets 10.1.0.0/16: unknown credentials: b"


def test_units():
    assert Duration.parse("250ms") == 0.25 and Duration.parse("5m") == 300 and Duration.parse("2") == 2
    assert ByteSize.parse("4MiB") == 4 << 20 and ByteSize.parse("1GB") == 10**9
    with pytest.raises(ValueError):
        Duration.parse("5 parsecs")
    with pytest.raises(ValueError):
        ByteSize.parse("4 furlongs")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_file(str(tmp_path / "nope.yml"))
    assert str(info.value) == f"{tmp_path / 'nope.yml'}: cannot read config file: No such file or directory"


def test_example_config_is_valid_but_for_its_absent_secrets():
    example = Path(__file__).resolve().parents[2] / "examples" / "sitevigil.yml"
    with pytest.raises(ConfigError) as info:
        load_file(str(example), env={"SITEVIGIL_SNMP_COMMUNITY": "c", "SITEVIGIL_SNMP_PRIV_KEY": "privkey123"})
    # Only the key file, which lives on the probe box, is missing here.
    assert [p.path for p in info.value.problems] == ["snmp.credentials[0].auth_key"]


def test_snmp_findings_thresholds_load_and_bad_ones_are_located():
    cfg = load_text("snmp:\n  findings:\n    errors_min: 50\n    ups_runtime_min: 5m\n    storage_full_ratio: 0.9\n")
    f = cfg.snmp.findings
    assert (f.errors_min, f.ups_runtime_min, f.storage_full_ratio, f.unreachable_polls) == (50, 300, 0.9, 3)
    with pytest.raises(ConfigError) as info:
        load_text("snmp:\n  findings:\n    unreachable_polls: 0\n    supply_low_ratio: 2\n    nope: 1\n", file="c.yml")
    text = str(info.value)
    assert "c.yml:3: snmp.findings.unreachable_polls: must be at least 1, got 0" in text
    assert "c.yml:4: snmp.findings.supply_low_ratio: must be between 0 and 1 (exclusive), got 2" in text
    assert "c.yml:5: snmp.findings" in text and "nope" in text
