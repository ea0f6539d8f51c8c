"""AF_PACKET socket setup shared by the compiled ring (probe/fastpath/kernels/ring.pxi) and its twin.

Both implementations open the socket the same way, so they see the same frames: a raw socket with
protocol 0 (it receives nothing yet), the optional classic BPF filter, the implementation's own
receive setup (TPACKET_V3 ring, or auxdata + timestamps for the twin), then bind to the interface with
ETH_P_ALL, join the fanout group and turn promiscuous mode on. Binding last means no frame reaches the
socket before its filter is in place.

BPF filters are compiled with `tcpdump -ddd` (see compile_filter for why). Errors a technician can
act on are raised as CaptureError with the interface named.
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import struct
import subprocess
from typing import Callable, Sequence

import numpy as np

# linux/if_packet.h, linux/if_ether.h, asm-generic/socket.h
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_VLAN_VALID = 1 << 4

# The TPACKET_V3 ring as the kernel lays it out (linux/if_packet.h): block_count blocks of block_size
# bytes, each a struct tpacket_block_desc, then a chain of frames, each a struct tpacket3_hdr followed
# (at tp_mac from the header) by tp_snaplen bytes of frame. The compiled ring checks its C structs
# against these field by field at import; the twin's BlockWalk reads the ring through them.
TPACKET_BLOCK_DESC = np.dtype([
    ("version", "<u4"), ("offset_to_priv", "<u4"),
    ("block_status", "<u4"), ("num_pkts", "<u4"), ("offset_to_first_pkt", "<u4"), ("blk_len", "<u4"),
    ("seq_num", "<u8"),
    ("ts_first_sec", "<u4"), ("ts_first_nsec", "<u4"), ("ts_last_sec", "<u4"), ("ts_last_nsec", "<u4"),
])
TPACKET3_HDR = np.dtype([
    ("tp_next_offset", "<u4"), ("tp_sec", "<u4"), ("tp_nsec", "<u4"), ("tp_snaplen", "<u4"), ("tp_len", "<u4"),
    ("tp_status", "<u4"), ("tp_mac", "<u2"), ("tp_net", "<u2"),
    ("tp_rxhash", "<u4"), ("tp_vlan_tci", "<u4"), ("tp_vlan_tpid", "<u2"), ("tp_padding", "<u2"),
    ("tp_tail_padding", "V8"),
])

BpfProgram = Sequence[tuple[int, int, int, int]]  # (code, jt, jf, k) per instruction


class CaptureError(OSError):
    """The capture cannot run as configured (missing interface, no permission, bad filter).

    str() is the message alone: it is what health reasons and logs show a technician."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def interface_index(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise CaptureError(errno.ENODEV, f"capture interface {interface!r} does not exist "
                                         f"(check capture.interface; `ip link` lists the interfaces)") from None


