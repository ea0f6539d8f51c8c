# Live capture: an AF_PACKET socket with a TPACKET_V3 memory-mapped receive ring.
#
# The kernel fills fixed-size blocks with frames and flips a block's status to TP_STATUS_USER when it
# is full or its timeout (retire_blk_tov) expires. next_batch() waits for a ready block with poll(),
# sizes the batch arrays from the block headers, then, without the GIL, walks the tpacket3_hdr chains
# once, copying each frame and its metadata, and hands each block back to the kernel
# (TP_STATUS_KERNEL) as soon as its last frame is copied. A VLAN tag the kernel moved into metadata is
# reported in `vlan` and counted in `wirelen` (it was on the wire) but is not in the frame bytes.
# next_records() walks the same way but parses each frame where the kernel put it (parse_frame, as
# parse_frames does) into the caller's FRAME_DTYPE buffer: the capture's hot path, no frame bytes
# copied except those of the few frames the rare-frame decoder reads (RARE_FLAGS). Given the open
# window's tables it also aggregates each frame right after parsing it (agg_frame, as aggregate_frames
# does), while the record is still in L1, up to the first frame at or past the window's end.
# Socket setup is shared with the twin (probe/sources/afpacket.py), so both see the same frames.
# Both walks go through one cursor (_cursor_peek / _cursor_next below). PacketRing.over_buffer runs the
# same walk over memory laid out as the kernel lays out the ring, so it is tested without root.
# Twin: probe/fastpath/twin/ring.py (its BlockWalk is the walk's specification).

from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from libc.string cimport memcpy
from libc.stdint cimport int32_t

import struct as _struct

from probe.sources import afpacket as _afpacket
from probe.sources.frames import FrameBatch as _FrameBatch
from probe.fastpath.layout import RARE_FLAGS as _RARE_FLAGS

__all__ += ["PacketRing"]


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN
        POLLERR


cdef extern from "<linux/if_packet.h>" nogil:
    struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
        uint32_t tp_vlan_tci
        uint16_t tp_vlan_tpid
    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net
        tpacket_hdr_variant1 hv1
    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
        uint32_t blk_len
    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr
    enum:
        TP_STATUS_USER
        TP_STATUS_VLAN_VALID


def tpacket_fields():
    """(struct, field, offset, size) of each tpacket field the walk reads, and each struct's size (field
    None), as the C compiler laid them out from linux/if_packet.h."""
    cdef tpacket_block_desc bd
    cdef tpacket3_hdr h
    cdef size_t b = <size_t>&bd, p = <size_t>&h
    return (
        ("tpacket_block_desc", None, 0, sizeof(tpacket_block_desc)),
        ("tpacket_block_desc", "block_status", <size_t>&bd.hdr.bh1.block_status - b, sizeof(bd.hdr.bh1.block_status)),
        ("tpacket_block_desc", "num_pkts", <size_t>&bd.hdr.bh1.num_pkts - b, sizeof(bd.hdr.bh1.num_pkts)),
        ("tpacket_block_desc", "offset_to_first_pkt", <size_t>&bd.hdr.bh1.offset_to_first_pkt - b,
         sizeof(bd.hdr.bh1.offset_to_first_pkt)),
        ("tpacket_block_desc", "blk_len", <size_t>&bd.hdr.bh1.blk_len - b, sizeof(bd.hdr.bh1.blk_len)),
        ("tpacket3_hdr", None, 0, sizeof(tpacket3_hdr)),
        ("tpacket3_hdr", "tp_next_offset", <size_t>&h.tp_next_offset - p, sizeof(h.tp_next_offset)),
        ("tpacket3_hdr", "tp_sec", <size_t>&h.tp_sec - p, sizeof(h.tp_sec)),
        ("tpacket3_hdr", "tp_nsec", <size_t>&h.tp_nsec - p, sizeof(h.tp_nsec)),
        ("tpacket3_hdr", "tp_snaplen", <size_t>&h.tp_snaplen - p, sizeof(h.tp_snaplen)),
        ("tpacket3_hdr", "tp_len", <size_t>&h.tp_len - p, sizeof(h.tp_len)),
        ("tpacket3_hdr", "tp_status", <size_t>&h.tp_status - p, sizeof(h.tp_status)),
        ("tpacket3_hdr", "tp_mac", <size_t>&h.tp_mac - p, sizeof(h.tp_mac)),
        ("tpacket3_hdr", "tp_vlan_tci", <size_t>&h.hv1.tp_vlan_tci - p, sizeof(h.hv1.tp_vlan_tci)),
    )


