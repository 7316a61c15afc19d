/*
 * Connection tracker: one record per connection, keyed like Zeek.
 *
 *  - TCP and UDP: the bidirectional 5-tuple.  The originator is the sender
 *    of the first packet, flipped by Zeek's likely-server-port heuristic
 *    when a connection starts without a pure SYN (TCP) or from a server
 *    port (UDP).
 *  - ICMP/ICMPv6: one record per direction and (type, code), as KDD does.
 *
 * The TCP part reproduces Zeek's per-endpoint state machine, its history
 * string and its sequence-space byte counts (TCPSessionAdapter.cc,
 * TCP_Endpoint.cc, conn_state() in base/protocols/conn/main.zeek); the
 * spec is ../shared/kdd-features.md sections 1 and 3.  Timers are replaced
 * by one deadline per connection, checked when a packet for it arrives
 * and by a sweep, so results do not depend on batch boundaries.
 */
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10
#define TH_URG 0x20

#define TOO_LARGE_SEQ_DELTA 1048576

/* history "seen" bits; the responder's are shifted left by 16 */
enum { H_SYN = 1, H_FIN = 2, H_RST = 4, H_DATA = 8, H_ACK = 16, H_MULTI = 32, H_FINRST = 64 };

typedef struct {
    uint64_t hist_last_syn, hist_last_fin, hist_last_rst;
    uint32_t start_seq, last_seq, ack_seq;
    uint32_t seq_wraps, ack_wraps;
    uint32_t rxmt_cnt, rxmt_thresh, win0_cnt, win0_thresh, gap_cnt, gap_thresh;
    uint8_t state, prev_state, did_close, fin_cnt;
} ep_t;

typedef struct {
    uint64_t hash;
    uint64_t a_hi, a_lo, b_hi, b_lo;       /* originator, responder */
    uint64_t order, first_frame, uid;
    int64_t ts_first, ts_last, deadline;
    int64_t attempt_ts;                    /* when the originator's SYN was first seen */
    int64_t close_ts;                      /* when the close became complete; -1 if not */
    uint64_t pkts[2], ip_bytes[2], bytes[2];
    uint32_t urgent, wrong_frag, hist_seen;
    uint16_t a_p, b_p;
    uint8_t proto, ip_ver, in_use, left_handshake, hist_len, ftp_data;
    char history[HIST_MAX];
    ep_t ep[2];                            /* [0] originator, [1] responder */
    content_t *ct;                         /* cleartext analyzer, for analyzed services */
} flow_t;

#define EXPECT_MAX 256
#define EXPECT_NS (300 * 1000000000LL)     /* an announced data connection waits 5 min */

typedef struct {
    uint64_t hi, lo;
    int64_t until;
    uint16_t port;
} expected_t;

struct tracker {
    timeouts_t to;
    uint8_t likely_tcp[65536];
    uint8_t likely_udp[65536];
    uint64_t hash_seed, uid_seed;
    flow_t *flows;
    size_t flows_cap, flows_hw, active;
    int32_t *free_idx;
    size_t n_free;
    /* open addressing: each slot holds (low 32 bits of the hash) << 32 | flow
       index, so probes past other flows never touch their memory */
    uint64_t *slots;
    size_t slot_cap;
    conn_t *out;               /* released records, in creation order */
    size_t n_out, out_cap;
    /* Finished records wait here until every connection created before
       theirs has finished too, so records come out in start order.  Slot
       (order & (ring_cap - 1)) holds the record of that creation order. */
    conn_t *ring;
    uint8_t *ring_ready;
    size_t ring_cap, ring_limit, held;
    uint64_t release_next;     /* lowest creation order not yet released */
    uint64_t released_late;    /* records that could not wait for an older connection */
    uint64_t next_order;
    /* content analysis */
    content_rules_t *rules;
    uint8_t analyzer_port[65536];
    uint32_t content_cap;
    size_t analyzed;                /* connections with an analyzer right now */
    const uint8_t *buf;             /* the batch buffer of the rows being processed */
    size_t buflen;
    expected_t expected[EXPECT_MAX];
    size_t n_expected;
    /* bounded state: 0 means no limit */
    size_t max_flows, max_bytes;
    uint64_t evicted;
    /* bounded wait: a finished record waits for older open connections at
       most hold_ns of capture time (0: as long as the ring allows).  The
       records waiting, in the order they finished, with when: */
    int64_t hold_ns, now;
    struct waiting { uint64_t order; int64_t since; } *waiting;
    size_t wait_head, wait_len, wait_cap;
};

/* what one open connection holds: its flow, its share of the hash slots
   (kept under half full) and of the free list, and its record slot */
#define FLOW_BYTES (sizeof(flow_t) + 2 * sizeof(uint64_t) + sizeof(int32_t) + sizeof(conn_t))

/* ------------------------------------------------------------ hashing */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t hash_endpoint(uint64_t seed, uint64_t hi, uint64_t lo, uint16_t port)
{
    return mix64(mix64(seed ^ hi) ^ lo ^ ((uint64_t)port << 48) ^ port);
}

static uint64_t key_hash(const tracker_t *tr, uint8_t proto, uint64_t a_hi, uint64_t a_lo,
                         uint16_t a_p, uint64_t b_hi, uint64_t b_lo, uint16_t b_p)
{
    uint64_t h1 = hash_endpoint(tr->hash_seed, a_hi, a_lo, a_p);
    uint64_t h2 = hash_endpoint(tr->hash_seed, b_hi, b_lo, b_p);
    if (proto == 1 || proto == 58)  /* ICMP: directional */
        return mix64(h1 * 0x9E3779B97F4A7C15ull ^ h2 ^ (0x100u | proto));
    uint64_t lo = h1 < h2 ? h1 : h2, hi = h1 < h2 ? h2 : h1;
    return mix64(lo * 0x9E3779B97F4A7C15ull ^ hi ^ proto);
}

static int is_directional(uint8_t proto)
{
    return proto == 1 || proto == 58;
}

/* -------------------------------------------------------------- time */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* time + delay, saturating: timestamps from a damaged capture can be huge */
static int64_t later(int64_t t, int64_t delay)
{
    return t > INT64_MAX - delay ? INT64_MAX : t + delay;
}

/* ------------------------------------------------------- flow table */

