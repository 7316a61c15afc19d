/*
 * KDD traffic features 23-41: the 2-second window and the host window.
 *
 * Records arrive in start order (the tracker releases them so); each one
 * is judged against the records before it, then joins the windows.  All
 * counts are kept incrementally (added on insert, subtracted on expiry),
 * including the number of distinct services per host and of distinct
 * hosts per service, so a record costs O(1).
 *
 * The definitions are the ones the KDD rows support (docs/features.md):
 *  - time window: records to the same host / with the same service whose
 *    start lies in (t - 2 s, t], the current record included;
 *  - host window: the last N records before this one (N = 256), sliced by
 *    destination host and by service; dst_host_count and
 *    dst_host_srv_count count those earlier records, but the rates are
 *    taken over a set of the same size holding the current record and the
 *    most recent earlier ones (the current record replaces the oldest);
 *  - "diff" rates count distinct values (services, hosts), the current
 *    record's own included, and are 0 when only one value occurs.
 * Alternatives stay selectable: complement diff rates, and host-window
 * rates over the earlier records only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"

#define NO_REC UINT32_MAX

/* ----------------------------------------------------- small hash maps */

/* uint64 key -> two counters; key 0 is reserved (callers add 1). */
typedef struct {
    uint64_t key;
    uint32_t a, b;
} pair_t;

typedef struct {
    pair_t *e;
    size_t cap, n;
} pairmap_t;

static inline uint64_t mixk(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

static int pm_init(pairmap_t *m, size_t cap)
{
    m->e = calloc(cap, sizeof(pair_t));
    m->cap = cap;
    m->n = 0;
    return m->e ? 0 : -1;
}

static pair_t *pm_find(const pairmap_t *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    for (size_t i = mixk(key) & mask;; i = (i + 1) & mask) {
        if (m->e[i].key == key)
            return m->e + i;
        if (!m->e[i].key)
            return NULL;
    }
}

static int pm_grow(pairmap_t *m)
{
    pairmap_t bigger;
    if (pm_init(&bigger, m->cap * 2) < 0)
        return -1;
    size_t mask = bigger.cap - 1;
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->e[j].key)
            continue;
        size_t i = mixk(m->e[j].key) & mask;
        while (bigger.e[i].key)
            i = (i + 1) & mask;
        bigger.e[i] = m->e[j];
    }
    bigger.n = m->n;
    free(m->e);
    *m = bigger;
    return 0;
}

static pair_t *pm_get(pairmap_t *m, uint64_t key)
{
    pair_t *p = pm_find(m, key);
    if (p)
        return p;
    if ((m->n + 1) * 2 > m->cap && pm_grow(m) < 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = mixk(key) & mask;
    while (m->e[i].key)
        i = (i + 1) & mask;
    m->e[i].key = key;
    m->e[i].a = m->e[i].b = 0;
    m->n++;
    return m->e + i;
}

/* Remove an entry whose counters are both zero (backward-shift deletion). */
static void pm_drop_if_empty(pairmap_t *m, pair_t *p)
{
    if (p->a || p->b)
        return;
    size_t mask = m->cap - 1;
    size_t i = (size_t)(p - m->e), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->e[j].key)
            break;
        size_t home = mixk(m->e[j].key) & mask;
        int move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            m->e[i] = m->e[j];
            i = j;
        }
    }
    m->e[i].key = 0;
    m->n--;
}

/* ------------------------------------------------------------- state */

enum { ERR_S = 1, ERR_R = 2 };

typedef struct {
    uint64_t hi, lo;
    /* time window */
    uint32_t tw_count, tw_serror, tw_rerror, tw_services;
    /* host window */
    uint32_t hw_count, hw_serror, hw_rerror, hw_services;
    uint32_t hw_head, hw_tail;  /* oldest and newest ring slot to this host */
    int32_t next_free;
} host_t;

typedef struct {
    uint32_t tw_count, tw_serror, tw_rerror, tw_hosts;
    uint32_t hw_count, hw_serror, hw_rerror, hw_hosts;
    uint32_t hw_head, hw_tail;
} service_t;

typedef struct {          /* time window entry */
    int64_t ts;
    uint32_t host;
    uint8_t srv, err;
} tentry_t;

typedef struct {          /* host window (ring) entry */
    uint32_t host, next_host, next_srv;
    uint16_t sport;
    uint8_t srv, err;
} hentry_t;

