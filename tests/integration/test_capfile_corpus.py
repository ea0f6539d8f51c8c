"""The capture-file reader and the parser over tcpdump's own test captures (830 files, many broken on purpose).

None may crash or hang: a file is read to its end or stops with a located CaptureFileError, and what the
reader yields goes through the parser of the implementation under test. Where tcpdump reads a file to its
end, the reader does too, and its frames plus those it counted as skipped are tcpdump's frame count.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from probe import fastpath
from probe.sources.capfile import CaptureFileError, ReaderStats, read_batches
from probe.state.aggregates import batch_columns

_UNSUPPORTED = re.compile(r"link type \d+ is not supported")


@pytest.fixture(scope="module")
def corpus(shared_data):
    files = sorted(p for p in (shared_data / "pcap-corpus" / "tcpdump").glob("*.pcap*"))
    if not files:
        pytest.skip("tcpdump corpus not found")
    return files


def tcpdump_counts(files):
    counts = {}
    for path in files:
        p = subprocess.run(["tcpdump", "-nr", str(path), "--count"], capture_output=True, text=True, timeout=30)
        m = re.search(r"^(\d+) packets?", p.stdout, re.M)
        counts[path] = (p.returncode, int(m.group(1)) if m else None)
    return counts


def test_corpus_reads_without_crash_and_agrees_with_tcpdump(corpus):
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump not installed")
    reference = tcpdump_counts(corpus)
    read_through = 0
    problems = []
    for path in corpus:
        stats, frames, error = ReaderStats(), 0, None
        start = time.monotonic()
        try:
            for batch in read_batches(str(path), stats=stats):
                fastpath.parse_frames(*batch_columns(batch))
                frames += len(batch)
        except CaptureFileError as exc:
            error = exc
        assert time.monotonic() - start < 10, f"{path.name}: reading took too long"
        rc, count = reference[path]
        if error is None:
            read_through += 1
            if rc == 0 and frames + sum(stats.skipped.values()) != count:
                problems.append(f"{path.name}: {frames} frames + {stats.skipped} skipped, tcpdump counts {count}")
        elif rc == 0 and not _UNSUPPORTED.search(error.message):
            problems.append(f"{path.name}: tcpdump reads it all, the reader stops: {error}")
        else:
            assert str(path) in str(error) and "byte " in str(error)
    assert not problems, "\n".join(problems)
    assert read_through > len(corpus) // 2