#define SLOT_EMPTY UINT64_MAX

static inline uint64_t slot_entry(uint64_t hash, int32_t idx)
{
    return (hash << 32) | (uint32_t)idx;
}

static inline int32_t slot_index(uint64_t e)
{
    return (int32_t)(uint32_t)e;
}

static inline size_t slot_home(uint64_t e, size_t mask)
{
    return (size_t)(e >> 32) & mask;
}

static int table_resize(tracker_t *tr, size_t cap)
{
    uint64_t *slots = malloc(cap * sizeof(uint64_t));
    if (!slots)
        return -1;
    memset(slots, 0xFF, cap * sizeof(uint64_t));
    size_t mask = cap - 1;
    for (size_t i = 0; i < tr->flows_hw; i++) {
        if (!tr->flows[i].in_use)
            continue;
        size_t s = tr->flows[i].hash & mask;
        while (slots[s] != SLOT_EMPTY)
            s = (s + 1) & mask;
        slots[s] = slot_entry(tr->flows[i].hash, (int32_t)i);
    }
    free(tr->slots);
    tr->slots = slots;
    tr->slot_cap = cap;
    return 0;
}

static void table_insert(tracker_t *tr, uint64_t h, int32_t idx)
{
    size_t mask = tr->slot_cap - 1;
    size_t s = h & mask;
    while (tr->slots[s] != SLOT_EMPTY)
        s = (s + 1) & mask;
    tr->slots[s] = slot_entry(h, idx);
}

/* dir: 0 when the packet travels orig -> resp, 1 for resp -> orig */
static int32_t table_find(const tracker_t *tr, uint64_t h, const pkt_t *r, int *dir)
{
    size_t mask = tr->slot_cap - 1;
    uint32_t tag = (uint32_t)h;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
        uint64_t e = tr->slots[s];
        if (e == SLOT_EMPTY)
            return -1;
        if ((uint32_t)(e >> 32) != tag)
            continue;
        int32_t idx = slot_index(e);
        const flow_t *f = tr->flows + idx;
        if (f->hash != h || f->proto != r->proto)
            continue;
        if (f->a_hi == r->src_hi && f->a_lo == r->src_lo && f->b_hi == r->dst_hi &&
            f->b_lo == r->dst_lo && f->a_p == r->sport && f->b_p == r->dport) {
            *dir = 0;
            return idx;
        }
        if (!is_directional(r->proto) && f->a_hi == r->dst_hi && f->a_lo == r->dst_lo &&
            f->b_hi == r->src_hi && f->b_lo == r->src_lo && f->a_p == r->dport &&
            f->b_p == r->sport) {
            *dir = 1;
            return idx;
        }
    }
}

static void table_remove(tracker_t *tr, int32_t idx)
{
    size_t mask = tr->slot_cap - 1;
    size_t i = tr->flows[idx].hash & mask;
    while (slot_index(tr->slots[i]) != idx)
        i = (i + 1) & mask;
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t e = tr->slots[j];
        if (e == SLOT_EMPTY)
            break;
        size_t home = slot_home(e, mask);
        int move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            tr->slots[i] = e;
            i = j;
        }
    }
    tr->slots[i] = SLOT_EMPTY;
}

static int32_t flow_alloc(tracker_t *tr)
{
    if ((tr->active + 1) * 2 > tr->slot_cap && table_resize(tr, tr->slot_cap * 2) < 0)
        return -1;
    if (tr->n_free)
        return tr->free_idx[--tr->n_free];
    if (tr->flows_hw == tr->flows_cap) {
        size_t cap = tr->flows_cap * 2;
        size_t bound = tr->max_flows ? tr->max_flows : SIZE_MAX;
        if (tr->max_bytes && tr->max_bytes / FLOW_BYTES < bound)
            bound = tr->max_bytes / FLOW_BYTES;
        if (cap > bound && bound + 1 > tr->flows_cap)  /* never allocate past the limit */
            cap = bound + 1;
        flow_t *flows = realloc(tr->flows, cap * sizeof(flow_t));
        int32_t *free_idx = realloc(tr->free_idx, cap * sizeof(int32_t));
        if (free_idx)
            tr->free_idx = free_idx;
        if (!flows || !free_idx) {
            if (flows)
                tr->flows = flows;
            return -1;
        }
        tr->flows = flows;
        tr->flows_cap = cap;
    }
    return (int32_t)tr->flows_hw++;
}

/* ------------------------------------------------------------ history */

static void add_history(flow_t *f, int dir, char code)
{
    if (dir)
        code = (char)(code - 'A' + 'a');
    if (f->hist_len < HIST_MAX)
        f->history[f->hist_len++] = code;
}

static void add_history_raw(flow_t *f, char code)
{
    if (f->hist_len < HIST_MAX)
        f->history[f->hist_len++] = code;
}

/* Record `code` the first time its event is seen in this direction.
   Returns 1 when it had been seen before. */
static int check_history(flow_t *f, int dir, uint32_t mask, char code)
{
    mask <<= dir ? 16 : 0;
    if (f->hist_seen & mask)
        return 1;
    f->hist_seen |= mask;
    add_history(f, dir, code);
    return 0;
}

/* Letters for repeated events (retransmission, zero window) are written
   at the 1st, 10th, 100th, ... occurrence. */
static void scaled_history(flow_t *f, int dir, char code, uint32_t *cnt, uint32_t *thresh)
{
    if (++*cnt == *thresh) {
        add_history(f, dir, code);
        *thresh = *thresh == 1 ? 10 : *thresh * 10;
    }
}

/* ---------------------------------------------------- TCP endpoints */