struct windows {
    window_cfg_t cfg;
    uint64_t hash_seed;
    /* hosts: open addressing on the address, payload array with a free list */
    host_t *hosts;
    uint32_t hosts_cap, hosts_hw;
    int32_t free_host;
    uint32_t *host_slots;   /* index + 1; 0 empty */
    size_t host_slot_cap, live_hosts;
    service_t services[256];
    pairmap_t pairs;        /* (host, service): a = time window, b = host window */
    pairmap_t ports;        /* (host, source port): b = host window */
    tentry_t *tw;           /* ring of time-window entries */
    size_t tw_cap, tw_head, tw_n;
    hentry_t *hw;           /* ring of the last N records */
    size_t hw_n, hw_head;
};

/* ------------------------------------------------------------- hosts */

static uint64_t host_hash(const windows_t *w, uint64_t hi, uint64_t lo)
{
    return mixk(mixk(w->hash_seed ^ hi) ^ lo);
}

static int hosts_rehash(windows_t *w, size_t cap)
{
    uint32_t *slots = calloc(cap, sizeof(uint32_t));
    if (!slots)
        return -1;
    for (uint32_t id = 0; id < w->hosts_hw; id++) {
        host_t *h = w->hosts + id;
        if (h->next_free != -2)
            continue;
        size_t i = host_hash(w, h->hi, h->lo) & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = id + 1;
    }
    free(w->host_slots);
    w->host_slots = slots;
    w->host_slot_cap = cap;
    return 0;
}

/* The host's id, created on first sight; UINT32_MAX when memory ran out. */
static uint32_t host_get(windows_t *w, uint64_t hi, uint64_t lo)
{
    size_t mask = w->host_slot_cap - 1;
    size_t i = host_hash(w, hi, lo) & mask;
    for (; w->host_slots[i]; i = (i + 1) & mask) {
        host_t *h = w->hosts + (w->host_slots[i] - 1);
        if (h->hi == hi && h->lo == lo)
            return w->host_slots[i] - 1;
    }
    if ((w->live_hosts + 1) * 2 > w->host_slot_cap) {
        if (hosts_rehash(w, w->host_slot_cap * 2) < 0)
            return UINT32_MAX;
        return host_get(w, hi, lo);
    }
    uint32_t id;
    if (w->free_host >= 0) {
        id = (uint32_t)w->free_host;
        w->free_host = w->hosts[id].next_free;
    } else {
        if (w->hosts_hw == w->hosts_cap) {
            host_t *hosts = realloc(w->hosts, (size_t)w->hosts_cap * 2 * sizeof(host_t));
            if (!hosts)
                return UINT32_MAX;
            w->hosts = hosts;
            w->hosts_cap *= 2;
        }
        id = w->hosts_hw++;
    }
    host_t *h = w->hosts + id;
    memset(h, 0, sizeof(*h));
    h->hi = hi;
    h->lo = lo;
    h->hw_head = h->hw_tail = NO_REC;
    h->next_free = -2;  /* live */
    w->host_slots[i] = id + 1;
    w->live_hosts++;
    return id;
}

/* Forget a host no window refers to any more. */
static void host_release(windows_t *w, uint32_t id)
{
    host_t *h = w->hosts + id;
    if (h->tw_count || h->hw_count)
        return;
    size_t mask = w->host_slot_cap - 1;
    size_t i = host_hash(w, h->hi, h->lo) & mask;
    while (w->host_slots[i] != id + 1)
        i = (i + 1) & mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t e = w->host_slots[j];
        if (!e)
            break;
        host_t *o = w->hosts + (e - 1);
        size_t home = host_hash(w, o->hi, o->lo) & mask;
        int move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            w->host_slots[i] = e;
            i = j;
        }
    }
    w->host_slots[i] = 0;
    h->next_free = w->free_host;
    w->free_host = (int32_t)id;
    w->live_hosts--;
}

static inline uint64_t pair_key(uint32_t host, uint32_t x)
{
    return ((uint64_t)host << 16 | x) + 1;
}

/* ------------------------------------------------------- time window */

static pair_t *tw_add(windows_t *w, uint32_t host, uint8_t srv, uint8_t err)
{
    pair_t *p = pm_get(&w->pairs, pair_key(host, srv));
    if (!p)
        return NULL;
    host_t *h = w->hosts + host;
    service_t *s = w->services + srv;
    if (p->a++ == 0) {
        h->tw_services++;
        s->tw_hosts++;
    }
    h->tw_count++;
    s->tw_count++;
    h->tw_serror += !!(err & ERR_S);
    s->tw_serror += !!(err & ERR_S);
    h->tw_rerror += !!(err & ERR_R);
    s->tw_rerror += !!(err & ERR_R);
    return p;
}

