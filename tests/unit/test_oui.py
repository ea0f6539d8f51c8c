"""MAC vendor lookup (IEEE registries) and the kind of address (registered, local, randomised, multicast)."""
import gzip
import os

import pytest
from hypothesis import given, strategies as st

from probe.state.oui import (IEEE_DATA_DIR, PACKAGED_TABLE, MacError, OuiTable, classify_mac, normalise_mac,
                             read_ieee_csvs, read_table)

HAVE_IEEE = os.path.exists(os.path.join(IEEE_DATA_DIR, "oui.csv"))


@pytest.fixture(scope="module")
def packaged():
    return OuiTable.load(ieee_dir=None)


def test_normalise_mac_accepts_the_usual_spellings():
    for text in ("AA-BB-CC-DD-EE-0F", "aabb.ccdd.ee0f", "aa:bb:cc:dd:ee:0f", "AABBCCDDEE0F", b"\xaa\xbb\xcc\xdd\xee\x0f"):
        assert normalise_mac(text) == "aa:bb:cc:dd:ee:0f"


@pytest.mark.parametrize("bad", ["", "aa:bb:cc:dd:ee", "gg:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:00", b"\x01\x02"])
def test_normalise_mac_rejects_what_is_not_a_mac(bad):
    with pytest.raises(MacError, match="invalid MAC"):
        normalise_mac(bad)


def test_packaged_table_finds_registered_vendors_at_every_prefix_length(packaged):
    assert len(packaged) > 40000
    assert "VMware" in packaged.lookup("00:50:56:01:02:03").vendor            # MA-L, 24 bits
    assert packaged.lookup("3c:22:fb:00:00:01").vendor.startswith("Apple")   # MA-L
    # MA-S (36 bits) beats the MA-L that holds it (70:B3:D5 is the IEEE's own MA-S block)
    long = packaged.lookup("70:b3:d5:f2:f0:00").vendor
    short = packaged.vendor("70:b3:d5:00:00:00")
    assert long and long != short


@pytest.mark.skipif(not HAVE_IEEE, reason="Debian ieee-data not installed")
def test_packaged_table_is_the_installed_registry(packaged):
    live = OuiTable.load()
    assert live.source == IEEE_DATA_DIR
    entries = dict(read_ieee_csvs(IEEE_DATA_DIR))
    shipped = dict(read_table(PACKAGED_TABLE))
    assert len(shipped) == len(entries)
    for prefix in list(entries)[::997]:
        assert shipped[prefix] == entries[prefix]


def test_packaged_table_has_a_note_of_origin():
    with gzip.open(PACKAGED_TABLE, "rt") as fh:
        assert "ieee-data" in fh.readline()


def test_locally_administered_and_randomised_are_told_apart(packaged):
    kvm = packaged.lookup("52:54:00:12:34:56")
    assert (kvm.kind, kvm.randomised, kvm.vendor) == ("local", False, "QEMU/KVM virtual NIC")
    docker = packaged.lookup("02:42:ac:11:00:02")
    assert docker.kind == "local" and not docker.randomised and "Docker" in docker.vendor
    for mac in ("da:a1:19:00:00:01", "f6:12:34:56:78:9a", "ae:00:00:00:00:01", "02:5e:00:00:00:01"):
        info = packaged.lookup(mac)
        assert info.kind == "local" and info.randomised and info.vendor is None
        assert info.label == "(randomised MAC)"
    assert packaged.lookup("01:00:5e:00:00:fb").kind == "multicast"


def test_unregistered_global_prefix_has_no_vendor():
    table = OuiTable({"001122": "Example Ltd"})
    assert table.lookup("00:11:22:33:44:55").vendor == "Example Ltd"
    info = table.lookup("00:11:23:33:44:55")
    assert info.vendor is None and info.kind == "global" and info.label == "(unregistered)"


@given(st.binary(min_size=6, max_size=6))
def test_kind_follows_the_address_bits(raw):
    mac = normalise_mac(raw)
    kind, randomised, _ = classify_mac(mac)
    if raw[0] & 1:
        assert kind == "multicast" and not randomised
    elif raw[0] & 2:
        assert kind == "local"
    else:
        assert kind == "global" and not randomised


def test_missing_tables_give_an_empty_table_not_an_error(tmp_path):
    t = OuiTable.load(ieee_dir=str(tmp_path), packaged=str(tmp_path / "none.tsv.gz"))
    assert len(t) == 0
    assert t.lookup("00:50:56:00:00:01").vendor is None
