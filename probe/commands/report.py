"""Write the monthly client report: one self-contained HTML page (or PDF) for the business owner.

    sitevigil report --month 2026-11 --out november.html
    sitevigil report --month 2026-11 --out november.pdf --format pdf --config.file /etc/sitevigil/sitevigil.yml

The page says in plain words what was watched, what was found and by whom (the probe first, or the
client, or a technician on a visit), what was done, and what still needs the owner's decision; the
technical detail is folded away below. Months and days are local time. The MSP's and the client's
names come from the config's report: section. PDF goes through headless Chromium's print-to-PDF.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from probe.commands.statedir import add_state_dir, open_store

PDF_TIMEOUT = 120.0  # seconds Chromium gets to print the page
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def add_arguments(p):
    p.add_argument("--month", required=True, help="the local calendar month, YYYY-MM (e.g. 2026-11)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the report")
    add_state_dir(p, help="where the probe's database lives (default: the config's state_dir, else /var/lib/sitevigil)")
    p.add_argument("--config.file", dest="config_file", default=None,
                   help="take the report's names (report.msp_name, report.client_name) and state_dir from this file")
    p.add_argument("--format", choices=["html", "pdf"], default="html", help="html (default) or pdf")


def find_chromium() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def print_pdf(html_path: str, pdf_path: str, *, chromium: str | None = None, timeout: float = PDF_TIMEOUT) -> None:
    """Print an HTML file to PDF with headless Chromium; RuntimeError says why when it cannot."""
    chromium = chromium or find_chromium()
    if not chromium:
        raise RuntimeError("--format pdf needs Chromium, which is not installed (Debian: apt-get install chromium); "
                           "or write --format html and print it from a browser")
    with tempfile.TemporaryDirectory(prefix="sitevigil-pdf-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-extensions", "--no-pdf-header-footer",
               f"--user-data-dir={profile}", f"--print-to-pdf={os.path.abspath(pdf_path)}",
               "file://" + os.path.abspath(html_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not finish printing the PDF within {timeout:.0f}s") from None
    if done.returncode != 0 or not os.path.exists(pdf_path) or os.path.getsize(pdf_path) == 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"Chromium could not print the PDF (exit {done.returncode}): {' / '.join(tail)}")


def run(args) -> int:
    from probe.config import ConfigError, default_config, load_file
    from probe.exposition.report import build, parse_month, render
    from probe.files import write_atomically

    try:
        parse_month(args.month)
    except ValueError as exc:
        print(f"sitevigil report: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = load_file(args.config_file) if args.config_file else default_config()
    except ConfigError as exc:
        print(f"sitevigil report: {exc}", file=sys.stderr)
        return 2
    if (store := open_store("report", args.state_dir or cfg.state_dir, must_exist=True)) is None:
        return 1
    try:
        model = build(store, args.month, msp_name=cfg.report.msp_name, client_name=cfg.report.client_name)
    finally:
        store.close()
    page = render(model)
    try:
        if args.format == "html":
            write_atomically(args.out, page)
        else:
            with tempfile.TemporaryDirectory(prefix="sitevigil-report-") as tmp:
                html_path = os.path.join(tmp, "report.html")
                write_atomically(html_path, page)
                part = os.path.join(os.path.dirname(os.path.abspath(args.out)), f".{os.path.basename(args.out)}.part")
                try:
                    print_pdf(html_path, part)
                    os.replace(part, args.out)
                finally:
                    if os.path.exists(part):
                        os.unlink(part)
    except RuntimeError as exc:
        print(f"sitevigil report: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sitevigil report: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    n = model.numbers
    print(f"report for {args.month} written to {args.out}: {n['findings_found']} problems found, "
          f"{n['still_open']} still open")
    return 0