static void tw_remove_front(windows_t *w)
{
    tentry_t *e = w->tw + w->tw_head;
    host_t *h = w->hosts + e->host;
    service_t *s = w->services + e->srv;
    pair_t *p = pm_find(&w->pairs, pair_key(e->host, e->srv));
    if (--p->a == 0) {
        h->tw_services--;
        s->tw_hosts--;
    }
    pm_drop_if_empty(&w->pairs, p);
    h->tw_count--;
    s->tw_count--;
    h->tw_serror -= !!(e->err & ERR_S);
    s->tw_serror -= !!(e->err & ERR_S);
    h->tw_rerror -= !!(e->err & ERR_R);
    s->tw_rerror -= !!(e->err & ERR_R);
    host_release(w, e->host);
    w->tw_head = (w->tw_head + 1) % w->tw_cap;
    w->tw_n--;
}

/* ------------------------------------------------------- host window */

static int hw_append(windows_t *w, uint32_t host, uint8_t srv, uint16_t sport, uint8_t err)
{
    pair_t *p = pm_get(&w->pairs, pair_key(host, srv));
    pair_t *q = p ? pm_get(&w->ports, pair_key(host, sport)) : NULL;
    if (!q)
        return -1;
    size_t slot = (w->hw_head + w->hw_n) % w->cfg.host_window;
    hentry_t *e = w->hw + slot;
    e->host = host;
    e->srv = srv;
    e->sport = sport;
    e->err = err;
    e->next_host = e->next_srv = NO_REC;
    host_t *h = w->hosts + host;
    service_t *s = w->services + srv;
    if (h->hw_tail != NO_REC)
        w->hw[h->hw_tail].next_host = (uint32_t)slot;
    else
        h->hw_head = (uint32_t)slot;
    h->hw_tail = (uint32_t)slot;
    if (s->hw_tail != NO_REC)
        w->hw[s->hw_tail].next_srv = (uint32_t)slot;
    else
        s->hw_head = (uint32_t)slot;
    s->hw_tail = (uint32_t)slot;
    if (p->b++ == 0) {
        h->hw_services++;
        s->hw_hosts++;
    }
    q->b++;
    h->hw_count++;
    s->hw_count++;
    h->hw_serror += !!(err & ERR_S);
    s->hw_serror += !!(err & ERR_S);
    h->hw_rerror += !!(err & ERR_R);
    s->hw_rerror += !!(err & ERR_R);
    w->hw_n++;
    return 0;
}

/* The oldest record leaves the ring; it heads both its host's and its
   service's list, since the ring is first in, first out. */
static void hw_remove_oldest(windows_t *w)
{
    size_t slot = w->hw_head;
    hentry_t *e = w->hw + slot;
    host_t *h = w->hosts + e->host;
    service_t *s = w->services + e->srv;
    h->hw_head = e->next_host;
    if (h->hw_head == NO_REC)
        h->hw_tail = NO_REC;
    s->hw_head = e->next_srv;
    if (s->hw_head == NO_REC)
        s->hw_tail = NO_REC;
    pair_t *p = pm_find(&w->pairs, pair_key(e->host, e->srv));
    if (--p->b == 0) {
        h->hw_services--;
        s->hw_hosts--;
    }
    pm_drop_if_empty(&w->pairs, p);
    pair_t *q = pm_find(&w->ports, pair_key(e->host, e->sport));
    q->b--;
    pm_drop_if_empty(&w->ports, q);
    h->hw_count--;
    s->hw_count--;
    h->hw_serror -= !!(e->err & ERR_S);
    s->hw_serror -= !!(e->err & ERR_S);
    h->hw_rerror -= !!(e->err & ERR_R);
    s->hw_rerror -= !!(e->err & ERR_R);
    host_release(w, e->host);
    w->hw_head = (w->hw_head + 1) % w->cfg.host_window;
    w->hw_n--;
}

/* ------------------------------------------------------------- rates */

/* k / n as the KDD files have it: computed in single precision, then
   printed with printf("%.2f"), which rounds the exact binary value (ties
   to even).  Single precision is not a guess: with it every rate in the
   953,567 labelled rows is a value some k/n can take; in double precision
   hundreds are not (1/200, say, is 0.01 in double and 0.00 in the data). */
static double rate_exact(double k, double n);

#define RATE_TABLE_N 512
static double *rate_table;  /* [n * (n + 1) / 2 + k] for n < RATE_TABLE_N */

static inline double rate(uint32_t k, uint32_t n)
{
    if (n < RATE_TABLE_N && k <= n && rate_table)
        return rate_table[(size_t)n * (n + 1) / 2 + k];
    return rate_exact(k, n);
}