static inline int32_t seq_delta(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

static void ep_init_seqs(ep_t *ep, uint32_t start, uint32_t last)
{
    ep->start_seq = start;
    ep->ack_seq = start;
    ep->last_seq = last;
    ep->seq_wraps = ep->ack_wraps = 0;
}

static void ep_update_last(ep_t *ep, uint32_t seq)
{
    if (seq < ep->last_seq)
        ep->seq_wraps++;
    ep->last_seq = seq;
}

static void ep_update_ack(ep_t *ep, uint32_t seq)
{
    if (seq < ep->ack_seq)
        ep->ack_wraps++;
    ep->ack_seq = seq;
}

/* Sequence number relative to the endpoint's initial sequence number,
   across 32-bit wraps.  *underflow is set when it lies before the start. */
static uint64_t relative_seq(const ep_t *ep, uint32_t cur, uint32_t last, uint32_t wraps,
                             int *underflow)
{
    int32_t delta = seq_delta(cur, last);
    if (delta < 0) {
        if (wraps && cur > last)
            wraps--;
    } else if (delta > 0) {
        if (cur < last)
            wraps++;
    }
    if (wraps == 0) {
        int32_t d = seq_delta(cur, ep->start_seq);
        if (d < 0 && underflow)
            *underflow = 1;
        return (uint64_t)(int64_t)d;
    }
    return (((uint64_t)wraps << 32) | cur) - (uint64_t)ep->start_seq;
}

static int ep_no_data_acked(const ep_t *ep)
{
    uint64_t ack = ((uint64_t)ep->ack_wraps << 32) | ep->ack_seq;
    return ack == ep->start_seq || ack == (uint64_t)ep->start_seq + 1;
}

/* Payload bytes from sequence space: highest sequence number seen or
   acknowledged, minus the initial one, minus the SYN and FIN octets. */
static uint64_t ep_size(const ep_t *ep, const ep_t *peer)
{
    if (ep->prev_state == EP_SYN_SENT && ep->state == EP_RESET && peer->state == EP_INACTIVE &&
        !ep_no_data_acked(ep))
        return 0;  /* a half-open connection aborted: its sequence numbers mean nothing */
    uint64_t last = ((uint64_t)ep->seq_wraps << 32) | ep->last_seq;
    uint64_t ack = ((uint64_t)ep->ack_wraps << 32) | ep->ack_seq;
    uint64_t top = last > ack ? last : ack;
    if (top <= ep->start_seq)
        return 0;
    uint64_t size = top - ep->start_seq;
    if (size)
        size--;
    if (ep->fin_cnt && size)
        size--;
    return size;
}

static int is_handshake(uint8_t s)
{
    return s == EP_INACTIVE || s == EP_SYN_SENT || s == EP_SYN_ACK_SENT;
}

static void set_state(flow_t *f, ep_t *ep, const ep_t *peer, uint8_t state)
{
    if (state == ep->state)
        return;
    if (!is_handshake(state) && is_handshake(ep->state) && is_handshake(peer->state))
        f->left_handshake = 1;
    ep->prev_state = ep->state;
    ep->state = state;
}

static void init_endpoint(ep_t *ep, uint8_t flags, uint32_t first_seq, uint32_t last_seq)
{
    int syn = flags & TH_SYN;
    switch (ep->state) {
    case EP_INACTIVE:
        if (syn)
            ep_init_seqs(ep, first_seq, last_seq);
        else  /* partial: number as though a SYN was seen */
            ep_init_seqs(ep, first_seq - 1, first_seq);
        break;
    case EP_SYN_SENT:
    case EP_SYN_ACK_SENT:
        if (syn && first_seq != ep->start_seq)
            ep_init_seqs(ep, first_seq, last_seq);
        break;
    case EP_ESTABLISHED:
    case EP_PARTIAL:
        if (syn)
            ep_init_seqs(ep, first_seq, last_seq);
        break;
    case EP_RESET:
        if (syn && ep->prev_state == EP_INACTIVE)
            ep_init_seqs(ep, first_seq, last_seq);
        break;
    default:
        break;
    }
}

static void update_history(flow_t *f, int dir, ep_t *ep, uint8_t flags, uint64_t rel_seq,
                           uint32_t len)
{
    int syn = !!(flags & TH_SYN), fin = !!(flags & TH_FIN), rst = !!(flags & TH_RST);
    int bits = syn + fin + rst;

    if (bits > 1) {
        if (fin && rst)
            check_history(f, dir, H_FINRST, 'I');
        else
            check_history(f, dir, H_MULTI, 'Q');
    } else if (bits == 1) {
        if (syn) {
            char code = (flags & TH_ACK) ? 'H' : 'S';
            if (check_history(f, dir, H_SYN, code) && rel_seq != ep->hist_last_syn)
                add_history(f, dir, code);
            ep->hist_last_syn = rel_seq;
        }
        if (fin) {  /* a FIN's sequence number is the one after its data */
            if (check_history(f, dir, H_FIN, 'F') && rel_seq + len != ep->hist_last_fin)
                add_history(f, dir, 'F');
            ep->hist_last_fin = rel_seq + len;
        }
        if (rst) {
            if (check_history(f, dir, H_RST, 'R') && rel_seq != ep->hist_last_rst)
                add_history(f, dir, 'R');
            ep->hist_last_rst = rel_seq;
        }
    } else if (len) {
        check_history(f, dir, H_DATA, 'D');
    } else if (flags & TH_ACK) {
        check_history(f, dir, H_ACK, 'A');
    }
}

static void update_last_seq(flow_t *f, int dir, ep_t *ep, uint32_t last_seq, uint8_t flags,
                            uint32_t len)
{
    int32_t delta = seq_delta(last_seq, ep->last_seq);
    if ((flags & (TH_SYN | TH_RST)) && (delta > TOO_LARGE_SEQ_DELTA || delta < -TOO_LARGE_SEQ_DELTA))
        ;  /* implausible jump on a SYN or RST: ignore */
    else if ((flags & TH_FIN) && ep->last_seq == ep->start_seq + 1)
        ep_update_last(ep, last_seq);  /* a FIN after only the SYN: trust it even backwards */
    else if (ep->state == EP_RESET)
        ;  /* nothing after a RST is trusted */
    else if (delta > 0)
        ep_update_last(ep, last_seq);
    else if (len > 0)
        scaled_history(f, dir, 'T', &ep->rxmt_cnt, &ep->rxmt_thresh);
}

static void flip_roles(flow_t *f)
{
    uint64_t t64;
    uint16_t t16;
    ep_t tep;

#define SWAP(a, b, tmp) (tmp = (a), (a) = (b), (b) = tmp)
    SWAP(f->a_hi, f->b_hi, t64);
    SWAP(f->a_lo, f->b_lo, t64);
    SWAP(f->a_p, f->b_p, t16);
    SWAP(f->pkts[0], f->pkts[1], t64);
    SWAP(f->ip_bytes[0], f->ip_bytes[1], t64);
    SWAP(f->bytes[0], f->bytes[1], t64);
    SWAP(f->ep[0], f->ep[1], tep);
#undef SWAP
    f->hist_seen = (f->hist_seen >> 16) | (f->hist_seen << 16);
    add_history_raw(f, '^');
}

/* A FIN or RST moving the sender to CLOSED or RESET: the packet closes it. */
static int closing(flow_t *f, ep_t *ep, const ep_t *peer, uint8_t state)
{
    set_state(f, ep, peer, state);
    return 1;
}

static void connection_closed(flow_t *f, ep_t *ep, const ep_t *peer)
{
    if (ep->did_close)
        return;
    ep->did_close = 1;
    if ((ep->state == EP_RESET || peer->did_close || peer->state == EP_INACTIVE) && f->close_ts < 0)
        f->close_ts = f->ts_last;
}

/* The endpoint state machine; returns whether this packet closed its
   sender.  *dir is updated when a SYN/SYN-ACK reversal flips the roles. */
static int update_state_machine(flow_t *f, int *dir, const pkt_t *r, int64_t ts)
{
    ep_t *ep = &f->ep[*dir], *peer = &f->ep[1 - *dir];
    uint8_t flags = r->tcp_flags;
    int syn = flags & TH_SYN, fin = flags & TH_FIN, rst = flags & TH_RST, ack = flags & TH_ACK;
    int sent_by_orig = *dir == 0;
    int do_close = 0;

    switch (ep->state) {
    case EP_INACTIVE:
        if (syn) {
            if (sent_by_orig) {
                set_state(f, ep, peer, ack ? EP_SYN_ACK_SENT : EP_SYN_SENT);
                if (f->attempt_ts < 0)
                    f->attempt_ts = ts;
            } else {
                if (!ack && peer->state == EP_SYN_ACK_SENT && r->seq == ep->start_seq) {
                    /* the SYN/ACK was seen before its SYN: swap the roles */
                    flip_roles(f);
                    *dir = 0;
                    ep = &f->ep[0];
                    peer = &f->ep[1];
                    set_state(f, peer, ep, EP_ESTABLISHED);
                }
                if (peer->state == EP_SYN_SENT)
                    set_state(f, peer, ep, EP_ESTABLISHED);
                set_state(f, ep, peer, EP_ESTABLISHED);
            }
        }
        if (fin)
            do_close = closing(f, ep, peer, EP_CLOSED);
        if (rst)
            do_close = closing(f, ep, peer, EP_RESET);
        if (ep->state == EP_INACTIVE) {  /* no control flag moved it */
            if (!sent_by_orig && r->l4_len == 0 && f->ep[0].state == EP_SYN_SENT)
                ;  /* an ACK of the SYN before the SYN/ACK: not a partial connection */
            else if (ack && peer->state == EP_ESTABLISHED)
                set_state(f, ep, peer, EP_ESTABLISHED);  /* the SYN was missed */
            else
                set_state(f, ep, peer, EP_PARTIAL);
        }
        break;
    case EP_SYN_SENT:
    case EP_SYN_ACK_SENT:
        if (fin)
            do_close = closing(f, ep, peer, EP_CLOSED);
        if (rst)
            do_close = closing(f, ep, peer, EP_RESET);
        break;
    case EP_ESTABLISHED:
    case EP_PARTIAL:
        if (syn && ep->state == EP_PARTIAL && peer->state == EP_INACTIVE && !ack)
            set_state(f, ep, peer, EP_SYN_SENT);
        if (fin && !rst) {
            do_close = closing(f, ep, peer, EP_CLOSED);
            if (peer->state == EP_RESET && peer->prev_state == EP_CLOSED)
                set_state(f, peer, ep, EP_CLOSED);  /* FIN then RST is a normal close */
        }
        if (rst)
            do_close = closing(f, ep, peer, EP_RESET);
        break;
    case EP_CLOSED:
        if (rst && peer->state != EP_CLOSED) {
            set_state(f, ep, peer, EP_RESET);
            if (!ep->did_close)
                do_close = 1;
            if (f->close_ts < 0)
                f->close_ts = ts;
        }
        break;
    default:  /* EP_RESET: stays */
        break;
    }
    if (do_close)
        connection_closed(f, ep, peer);
    return do_close;
}

static void tcp_packet(flow_t *f, int dir, const pkt_t *r)
{
    ep_t *ep = &f->ep[dir], *peer = &f->ep[1 - dir];
    uint8_t flags = r->tcp_flags;
    uint32_t len = r->l4_len;
    int syn = !!(flags & TH_SYN), fin = !!(flags & TH_FIN), rst = !!(flags & TH_RST);
    uint32_t seg_len = len + (uint32_t)syn + (uint32_t)fin - (rst ? len : 0);
    uint32_t seq_one_past = r->seq + seg_len;

    init_endpoint(ep, flags, r->seq, seq_one_past);
    uint64_t rel_seq = relative_seq(ep, r->seq, ep->last_seq, ep->seq_wraps, NULL);
    update_history(f, dir, ep, flags, rel_seq, len);

    if (r->window == 0 && !rst && peer->state != EP_CLOSED && ep->state != EP_RESET)
        scaled_history(f, dir, 'W', &ep->win0_cnt, &ep->win0_thresh);

    if (!(f->ep[0].did_close && f->ep[1].did_close) && r->ts > f->ts_last)
        f->ts_last = r->ts;
    if (fin && ep->fin_cnt < 255)
        ep->fin_cnt++;

    if (flags & TH_ACK) {
        if (peer->state == EP_INACTIVE) {
            ep_init_seqs(peer, r->ack - 1, r->ack - 1);
        } else if (!rst) {
            int underflow = 0;
            relative_seq(peer, r->ack, peer->ack_seq, peer->ack_wraps, &underflow);
            int32_t d = seq_delta(r->ack, peer->ack_seq);
            if (!underflow && !(r->ack == 0 && d > TOO_LARGE_SEQ_DELTA) && d > 0)
                ep_update_ack(peer, r->ack);
        }
    }
    update_last_seq(f, dir, ep, seq_one_past, flags, len);
    update_state_machine(f, &dir, r, r->ts);
}

static void expect(tracker_t *tr, const expect_t *ex, int64_t now)
{
    for (int i = 0; i < ex->n; i++) {
        expected_t *e = tr->n_expected < EXPECT_MAX ? tr->expected + tr->n_expected++
                                                    : tr->expected + (size_t)(now & (EXPECT_MAX - 1));
        e->hi = ex->hi[i];
        e->lo = ex->lo[i];
        e->port = ex->port[i];
        e->until = later(now, EXPECT_NS);
    }
}

/* Is this new connection a data channel an FTP session announced? */
static int expected_connection(tracker_t *tr, const flow_t *f, int64_t now)
{
    for (size_t i = 0; i < tr->n_expected; i++) {
        expected_t *e = tr->expected + i;
        if (e->until < now) {
            *e = tr->expected[--tr->n_expected];
            i--;
            continue;
        }
        if (e->port == f->b_p && e->lo == f->b_lo && e->hi == f->b_hi) {
            *e = tr->expected[--tr->n_expected];
            return 1;
        }
    }
    return 0;
}

static void scaled_gaps(flow_t *f, int dir, int holes)
{
    for (int i = 0; i < holes; i++)
        scaled_history(f, dir, 'G', &f->ep[dir].gap_cnt, &f->ep[dir].gap_thresh);
}

/* Feed a TCP segment's payload to the connection's analyzer, if it has one. */
static int analyze(tracker_t *tr, flow_t *f, int dir, const pkt_t *r)
{
    if (!f->ct) {
        uint8_t kind = tr->analyzer_port[f->b_p];
        if (!kind)
            return 0;
        f->ct = content_new(kind, tr->content_cap, f->b_hi, f->b_lo);
        if (!f->ct)
            return -1;
        tr->analyzed++;
    }
    uint32_t captured = 0;
    const uint8_t *data = NULL;
    if (r->l4_off < r->caplen && (size_t)r->frame_off + r->caplen <= tr->buflen) {
        captured = r->caplen - r->l4_off;
        if (captured > r->l4_len)
            captured = r->l4_len;
        data = tr->buf + r->frame_off + r->l4_off;
    }
    expect_t ex = {.n = 0};
    uint32_t start = f->ep[dir].start_seq + 1;  /* after the SYN, seen or assumed */
    int holes = content_segment(f->ct, tr->rules, dir, r->seq, start, data, captured, r->l4_len, &ex);
    if (holes < 0)
        return -1;
    scaled_gaps(f, dir, holes);
    expect(tr, &ex, r->ts);
    return 0;
}

/* Zeek's IsReuse(): does this SYN start a new connection on the tuple? */
static int is_reuse(const flow_t *f, const pkt_t *r)
{
    uint8_t flags = r->tcp_flags;
    if (!(flags & TH_SYN))
        return 0;
    const ep_t *conn_orig = &f->ep[0];
    if (flags & TH_ACK) {
        if (f->ep[0].state != EP_INACTIVE)
            return 0;  /* not a half connection */
        conn_orig = &f->ep[1];
    }
    if (!(f->ep[0].did_close || f->ep[1].did_close)) {
        if (r->seq == conn_orig->start_seq)
            return 0;  /* a retransmission */
        if (!(flags & TH_ACK) && conn_orig->state == EP_SYN_ACK_SENT &&
            f->ep[1].state == EP_INACTIVE && r->seq == f->ep[1].start_seq)
            return 0;  /* SYN and SYN/ACK seen in reverse order */
    }
    return 1;
}

/* ----------------------------------------------------------- deadline */

static int64_t flow_deadline(const tracker_t *tr, const flow_t *f)
{
    const timeouts_t *to = &tr->to;
    if (f->proto == 6) {
        /* Zeek calls SYN + SYN-ACK established (S1), but an originator that
           has sent nothing after its SYN never finished the handshake: the
           half-open connections of a SYN flood on a SYN-cookie victim idle
           out on the handshake timer, not the five-minute one */
        int half_open = (f->hist_seen & 0xFFFF) == H_SYN;
        int64_t d = later(f->ts_last, f->left_handshake && !half_open ? to->tcp_inactivity : to->tcp_handshake);
        uint8_t os = f->ep[0].state, rs = f->ep[1].state;
        if ((os == EP_SYN_SENT || os == EP_SYN_ACK_SENT) && rs == EP_INACTIVE && f->attempt_ts >= 0)
            d = min64(d, later(f->attempt_ts, to->tcp_attempt));
        if (f->close_ts >= 0)
            d = min64(d, later(f->close_ts, to->tcp_close));
        return d;
    }
    int64_t idle = f->proto == 17 ? to->udp_inactivity : to->icmp_inactivity;
    return min64(later(f->ts_last, idle), later(f->ts_first, to->max_lifetime));
}

/* ------------------------------------------------------------- output */

static int history_is_rstos0(const flow_t *f)
{
    /* Zeek: /\^?S[^HAFGIQ]*R.* / == history */
    int i = 0, n = f->hist_len;
    if (i < n && f->history[i] == '^')
        i++;
    if (i >= n || f->history[i] != 'S')
        return 0;
    for (i++; i < n; i++) {
        char c = f->history[i];
        if (c == 'R')
            return 1;
        if (strchr("HAFGIQ", c))
            return 0;
    }
    return 0;
}

static uint8_t conn_state(const flow_t *f, uint64_t orig_size, uint64_t resp_size)
{
    if (f->proto == 17) {
        if (f->pkts[0])
            return f->pkts[1] ? CS_SF : CS_S0;
        return f->pkts[1] ? CS_SHR : CS_OTH;
    }
    if (f->proto != 6)
        return CS_OTH;
    uint8_t os = f->ep[0].state, rs = f->ep[1].state;
    int o_inactive = os == EP_INACTIVE || os == EP_PARTIAL;
    int r_inactive = rs == EP_INACTIVE || rs == EP_PARTIAL;

    if (rs == EP_RESET) {
        if (os == EP_SYN_SENT || os == EP_SYN_ACK_SENT ||
            (os == EP_RESET && orig_size == 0 && resp_size == 0))
            return CS_REJ;
        return o_inactive ? CS_RSTRH : CS_RSTR;
    }
    if (os == EP_RESET) {
        if (r_inactive)
            return history_is_rstos0(f) ? CS_RSTOS0 : CS_OTH;
        return CS_RSTO;
    }
    if (rs == EP_CLOSED && os == EP_CLOSED)
        return CS_SF;
    if (os == EP_CLOSED)
        return r_inactive ? CS_SH : CS_S2;
    if (rs == EP_CLOSED)
        return o_inactive ? CS_SHR : CS_S3;
    if (os == EP_SYN_SENT && rs == EP_INACTIVE)
        return CS_S0;
    if (os == EP_ESTABLISHED && rs == EP_ESTABLISHED)
        return CS_S1;
    return CS_OTH;
}

static int out_reserve(tracker_t *tr, size_t n)
{
    if (tr->n_out + n <= tr->out_cap)
        return 0;
    size_t cap = tr->out_cap;
    while (cap < tr->n_out + n)
        cap *= 2;
    conn_t *out = realloc(tr->out, cap * sizeof(conn_t));
    if (!out)
        return -1;
    tr->out = out;
    tr->out_cap = cap;
    return 0;
}

/* Move one finished record from its ring slot to out. */
static int release_slot(tracker_t *tr, size_t slot)
{
    if (out_reserve(tr, 1) < 0)
        return -1;
    tr->out[tr->n_out++] = tr->ring[slot];
    tr->ring_ready[slot] = 0;
    tr->held--;
    return 0;
}

/* Move consecutive finished records, oldest first, from the ring to out. */
static int release_ready(tracker_t *tr)
{
    size_t mask = tr->ring_cap - 1;
    while (tr->held && tr->ring_ready[tr->release_next & mask]) {
        if (release_slot(tr, tr->release_next & mask) < 0)
            return -1;
        tr->release_next++;
    }
    return 0;
}

/* Stop waiting for the connections older than `order` that are still
   open (they will be released late): release the finished records before
   it in start order, then every consecutive finished one from it on. */
static int release_up_to(tracker_t *tr, uint64_t order)
{
    size_t mask = tr->ring_cap - 1;
    for (; tr->release_next < order; tr->release_next++)
        if (tr->ring_ready[tr->release_next & mask] && release_slot(tr, tr->release_next & mask) < 0)
            return -1;
    return release_ready(tr);
}

static int ring_grow(tracker_t *tr)
{
    size_t cap = tr->ring_cap * 2;
    conn_t *ring = malloc(cap * sizeof(conn_t));
    uint8_t *ready = calloc(cap, 1);
    if (!ring || !ready) {
        free(ring);
        free(ready);
        return -1;
    }
    for (size_t i = 0; i < tr->ring_cap; i++) {
        uint64_t order = tr->release_next + i;
        size_t old = order & (tr->ring_cap - 1), slot = order & (cap - 1);
        if (tr->ring_ready[old]) {
            ring[slot] = tr->ring[old];
            ready[slot] = 1;
        }
    }
    free(tr->ring);
    free(tr->ring_ready);
    tr->ring = ring;
    tr->ring_ready = ready;
    tr->ring_cap = cap;
    return 0;
}

static int wait_push(tracker_t *tr, uint64_t order)
{
    if (tr->wait_len == tr->wait_cap) {
        size_t cap = tr->wait_cap ? tr->wait_cap * 2 : 1024;
        struct waiting *w = malloc(cap * sizeof(*w));
        if (!w)
            return -1;
        for (size_t i = 0; i < tr->wait_len; i++)
            w[i] = tr->waiting[(tr->wait_head + i) % tr->wait_cap];
        free(tr->waiting);
        tr->waiting = w;
        tr->wait_cap = cap;
        tr->wait_head = 0;
    }
    tr->waiting[(tr->wait_head + tr->wait_len++) % tr->wait_cap] = (struct waiting){order, tr->now};
    return 0;
}

/* Where the record of a finishing connection goes: its ring slot, where
   it waits until it can be released in start order, or straight to the
   output when it was overtaken.  NULL when memory ran out. */
static conn_t *slot_for(tracker_t *tr, uint64_t order)
{
    if (order < tr->release_next) {  /* overtaken: release it late */
        if (out_reserve(tr, 1) < 0)
            return NULL;
        tr->released_late++;
        return tr->out + tr->n_out++;
    }
    while (order - tr->release_next >= tr->ring_cap) {
        if (tr->ring_cap < tr->ring_limit) {
            if (ring_grow(tr) < 0)
                return NULL;
            continue;
        }
        /* The ring is at its limit behind a long-open connection: stop
           waiting for it and release what finished after it. */
        if (release_up_to(tr, tr->release_next + 1) < 0)
            return NULL;
    }
    size_t slot = order & (tr->ring_cap - 1);
    tr->ring_ready[slot] = 1;
    tr->held++;
    if (tr->hold_ns && wait_push(tr, order) < 0)
        return NULL;
    return tr->ring + slot;
}

/* Release every finished record that has waited hold_ns or more, with the
   finished ones before it; the open connections they pass are released
   late when they end (their windows approximate, counted in released_late). */
static int release_held(tracker_t *tr)
{
    while (tr->wait_len) {
        struct waiting *w = tr->waiting + tr->wait_head;
        int waiting = w->order >= tr->release_next;   /* not released yet */
        if (waiting && tr->now - w->since < tr->hold_ns)
            break;
        if (waiting && release_up_to(tr, w->order) < 0)
            return -1;
        tr->wait_head = (tr->wait_head + 1) % tr->wait_cap;
        tr->wait_len--;
    }
    return 0;
}

static int finish(tracker_t *tr, int32_t idx, uint8_t reason)
{
    flow_t *f = tr->flows + idx;
    int overtaken = f->order < tr->release_next;
    conn_t *c = slot_for(tr, f->order);
    if (!c)
        return -1;
    memset(c, 0, sizeof(*c));
    c->uid = f->uid;
    c->order = f->order;
    c->ts_first = f->ts_first;
    c->ts_last = f->ts_last;
    c->orig_hi = f->a_hi;
    c->orig_lo = f->a_lo;
    c->resp_hi = f->b_hi;
    c->resp_lo = f->b_lo;
    c->orig_p = f->a_p;
    c->resp_p = f->b_p;
    c->proto = f->proto;
    c->ip_ver = f->ip_ver;
    c->orig_pkts = f->pkts[0];
    c->resp_pkts = f->pkts[1];
    c->orig_ip_bytes = f->ip_bytes[0];
    c->resp_ip_bytes = f->ip_bytes[1];
    if (f->proto == 6) {
        c->orig_bytes = ep_size(&f->ep[0], &f->ep[1]);
        c->resp_bytes = ep_size(&f->ep[1], &f->ep[0]);
    } else {
        c->orig_bytes = f->bytes[0];
        c->resp_bytes = f->bytes[1];
    }
    c->conn_state = conn_state(f, c->orig_bytes, c->resp_bytes);
    c->orig_state = f->ep[0].state;
    c->resp_state = f->ep[1].state;
    c->first_frame = f->first_frame;
    c->urgent = f->urgent;
    c->wrong_fragment = f->wrong_frag;
    c->end_reason = reason;
    c->ftp_data = f->ftp_data;
    if (f->ct) {
        int holes[2] = {0, 0};
        content_finish(f->ct, tr->rules, holes);
        scaled_gaps(f, 0, holes[0]);
        scaled_gaps(f, 1, holes[1]);
        content_features(f->ct, c);
        content_free(f->ct);
        f->ct = NULL;
        tr->analyzed--;
    }
    c->hist_len = f->hist_len;
    memcpy(c->history, f->history, f->hist_len);

    table_remove(tr, idx);
    f->in_use = 0;
    tr->free_idx[tr->n_free++] = idx;
    tr->active--;
    return overtaken ? 0 : release_ready(tr);
}

/* Why a deadline fired: UDP/ICMP records can also end by lifetime. */
static uint8_t expiry_reason(const tracker_t *tr, const flow_t *f)
{
    if (f->proto != 6 && f->deadline == later(f->ts_first, tr->to.max_lifetime))
        return END_LIFETIME;
    return END_TIMEOUT;
}


/* ----------------------------------------------------------- eviction */

typedef struct {
    int64_t ts_last;
    uint64_t order;
    int32_t idx;
} idle_t;

static int idle_cmp(const void *a, const void *b)
{
    const idle_t *x = a, *y = b;
    if (x->ts_last != y->ts_last)
        return x->ts_last < y->ts_last ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

static int over_limit(const tracker_t *tr)
{
    return (tr->max_flows && tr->active >= tr->max_flows) ||
           (tr->max_bytes && tr->active * FLOW_BYTES + tr->analyzed * content_size() >= tr->max_bytes);
}

/* The table is full: finish the eighth of the connections idle longest
   (ties: the oldest first), each as a record with END_EVICTED.  One sweep
   per active/8 new connections keeps a flood's cost per packet constant. */
static int evict_idle(tracker_t *tr)
{
    size_t n = 0, want = tr->active / 8 ? tr->active / 8 : 1;
    idle_t *all = malloc(tr->active * sizeof(idle_t));
    if (!all)
        return -1;
    for (size_t i = 0; i < tr->flows_hw && n < tr->active; i++)
        if (tr->flows[i].in_use)
            all[n++] = (idle_t){tr->flows[i].ts_last, tr->flows[i].order, (int32_t)i};
    qsort(all, n, sizeof(idle_t), idle_cmp);
    int rc = 0;
    for (size_t k = 0; k < want && k < n && rc == 0; k++) {
        rc = finish(tr, all[k].idx, END_EVICTED);
        tr->evicted++;
    }
    free(all);
    return rc;
}

/* ------------------------------------------------------------ packets */

static int32_t create_flow(tracker_t *tr, const pkt_t *r, uint64_t h, int *dir)
{
    if (over_limit(tr) && evict_idle(tr) < 0)
        return -1;
    int32_t idx = flow_alloc(tr);
    if (idx < 0)
        return -1;
    flow_t *f = tr->flows + idx;
    memset(f, 0, sizeof(*f));
    f->hash = h;
    f->proto = r->proto;
    f->ip_ver = r->ip_ver;
    f->a_hi = r->src_hi;
    f->a_lo = r->src_lo;
    f->b_hi = r->dst_hi;
    f->b_lo = r->dst_lo;
    f->a_p = r->sport;
    f->b_p = r->dport;
    f->ts_first = f->ts_last = r->ts;
    f->attempt_ts = f->close_ts = -1;
    f->order = tr->next_order++;
    f->first_frame = r->frame;
    f->uid = mix64(tr->uid_seed ^ mix64((uint64_t)r->ts ^ mix64(r->src_lo ^ (r->dst_lo << 1) ^
                                                               r->src_hi ^ (r->dst_hi << 2)) ^
                                         ((uint64_t)r->sport << 32 | (uint64_t)r->dport << 16 |
                                          r->proto) ^ (f->order << 40)));
    for (int i = 0; i < 2; i++)
        f->ep[i].rxmt_thresh = f->ep[i].win0_thresh = f->ep[i].gap_thresh = 1;
    f->in_use = 1;

    int flip = 0;
    if (r->proto == 6) {
        uint8_t fl = r->tcp_flags;
        if (!(fl & TH_SYN) || (fl & TH_ACK)) {  /* starts without a pure SYN */
            if (tr->likely_tcp[r->sport]) {
                if (tr->likely_tcp[r->dport])
                    flip = !(fl & TH_SYN) && r->sport < r->dport;
                else
                    flip = 1;
            }
        }
    } else if (r->proto == 17) {
        flip = tr->likely_udp[r->sport] && !tr->likely_udp[r->dport];
    }
    *dir = 0;
    if (flip) {
        flip_roles(f);
        *dir = 1;
    }

    if (r->proto == 6 && tr->n_expected)
        f->ftp_data = (uint8_t)expected_connection(tr, f, r->ts);
    table_insert(tr, h, idx);
    tr->active++;
    return idx;
}

static int process_one(tracker_t *tr, const pkt_t *r)
{
    int dir = 0;
    uint64_t h = key_hash(tr, r->proto, r->src_hi, r->src_lo, r->sport, r->dst_hi, r->dst_lo,
                          r->dport);
    int32_t idx = table_find(tr, h, r, &dir);

    if (idx >= 0) {
        flow_t *f = tr->flows + idx;
        int reason = -1;
        if (r->ts >= f->deadline)
            reason = expiry_reason(tr, f);
        else if (f->proto == 6 && is_reuse(f, r))
            reason = END_REUSE;
        if (reason >= 0) {
            if (finish(tr, idx, (uint8_t)reason) < 0)
                return -1;
            idx = -1;
        }
    }
    if (idx < 0) {
        idx = create_flow(tr, r, h, &dir);
        if (idx < 0)
            return -1;
    }

    flow_t *f = tr->flows + idx;
    f->pkts[dir]++;
    f->ip_bytes[dir] += r->ip_len;
    f->wrong_frag += r->wrong_frag;
    if (r->proto == 6) {
        if (r->tcp_flags & TH_URG)
            f->urgent++;
        tcp_packet(f, dir, r);
        /* the direction may have flipped; payload in a RST is not stream data */
        int from_orig = f->a_hi == r->src_hi && f->a_lo == r->src_lo && f->a_p == r->sport;
        if (r->l4_len && !(r->tcp_flags & TH_RST) && analyze(tr, f, from_orig ? 0 : 1, r) < 0)
            return -1;
    } else {
        f->bytes[dir] += r->l4_len;
        if (r->proto == 17 && r->l4_len)
            check_history(f, dir, H_DATA, 'D');
        if (r->ts > f->ts_last)
            f->ts_last = r->ts;
    }
    f->deadline = flow_deadline(tr, f);
    return 0;
}

int tracker_process(tracker_t *tr, const pkt_t *rows, size_t n, const uint8_t *buf, size_t buflen)
{
    tr->buf = buf;
    tr->buflen = buflen;
    for (size_t i = 0; i < n; i++) {
        const pkt_t *r = rows + i;
        if (r->status != PKT_OK)
            continue;
        if (r->ts > tr->now)
            tr->now = r->ts;
        if (process_one(tr, r) < 0 || (tr->hold_ns && release_held(tr) < 0)) {
            tr->buf = NULL;
            return -1;
        }
    }
    tr->buf = NULL;  /* the buffer belongs to the caller */
    return 0;
}

int tracker_expire(tracker_t *tr, int64_t now)
{
    if (now > tr->now)
        tr->now = now;
    for (size_t i = 0; i < tr->flows_hw; i++) {
        flow_t *f = tr->flows + i;
        if (f->in_use && f->deadline <= now && finish(tr, (int32_t)i, expiry_reason(tr, f)) < 0)
            return -1;
    }
    return tr->hold_ns ? release_held(tr) : 0;
}

int tracker_flush(tracker_t *tr)
{
    for (size_t i = 0; i < tr->flows_hw; i++)
        if (tr->flows[i].in_use && finish(tr, (int32_t)i, END_FLUSH) < 0)
            return -1;
    return 0;
}

size_t tracker_held(const tracker_t *tr)
{
    return tr->held;
}

uint64_t tracker_released_late(const tracker_t *tr)
{
    return tr->released_late;
}

conn_t *tracker_output(tracker_t *tr, size_t *n)
{
    *n = tr->n_out;
    return tr->out;
}

void tracker_clear_output(tracker_t *tr)
{
    tr->n_out = 0;
}

void tracker_set_limits(tracker_t *tr, size_t max_flows, size_t max_bytes, int64_t hold_ns)
{
    tr->max_flows = max_flows;
    tr->max_bytes = max_bytes;
    tr->hold_ns = hold_ns > 0 ? hold_ns : 0;
}

uint64_t tracker_evicted(const tracker_t *tr)
{
    return tr->evicted;
}

size_t tracker_active(const tracker_t *tr)
{
    return tr->active;
}

size_t tracker_memory(const tracker_t *tr)
{
    return sizeof(*tr) + tr->flows_cap * (sizeof(flow_t) + sizeof(int32_t)) +
           tr->slot_cap * sizeof(uint64_t) + tr->out_cap * sizeof(conn_t) +
           tr->ring_cap * (sizeof(conn_t) + 1) + tr->analyzed * content_size();
}

tracker_t *tracker_new(const timeouts_t *t, const uint8_t *likely_tcp, const uint8_t *likely_udp,
                       uint64_t hash_seed, uint64_t uid_seed, size_t reorder_limit,
                       const uint8_t *analyzer_port, const uint8_t *rules, size_t rules_len,
                       uint32_t content_cap)
{
    tracker_t *tr = calloc(1, sizeof(*tr));
    if (!tr)
        return NULL;
    tr->rules = content_rules_new(rules, rules_len);
    if (!tr->rules) {
        free(tr);
        return NULL;
    }
    memcpy(tr->analyzer_port, analyzer_port, 65536);
    tr->content_cap = content_cap;
    tr->to = *t;
    memcpy(tr->likely_tcp, likely_tcp, 65536);
    memcpy(tr->likely_udp, likely_udp, 65536);
    tr->hash_seed = hash_seed;
    tr->uid_seed = uid_seed;
    tr->flows_cap = 1024;
    tr->flows = malloc(tr->flows_cap * sizeof(flow_t));
    tr->free_idx = malloc(tr->flows_cap * sizeof(int32_t));
    tr->out_cap = 1024;
    tr->out = malloc(tr->out_cap * sizeof(conn_t));
    tr->slot_cap = 4096;
    tr->slots = malloc(tr->slot_cap * sizeof(uint64_t));
    tr->ring_cap = 16;
    tr->ring_limit = tr->ring_cap;
    while (tr->ring_limit < reorder_limit)
        tr->ring_limit *= 2;
    tr->ring = malloc(tr->ring_cap * sizeof(conn_t));
    tr->ring_ready = calloc(tr->ring_cap, 1);
    if (!tr->flows || !tr->free_idx || !tr->out || !tr->slots || !tr->ring || !tr->ring_ready) {
        tracker_free(tr);
        return NULL;
    }
    memset(tr->slots, 0xFF, tr->slot_cap * sizeof(uint64_t));
    return tr;
}

void tracker_free(tracker_t *tr)
{
    if (!tr)
        return;
    for (size_t i = 0; i < tr->flows_hw; i++)
        if (tr->flows && tr->flows[i].in_use)
            content_free(tr->flows[i].ct);
    content_rules_free(tr->rules);
    free(tr->flows);
    free(tr->free_idx);
    free(tr->out);
    free(tr->slots);
    free(tr->ring);
    free(tr->ring_ready);
    free(tr->waiting);
    free(tr);
}
