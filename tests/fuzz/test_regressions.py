"""Every input a fuzz run failed on (tests/fuzz/regressions/TARGET/) replayed through the check that failed.

parse inputs through the release and the checked build against the twin; capfile inputs through the reader
(and what it yields through the live implementation's parser), with a time bound: a kept `timeout-*` input
must now finish.
"""
from __future__ import annotations

import time

import pytest

from probe import fastpath
from tests.fuzz import harness, seeds

PARSE = seeds.regressions("parse")
CAPFILE = seeds.regressions("capfile")


def _ids(paths):
    return [p.name for p in paths]


def test_regression_folders_exist():
    assert (seeds.REGRESSIONS / "parse").is_dir() and (seeds.REGRESSIONS / "capfile").is_dir()


@pytest.mark.parametrize("path", PARSE, ids=_ids(PARSE))
def test_parse_regression(path):
    import probe.fastpath.twin as twin
    try:
        import probe._fastpath as release
    except ImportError:
        pytest.skip("compiled fast path not built")
    from tests.fuzz import builds
    data = path.read_bytes()
    harness.check_parse(release, twin, data)
    harness.check_parse(builds.load(builds.build("checked")), twin, data)


@pytest.mark.parametrize("path", CAPFILE, ids=_ids(CAPFILE))
def test_capfile_regression(path, tmp_path):
    data = path.read_bytes()
    target = tmp_path / "capture"
    target.write_bytes(data)
    start = time.monotonic()
    harness.check_capfile(data, str(target), fastpath)
    assert time.monotonic() - start < 10, f"{path.name} took {time.monotonic() - start:.1f} s to read"
