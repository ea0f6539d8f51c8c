"""Files the probe writes whole or not at all (reports, scored series): a reader never sees half of one."""
from __future__ import annotations

import os


def write_atomically(path: str, text: str, *, newline: str | None = None) -> None:
    """Write `path` whole or not at all: a temporary file in the same directory, flushed to disk, then
    a rename over the old one. On any failure the temporary file is removed and the old file stays."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
