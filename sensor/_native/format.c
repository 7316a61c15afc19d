/*
 * Record formatter: JSON lines or CSV from a list of column descriptions.
 *
 * Formatting a few hundred thousand records per second is out of reach of
 * per-record Python (json.dumps alone is ~5 us a record), so the output
 * stage describes its columns once (key, kind, where the values live) and
 * this loop writes every row.  Strings come from fixed tables; they are
 * escaped anyway, so a bad table can never break the JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"

static const char DIGITS2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline int decimal_digits(uint64_t v)
{
    int n = 1;
    while (v >= 10000) {
        v /= 10000;
        n += 4;
    }
    return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

/* Digits are written backwards straight into the output: no temporary
   and no variable-length copy. */
static inline char *put_u64(char *o, uint64_t v)
{
    int n = decimal_digits(v);
    char *p = o + n;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        *--p = DIGITS2[d + 1];
        *--p = DIGITS2[d];
    }
    if (v >= 10) {
        *--p = DIGITS2[v * 2 + 1];
        *--p = DIGITS2[v * 2];
    } else {
        *--p = (char)('0' + v);
    }
    return o + n;
}

static char *put_i64(char *o, int64_t v)
{
    if (v < 0) {
        *o++ = '-';
        return put_u64(o, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(o, (uint64_t)v);
}

static int64_t read_int(const uint8_t *p, char fmt)
{
    switch (fmt) {
    case 'b': { int8_t v; memcpy(&v, p, 1); return v; }
    case 'B': case '?': return *p;
    case 'h': { int16_t v; memcpy(&v, p, 2); return v; }
    case 'H': { uint16_t v; memcpy(&v, p, 2); return v; }
    case 'i': { int32_t v; memcpy(&v, p, 4); return v; }
    case 'I': { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }  /* 'q', 'Q' */
    }
}

static double read_float(const uint8_t *p, char fmt)
{
    if (fmt == 'f') {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (fmt == 'd') {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    return (double)read_int(p, fmt);
}

static char *put_fixed(char *o, double v, int decimals, int csv)
{
    static const double pow10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    if (decimals == 2 && v >= 0 && v <= 1) {  /* a rate: the common case, four fixed bytes */
        int h = (int)lrint(v * 100);
        o[0] = (char)('0' + h / 100);
        o[1] = '.';
        o[2] = DIGITS2[(h % 100) * 2];
        o[3] = DIGITS2[(h % 100) * 2 + 1];
        return o + 4;
    }
    if (!isfinite(v) || fabs(v) >= 9e15 / pow10[decimals]) {
        if (csv)
            return o;
        memcpy(o, "null", 4);
        return o + 4;
    }
    int64_t scaled = llround(v * pow10[decimals]);
    if (scaled < 0) {
        *o++ = '-';
        scaled = -scaled;
    }
    uint64_t ip = (uint64_t)scaled / (uint64_t)pow10[decimals];
    uint64_t fp = (uint64_t)scaled % (uint64_t)pow10[decimals];
    o = put_u64(o, ip);
    if (decimals) {
        *o++ = '.';
        for (int d = decimals - 1; d >= 0; d--) {
            o[d] = (char)('0' + fp % 10);
            fp /= 10;
        }
        o += decimals;
    }
    return o;
}

static char *put_ns_seconds(char *o, int64_t ns)
{
    if (ns < 0) {
        *o++ = '-';
        ns = -ns;
    }
    uint64_t us = ((uint64_t)ns + 500) / 1000;
    o = put_u64(o, us / 1000000);
    *o++ = '.';
    uint64_t frac = us % 1000000;
    for (int d = 5; d >= 0; d--) {
        o[d] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return o + 6;
}

static char *put_addr(char *o, uint64_t hi, uint64_t lo)
{
    static const char hex[] = "0123456789abcdef";
    if (hi == 0 && (lo >> 32) == 0xFFFF) {
        for (int i = 3; i >= 0; i--) {
            unsigned b = (unsigned)(lo >> (8 * i)) & 0xFF;
            if (b >= 100) {
                *o++ = (char)('0' + b / 100);
                *o++ = DIGITS2[(b % 100) * 2];
                *o++ = DIGITS2[(b % 100) * 2 + 1];
            } else if (b >= 10) {
                *o++ = DIGITS2[b * 2];
                *o++ = DIGITS2[b * 2 + 1];
            } else {
                *o++ = (char)('0' + b);
            }
            if (i)
                *o++ = '.';
        }
        return o;
    }
    uint16_t g[8];
    for (int i = 0; i < 4; i++) {
        g[i] = (uint16_t)(hi >> (48 - 16 * i));
        g[4 + i] = (uint16_t)(lo >> (48 - 16 * i));
    }
    /* RFC 5952: the longest run of two or more zero groups becomes "::" */
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (g[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *o++ = ':';
            *o++ = ':';
            i += best_len - 1;
            continue;
        }
        if (i && i != best + best_len)
            *o++ = ':';
        int started = 0;
        for (int s = 12; s >= 0; s -= 4) {
            int nib = (g[i] >> s) & 0xF;
            if (nib || started || s == 0) {
                *o++ = hex[nib];
                started = 1;
            }
        }
    }
    return o;
}

static char *put_uid(char *o, uint64_t v)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    *o++ = 'C';
    for (int i = 0; i < 11; i++) {
        *o++ = b62[v % 62];
        v /= 62;
    }
    return o;
}

/* Quoted JSON string (escaped), or a CSV field (quoted when needed). */
static char *put_string(char *o, const char *s, size_t n, int csv)
{
    static const char hex[] = "0123456789abcdef";
    if (csv) {
        int quote = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
                quote = 1;
        if (!quote) {
            memcpy(o, s, n);
            return o + n;
        }
        *o++ = '"';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                *o++ = '"';
            *o++ = s[i];
        }
        *o++ = '"';
        return o;
    }
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c >= 0x7F) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 0xF];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return o;
}

/* Keys and enum names are escaped once per call, not once per row, and
   each column is resolved to one operation. */
#define PAD 32  /* prepared strings are padded so short ones are copied with fixed moves */

enum op {
    OP_U8, OP_U16, OP_U32, OP_U64, OP_SIGNED, OP_RATE, OP_FIXED, OP_NS, OP_ENUM, OP_ADDR,
    OP_CHARS, OP_UID, OP_OPEN, OP_CLOSE
};

typedef struct {
    int op;
    char *lead;           /* what precedes the value: ,"key": (JSON) or , (CSV) */
    size_t lead_len;
    char **names;         /* OP_ENUM: rendered value per name */
    size_t *name_lens;
    size_t max_name;
} prepared_t;

static char *render(const char *s, size_t n, int csv, size_t *len)
{
    char *buf = calloc(1, n * 6 + 8 + PAD);  /* worst case: every byte a \u00XX escape */
    if (!buf)
        return NULL;
    *len = (size_t)(put_string(buf, s, n, csv) - buf);
    return buf;
}

/* Copy a prepared string; the output buffer has PAD bytes of slack. */
static inline char *put_prepared(char *o, const char *s, size_t n)
{
    if (n <= 16)
        memcpy(o, s, 16);
    else if (n <= PAD)
        memcpy(o, s, PAD);
    else
        memcpy(o, s, n);
    return o + n;
}

static void release(prepared_t *prep, const column_t *cols, size_t n_cols)
{
    if (!prep)
        return;
    for (size_t i = 0; i < n_cols; i++) {
        free(prep[i].lead);
        if (prep[i].names)
            for (size_t k = 0; k < cols[i].n_names; k++)
                free(prep[i].names[k]);
        free(prep[i].names);
        free(prep[i].name_lens);
    }
    free(prep);
}

static int op_of(const column_t *c)
{
    switch (c->kind) {
    case COL_INT:
        switch (c->fmt) {
        case 'B': case '?': return OP_U8;
        case 'H': return OP_U16;
        case 'I': return OP_U32;
        case 'Q': return OP_U64;
        default: return OP_SIGNED;
        }
    case COL_FIXED: return c->decimals == 2 && c->fmt == 'd' ? OP_RATE : OP_FIXED;
    case COL_NS_SECONDS: return OP_NS;
    case COL_ENUM: return OP_ENUM;
    case COL_ADDR: return OP_ADDR;
    case COL_CHARS: return OP_CHARS;
    case COL_UID: return OP_UID;
    case COL_OPEN: return OP_OPEN;
    default: return OP_CLOSE;
    }
}

static prepared_t *prepare(const column_t *cols, size_t n_cols, int csv)
{
    prepared_t *prep = calloc(n_cols + 1, sizeof(prepared_t));
    if (!prep)
        return NULL;
    int first = 1;  /* the next value opens a row or an object: no comma before it */
    for (size_t i = 0; i < n_cols; i++) {
        const column_t *c = cols + i;
        prepared_t *p = prep + i;
        p->op = op_of(c);
        if (p->op == OP_CLOSE) {
            first = 0;
            continue;
        }
        size_t len = 0;
        char *k;
        if (csv) {
            k = calloc(1, PAD + 1);
            if (k && !first && p->op != OP_OPEN)
                k[len++] = ',';
        } else {
            k = calloc(1, c->key_len * 6 + 8 + PAD);
            if (k) {
                if (!first)
                    k[len++] = ',';
                len = (size_t)(put_string(k + len, c->key, c->key_len, 0) - k);
                k[len++] = ':';
                if (p->op == OP_OPEN)
                    k[len++] = '{';
            }
        }
        if (!k)
            goto fail;
        p->lead = k;
        p->lead_len = len;
        if (p->op == OP_OPEN) {
            first = csv ? first : 1;
            continue;
        }
        first = 0;
        if (p->op == OP_ENUM) {
            p->names = calloc(c->n_names + 1, sizeof(char *));
            p->name_lens = calloc(c->n_names + 1, sizeof(size_t));
            if (!p->names || !p->name_lens)
                goto fail;
            for (size_t n = 0; n < c->n_names; n++) {
                p->names[n] = render(c->names[n], c->name_lens[n], csv, &p->name_lens[n]);
                if (!p->names[n])
                    goto fail;
                if (p->name_lens[n] > p->max_name)
                    p->max_name = p->name_lens[n];
            }
        }
    }
    return prep;
fail:
    release(prep, cols, n_cols);
    return NULL;
}

static size_t row_bound(const column_t *cols, const prepared_t *prep, size_t n_cols)
{
    size_t b = 4;
    for (size_t i = 0; i < n_cols; i++) {
        const column_t *c = cols + i;
        b += prep[i].lead_len + 4;
        switch (prep[i].op) {
        case OP_FIXED: b += 24; break;
        case OP_ADDR: b += 44; break;
        case OP_CHARS: b += c->width * 6 + 2; break;
        case OP_ENUM: b += prep[i].max_name + 3; break;
        default: b += 24; break;
        }
    }
    return b;
}

size_t format_row_bound(const column_t *cols, size_t n_cols)
{
    prepared_t *prep = prepare(cols, n_cols, 0);
    if (!prep)
        return 0;
    size_t b = row_bound(cols, prep, n_cols);
    release(prep, cols, n_cols);
    return b;
}

static inline char *quoted_if(char *o, int json)
{
    if (json)
        *o++ = '"';
    return o;
}

ptrdiff_t format_rows(const column_t *cols, size_t n_cols, size_t n_rows, int csv, char *out,
                      size_t out_cap)
{
    prepared_t *prep = prepare(cols, n_cols, csv);
    if (!prep)
        return -2;
    size_t bound = row_bound(cols, prep, n_cols);
    char *o = out;
    ptrdiff_t result = 0;
    int json = !csv;

    for (size_t r = 0; r < n_rows; r++) {
        if ((size_t)(o - out) + bound + PAD > out_cap) {
            result = -1;
            break;
        }
        if (json)
            *o++ = '{';
        for (size_t i = 0; i < n_cols; i++) {
            const column_t *c = cols + i;
            const prepared_t *p = prep + i;
            if (p->op == OP_CLOSE) {
                if (json)
                    *o++ = '}';
                continue;
            }
            o = put_prepared(o, p->lead, p->lead_len);
            const uint8_t *v = c->base + (ptrdiff_t)r * c->stride;
            switch (p->op) {
            case OP_U8: o = put_u64(o, *v); break;
            case OP_U16: { uint16_t x; memcpy(&x, v, 2); o = put_u64(o, x); break; }
            case OP_U32: { uint32_t x; memcpy(&x, v, 4); o = put_u64(o, x); break; }
            case OP_U64: { uint64_t x; memcpy(&x, v, 8); o = put_u64(o, x); break; }
            case OP_SIGNED: o = put_i64(o, read_int(v, c->fmt)); break;
            case OP_RATE: { double x; memcpy(&x, v, 8); o = put_fixed(o, x, 2, csv); break; }
            case OP_FIXED: o = put_fixed(o, read_float(v, c->fmt), c->decimals, csv); break;
            case OP_NS: o = put_ns_seconds(o, read_int(v, 'q')); break;
            case OP_ENUM: {
                uint64_t k = (uint64_t)read_int(v, c->fmt);
                if (k < c->n_names)
                    o = put_prepared(o, p->names[k], p->name_lens[k]);
                else
                    o = put_string(o, "?", 1, csv);
                break;
            }
            case OP_ADDR: {
                const uint8_t *v2 = c->base2 + (ptrdiff_t)r * c->stride2;
                o = quoted_if(o, json);
                o = put_addr(o, (uint64_t)read_int(v, 'Q'), (uint64_t)read_int(v2, 'Q'));
                o = quoted_if(o, json);
                break;
            }
            case OP_CHARS: {
                const uint8_t *v2 = c->base2 + (ptrdiff_t)r * c->stride2;
                size_t n = (size_t)read_int(v2, c->fmt2);
                o = put_string(o, (const char *)v, n < c->width ? n : c->width, csv);
                break;
            }
            case OP_UID:
                o = quoted_if(o, json);
                o = put_uid(o, (uint64_t)read_int(v, 'Q'));
                o = quoted_if(o, json);
                break;
            default:  /* OP_OPEN: its lead opened the object */
                break;
            }
        }
        if (json)
            *o++ = '}';
        *o++ = '\n';
    }
    release(prep, cols, n_cols);
    return result < 0 ? result : o - out;
}
