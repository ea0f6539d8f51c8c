"""The compiled parser never reads past a frame's caplen: each fuzzed frame ends exactly at a guard page.

The frame is copied to the end of a readable page followed by a PROT_NONE page, so a single byte read
past its end is a segmentation fault. The fuzz runs in a child process so a crash fails the test
instead of killing the test run.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r'''
    import ctypes, mmap, random, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import probe._fastpath as c
    from probe.sources.capfile import read_batches

    PAGE = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    SIZE = 70000 + PAGE - 70000 % PAGE
    buf = mmap.mmap(-1, SIZE + PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(base + SIZE, PAGE, 0) == 0  # the guard page
    mem = np.frombuffer(buf, np.uint8, count=SIZE)
    if sys.argv[2] == "--selfcheck":  # the guard must really fault
        ctypes.string_at(base + SIZE, 1)
        sys.exit(0)

    seeds = []
    for path in sys.argv[2:]:
        for b in read_batches(path):
            seeds.extend(b.frame(i) for i in range(len(b)))
    rnd = random.Random(1234)
    zero64, vl = np.zeros(1, np.int64), np.full(1, -1, np.int32)
    n = 0
    for _ in range(20000):
        f = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randrange(0, 6)):
            f[rnd.randrange(len(f))] = rnd.randrange(256)
        if rnd.random() < 0.5:
            f = f[:rnd.randrange(len(f) + 1)]
        start = SIZE - len(f)
        buf[start:SIZE] = bytes(f)
        cl = np.array([len(f)], np.uint32)
        wl = np.array([len(f) + rnd.choice([0, 0, 4, 1000])], np.uint32)
        c.parse_frames(mem, np.array([start], np.int64), cl, wl, zero64, vl)
        n += 1
    print(n)
''')


def test_no_read_past_caplen(shared_data, tmp_path):
    try:
        import probe._fastpath  # noqa: F401
    except ImportError:
        pytest.skip("compiled fast path not built")
    from tests.conftest import REPO_ROOT
    seeds = [str(p) for p in sorted((shared_data / "pcap").glob("*.pcap*"))]
    script = tmp_path / "fuzz.py"
    script.write_text(CHILD)
    p = subprocess.run([sys.executable, str(script), str(REPO_ROOT), *seeds], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"parser crashed (rc {p.returncode}): an over-read hit the guard page\n{p.stderr[-2000:]}"
    assert int(p.stdout.strip()) == 20000


def test_guard_page_really_faults(tmp_path):
    try:
        import probe._fastpath  # noqa: F401
    except ImportError:
        pytest.skip("compiled fast path not built")
    from tests.conftest import REPO_ROOT
    script = tmp_path / "fuzz.py"
    script.write_text(CHILD)
    p = subprocess.run([sys.executable, str(script), str(REPO_ROOT), "--selfcheck"], capture_output=True, timeout=60)
    assert p.returncode < 0  # killed by SIGSEGV