double kdd_rate(double k, double n)
{
    if (k >= 0 && n >= 0 && k <= n && n < RATE_TABLE_N && k == (uint32_t)k && n == (uint32_t)n)
        return rate((uint32_t)k, (uint32_t)n);
    return rate_exact(k, n);
}

static void rate_table_init(void)
{
    if (rate_table)
        return;
    double *t = malloc(sizeof(double) * RATE_TABLE_N * (RATE_TABLE_N + 1) / 2);
    if (!t)
        return;  /* the exact computation still works */
    for (size_t n = 0; n < RATE_TABLE_N; n++)
        for (size_t k = 0; k <= n; k++)
            t[n * (n + 1) / 2 + k] = rate_exact((double)k, (double)n);
    rate_table = t;
}

static double rate_exact(double k, double n)
{
    if (n <= 0)
        return 0.0;
    double q = (double)((float)k / (float)n);
    double m = floor(q * 100.0);
    /* compare q with the midpoint (2m + 1) / 200 exactly: fma rounds once */
    double t = fma(q, 200.0, -(2.0 * m + 1.0));
    double r = m;
    if (t > 0 || (t == 0 && fmod(m, 2.0) != 0))
        r = m + 1;
    return r / 100.0;
}

static double distinct_rate(uint32_t distinct, uint32_t n)
{
    return distinct <= 1 ? 0.0 : rate(distinct, n);
}

static uint16_t cap16(uint32_t v, uint32_t cap)
{
    return (uint16_t)(v > cap ? cap : v);
}

/* ------------------------------------------------------------ record */

typedef struct {       /* one record, as the windows see it */
    int64_t ts;        /* connection start */
    uint64_t host_hi, host_lo;
    uint16_t sport;
    uint8_t service, flag;
} wrec_t;

static int one_record(windows_t *w, const wrec_t *r, winfeat_t *o)
{
    const window_cfg_t *cfg = &w->cfg;
    uint8_t err = (uint8_t)(((cfg->serror_flags >> r->flag) & 1) * ERR_S |
                            ((cfg->rerror_flags >> r->flag) & 1) * ERR_R);
    uint8_t srv = r->service;

    /* time window: (t - W, t], this record included.  Expire first: a host
       left with no record is released, and must not be this record's. */
    while (w->tw_n && (w->tw[w->tw_head].ts <= r->ts - cfg->time_window || w->tw_n == w->tw_cap))
        tw_remove_front(w);
    uint32_t host = host_get(w, r->host_hi, r->host_lo);
    if (host == UINT32_MAX)
        return -1;
    pair_t *p = tw_add(w, host, srv, err);  /* (host, service): valid until the map next changes */
    if (!p)
        return -1;
    tentry_t *te = w->tw + (w->tw_head + w->tw_n) % w->tw_cap;
    te->ts = r->ts;
    te->host = host;
    te->srv = srv;
    te->err = err;
    w->tw_n++;

    host_t *h = w->hosts + host;
    service_t *s = w->services + srv;
    uint32_t count = h->tw_count, srv_count = s->tw_count;
    o->count = cap16(count, cfg->count_cap);
    o->srv_count = cap16(srv_count, cfg->count_cap);
    o->serror_rate = rate(h->tw_serror, count);
    o->rerror_rate = rate(h->tw_rerror, count);
    o->srv_serror_rate = rate(s->tw_serror, srv_count);
    o->srv_rerror_rate = rate(s->tw_rerror, srv_count);
    o->same_srv_rate = rate(p->a, count);
    if (cfg->complement_diff) {
        o->diff_srv_rate = rate(count - p->a, count);
        o->srv_diff_host_rate = rate(srv_count - p->a, srv_count);
    } else {
        o->diff_srv_rate = distinct_rate(h->tw_services, count);
        o->srv_diff_host_rate = distinct_rate(s->tw_hosts, srv_count);
    }

    /* host window: the last N records before this one */
    uint32_t dhc = h->hw_count, dhsc = s->hw_count;
    o->dst_host_count = cap16(dhc, cfg->host_count_cap);
    o->dst_host_srv_count = cap16(dhsc, cfg->host_count_cap);
    pair_t *hp = p;
    pair_t *pp = pm_find(&w->ports, pair_key(host, r->sport));
    uint32_t same_srv = hp->b, same_port = pp ? pp->b : 0, same_host = hp->b;
    uint32_t h_serr = h->hw_serror, h_rerr = h->hw_rerror, h_services = h->hw_services;
    uint32_t s_serr = s->hw_serror, s_rerr = s->hw_rerror, s_hosts = s->hw_hosts;
    if (!cfg->earlier_only && dhc) {
        /* the current record takes the place of the host's oldest */
        const hentry_t *old = w->hw + h->hw_head;
        pair_t *op = pm_find(&w->pairs, pair_key(host, old->srv));
        h_services -= op->b == 1;
        same_srv -= old->srv == srv;
        h_services += same_srv == 0;
        same_srv += 1;
        same_port += 1 - (old->sport == r->sport);
        h_serr += !!(err & ERR_S) - !!(old->err & ERR_S);
        h_rerr += !!(err & ERR_R) - !!(old->err & ERR_R);
    }
    if (!cfg->earlier_only && dhsc) {
        /* and of the service's oldest */
        const hentry_t *old = w->hw + s->hw_head;
        pair_t *op = pm_find(&w->pairs, pair_key(old->host, srv));
        same_host = hp->b - (old->host == host);
        s_hosts -= op->b == 1;
        s_hosts += same_host == 0;
        same_host += 1;
        s_serr += !!(err & ERR_S) - !!(old->err & ERR_S);
        s_rerr += !!(err & ERR_R) - !!(old->err & ERR_R);
    }
    o->dst_host_same_srv_rate = rate(same_srv, dhc);
    o->dst_host_same_src_port_rate = rate(same_port, dhc);
    o->dst_host_serror_rate = rate(h_serr, dhc);
    o->dst_host_rerror_rate = rate(h_rerr, dhc);
    o->dst_host_srv_serror_rate = rate(s_serr, dhsc);
    o->dst_host_srv_rerror_rate = rate(s_rerr, dhsc);
    if (cfg->complement_diff) {
        o->dst_host_diff_srv_rate = rate(dhc - same_srv, dhc);
        o->dst_host_srv_diff_host_rate = rate(dhsc - same_host, dhsc);
    } else {
        o->dst_host_diff_srv_rate = dhc ? distinct_rate(h_services, dhc) : 0.0;
        o->dst_host_srv_diff_host_rate = dhsc ? distinct_rate(s_hosts, dhsc) : 0.0;
    }

    if (w->hw_n == cfg->host_window)
        hw_remove_oldest(w);
    return hw_append(w, host, srv, r->sport, err);
}

