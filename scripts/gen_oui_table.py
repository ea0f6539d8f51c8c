#!/usr/bin/env python3
"""Regenerate probe/data/oui.tsv.gz from Debian's ieee-data (the IEEE MA-L, MA-M, MA-S and IAB registries).

    python3 scripts/gen_oui_table.py [--ieee-dir /usr/share/ieee-data] [--out probe/data/oui.tsv.gz]

The output is deterministic (sorted rows, gzip without a timestamp), so a rebuild from the same
ieee-data gives the same bytes. The probe prefers the installed ieee-data at runtime; this table is
its fallback on boxes without that package.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from probe.state.oui import IEEE_DATA_DIR, PACKAGED_TABLE, read_ieee_csvs, write_table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ieee-dir", default=IEEE_DATA_DIR)
    ap.add_argument("--out", default=os.path.normpath(PACKAGED_TABLE))
    args = ap.parse_args(argv)
    if not os.path.exists(os.path.join(args.ieee_dir, "oui.csv")):
        print(f"gen_oui_table: {args.ieee_dir}/oui.csv not found (apt-get install ieee-data)", file=sys.stderr)
        return 1
    stamp = ""
    try:
        with open(os.path.join(args.ieee_dir, ".lastupdate")) as fh:
            stamp = fh.read().strip()
    except OSError:
        pass
    header = (f"IEEE MAC address registries (MA-L, MA-M, MA-S, IAB) from Debian ieee-data, {args.ieee_dir}"
              + (f", lastupdate {stamp}" if stamp else "") + "\nprefix (hex digits)<TAB>organisation")
    with open(args.out, "wb") as fh:
        n = write_table(read_ieee_csvs(args.ieee_dir), fh, header)
    print(f"wrote {n} prefixes to {args.out} ({os.path.getsize(args.out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
