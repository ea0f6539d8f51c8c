"""Send COUNT numbered marker frames out of an interface (run inside a lab host's namespace).

    ip netns exec NS python tests/lab/send_frames.py --iface eth0 --count 1000 --run 7 [--vlan 42] [--dst MAC]
    ip netns exec NS python tests/lab/send_frames.py --iface eth0 --count 50 --run 7 --hexfile FRAMES

Each frame: dst, src, [802.1Q tag], ethertype 0x88B5 (IEEE local experimental), b"SVTEST", run id
(u32), sequence number (u32), zero padding to 60 bytes. Receivers find them with `marker_seq`.
Bounded: COUNT frames, then exit; --pps paces the burst (0 = as fast as the socket takes them).
"""
from __future__ import annotations

import argparse
import random
import socket
import struct
import time

ETHERTYPE = 0x88B5
MAGIC = b"SVTEST"


def build(dst: bytes, src: bytes, run: int, seq: int, vlan: int | None = None, size: int = 60,
          payload: bytes = b"", priority: int = 0) -> bytes:
    tag = struct.pack("!HH", 0x8100, (priority & 7) << 13 | (vlan & 0x0FFF)) if vlan is not None else b""
    frame = dst + src + tag + struct.pack("!H", ETHERTYPE) + MAGIC + struct.pack("!II", run, seq) + payload
    return frame[:max(size, 28 + len(tag))] + bytes(max(0, size - len(frame)))


def random_frame(rng: random.Random, dst: bytes, src: bytes, run: int, seq: int) -> bytes:
    """A marker frame of random size (60..1514 bytes), random payload, and a random 802.1Q tag (any VLAN
    id including 0, any priority) on about a third of them."""
    vlan = rng.randrange(4096) if rng.random() < 0.33 else None
    size = rng.randint(60, 1514)
    return build(dst, src, run, seq, vlan, size, rng.randbytes(size), rng.randrange(8))


def marker_seq(frame: bytes, run: int) -> int | None:
    """The sequence number of one of our marker frames of `run` (tag already stripped), else None."""
    if len(frame) < 28 or frame[12:14] != b"\x88\xb5" or frame[14:20] != MAGIC:
        return None
    r, seq = struct.unpack_from("!II", frame, 20)
    return seq if r == run else None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iface", default="eth0")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--vlan", type=int, default=None)
    p.add_argument("--dst", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--size", type=int, default=60)
    p.add_argument("--pps", type=float, default=0)
    p.add_argument("--random", type=int, default=None, metavar="SEED", help="random sizes, payloads and tags")
    p.add_argument("--hexfile", default=None, help="send these frames (one hex frame a line) instead of markers")
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src = s.getsockname()[4]
    dst = bytes.fromhex(a.dst.replace(":", ""))
    t0 = time.monotonic()
    rng = random.Random(a.random)
    given = None
    if a.hexfile:
        with open(a.hexfile) as fh:
            given = [bytes.fromhex(line) for line in fh.read().split()]
    for seq in range(min(a.count, 10_000_000)):
        if given is not None:
            frame = given[seq % len(given)]
        elif a.random is not None:
            frame = random_frame(rng, dst, src, a.run, seq)
        else:
            frame = build(dst, src, a.run, seq, a.vlan, a.size)
        while True:
            try:
                s.send(frame)
                break
            except BlockingIOError:  # the qdisc is full: wait briefly, never drop our own frame
                time.sleep(0.0005)
            except OSError as exc:
                if exc.errno != 105:  # ENOBUFS
                    raise
                time.sleep(0.0005)
        if a.pps:
            delay = t0 + (seq + 1) / a.pps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if time.monotonic() - t0 > 60:
            raise SystemExit(f"send_frames: gave up after 60s at frame {seq}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
