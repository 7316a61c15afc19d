/*
 * Capture record walkers: classic pcap (both byte orders, micro- and
 * nanosecond, and the 24-byte-header Kuznetzov variant) and pcapng
 * (EPB, SPB, OPB; SHB/IDB handed back to Python; other blocks skipped).
 *
 * A walker fills the capture columns of pkt_t rows (ts, frame, frame_off,
 * caplen, wirelen, linktype) and stops at the first incomplete or damaged
 * record, reporting where, so that Python can read more, report the damage
 * with its file offset, or resynchronise.
 */
#include <string.h>

#include "fastpath.h"

static inline uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static inline uint16_t rd16(const uint8_t *p, int swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

static void emit(pkt_t *r, walk_t *w, size_t data_off, uint32_t caplen, uint32_t wirelen,
                 int64_t ts, uint32_t linktype)
{
    memset(r, 0, sizeof(*r));
    r->ts = ts;
    r->frame = w->next_frame++;
    r->frame_off = (uint32_t)data_off;
    r->caplen = caplen;
    r->wirelen = wirelen < caplen ? caplen : wirelen;
    r->linktype = (uint16_t)linktype;
    w->last_ts = ts;
}

/* ---------------------------------------------------------------- pcap */

static int pcap_header_plausible(const uint8_t *h, int swapped, int nsec, uint32_t snaplen,
                                 int64_t last_ts)
{
    uint32_t sec = rd32(h, swapped), frac = rd32(h + 4, swapped);
    uint32_t caplen = rd32(h + 8, swapped), wirelen = rd32(h + 12, swapped);
    uint32_t limit = (snaplen && snaplen < MAX_CAPLEN) ? snaplen : MAX_CAPLEN;

    if (caplen == 0 || caplen > limit || wirelen < caplen || wirelen > (1u << 24))
        return 0;
    if (frac >= (nsec ? 1000000000u : 1000000u))
        return 0;
    if (last_ts > 0) {
        int64_t diff = (int64_t)sec - last_ts / 1000000000;
        if (diff < -86400 * 7 || diff > 86400 * 366)
            return 0;
    }
    return 1;
}

void walk_pcap(const uint8_t *buf, size_t end, int swapped, int nsec, size_t rec_hdr_len,
               uint32_t snaplen, uint32_t linktype, pkt_t *out, size_t max_out, walk_t *w)
{
    size_t pos = w->pos;
    size_t n = 0;

    w->damage = DAMAGE_NONE;
    for (;;) {
        if (n == max_out) {
            w->status = WALK_FULL;
            break;
        }
        if (end - pos < rec_hdr_len) {
            w->status = WALK_NEED_MORE;
            break;
        }
        const uint8_t *h = buf + pos;
        uint32_t sec = rd32(h, swapped), frac = rd32(h + 4, swapped);
        uint32_t caplen = rd32(h + 8, swapped), wirelen = rd32(h + 12, swapped);

        if (caplen > MAX_CAPLEN) {
            w->status = WALK_BAD_RECORD;
            w->damage = DAMAGE_CAPLEN_OVER_MAX;
            break;
        }
        if (snaplen && caplen > snaplen) {
            w->status = WALK_BAD_RECORD;
            w->damage = DAMAGE_CAPLEN_OVER_SNAPLEN;
            break;
        }
        if (end - pos - rec_hdr_len < caplen) {
            w->status = WALK_NEED_MORE;
            break;
        }
        emit(out + n++, w, pos + rec_hdr_len, caplen, wirelen,
             (int64_t)sec * 1000000000 + (int64_t)frac * (nsec ? 1 : 1000), linktype);
        pos += rec_hdr_len + caplen;
    }
    w->pos = pos;
    w->n = n;
}

size_t resync_pcap(const uint8_t *buf, size_t start, size_t end, int swapped, int nsec,
                   size_t rec_hdr_len, uint32_t snaplen, int64_t last_ts, int at_eof,
                   int *need_more)
{
    *need_more = 0;
    for (size_t p = start; p + rec_hdr_len <= end; p++) {
        if (!pcap_header_plausible(buf + p, swapped, nsec, snaplen, last_ts))
            continue;
        size_t next = p + rec_hdr_len + rd32(buf + p + 8, swapped);
        /* Accept a candidate only when the record after it is plausible
           too (or it ends the file exactly): one header alone is too
           easy to find by chance in packet bytes. */
        if (next == end && at_eof)
            return p;
        if (next + rec_hdr_len > end) {
            if (at_eof)
                continue;
            *need_more = 1;
            return p;
        }
        if (pcap_header_plausible(buf + next, swapped, nsec, snaplen, last_ts))
            return p;
    }
    if (at_eof)
        return (size_t)-1;
    *need_more = 1;
    return end > rec_hdr_len ? end - rec_hdr_len + 1 : start;
}

/* -------------------------------------------------------------- pcapng */

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 0x00000001u
#define BT_OPB 0x00000002u
#define BT_SPB 0x00000003u
#define BT_NRB 0x00000004u
#define BT_ISB 0x00000005u
#define BT_EPB 0x00000006u

/* Timestamp units of an interface to ns since the epoch; absurd values
   (from a damaged block) saturate instead of overflowing. */
static int64_t ts_to_ns(uint64_t units, const iface_t *ifc)
{
    __int128 ns;
    int r = ifc->tsresol;

    if (r >= 0) {
        if (r <= 9) {
            static const int64_t mul[10] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                            10000, 1000, 100, 10, 1};
            ns = (__int128)units * mul[r];
        } else {
            uint64_t div = 1;
            for (int i = 9; i < r && i < 28; i++)
                div *= 10;
            ns = units / div;
        }
    } else {
        int shift = -r;
        ns = shift >= 64 ? 0 : ((unsigned __int128)units * 1000000000u) >> shift;
    }
    ns += ifc->tsoffset_ns;
    if (ns > INT64_MAX)
        return INT64_MAX;
    if (ns < INT64_MIN)
        return INT64_MIN;
    return (int64_t)ns;
}