def check_tpacket_layout(block_desc, frame_hdr):
    """Raise ImportError naming the first tpacket field whose offset or size in these dtypes (the twin
    reads synthetic rings through probe.sources.afpacket's) differs from linux/if_packet.h's."""
    dtypes = {"tpacket_block_desc": block_desc, "tpacket3_hdr": frame_hdr}
    for struct, field, offset, size in tpacket_fields():
        dtype = dtypes[struct]
        if field is None:
            if dtype.itemsize != size:
                raise ImportError(f"struct {struct} is {size} bytes in linux/if_packet.h but {dtype.itemsize} "
                                  f"in probe.sources.afpacket")
        elif dtype.fields is None or field not in dtype.fields:
            raise ImportError(f"{struct}.{field} is not a field of probe.sources.afpacket's dtype")
        elif dtype.fields[field][1] != offset or dtype.fields[field][0].itemsize != size:
            raise ImportError(f"{struct}.{field} is {size} bytes at offset {offset} in linux/if_packet.h but "
                              f"{dtype.fields[field][0].itemsize} bytes at offset {dtype.fields[field][1]} in "
                              f"probe.sources.afpacket")
    if TP_STATUS_USER != _afpacket.TP_STATUS_USER or TP_STATUS_VLAN_VALID != _afpacket.TP_STATUS_VLAN_VALID:
        raise ImportError("TP_STATUS_* in probe.sources.afpacket differ from linux/if_packet.h")


check_tpacket_layout(_afpacket.TPACKET_BLOCK_DESC, _afpacket.TPACKET3_HDR)


# The block status word is shared with the kernel: read it with acquire, hand the block back with
# release ordering, so no frame byte is read after the kernel may have reused the block.
cdef extern from *:
    """
    static inline unsigned int sv_ring_status(const void *p) {
        return __atomic_load_n((const unsigned int *)p, __ATOMIC_ACQUIRE);
    }
    static inline void sv_ring_release(void *p) {
        __atomic_store_n((unsigned int *)p, 0u, __ATOMIC_RELEASE);  /* TP_STATUS_KERNEL */
    }
    """
    unsigned int sv_ring_status(const void *p) nogil
    void sv_ring_release(void *p) nogil


# frames whose bytes next_records keeps (the rare-frame decoder reads them): probe.fastpath.layout.RARE_FLAGS
cdef uint32_t RING_RARE = F_DHCP | F_LLDP | F_CDP | F_MDNS | F_LLMNR | F_NBNS
if RING_RARE != _RARE_FLAGS:
    raise ImportError("ring.pxi RING_RARE does not match probe.fastpath.layout.RARE_FLAGS")


cdef struct RareCopy:
    # where next_records' walk keeps rare frames (arrays owned by the ring), and what it added up
    uint8_t* data
    Py_ssize_t data_len
    int64_t* index
    int64_t* offset
    uint32_t* caplen
    uint32_t* wirelen
    int64_t* ts
    int32_t* vlan
    Py_ssize_t n
    Py_ssize_t pos
    uint64_t wire
    int64_t ts_lo
    int64_t ts_hi


cdef inline tpacket_block_desc *_ring_block(unsigned char *ring, uint32_t block_size, uint32_t idx) noexcept nogil:
    return <tpacket_block_desc *>(ring + <size_t>idx * block_size)


cdef inline bint _ring_ready(tpacket_block_desc *bd) noexcept nogil:
    return (sv_ring_status(&bd.hdr.bh1.block_status) & TP_STATUS_USER) != 0


cdef inline void _add_flags(int64_t* counts, uint32_t fl, int64_t times) noexcept nogil:
    # counts[b] += times for each bit b set in fl (counts may be NULL: nothing to add to)
    if counts == NULL or times == 0:
        return
    while fl:
        counts[__builtin_ctzll(fl)] += times
        fl &= fl - 1


