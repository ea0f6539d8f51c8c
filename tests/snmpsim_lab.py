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
import signal
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
    """snmpsim-command-responder on 127.0.0.1:PORT serving copies of the given recordings.

    With `netns` (a lab namespace: tests/lab/netns.py) it runs inside that namespace on `address`
    (an address of that namespace) instead; `data_dir` then holds the served copies, which a test may
    rewrite between polls with `rewrite()` (snmpsim re-indexes a file whose mtime moved)."""

    def __init__(self, recordings: list[Path], *, port: int | None = None, netns: str | None = None,
                 address: str = "127.0.0.1", extra_ports: int = 0):
        self.recordings = recordings
        self.netns = netns
        self.address = address
        self.port = port or (1161 if netns else free_udp_port())
        # More UDP endpoints of the same responder (each serves every recording): several targets,
        # told apart by the poller by address and port, from one process.
        self.extra_ports = [free_udp_port() for _ in range(extra_ports)]
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self._rewrites = 0

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    def rewrite(self, name: str, text: str) -> None:
        """Serve `text` as recording `name` (file name with .snmprec) from the next request on."""
        path = self.data_dir / name
        path.write_text(text)
        os.chmod(path, 0o644)
        # snmpsim compares whole-second mtimes and rebuilds its index only when the file is newer than
        # the index: a time safely ahead of both, moving on with every rewrite.
        self._rewrites += 1
        t = time.time() + 5 + self._rewrites
        os.utime(path, (t, t))

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

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
        wrap = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            wrap + cmd + [f"--data-dir={data}", f"--agent-udpv4-endpoint={self.address}:{self.port}"]
            + [f"--agent-udpv4-endpoint={self.address}:{p}" for p in self.extra_ports]
            + [f"--cache-dir={cache}", "--log-level=error"] + drop,
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until an SNMP GET of sysUpTime.0 for the first recording's community is answered."""
        if self.netns:
            check = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); "
                     "from tests.snmpsim_lab import answers; "
                     f"sys.exit(0 if answers({self.address!r}, {self.port}, {self.recordings[0].stem!r}, "
                     f"{timeout}) else 1)")
            r = subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", check],
                               capture_output=True, text=True, timeout=timeout + 10)
            if r.returncode != 0:
                raise SnmpsimUnavailable(f"snmpsim in {self.netns} did not answer within {timeout:.0f} s: "
                                         f"{r.stderr[-300:]} {self.log_tail()}")
            return
        if not answers(self.address, self.port, self.recordings[0].stem, timeout, self.proc):
            raise SnmpsimUnavailable(f"snmpsim did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.tmp / "snmpsim.log").read_text()[-600:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
            except ProcessLookupError:
                pass
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


def answers(address: str, port: int, community_name: str, timeout: float, proc=None) -> bool:
    """Whether an SNMP v2c GET of sysUpTime.0 is answered within `timeout` seconds."""
    community = community_name.encode()
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
            if proc is not None and proc.poll() is not None:
                raise SnmpsimUnavailable(f"snmpsim exited with {proc.returncode}")
            s.sendto(msg, (address, port))
            try:
                if s.recv(4096):
                    return True
            except (socket.timeout, ConnectionRefusedError):
                continue
    finally:
        s.close()
    return False
