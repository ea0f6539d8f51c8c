"""Run snmpsim (the real peer) on loopback serving a folder of .snmprec recordings, for tests and
benchmarks. Community = recording file name without .snmprec.

As root, snmpsim must drop to nobody (`--process-user nobody --process-group nogroup`), so it needs
a Python that nobody can read: a venv built from /usr/bin/python3 under /tmp (pip install snmpsim
pysmi), made once and reused by later runs (built in a temp dir, then renamed, under a lock). The
recordings are copied to a temp dir nobody can read, with a writable --cache-dir.
Everything listens on 127.0.0.1 only; the process is ended by its pid at teardown, also on failure.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNMPSIM_VERSION = "1.2.2"
VENV = Path(tempfile.gettempdir()) / f"sitevigil-snmpsim-venv-{SNMPSIM_VERSION}"


class SnmpsimUnavailable(RuntimeError):
    pass


def _responder_from_main_venv() -> list[str] | None:
    exe = Path(sys.executable).parent / "snmpsim-command-responder"
    return [str(exe)] if exe.exists() else None


RESPONDER = "import sys; from snmpsim.commands.responder import main; sys.exit(main())"


def nobody_venv() -> list[str]:
    """The command that runs snmpsim from a venv nobody can read (built once under /tmp, reused)."""
    py = VENV / "bin" / "python"
    cmd = [str(py), "-c", RESPONDER]
    if (VENV / ".complete").exists():
        return cmd
    base = Path("/usr/bin/python3")
    if not base.exists():
        raise SnmpsimUnavailable("/usr/bin/python3 not found (needed to build a venv nobody can read)")
    lock_path = Path(tempfile.gettempdir()) / "sitevigil-snmpsim-venv.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (VENV / ".complete").exists():
            return cmd
        build = Path(tempfile.mkdtemp(prefix="sitevigil-snmpsim-build-"))
        try:
            for step in ([str(base), "-m", "venv", str(build)],
                         [str(build / "bin" / "python"), "-m", "pip", "install", "-q",
                          f"snmpsim=={SNMPSIM_VERSION}", "pysmi"]):
                r = subprocess.run(step, capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    raise SnmpsimUnavailable(f"{' '.join(step[:4])}... failed: {(r.stderr or r.stdout)[-400:]}")
            subprocess.run(["chmod", "-R", "a+rX", str(build)], check=True)
            (build / ".complete").touch()
            shutil.rmtree(VENV, ignore_errors=True)
            build.rename(VENV)  # a venv's python finds its site-packages through pyvenv.cfg: renaming is safe
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return cmd


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Snmpsim:
    """snmpsim-command-responder on 127.0.0.1:PORT serving copies of the given recordings."""

    def __init__(self, recordings: list[Path], *, port: int | None = None):
        self.recordings = recordings
        self.port = port or free_udp_port()
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None

    def start(self, ready_timeout: float = 30.0) -> "Snmpsim":
        if os.geteuid() == 0:
            cmd = nobody_venv()
            drop = ["--process-user", "nobody", "--process-group", "nogroup"]
        else:
            cmd = _responder_from_main_venv()
            if cmd is None:
                raise SnmpsimUnavailable("snmpsim-command-responder not installed in this venv")
            drop = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sitevigil-snmpsim-{os.getpid()}-"))
        data, cache = self.tmp / "data", self.tmp / "cache"
        data.mkdir()
        cache.mkdir()
        for rec in self.recordings:
            shutil.copy(rec, data / rec.name)
        os.chmod(self.tmp, 0o755)
        subprocess.run(["chmod", "-R", "a+rX", str(data)], check=True)
        if os.geteuid() == 0:
            shutil.chown(cache, "nobody", "nogroup")
        self.log = open(self.tmp / "snmpsim.log", "w")
        self.proc = subprocess.Popen(
            cmd + [f"--data-dir={data}", f"--agent-udpv4-endpoint=127.0.0.1:{self.port}", f"--cache-dir={cache}",
                   "--log-level=error"] + drop,
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until an SNMP GET of sysUpTime.0 for the first recording's community is answered."""
        community = self.recordings[0].stem.encode()
        # A hand-built v2c GET of 1.3.6.1.2.1.1.3.0: no client library needed to know it is up.
        oid = bytes([0x06, 0x08, 0x2B, 6, 1, 2, 1, 1, 3, 0])
        vb = b"\x30" + bytes([len(oid) + 2]) + oid + b"\x05\x00"
        vbl = b"\x30" + bytes([len(vb)]) + vb
        pdu_body = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + vbl
        pdu = b"\xa0" + bytes([len(pdu_body)]) + pdu_body
        msg_body = b"\x02\x01\x01" + b"\x04" + bytes([len(community)]) + community + pdu
        msg = b"\x30" + bytes([len(msg_body)]) + msg_body
        deadline = time.monotonic() + timeout
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SnmpsimUnavailable(f"snmpsim exited with {self.proc.returncode}: {self.log_tail()}")
                s.sendto(msg, ("127.0.0.1", self.port))
                try:
                    if s.recv(4096):
                        return
                except socket.timeout:
                    continue
        finally:
            s.close()
        raise SnmpsimUnavailable(f"snmpsim did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.tmp / "snmpsim.log").read_text()[-600:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
