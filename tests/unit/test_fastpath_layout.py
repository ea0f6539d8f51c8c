"""One source for the layouts: the kernels' layout.pxi is generated from probe/fastpath/layout.py, and the
compiled FrameRecord is checked field by field against FRAME_DTYPE."""
from pathlib import Path

import numpy as np
import pytest

from probe.fastpath import layout

REPO = Path(__file__).resolve().parents[2]


def test_generated_pxi_is_what_the_generator_gives():
    """Nobody edits one side: the committed layout.pxi equals what layout.py generates now."""
    committed = (REPO / layout.PXI_PATH).read_text()
    assert committed == layout.pxi_text(), (
        f"{layout.PXI_PATH} is stale or hand-edited: run `python -m probe.fastpath.layout --pxi` and rebuild")


def test_generated_pxi_carries_every_shared_name():
    text = layout.pxi_text()
    for name in layout.FLAG_NAMES:
        assert f"    F_{name} = 1 << {layout.FLAG_NAMES.index(name)}\n" in text
    for i, name in enumerate(layout.COUNTERS):
        assert f"    C_{name.upper()} = {i}\n" in text
    for i, name in enumerate(layout.DUP_PROTOCOLS):
        assert f"    DUP_{name.upper()} = {i}\n" in text
    assert f"    DUP_GAP_UNITS = {layout.DUP_RUN_GAP_NS >> 20}\n" in text
    assert f"    FRAME_HASH_BYTES = {layout.FRAME_HASH_BYTES}\n" in text
    for name in layout.FRAME_DTYPE.names:
        assert f" {name}\n" in text.split("cdef struct FrameRecord:")[1].split("\n\n")[0] + "\n"


def test_dup_gap_units_is_derived_from_the_run_gap():
    assert layout.DUP_GAP_UNITS == layout.DUP_RUN_GAP_NS >> layout.DUP_TS_SHIFT == 95


def _compiled():
    return pytest.importorskip("probe._fastpath")


def test_compiled_record_matches_frame_dtype_field_by_field():
    c = _compiled()
    fields = c.frame_record_fields()
    assert [name for name, _, _ in fields] == list(layout.FRAME_DTYPE.names)
    for name, offset, size in fields:
        dt, off = layout.FRAME_DTYPE.fields[name][:2]
        assert (offset, size) == (off, dt.itemsize), name
    c.check_frame_record(layout.FRAME_DTYPE)  # what the module ran at import


def _altered(**change):
    fields = [(n, change.get(n, layout.FRAME_DTYPE.fields[n][0])) for n in layout.FRAME_DTYPE.names]
    return np.dtype(fields, align=True)


def test_check_names_a_field_of_another_size():
    c = _compiled()
    with pytest.raises(ImportError, match=r"FrameRecord\.vlan is 4 bytes at offset 136 .* but 8 bytes at offset 136"):
        c.check_frame_record(_altered(vlan=np.int64))


def test_check_names_a_field_that_moved():
    c = _compiled()
    names = list(layout.FRAME_DTYPE.names)
    i, j = names.index("flags"), names.index("payload_off")
    names[i], names[j] = names[j], names[i]  # same size, same total: only the field-by-field check sees it
    swapped = np.dtype([(n, layout.FRAME_DTYPE.fields[n][0]) for n in names], align=True)
    assert swapped.itemsize == layout.FRAME_DTYPE.itemsize
    with pytest.raises(ImportError, match=r"FrameRecord\.flags is 4 bytes at offset \d+ in the compiled kernels"):
        c.check_frame_record(swapped)


def test_check_names_a_field_missing_from_either_side():
    c = _compiled()
    fields = [(n, layout.FRAME_DTYPE.fields[n][0]) for n in layout.FRAME_DTYPE.names]
    with pytest.raises(ImportError, match=r"FrameRecord\.ip_id .* is not a field of FRAME_DTYPE"):
        c.check_frame_record(np.dtype([f for f in fields if f[0] != "ip_id"] + [("pad", np.uint16)], align=True))
    with pytest.raises(ImportError, match=r"FRAME_DTYPE field 'extra' is not in the compiled FrameRecord"):
        c.check_frame_record(np.dtype(fields + [("extra", np.uint64)], align=True))
@pytest.mark.parametrize("module", ["parse", "aggregate", "counters"])
def test_twin_keeps_no_hand_copy_of_a_shared_constant(module):
    """The twin imports what layout.py defines: no module-level assignment of a name layout.py exports, and
    none of layout.py's 64-bit constants written out by hand."""
    import re
    source = (REPO / "probe" / "fastpath" / "twin" / f"{module}.py").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, re.M))
    assert not assigned & set(layout.__all__)
    for name, value in layout.HASH_CONSTANTS.items():
        assert f"{value:x}" not in source.lower(), name


def test_compiled_ring_reads_the_tpacket_fields_where_the_twin_does():
    from probe.sources import afpacket
    c = _compiled()
    fields = c.tpacket_fields()
    dtypes = {"tpacket_block_desc": afpacket.TPACKET_BLOCK_DESC, "tpacket3_hdr": afpacket.TPACKET3_HDR}
    assert {s for s, _, _, _ in fields} == set(dtypes) and len(fields) >= 10
    for struct, name, offset, size in fields:
        if name is None:
            assert dtypes[struct].itemsize == size == 48, struct
        else:
            dt, off = dtypes[struct].fields[name][:2]
            assert (offset, size) == (off, dt.itemsize), (struct, name)
    c.check_tpacket_layout(afpacket.TPACKET_BLOCK_DESC, afpacket.TPACKET3_HDR)  # what the module ran at import


def test_tpacket_check_names_a_field_that_moved():
    from probe.sources import afpacket
    c = _compiled()
    hdr = afpacket.TPACKET3_HDR
    names = list(hdr.names)
    i, j = names.index("tp_sec"), names.index("tp_nsec")
    names[i], names[j] = names[j], names[i]
    swapped = np.dtype([(n, hdr.fields[n][0]) for n in names])
    with pytest.raises(ImportError, match=r"tpacket3_hdr\.tp_sec is 4 bytes at offset 4 in linux/if_packet.h "
                                          r"but 4 bytes at offset 8"):
        c.check_tpacket_layout(afpacket.TPACKET_BLOCK_DESC, swapped)
    short = np.dtype([(n, hdr.fields[n][0]) for n in hdr.names if n != "tp_tail_padding"])
    with pytest.raises(ImportError, match=r"struct tpacket3_hdr is 48 bytes in linux/if_packet.h but 40"):
        c.check_tpacket_layout(afpacket.TPACKET_BLOCK_DESC, short)