def compile_filter(expression: str, interface: str | None = None, *, tcpdump: str | None = None) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump-style filter expression into classic BPF instructions.

    Uses `tcpdump -ddd`: libpcap is the reference compiler for this language, tcpdump is already a
    dependency of the lab and the benchmarks, and calling it once at start keeps the extension free of
    a libpcap build dependency (Debian ships no libpcap headers by default). Given the interface,
    tcpdump compiles for it as libpcap would live (e.g. `vlan` matches the tag the kernel moved into
    metadata); without it, for plain Ethernet.
    """
    expression = expression.strip()
    if not expression:
        return []
    exe = tcpdump or shutil.which("tcpdump") or ("/usr/bin/tcpdump" if os.path.exists("/usr/bin/tcpdump") else None)
    if exe is None:
        raise CaptureError(errno.ENOENT, f"capture.bpf_filter {expression!r}: compiling a filter needs tcpdump "
                                         f"(Debian package tcpdump)")
    attempts = ([[exe, "-i", interface, "-ddd", expression]] if interface else []) + \
        [[exe, "-y", "EN10MB", "-ddd", expression]]
    err = ""
    for argv in attempts:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except OSError as exc:
            raise CaptureError(errno.ENOENT, f"capture.bpf_filter {expression!r}: cannot run {exe} ({exc.strerror}); "
                                             f"compiling a filter needs tcpdump (Debian package tcpdump)") from None
        except subprocess.TimeoutExpired:
            raise CaptureError(errno.ETIMEDOUT, f"capture.bpf_filter {expression!r}: tcpdump did not answer") from None
        if proc.returncode == 0:
            return _parse_ddd(proc.stdout, expression)
        err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"tcpdump exit {proc.returncode}"
        if "syntax error" in err or "parse filter" in err or "unknown" in err:
            break  # the expression itself is wrong: trying without the interface would not help
    err = err.removeprefix("tcpdump: ")
    raise CaptureError(errno.EINVAL, f"capture.bpf_filter {expression!r} is not a valid filter: {err}")


def _parse_ddd(text: str, expression: str) -> list[tuple[int, int, int, int]]:
    lines = [l for l in text.split("\n") if l.strip()]
    try:
        count = int(lines[0])
        prog = [tuple(int(x) for x in l.split()) for l in lines[1:1 + count]]
    except (IndexError, ValueError):
        raise CaptureError(errno.EINVAL, f"capture.bpf_filter {expression!r}: unexpected tcpdump -ddd output") from None
    if len(prog) != count or any(len(ins) != 4 for ins in prog):
        raise CaptureError(errno.EINVAL, f"capture.bpf_filter {expression!r}: unexpected tcpdump -ddd output")
    return prog  # type: ignore[return-value]


def attach_filter(sock: socket.socket, program: BpfProgram) -> None:
    """SO_ATTACH_FILTER: struct sock_fprog {unsigned short len; struct sock_filter *filter;}."""
    if not program:
        return
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise CaptureError(exc.errno, f"the kernel refused the BPF filter ({exc.strerror})") from None


def open_packet_socket(interface: str, *, bpf: BpfProgram = (), promiscuous: bool = True,
                       fanout_group: int | None = None,
                       configure: Callable[[socket.socket], None] | None = None) -> tuple[socket.socket, int]:
    """A bound AF_PACKET socket on `interface`; `configure` runs before bind (ring setup). Returns (sock, ifindex)."""
    ifindex = interface_index(interface)
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureError(errno.EPERM, f"capturing on {interface!r} needs CAP_NET_RAW (run as root, or "
                                        f"`setcap cap_net_raw,cap_net_admin+ep` on the interpreter)") from None
    try:
        attach_filter(sock, bpf)
        if configure is not None:
            configure(sock)
        try:
            sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise CaptureError(errno.ENODEV, f"capture interface {interface!r} does not exist") from None
            if exc.errno == errno.ENETDOWN:
                raise CaptureError(exc.errno, f"capture interface {interface!r} is down (`ip link set {interface} up`)") from None
            raise
        if fanout_group is not None:
            arg = (fanout_group & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))  # flag bit 31: not a C int
            except OSError as exc:
                raise CaptureError(exc.errno, f"cannot join fanout group {fanout_group} on {interface!r}: "
                                              f"{exc.strerror} (another program uses the same group id?)") from None
        if promiscuous:
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)  # dropped by the kernel when the socket closes
    except BaseException:
        sock.close()
        raise
    return sock, ifindex


def socket_error(interface: str, err: int) -> CaptureError:
    """The error a capture socket reported while running (the kernel sets ENETDOWN when its interface
    goes down or is removed; the socket then receives nothing more)."""
    if err in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
        return CaptureError(err, f"capture interface {interface!r} went down or was removed")
    return CaptureError(err, f"capture on {interface!r} failed: {os.strerror(err)}")


def read_statistics(sock: socket.socket, v3: bool) -> tuple[int, int, int]:
    """PACKET_STATISTICS (reset by the kernel on every read): (packets, drops, freeze_queue_count).

    The kernel's tp_packets includes the dropped frames; callers get it as the kernel reports it.
    """
    if v3:
        return struct.unpack("III", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
    packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return packets, drops, 0


def interface_counters(interface: str, sysfs: str = "/sys/class/net") -> dict[str, int]:
    """The interface's own receive-side losses (since it came up): rx_dropped, rx_missed_errors,
    rx_fifo_errors. Missing files (virtual devices) read as absent, not zero."""
    out = {}
    for name in ("rx_dropped", "rx_missed_errors", "rx_fifo_errors"):
        try:
            with open(os.path.join(sysfs, interface, "statistics", name)) as fh:
                out[name] = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            continue
    return out
