"""capture.bpf_filter compiled by the real tcpdump (`tcpdump -ddd`) into the classic BPF the ring attaches."""
from __future__ import annotations

import errno
import shutil

import pytest

from probe.sources.afpacket import CaptureError, compile_filter

pytestmark = [pytest.mark.peer, pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")]


def test_filter_compiles_to_classic_bpf():
    prog = compile_filter("udp port 53")
    assert len(prog) > 5 and all(len(ins) == 4 for ins in prog)
    assert prog[-1][0] == 0x06 and prog[-1][3] == 0  # ret #0: everything else is dropped
    assert (0x15, 0, 0, 53) in [(c, 0, 0, k) for c, _, _, k in prog]  # jeq #53 somewhere


def test_bad_filter_names_the_expression():
    with pytest.raises(CaptureError) as exc:
        compile_filter("tcp portt 80")
    assert exc.value.errno == errno.EINVAL
    assert "capture.bpf_filter 'tcp portt 80' is not a valid filter" in str(exc.value)