void walk_pcapng(const uint8_t *buf, size_t end, int swapped, const iface_t *ifaces,
                 size_t n_ifaces, pkt_t *out, size_t max_out, walk_t *w)
{
    size_t pos = w->pos;
    size_t n = 0;

    w->damage = DAMAGE_NONE;
    for (;;) {
        if (n == max_out) {
            w->status = WALK_FULL;
            break;
        }
        if (end - pos < 12) {
            w->status = WALK_NEED_MORE;
            break;
        }
        const uint8_t *b = buf + pos;
        uint32_t type = rd32(b, swapped);
        if (type == BT_SHB) {            /* byte order may change: Python decides */
            w->status = WALK_CONTROL_BLOCK;
            break;
        }
        uint32_t total = rd32(b + 4, swapped);
        if (total < 12 || (total & 3) || total > MAX_PCAPNG_BLOCK) {
            w->status = WALK_BAD_RECORD;
            w->damage = DAMAGE_BLOCK_LENGTH;
            break;
        }
        if (end - pos < total) {
            w->status = WALK_NEED_MORE;
            break;
        }
        if (rd32(b + total - 4, swapped) != total) {
            w->status = WALK_BAD_RECORD;
            w->damage = DAMAGE_BLOCK_TRAILER;
            break;
        }
        if (type == BT_IDB) {
            w->status = WALK_CONTROL_BLOCK;
            break;
        }
        uint32_t body = total - 12;
        const uint8_t *p = b + 8;

        if (type == BT_EPB || type == BT_OPB) {
            uint32_t iface, caplen, wirelen;
            uint64_t units;
            if (body < 20) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_BLOCK_BODY;
                break;
            }
            if (type == BT_EPB)
                iface = rd32(p, swapped);
            else
                iface = rd16(p, swapped);
            units = ((uint64_t)rd32(p + 4, swapped) << 32) | rd32(p + 8, swapped);
            caplen = rd32(p + 12, swapped);
            wirelen = rd32(p + 16, swapped);
            if (iface >= n_ifaces) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_UNKNOWN_INTERFACE;
                break;
            }
            if (caplen > body - 20) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_BLOCK_BODY;
                break;
            }
            if (caplen > MAX_CAPLEN) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_CAPLEN_OVER_MAX;
                break;
            }
            if (ifaces[iface].snaplen && caplen > ifaces[iface].snaplen) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_CAPLEN_OVER_SNAPLEN;
                break;
            }
            emit(out + n++, w, pos + 28, caplen, wirelen, ts_to_ns(units, &ifaces[iface]),
                 ifaces[iface].linktype);
        } else if (type == BT_SPB) {
            uint32_t wirelen, caplen;
            if (body < 4) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_BLOCK_BODY;
                break;
            }
            if (n_ifaces == 0) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_UNKNOWN_INTERFACE;
                break;
            }
            wirelen = rd32(p, swapped);
            caplen = wirelen;
            if (ifaces[0].snaplen && caplen > ifaces[0].snaplen)
                caplen = ifaces[0].snaplen;
            if (caplen > body - 4)
                caplen = body - 4;
            if (caplen > MAX_CAPLEN) {
                w->status = WALK_BAD_RECORD;
                w->damage = DAMAGE_CAPLEN_OVER_MAX;
                break;
            }
            emit(out + n++, w, pos + 12, caplen, wirelen, w->last_ts, ifaces[0].linktype);
        }
        /* every other block type (NRB, ISB, DSB, custom, ...) is skipped */
        pos += total;
    }
    w->pos = pos;
    w->n = n;
}

static int known_block(uint32_t type)
{
    return type == BT_IDB || type == BT_OPB || type == BT_SPB || type == BT_NRB ||
           type == BT_ISB || type == BT_EPB || type == BT_SHB;
}

size_t resync_pcapng(const uint8_t *buf, size_t start, size_t end, int swapped, int at_eof,
                     int *need_more)
{
    *need_more = 0;
    /* Blocks are 32-bit aligned within the file, and the buffer starts at
       a block boundary, so only aligned positions are candidates. */
    size_t p = (start + 3) & ~(size_t)3;
    for (; p + 12 <= end; p += 4) {
        uint32_t type = rd32(buf + p, swapped);
        if (!known_block(type))
            continue;
        uint32_t total = rd32(buf + p + 4, swapped);
        if (total < 12 || (total & 3) || total > MAX_PCAPNG_BLOCK)
            continue;
        if (p + total > end) {
            if (at_eof)
                continue;
            *need_more = 1;
            return p;
        }
        if (rd32(buf + p + total - 4, swapped) == total)
            return p;
    }
    if (at_eof)
        return (size_t)-1;
    *need_more = 1;
    return p;
}
