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
#include <string.h>

#include "fastpath.h"

static char *put_u64(char *o, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

static char *put_i64(char *o, int64_t v)
{
    if (v < 0) {
        *o++ = '-';
        return put_u64(o, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(o, (uint64_t)v);
}

static int is_signed(char fmt)
{
    return fmt == 'b' || fmt == 'h' || fmt == 'i' || fmt == 'q';
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
            o = put_u64(o, (lo >> (8 * i)) & 0xFF);
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

size_t format_row_bound(const column_t *cols, size_t n_cols)
{
    size_t b = 4;
    for (size_t i = 0; i < n_cols; i++) {
        const column_t *c = cols + i;
        b += c->key_len * 6 + 8;
        switch (c->kind) {
        case COL_FIXED: b += 24; break;
        case COL_ADDR: b += 48; break;
        case COL_CHARS: b += c->width * 6 + 4; break;
        case COL_ENUM: {
            size_t m = 1;
            for (size_t k = 0; k < c->n_names; k++)
                if (c->name_lens[k] > m)
                    m = c->name_lens[k];
            b += m * 6 + 4;
            break;
        }
        default: b += 28; break;
        }
    }
    return b;
}

ptrdiff_t format_rows(const column_t *cols, size_t n_cols, size_t n_rows, int csv, char *out,
                      size_t out_cap)
{
    size_t bound = format_row_bound(cols, n_cols);
    char *o = out;

    for (size_t r = 0; r < n_rows; r++) {
        if ((size_t)(o - out) + bound > out_cap)
            return -1;
        int first = 1;
        if (!csv)
            *o++ = '{';
        for (size_t i = 0; i < n_cols; i++) {
            const column_t *c = cols + i;
            if (c->kind == COL_OPEN || c->kind == COL_CLOSE) {
                if (csv)
                    continue;  /* CSV is flat */
                if (c->kind == COL_CLOSE) {
                    *o++ = '}';
                    first = 0;
                    continue;
                }
                if (!first)
                    *o++ = ',';
                o = put_string(o, c->key, c->key_len, 0);
                *o++ = ':';
                *o++ = '{';
                first = 1;
                continue;
            }
            if (!first)
                *o++ = ',';
            first = 0;
            if (!csv) {
                o = put_string(o, c->key, c->key_len, 0);
                *o++ = ':';
            }
            const uint8_t *v = c->base + (ptrdiff_t)r * c->stride;
            switch (c->kind) {
            case COL_INT:
                o = is_signed(c->fmt) ? put_i64(o, read_int(v, c->fmt))
                                      : put_u64(o, (uint64_t)read_int(v, c->fmt));
                break;
            case COL_FIXED:
                o = put_fixed(o, read_float(v, c->fmt), c->decimals, csv);
                break;
            case COL_NS_SECONDS:
                o = put_ns_seconds(o, read_int(v, 'q'));
                break;
            case COL_ENUM: {
                uint64_t k = (uint64_t)read_int(v, c->fmt);
                if (k < c->n_names)
                    o = put_string(o, c->names[k], c->name_lens[k], csv);
                else
                    o = put_string(o, "?", 1, csv);
                break;
            }
            case COL_ADDR: {
                const uint8_t *v2 = c->base2 + (ptrdiff_t)r * c->stride2;
                if (!csv)
                    *o++ = '"';
                o = put_addr(o, (uint64_t)read_int(v, 'Q'), (uint64_t)read_int(v2, 'Q'));
                if (!csv)
                    *o++ = '"';
                break;
            }
            case COL_CHARS: {
                const uint8_t *v2 = c->base2 + (ptrdiff_t)r * c->stride2;
                size_t n = (size_t)read_int(v2, c->fmt2);
                if (n > c->width)
                    n = c->width;
                o = put_string(o, (const char *)v, n, csv);
                break;
            }
            case COL_UID:
                if (!csv)
                    *o++ = '"';
                o = put_uid(o, (uint64_t)read_int(v, 'Q'));
                if (!csv)
                    *o++ = '"';
                break;
            default:
                break;
            }
        }
        if (!csv)
            *o++ = '}';
        *o++ = '\n';
    }
    return o - out;
}
