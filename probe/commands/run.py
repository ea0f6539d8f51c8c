"""Run the probe daemon.

With no --config.file it runs on built-in defaults: it watches the subnets of this machine's
interfaces, keeps state in /var/lib/sitevigil (as root), and serves metrics on :9847.
SIGHUP or POST /-/reload reloads the config file; SIGTERM stops cleanly.
"""
from __future__ import annotations

import asyncio
import logging

from probe.config import ConfigError, default_config, load_file


def add_arguments(p):
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE",
                   help="YAML configuration file (default: none, built-in defaults)")
    p.add_argument("--web.listen-address", dest="listen_address", default=None, metavar="ADDR",
                   help="address to serve metrics on, overriding the config (default :9847)")
    p.add_argument("--web.config.file", dest="web_config_file", default=None, metavar="FILE",
                   help="TLS, basic authentication and headers for every endpoint, in the Prometheus exporter "
                        "toolkit's format (re-read when it changes)")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR",
                   help="where the embedded database lives (default /var/lib/sitevigil as root)")


def run(args) -> int:
    from probe import logsetup, subsystems
    from probe.daemon import Daemon, Overrides

    log = logging.getLogger("sitevigil")
    if args.config_file:
        try:
            cfg = load_file(args.config_file)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            return 1
    else:
        cfg = default_config()
    # The file's log settings apply unless given on the command line.
    logsetup.setup(args.log_level if args.log_level != "info" else cfg.log.level, args.log_format or cfg.log.format)
    daemon = Daemon(cfg, config_path=args.config_file,
                    overrides=Overrides(listen_address=args.listen_address, state_dir=args.state_dir,
                                        web_config_file=args.web_config_file),
                    factories=subsystems.factories())
    try:
        return asyncio.run(daemon.run())
    except Exception as exc:
        log.exception("fatal: %s", exc)
        return 1