cdef inline int64_t _monotonic_ns() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return <int64_t>t.tv_sec * 1000000000 + t.tv_nsec


cdef bint _ring_wait(int fd, tpacket_block_desc *bd, int64_t until_ns) noexcept nogil:
    """Wait (poll) until block bd is handed over or until_ns (CLOCK_MONOTONIC) passes; whether it was."""
    cdef pollfd pfd
    cdef int64_t left
    while not _ring_ready(bd):
        left = until_ns - _monotonic_ns()
        if left <= 0:
            return False
        pfd.fd = fd
        pfd.events = POLLIN | POLLERR
        pfd.revents = 0
        if poll(&pfd, 1, <int>(left // 1000000) + 1) > 0 and pfd.revents & POLLERR:
            return _ring_ready(bd)  # the interface went away: the next call reports it
    return True


cdef struct BlockCursor:
    # where a walk is in the ring, kept between calls
    unsigned char *ring
    uint32_t block_size
    uint32_t block_count
    uint32_t block     # the block the next frame is in
    uint32_t left      # frames not yet read in that block (0: the walk has not entered it)
    size_t off         # offset of the next frame's tpacket3_hdr in that block
    uint32_t entered   # blocks entered in this call: one call never goes round the ring twice


cdef struct RingFrame:
    # the frame at the cursor, where the kernel wrote it
    unsigned char *data
    uint32_t caplen
    uint32_t wirelen
    int64_t ts_ns
    int32_t vlan
    uint32_t next_offset


cdef inline void _cursor_release(BlockCursor *c) noexcept nogil:
    """Hand the cursor's block back to the kernel and move to the next one."""
    sv_ring_release(&_ring_block(c.ring, c.block_size, c.block).hdr.bh1.block_status)
    c.left = 0
    c.block = (c.block + 1) % c.block_count


cdef bint _cursor_peek(BlockCursor *c, RingFrame *f, int fd, int64_t linger_until) noexcept nogil:
    """Fill f with the frame at the cursor, entering the next block if the kernel handed it over (when
    linger_until is not 0, waiting for it until then); False when there is no frame to take.

    The kernel wrote the headers, but one that would send the walk outside its block ends that block:
    its remaining frames are skipped and it goes back to the kernel."""
    cdef unsigned char *blk
    cdef tpacket_block_desc *bd
    cdef tpacket3_hdr *ppd
    cdef size_t mac
    while True:
        blk = c.ring + <size_t>c.block * c.block_size
        bd = <tpacket_block_desc *>blk
        if c.left == 0:
            if c.entered == c.block_count:
                return False
            if not _ring_ready(bd) and (linger_until == 0 or not _ring_wait(fd, bd, linger_until)):
                return False
            c.entered += 1
            c.left = bd.hdr.bh1.num_pkts
            c.off = bd.hdr.bh1.offset_to_first_pkt
        if c.left and c.off >= sizeof(tpacket_block_desc) and c.off + sizeof(tpacket3_hdr) <= c.block_size:
            ppd = <tpacket3_hdr *>(blk + c.off)
            mac = c.off + ppd.tp_mac
            if mac + ppd.tp_snaplen <= c.block_size:
                f.data = blk + mac
                f.caplen = ppd.tp_snaplen
                f.ts_ns = <int64_t>ppd.tp_sec * 1000000000 + ppd.tp_nsec
                if ppd.tp_status & TP_STATUS_VLAN_VALID:
                    f.vlan = <int32_t>(ppd.hv1.tp_vlan_tci & 0x0FFF)
                    f.wirelen = ppd.tp_len + 4  # the 802.1Q tag was on the wire
                else:
                    f.vlan = -1
                    f.wirelen = ppd.tp_len
                f.next_offset = ppd.tp_next_offset
                return True
        _cursor_release(c)  # an empty or damaged block


cdef inline void _cursor_next(BlockCursor *c, const RingFrame *f) noexcept nogil:
    """Step past the frame _cursor_peek gave, handing its block back if it was the block's last."""
    c.left -= 1
    c.off += f.next_offset
    if c.left == 0 or f.next_offset == 0:
        _cursor_release(c)


cdef class PacketRing:
    """Capture frames from `interface` through a TPACKET_V3 ring of block_count blocks of block_size bytes.

    block_timeout (seconds) bounds how long a partly filled block waits before the kernel hands it
    over. bpf is a compiled classic BPF program (probe.sources.afpacket.compile_filter). fanout_group
    joins a PACKET_FANOUT hash group so several processes share the interface's load.
    """

    cdef object _sock
    cdef int _fd
    cdef BlockCursor _at      # the ring's memory (NULL once closed) and where the walk is in it
    cdef size_t _ring_len
    cdef object _buffer       # over_buffer's memory (kept alive while the ring reads it); None: mmap()ed
    cdef bint _busy, _close_pending
    cdef readonly str interface
    cdef readonly int ifindex
    cdef object _packets, _drops, _freeze
    cdef object _rare_data, _rare_index, _rare_offset, _rare_caplen, _rare_wirelen, _rare_ts, _rare_vlan
    cdef RareCopy _rare       # C view of the arrays above (and the walk's running figures)
    cdef Py_ssize_t _rare_cap

    def __cinit__(self):
        self._rare_cap = 0
        self._at.ring = NULL
        self._fd = -1
        self._sock = None
        self._buffer = None

    def __init__(self, str interface, *, block_size=1 << 20, block_count=64, block_timeout=0.1,
                 bint promiscuous=True, bpf=(), fanout_group=None, frame_size=2048):
        if block_size < 4096 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two of at least 4096, got {block_size}")
        if block_count < 2:
            raise ValueError(f"block_count must be at least 2, got {block_count}")
        if frame_size < 128 or frame_size > block_size or block_size % frame_size:
            raise ValueError(f"frame_size must divide block_size, got {frame_size}")
        tov_ms = max(1, int(round(float(block_timeout) * 1000)))
        req = _struct.pack("7I", block_size, block_count, frame_size, (block_size // frame_size) * block_count,
                           tov_ms, 0, 0)
        ring_mib = block_size * block_count / (1 << 20)

        def configure(sock):
            sock.setsockopt(_afpacket.SOL_PACKET, _afpacket.PACKET_VERSION, _afpacket.TPACKET_V3)
            try:
                sock.setsockopt(_afpacket.SOL_PACKET, _afpacket.PACKET_RX_RING, req)
            except OSError as exc:
                raise _afpacket.CaptureError(
                    exc.errno, f"cannot set up a {ring_mib:g} MiB capture ring ({block_count} blocks of "
                               f"{block_size} bytes) on {interface!r}: {exc.strerror} (lower capture.block_count "
                               f"or capture.block_size)") from None

        self.interface = interface
        self._packets = self._drops = self._freeze = 0
        self._sock, self.ifindex = _afpacket.open_packet_socket(
            interface, bpf=bpf, promiscuous=promiscuous, fanout_group=fanout_group, configure=configure)
        self._fd = self._sock.fileno()
        self._ring_len = <size_t>block_size * block_count
        cdef void *mem = mmap(NULL, self._ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, self._fd, 0)
        if mem == MAP_FAILED:
            self._sock.close()
            self._sock = None
            self._fd = -1
            raise _afpacket.CaptureError(12, f"cannot map the {ring_mib:g} MiB capture ring of {interface!r} "
                                             f"(lower capture.block_count or capture.block_size)")
        self._at.ring = <unsigned char *>mem
        self._at.block_size = block_size
        self._at.block_count = block_count
        self._at.block = self._at.left = 0
        self._at.off = 0

    @classmethod
    def over_buffer(cls, buffer, *, block_size, block_count):
        """A ring over `buffer` (a writeable C-contiguous uint8 array of block_size x block_count bytes)
        laid out as the kernel lays out a TPACKET_V3 ring, with no socket: the same walk as a live ring,
        blocks handed back by clearing their status word in the buffer. For tests and tools; nothing
        arrives while it waits, so a timeout returns at once."""
        if block_size < 4096 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two of at least 4096, got {block_size}")
        if block_count < 2:
            raise ValueError(f"block_count must be at least 2, got {block_count}")
        if (not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8 or buffer.ndim != 1
                or not buffer.flags.c_contiguous or not buffer.flags.writeable):
            raise ValueError("over_buffer: buffer must be a writeable C-contiguous uint8 array")
        if buffer.shape[0] != block_size * block_count:
            raise ValueError(f"over_buffer: buffer holds {buffer.shape[0]} bytes, not block_size x block_count = "
                             f"{block_size * block_count}")
        cdef PacketRing ring = cls.__new__(cls)
        ring.interface = "<buffer>"
        ring.ifindex = 0
        ring._packets = ring._drops = ring._freeze = 0
        ring._buffer = buffer
        ring._ring_len = <size_t>block_size * block_count
        ring._at.ring = <unsigned char *>cnp.PyArray_DATA(buffer)
        ring._at.block_size = block_size
        ring._at.block_count = block_count
        ring._at.block = ring._at.left = 0
        ring._at.off = 0
        return ring

    def fileno(self):
        return self._fd

    @property
    def closed(self):
        return self._at.ring == NULL

    def next_batch(self, double timeout=0.1, Py_ssize_t max_frames=4096):
        """Up to max_frames frames from the ready blocks, waiting up to `timeout` seconds for the first
        block. An empty batch when nothing arrived in time.

        A block may be consumed over several calls (small batches keep the parser's working set in
        cache); each block goes back to the kernel the moment its last frame is copied.
        """
        if self._at.ring == NULL:
            raise ValueError("capture ring is closed")
        if self._busy:
            raise RuntimeError("next_batch is already running on this ring in another thread")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        cdef pollfd pfd
        cdef int ms = <int>(timeout * 1000.0) if timeout > 0 else 0
        cdef Py_ssize_t max_n = 0, max_bytes = 0, n = 0, pos = 0
        pfd.revents = 0
        self._busy = True
        try:
            with nogil:
                if self._at.left == 0 and not _ring_ready(_ring_block(self._at.ring, self._at.block_size, self._at.block)) \
                        and ms > 0 and self._fd >= 0:
                    pfd.fd = self._fd
                    pfd.events = POLLIN | POLLERR
                    poll(&pfd, 1, ms)  # EINTR or timeout: the bound below decides
                self._bound(max_frames, &max_n, &max_bytes)
            if max_n == 0:
                if pfd.revents & POLLERR:  # interface went down or away: the socket says which
                    err = self._sock.getsockopt(_afpacket.socket.SOL_SOCKET, _afpacket.socket.SO_ERROR)
                    if err:
                        raise _afpacket.socket_error(self.interface, err)
                return _FrameBatch.empty()
            # Upper bounds from block headers only, so the frames are walked once (their headers are
            # cache misses: the kernel wrote them on another core). np.empty leaves unused pages untouched.
            data = np.empty(max_bytes, np.uint8)
            offset = np.empty(max_n, np.int64)
            caplen = np.empty(max_n, np.uint32)
            wirelen = np.empty(max_n, np.uint32)
            ts_ns = np.empty(max_n, np.int64)
            vlan = np.empty(max_n, np.int32)
            n, pos = self._copy(max_n, max_bytes, data, offset, caplen, wirelen, ts_ns, vlan)
            if n == 0:
                return _FrameBatch.empty()
            return _FrameBatch(data[:pos], offset[:n], caplen[:n], wirelen[:n], ts_ns[:n], vlan[:n])
        finally:
            self._busy = False
            if self._close_pending:
                self.close()

    def next_records(self, out, double timeout=0.1, Py_ssize_t max_frames=0, flag_counts=None, aggregate=None,
                     double linger=0.0):
        """Parse up to max_frames frames (default: len(out)) from the ready blocks straight into `out`,
        a C-contiguous FRAME_DTYPE array, waiting up to `timeout` seconds for the first block.

        Returns (records, malformed, rare, totals): records is out[:n] (valid until the next call that
        writes `out`); malformed counts MALFORMED records; rare is None, or (index, FrameBatch) with the
        bytes of the frames the rare-frame decoder reads (RARE_FLAGS, not malformed), index giving each
        one's position in records; totals is what record_totals(records, flag_counts) would return,
        (wire bytes, first ts_ns, last ts_ns), and flag_counts (int64[32], optional) gets the records'
        flag bits added the same way: the walk does that work while each record is in cache. The
        records are what parse_frames gives for next_batch's frames; blocks go back to the kernel as in
        next_batch.

        `linger` (seconds): once frames came, keep taking blocks as the kernel hands them over for up to
        this long, until max_frames (fewer, larger reads at high rates).

        `aggregate`, optional, is (mac_table, ip_table, arp_table, recent, window_end_ns, window_floor_ns)
        as aggregate_frames takes them plus the bounds of the window they hold: each record is then added
        to those tables in the walk, up to (not including) the first one whose ts_ns >= window_end_ns or
        < window_floor_ns (the clock was set back), none when window_end_ns <= 0. The result gets a
        fifth item, how many leading records were added (0 without `aggregate`); the caller aggregates
        the rest, as aggregate_frames would.
        """
        if self._at.ring == NULL:
            raise ValueError("capture ring is closed")
        if self._busy:
            raise RuntimeError("next_batch is already running on this ring in another thread")
        if not is_frame_array(out, True):
            raise ValueError("next_records: out must be a writeable C-contiguous FRAME_DTYPE array")
        if max_frames <= 0 or max_frames > out.shape[0]:
            max_frames = out.shape[0]
        if max_frames < 1:
            raise ValueError("next_records: out must hold at least one record")
        cdef int64_t[::1] fc_view
        cdef int64_t* fc = NULL
        if flag_counts is not None:
            fc_view = flag_counts
            if fc_view.shape[0] < 32:
                raise ValueError(f"next_records: flag_counts must hold 32 counters, got {fc_view.shape[0]}")
            fc = &fc_view[0]
        cdef pollfd pfd
        cdef int ms = <int>(timeout * 1000.0) if timeout > 0 else 0
        cdef Py_ssize_t n = 0, malformed = 0
        cdef RareCopy rc
        cdef FrameRecord* rec = <FrameRecord*>cnp.PyArray_DATA(out)
        cdef AggState ag
        cdef AggState* agp = NULL
        cdef int64_t agg_end = 0, agg_floor = 0
        cdef Py_ssize_t aggregated = 0
        if aggregate is not None:
            try:
                mac_t, ip_t, arp_t, recent, agg_end, agg_floor = aggregate
            except (TypeError, ValueError):
                raise TypeError("next_records: aggregate is (mac_table, ip_table, arp_table, recent, "
                                "window_end_ns, window_floor_ns)") from None
            if agg_end > 0:
                agg_state_init(&ag, mac_t, ip_t, arp_t, recent)
                agp = &ag
        if self._rare_cap < max_frames:
            self._rare_buffers(max_frames)
        rc = self._rare
        rc.n = rc.pos = 0
        rc.wire = 0
        rc.ts_lo = rc.ts_hi = 0
        pfd.revents = 0
        self._busy = True
        try:
            with nogil:
                if self._at.left == 0 and not _ring_ready(_ring_block(self._at.ring, self._at.block_size, self._at.block)) \
                        and ms > 0 and self._fd >= 0:
                    pfd.fd = self._fd
                    pfd.events = POLLIN | POLLERR
                    poll(&pfd, 1, ms)  # EINTR or timeout: the walk finds nothing and says so
                self._walk_parse(max_frames, rec, &n, &malformed, &rc, fc, agp, agg_end, agg_floor, &aggregated,
                                 _monotonic_ns() + <int64_t>(linger * 1e9) if linger > 0 else 0)
            if n == 0 and pfd.revents & POLLERR:  # interface went down or away: the socket says which
                err = self._sock.getsockopt(_afpacket.socket.SOL_SOCKET, _afpacket.socket.SO_ERROR)
                if err:
                    raise _afpacket.socket_error(self.interface, err)
            rare = None
            if rc.n:
                k = rc.n
                rare = (self._rare_index[:k].copy(),
                        _FrameBatch(self._rare_data[:rc.pos].copy(), self._rare_offset[:k].copy(),
                                    self._rare_caplen[:k].copy(), self._rare_wirelen[:k].copy(),
                                    self._rare_ts[:k].copy(), self._rare_vlan[:k].copy()))
            return out[:n], malformed, rare, (rc.wire, rc.ts_lo, rc.ts_hi), aggregated
        finally:
            self._busy = False
            if self._close_pending:
                self.close()

    def _rare_buffers(self, Py_ssize_t max_frames):
        # a frame is never larger than a block, so an empty buffer always takes the next rare frame
        self._rare_data = np.empty(self._at.block_size, np.uint8)
        self._rare_index = np.empty(max_frames, np.int64)
        self._rare_offset = np.empty(max_frames, np.int64)
        self._rare_caplen = np.empty(max_frames, np.uint32)
        self._rare_wirelen = np.empty(max_frames, np.uint32)
        self._rare_ts = np.empty(max_frames, np.int64)
        self._rare_vlan = np.empty(max_frames, np.int32)
        self._rare.data = <uint8_t*>cnp.PyArray_DATA(self._rare_data)
        self._rare.data_len = self._at.block_size
        self._rare.index = <int64_t*>cnp.PyArray_DATA(self._rare_index)
        self._rare.offset = <int64_t*>cnp.PyArray_DATA(self._rare_offset)
        self._rare.caplen = <uint32_t*>cnp.PyArray_DATA(self._rare_caplen)
        self._rare.wirelen = <uint32_t*>cnp.PyArray_DATA(self._rare_wirelen)
        self._rare.ts = <int64_t*>cnp.PyArray_DATA(self._rare_ts)
        self._rare.vlan = <int32_t*>cnp.PyArray_DATA(self._rare_vlan)
        self._rare_cap = max_frames

    cdef tuple _copy(self, Py_ssize_t max_n, Py_ssize_t max_bytes, uint8_t[::1] data, int64_t[::1] offset,
                     uint32_t[::1] caplen, uint32_t[::1] wirelen, int64_t[::1] ts_ns, int32_t[::1] vlan):
        cdef Py_ssize_t n = 0, pos = 0
        with nogil:
            self._walk(max_n, max_bytes, &n, &pos, &data[0], &offset[0], &caplen[0], &wirelen[0], &ts_ns[0],
                       &vlan[0])
        return n, pos

    cdef void _bound(self, Py_ssize_t max_frames, Py_ssize_t *max_n, Py_ssize_t *max_bytes) noexcept nogil:
        """Upper bounds on the frames (up to max_frames) and bytes the next walk can copy, from the
        block headers alone: the rest of the current block, then each ready block's used length."""
        cdef BlockCursor *c = &self._at
        cdef uint32_t block = c.block, seen = 0, used
        cdef Py_ssize_t frames = 0, nbytes = 0
        cdef tpacket_block_desc *bd
        if c.left:
            frames = c.left
            nbytes = c.block_size - c.off
            seen = 1
            block = (block + 1) % c.block_count
        while frames < max_frames and seen < c.block_count:
            bd = _ring_block(c.ring, c.block_size, block)
            if not _ring_ready(bd):
                break
            used = bd.hdr.bh1.blk_len
            frames += bd.hdr.bh1.num_pkts
            nbytes += used if used < c.block_size else c.block_size
            seen += 1
            block = (block + 1) % c.block_count
        max_n[0] = frames if frames < max_frames else max_frames
        max_bytes[0] = nbytes

    cdef void _walk(self, Py_ssize_t max_frames, Py_ssize_t max_bytes, Py_ssize_t *nframes, Py_ssize_t *nbytes,
                    uint8_t *data, int64_t *offset, uint32_t *caplen, uint32_t *wirelen, int64_t *ts_ns,
                    int32_t *vlan) noexcept nogil:
        """Copy up to max_frames frames (max_bytes bytes) from the cursor on, and advance it."""
        cdef BlockCursor *c = &self._at
        cdef RingFrame f
        cdef Py_ssize_t n = 0, pos = 0
        c.entered = 1 if c.left else 0
        while n < max_frames and _cursor_peek(c, &f, self._fd, 0):
            if pos + f.caplen > max_bytes:
                break  # only when a block header under-states its length: the frame starts the next call
            memcpy(data + pos, f.data, f.caplen)
            offset[n] = pos
            caplen[n] = f.caplen
            wirelen[n] = f.wirelen
            ts_ns[n] = f.ts_ns
            vlan[n] = f.vlan
            pos += f.caplen
            n += 1
            _cursor_next(c, &f)
        nframes[0] = n
        nbytes[0] = pos

    cdef void _walk_parse(self, Py_ssize_t max_frames, FrameRecord* rec, Py_ssize_t* nframes, Py_ssize_t* nmalformed,
                          RareCopy* rc, int64_t* flag_counts, AggState* ag, int64_t agg_end,
                          int64_t agg_floor, Py_ssize_t* naggregated, int64_t linger_until) noexcept nogil:
        """_walk for next_records: parse up to max_frames frames in place into rec, keep the bytes of rare
        frames (stopping before a frame if their buffer is full), add up record_totals' figures,
        aggregate the records before the first at or past agg_end or before agg_floor into ag (when not NULL), and advance
        the cursor. Once a frame came, wait for further blocks until linger_until (when not 0)."""
        cdef BlockCursor *c = &self._at
        cdef RingFrame f
        cdef Py_ssize_t n = 0, k = rc.n, pos = rc.pos, malformed = 0, aggregated = 0
        cdef uint32_t run_fl = 0, fl
        cdef int64_t fl_run = 0, lo = 0, hi = 0
        cdef uint64_t wire = 0
        cdef FrameRecord* r
        c.entered = 1 if c.left else 0
        while n < max_frames and _cursor_peek(c, &f, self._fd, linger_until if n else 0):
            r = rec + n
            parse_frame(f.data, f.caplen, f.wirelen, f.ts_ns, f.vlan, r)
            fl = r.flags
            if fl & F_MALFORMED:
                malformed += 1
            elif fl & RING_RARE:
                if pos + f.caplen > rc.data_len:
                    break  # the rare-frame buffer is full: this frame starts the next call
                memcpy(rc.data + pos, f.data, f.caplen)
                rc.index[k] = n
                rc.offset[k] = pos
                rc.caplen[k] = f.caplen
                rc.wirelen[k] = f.wirelen
                rc.ts[k] = f.ts_ns
                rc.vlan[k] = f.vlan
                pos += f.caplen
                k += 1
            # record_totals' flag counts, per run of equal flags (one flow's frames in a row): the
            # same counters incremented every frame would chain each add on the one before
            if fl == run_fl:
                fl_run += 1
            else:
                _add_flags(flag_counts, run_fl, fl_run)
                run_fl = fl
                fl_run = 1
            if n == 0 or f.ts_ns < lo:
                lo = f.ts_ns
            if n == 0 or f.ts_ns > hi:
                hi = f.ts_ns
            if ag != NULL:
                if agg_floor <= f.ts_ns < agg_end:
                    agg_frame(ag, r)
                    aggregated += 1
                else:  # the window ends here: the caller closes it and aggregates the rest
                    agg_finish(ag)
                    ag = NULL
            wire += f.wirelen
            n += 1
            _cursor_next(c, &f)
        _add_flags(flag_counts, run_fl, fl_run)
        if ag != NULL:
            agg_finish(ag)
        nframes[0] = n
        nmalformed[0] = malformed
        naggregated[0] = aggregated
        rc.n = k
        rc.pos = pos
        rc.wire = wire
        rc.ts_lo = lo
        rc.ts_hi = hi

    def statistics(self):
        """Kernel counters accumulated since the ring was opened (the kernel resets them on each read):
        packets (seen by the socket, drops included), drops (ring full), freeze_queue_count."""
        if self._sock is not None:
            p, d, f = _afpacket.read_statistics(self._sock, True)
            self._packets += p
            self._drops += d
            self._freeze += f
        return {"packets": self._packets, "drops": self._drops, "freeze_queue_count": self._freeze}

    def close(self):
        """Unmap the ring and close the socket. From another thread while next_batch runs, the close
        happens when that call returns (the ring memory is never unmapped under it)."""
        if self._busy:
            self._close_pending = True
            return
        if self._at.ring != NULL and self._buffer is None:
            munmap(self._at.ring, self._ring_len)
        self._at.ring = NULL
        self._buffer = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        if self._at.ring != NULL and self._buffer is None:
            munmap(self._at.ring, self._ring_len)
        self._at.ring = NULL