int windows_process(windows_t *w, const conn_t *conns, size_t n, uint8_t *feats, size_t stride,
                    size_t service_at, size_t flag_at, size_t winfeat_at)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *row = feats + i * stride;
        /* the destination is the responder, the source port the originator's */
        wrec_t r = {conns[i].ts_first, conns[i].resp_hi, conns[i].resp_lo, conns[i].orig_p,
                    row[service_at], row[flag_at]};
        winfeat_t f;
        memset(&f, 0, sizeof(f));
        if (one_record(w, &r, &f) < 0)
            return -1;
        memcpy(row + winfeat_at, &f, sizeof(f));
    }
    return 0;
}

size_t windows_memory(const windows_t *w)
{
    return sizeof(*w) + w->hosts_cap * sizeof(host_t) + w->host_slot_cap * sizeof(uint32_t) +
           (w->pairs.cap + w->ports.cap) * sizeof(pair_t) + w->tw_cap * sizeof(tentry_t) +
           w->cfg.host_window * sizeof(hentry_t);
}

windows_t *windows_new(const window_cfg_t *cfg, uint64_t hash_seed)
{
    windows_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    rate_table_init();
    w->cfg = *cfg;
    if (w->cfg.host_window < 1)
        w->cfg.host_window = 1;
    w->hash_seed = hash_seed;
    w->hosts_cap = 1024;
    w->hosts = malloc(w->hosts_cap * sizeof(host_t));
    w->free_host = -1;
    w->host_slot_cap = 2048;
    w->host_slots = calloc(w->host_slot_cap, sizeof(uint32_t));
    w->tw_cap = cfg->time_max_records ? cfg->time_max_records : 1;
    w->tw = malloc(w->tw_cap * sizeof(tentry_t));
    w->hw = malloc(w->cfg.host_window * sizeof(hentry_t));
    for (int i = 0; i < 256; i++)
        w->services[i].hw_head = w->services[i].hw_tail = NO_REC;
    if (!w->hosts || !w->host_slots || !w->tw || !w->hw || pm_init(&w->pairs, 1024) < 0 ||
        pm_init(&w->ports, 1024) < 0) {
        windows_free(w);
        return NULL;
    }
    return w;
}

void windows_free(windows_t *w)
{
    if (!w)
        return;
    free(w->hosts);
    free(w->host_slots);
    free(w->pairs.e);
    free(w->ports.e);
    free(w->tw);
    free(w->hw);
    free(w);
}
