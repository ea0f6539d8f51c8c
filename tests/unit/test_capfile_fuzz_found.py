"""Reader bugs the fuzzer found (tests/fuzz/; the inputs it wrote are kept in tests/fuzz/regressions/capfile/),
each shown here on a small crafted capture."""
from __future__ import annotations

import struct

import pytest

from probe import fastpath
from probe.sources.capfile import CaptureFileError, ReaderStats, read_batches
from probe.state.aggregates import batch_columns

from tests.unit.test_capfile import epb, idb, shb


def _read(path, stats=None):
    batches = list(read_batches(str(path), stats=stats))
    for b in batches:
        fastpath.parse_frames(*batch_columns(b))
    return batches


def _pcap(linktype, records):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for incl, orig, data in records:
        out += struct.pack("<IIII", 1, 0, incl, orig) + data
    return out


IPV4_UDP = bytes.fromhex("4500001c000100004011f9c80a0000010a000002" "00350035000800ff")


@pytest.mark.parametrize("linktype,frame", [
    (104, b"\x0f\x00\x08\x00" + IPV4_UDP),   # Cisco HDLC: a 10-byte longer Ethernet header is synthesized
    (101, IPV4_UDP),                         # raw IP: 14 bytes are
    (0, b"\x02\x00\x00\x00" + IPV4_UDP),     # BSD loopback: 10 are
], ids=["cisco-hdlc", "raw-ip", "bsd-loopback"])
def test_a_wire_length_near_4_gib_saturates_instead_of_ending_the_read(tmp_path, linktype, frame):
    """A record claiming 2^32 - 1 bytes on the wire, of a link type read through a synthesized Ethernet header,
    ended the read with OverflowError (the header's bytes pushed the length past the uint32 column). The claim
    now saturates at 2^32 - 1; the frame and the one after it are read."""
    path = tmp_path / "big.pcap"
    path.write_bytes(_pcap(linktype, [(len(frame), 0xFFFFFFFF, frame), (len(frame), len(frame), frame)]))
    batches = _read(path)
    assert [int(w) for b in batches for w in b.wirelen] == [0xFFFFFFFF, len(IPV4_UDP) + 14]


def test_a_wire_length_near_4_gib_in_pcapng_saturates(tmp_path):
    frame = b"\x0f\x00\x08\x00" + IPV4_UDP
    path = tmp_path / "big.pcapng"
    path.write_bytes(shb("<") + idb("<", 104) + epb("<", 0, 1, frame, wirelen=0xFFFFFFFF))
    assert [int(w) for b in _read(path) for w in b.wirelen] == [0xFFFFFFFF]


def test_a_pcapng_time_beyond_int64_nanoseconds_saturates_and_is_counted(tmp_path):
    """pcapng times are 64 bits of the interface's unit: in seconds (if_tsresol 0), 2^40 s is 1.1e21 ns, which
    the int64 ts_ns column cannot hold; it ended the read with OverflowError. Such a record is now kept with
    its time saturated, counted in timestamps_out_of_range with one warning, and the next record is read."""
    frame = bytes.fromhex("ffffffffffff020000000001") + b"\x08\x00" + IPV4_UDP
    path = tmp_path / "future.pcapng"
    path.write_bytes(shb("<") + idb("<", 1, tsresol=0) + epb("<", 0, 1 << 40, frame) + epb("<", 0, 1_700_000_000, frame))
    stats = ReaderStats()
    batches = _read(path, stats)
    assert [int(t) for b in batches for t in b.ts_ns] == [(1 << 63) - 1, 1_700_000_000 * 10**9]
    assert stats.timestamps_out_of_range == 1
    assert len(stats.warnings) == 1 and "byte " in stats.warnings[0] and "saturated" in stats.warnings[0]


@pytest.mark.parametrize("blen", [12, 16, 24])
def test_a_section_header_block_too_short_for_its_fields_is_a_capture_file_error(tmp_path, blen):
    """A section header block whose length (12 to 24) leaves no room for its trailing length copy after the
    byte-order magic raised struct.error; it is a CaptureFileError naming the block and its minimum."""
    path = tmp_path / "short.pcapng"
    path.write_bytes(struct.pack("<II", 0x0A0D0D0A, blen) + struct.pack("<I", 0x1A2B3C4D) + bytes(blen))
    with pytest.raises(CaptureFileError, match=f"byte 0: section header block length {blen} is below its 28-byte minimum"):
        _read(path)
