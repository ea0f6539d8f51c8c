"""The `sitevigil` command line: one entry point, one module per subcommand under probe/commands/.

Long flags follow the Prometheus exporters' habit (--config.file, --web.listen-address, --log.level,
--log.format). Each subcommand module defines `add_arguments(parser)` and `run(args) -> int`, and a
docstring whose first line is its help.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys

from probe import __version__

# subcommand -> module under probe.commands
COMMANDS: dict[str, str] = {
    "run": "run",
    "check-config": "check_config",
    "diag": "diag",
    "bench": "bench",
    "findings": "findings",
    "visits": "visits",
    "replay": "replay",
    "sweep": "sweep",
    "devices": "devices",
    "score": "score",
    "snmp": "snmp",
    "report": "report",
}


def version_text() -> str:
    from probe import fastpath

    text = f"sitevigil {__version__} (fast path: {fastpath.IMPLEMENTATION}; python {sys.version.split()[0]})"
    if fastpath.LOAD_ERROR:
        text += f"\ncompiled fast path not loaded: {fastpath.LOAD_ERROR}"
    return text


def _docstring(module_name: str) -> str:
    """A command module's docstring, read without importing it (imports cost start-up time)."""
    spec = importlib.util.find_spec(f"probe.commands.{module_name}")
    with open(spec.origin, encoding="utf-8") as fh:
        return ast.get_docstring(ast.parse(fh.read())) or ""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in argv is imported (all of them when argv is None)."""
    parser = argparse.ArgumentParser(
        prog="sitevigil",
        description="sitevigil: on-site network probe for MSPs. Polls SNMP devices, listens on a mirror port, "
                    "finds problems on the client LAN and serves them as Prometheus metrics.")
    parser.add_argument("--version", action="store_true", help="print version and fast-path implementation, then exit")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "error"],
                        help="only log messages with the given severity or above (default: info)")
    parser.add_argument("--log.format", dest="log_format", default=None, choices=["logfmt", "json"],
                        help="output format of log messages (default: logfmt)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None if argv is None else next((a for a in argv if a in COMMANDS), None)
    for name, module_name in COMMANDS.items():
        doc = _docstring(module_name).strip()
        summary = doc.splitlines()[0] if doc else name
        p = sub.add_parser(name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        if argv is None or name == wanted:
            module = importlib.import_module(f"probe.commands.{module_name}")
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    if not args.command:
        build_parser([]).print_help()
        return 2
    from probe import logsetup

    logsetup.setup(args.log_level, args.log_format or "logfmt")
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sitevigil ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
