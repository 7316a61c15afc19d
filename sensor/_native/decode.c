/*
 * Per-packet header decode: link layer -> IPv4/IPv6 (+ extension headers,
 * fragments) -> TCP/UDP/ICMP/ICMPv6.  Fills the header columns of pkt_t
 * rows in place.  Lengths come from the IP header, not from the captured
 * length, so snaplen-truncated captures still give true byte counts.
 */
#include <string.h>

#include "fastpath.h"

/* link types (https://www.tcpdump.org/linktypes.html) */
#define LT_NULL 0
#define LT_ETHERNET 1
#define LT_PPP 9
#define LT_RAW_OPENBSD 12
#define LT_RAW_BSDOS 14
#define LT_PPP_HDLC 50
#define LT_RAW 101
#define LT_C_HDLC 104
#define LT_IEEE802_11 105
#define LT_LOOP 108
#define LT_LINUX_SLL 113
#define LT_IEEE802_11_RADIOTAP 127
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_LINUX_SLL2 276

#define ET_IPV4 0x0800
#define ET_IPV6 0x86DD
#define ET_VLAN 0x8100
#define ET_QINQ 0x88A8
#define ET_QINQ_OLD1 0x9100
#define ET_QINQ_OLD2 0x9200
#define ET_PPPOE_SESSION 0x8864
#define ET_MPLS_UC 0x8847
#define ET_MPLS_MC 0x8848

#define V4_MAPPED_HI 0x0000FFFF00000000ull

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[1] << 8 | p[0]); }

/* Where the network layer starts, and what it claims to be. */
typedef struct {
    int status;        /* PKT_OK when l3 was found */
    uint32_t off;      /* offset of the IP header */
    int version;       /* 4, 6, or 0 = decide from the version nibble */
} l3_t;

static l3_t l3_result(int status, uint32_t off, int version)
{
    l3_t r = {status, off, version};
    return r;
}

static int version_for_ethertype(uint16_t et)
{
    if (et == ET_IPV4)
        return 4;
    if (et == ET_IPV6)
        return 6;
    return -1;
}

/* Ethertype chain: VLAN stacks (802.1Q/802.1ad), PPPoE session, MPLS,
   802.3 LLC/SNAP.  `et` is the type field that precedes `off`. */
static l3_t after_ethertype(const uint8_t *p, uint32_t len, uint32_t off, uint16_t et)
{
    for (int depth = 0; depth < 16; depth++) {
        switch (et) {
        case ET_VLAN:
        case ET_QINQ:
        case ET_QINQ_OLD1:
        case ET_QINQ_OLD2:
            if (len < off + 4)
                return l3_result(PKT_TRUNC_LINK, 0, 0);
            et = be16(p + off + 2);
            off += 4;
            continue;
        case ET_PPPOE_SESSION: {
            if (len < off + 8)
                return l3_result(PKT_TRUNC_LINK, 0, 0);
            uint16_t ppp = be16(p + off + 6);
            off += 8;
            if (ppp == 0x0021)
                return l3_result(PKT_OK, off, 4);
            if (ppp == 0x0057)
                return l3_result(PKT_OK, off, 6);
            return l3_result(PKT_NOT_IP, 0, 0);
        }
        case ET_MPLS_UC:
        case ET_MPLS_MC:
            for (;;) {
                if (len < off + 4)
                    return l3_result(PKT_TRUNC_LINK, 0, 0);
                int bottom = p[off + 2] & 1;
                off += 4;
                if (bottom)
                    break;
            }
            return l3_result(PKT_OK, off, 0);
        default:
            break;
        }
        if (et < 0x0600) {  /* 802.3 length field: LLC follows */
            if (len < off + 8)
                return l3_result(PKT_NOT_IP, 0, 0);
            if (p[off] == 0xAA && p[off + 1] == 0xAA && p[off + 2] == 0x03) {
                et = be16(p + off + 6);
                off += 8;
                continue;
            }
            return l3_result(PKT_NOT_IP, 0, 0);
        }
        int v = version_for_ethertype(et);
        if (v < 0)
            return l3_result(PKT_NOT_IP, 0, 0);
        return l3_result(PKT_OK, off, v);
    }
    return l3_result(PKT_NOT_IP, 0, 0);
}

static l3_t ieee80211(const uint8_t *p, uint32_t len, uint32_t off)
{
    if (len < off + 24)
        return l3_result(PKT_TRUNC_LINK, 0, 0);
    uint8_t fc0 = p[off], fc1 = p[off + 1];
    int type = (fc0 >> 2) & 3, subtype = fc0 >> 4;
    if (type != 2)                  /* management or control */
        return l3_result(PKT_WLAN_SKIPPED, 0, 0);
    if (subtype & 0x4)              /* null data: no body */
        return l3_result(PKT_WLAN_SKIPPED, 0, 0);
    if (fc1 & 0x40)                 /* protected: encrypted body */
        return l3_result(PKT_WLAN_SKIPPED, 0, 0);
    uint32_t hdr = ((fc1 & 3) == 3) ? 30 : 24;
    if (subtype & 0x8) {            /* QoS data */
        if (len < off + hdr + 2)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        if (p[off + hdr] & 0x80)    /* A-MSDU aggregate: not decoded */
            return l3_result(PKT_WLAN_SKIPPED, 0, 0);
        hdr += 2;
        if (fc1 & 0x80)             /* +HTC */
            hdr += 4;
    }
    off += hdr;
    if (len < off + 8)
        return l3_result(PKT_TRUNC_LINK, 0, 0);
    if (p[off] != 0xAA || p[off + 1] != 0xAA || p[off + 2] != 0x03)
        return l3_result(PKT_NOT_IP, 0, 0);
    int v = version_for_ethertype(be16(p + off + 6));
    if (v < 0)
        return l3_result(PKT_NOT_IP, 0, 0);
    return l3_result(PKT_OK, off + 8, v);
}

static l3_t ppp(const uint8_t *p, uint32_t len, uint32_t off)
{
    if (len >= off + 2 && p[off] == 0xFF && p[off + 1] == 0x03)
        off += 2;
    if (len < off + 1)
        return l3_result(PKT_TRUNC_LINK, 0, 0);
    uint16_t proto;
    if (p[off] & 1) {               /* compressed one-byte protocol field */
        proto = p[off];
        off += 1;
    } else {
        if (len < off + 2)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        proto = be16(p + off);
        off += 2;
    }
    if (proto == 0x21)
        return l3_result(PKT_OK, off, 4);
    if (proto == 0x57)
        return l3_result(PKT_OK, off, 6);
    return l3_result(PKT_NOT_IP, 0, 0);
}

static l3_t find_l3(const uint8_t *p, uint32_t len, uint32_t linktype)
{
    switch (linktype) {
    case LT_ETHERNET:
        if (len < 14)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        return after_ethertype(p, len, 14, be16(p + 12));
    case LT_LINUX_SLL:
        if (len < 16)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        return after_ethertype(p, len, 16, be16(p + 14));
    case LT_LINUX_SLL2:
        if (len < 20)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        return after_ethertype(p, len, 20, be16(p));
    case LT_RAW_OPENBSD:
    case LT_RAW_BSDOS:
    case LT_RAW:
        return l3_result(PKT_OK, 0, 0);
    case LT_IPV4:
        return l3_result(PKT_OK, 0, 4);
    case LT_IPV6:
        return l3_result(PKT_OK, 0, 6);
    case LT_NULL:
    case LT_LOOP: {
        if (len < 4)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        /* NULL is in the capturing host's byte order, LOOP in network order */
        uint32_t af = linktype == LT_LOOP ? be32(p) : (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                                          (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (af > 0xFFFF)
            af = __builtin_bswap32(af);
        if (af == 2)
            return l3_result(PKT_OK, 4, 4);
        if (af == 10 || af == 24 || af == 28 || af == 30)
            return l3_result(PKT_OK, 4, 6);
        return l3_result(PKT_NOT_IP, 0, 0);
    }
    case LT_IEEE802_11:
        return ieee80211(p, len, 0);
    case LT_IEEE802_11_RADIOTAP: {
        if (len < 4)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        uint32_t rt_len = le16(p + 2);
        if (rt_len < 8 || rt_len > len)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        return ieee80211(p, len, rt_len);
    }
    case LT_PPP:
    case LT_PPP_HDLC:
        return ppp(p, len, 0);
    case LT_C_HDLC: {
        if (len < 4)
            return l3_result(PKT_TRUNC_LINK, 0, 0);
        int v = version_for_ethertype(be16(p + 2));
        if (v < 0)
            return l3_result(PKT_NOT_IP, 0, 0);
        return l3_result(PKT_OK, 4, v);
    }
    default:
        return l3_result(PKT_UNSUPPORTED_LINK, 0, 0);
    }
}

static int ipv4_checksum_ok(const uint8_t *h, uint32_t hlen)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 1 < hlen; i += 2)
        sum += be16(h + i);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum == 0xFFFF;
}

/* Transport header: fills ports, flags, payload length and offset. */
static int decode_l4(const uint8_t *p, uint32_t caplen, uint32_t l4, uint32_t ip_payload,
                     pkt_t *r)
{
    uint32_t avail = caplen > l4 ? caplen - l4 : 0;
    const uint8_t *t = p + l4;

    switch (r->proto) {
    case 6: {
        if (ip_payload < 20)
            return PKT_L4_SHORT;
        if (avail < 20)
            return PKT_L4_TRUNC;
        uint32_t doff = (uint32_t)(t[12] >> 4) * 4;
        if (doff < 20 || doff > ip_payload)
            return PKT_TCP_BAD_DOFF;
        r->sport = be16(t);
        r->dport = be16(t + 2);
        r->seq = be32(t + 4);
        r->ack = be32(t + 8);
        r->tcp_flags = t[13];
        r->window = be16(t + 14);
        r->urg_ptr = be16(t + 18);
        r->l4_off = l4 + doff;
        r->l4_len = ip_payload - doff;
        return PKT_OK;
    }
    case 17: {
        if (ip_payload < 8)
            return PKT_L4_SHORT;
        if (avail < 8)
            return PKT_L4_TRUNC;
        uint32_t ulen = be16(t + 4);
        r->sport = be16(t);
        r->dport = be16(t + 2);
        r->l4_off = l4 + 8;
        /* trust the UDP length when it is consistent with the IP payload */
        r->l4_len = (ulen >= 8 && ulen <= ip_payload) ? ulen - 8 : ip_payload - 8;
        return PKT_OK;
    }
    case 1:
    case 58:
        if (ip_payload < 4)
            return PKT_L4_SHORT;
        if (avail < 4)
            return PKT_L4_TRUNC;
        r->sport = t[0];  /* type */
        r->dport = t[1];  /* code */
        r->l4_off = l4;
        r->l4_len = ip_payload;
        return PKT_OK;
    default:
        return PKT_OTHER_PROTO;
    }
}

static int decode_ipv4(const uint8_t *p, uint32_t caplen, uint32_t wirelen, uint32_t off,
                       pkt_t *r)
{
    const uint8_t *h = p + off;
    uint32_t avail = caplen - off;

    if (avail < 1)
        return PKT_IP_TRUNC_HDR;
    if ((h[0] >> 4) != 4)
        return PKT_BAD_IP_VERSION;
    uint32_t ihl = (uint32_t)(h[0] & 0x0F) * 4;
    if (ihl < 20)
        return PKT_IP_HDR_SHORT;
    if (avail < ihl)
        return PKT_IP_TRUNC_HDR;
    uint32_t total = be16(h + 2);
    uint32_t on_wire = wirelen > off ? wirelen - off : 0;
    if (total == 0 && caplen == wirelen)  /* segmentation offload: length left to the NIC */
        total = avail;
    /* A length beyond the frame is malformed; like tshark, decode the
       headers anyway (clamped to the frame) so the frame can be reported. */
    int beyond = total > on_wire;
    if (beyond)
        total = on_wire;
    if (total < ihl)
        return PKT_IP_BAD_LEN;

    r->ip_ver = 4;
    r->src_hi = 0;
    r->src_lo = V4_MAPPED_HI | be32(h + 12);
    r->dst_hi = 0;
    r->dst_lo = V4_MAPPED_HI | be32(h + 16);
    r->proto = h[9];
    r->ip_len = total;
    r->l3_hdr_len = (uint16_t)ihl;
    r->frag_id = be16(h + 4);

    uint16_t frag = be16(h + 6);
    uint32_t frag_off = (uint32_t)(frag & 0x1FFF) * 8;
    int more = (frag & 0x2000) != 0;
    if (more || frag_off) {
        r->frag_off = frag_off;
        r->frag_more = (uint8_t)more;
        r->ip_csum_bad = (uint8_t)!ipv4_checksum_ok(h, ihl);
        r->l4_off = off + ihl;
        r->l4_len = total - ihl;
        return beyond ? PKT_IP_LEN_BEYOND_FRAME : PKT_FRAGMENT;
    }
    int status = decode_l4(p, caplen, off + ihl, total - ihl, r);
    return beyond && status == PKT_OK ? PKT_IP_LEN_BEYOND_FRAME : status;
}

static int is_v6_ext(uint8_t nh)
{
    return nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140 || nh == 51;
}

static int decode_ipv6(const uint8_t *p, uint32_t caplen, uint32_t wirelen, uint32_t off,
                       pkt_t *r)
{
    const uint8_t *h = p + off;
    uint32_t avail = caplen - off;

    if (avail < 1)
        return PKT_IP_TRUNC_HDR;
    if ((h[0] >> 4) != 6)
        return PKT_BAD_IP_VERSION;
    if (avail < 40)
        return PKT_IP_TRUNC_HDR;
    uint32_t plen = be16(h + 4);
    uint32_t on_wire = wirelen > off ? wirelen - off : 0;
    if (plen == 0 && caplen == wirelen)   /* jumbogram or offload */
        plen = avail - 40;
    int beyond = 40 + plen > on_wire;
    if (beyond)
        plen = on_wire > 40 ? on_wire - 40 : 0;

    r->ip_ver = 6;
    r->src_hi = be64(h + 8);
    r->src_lo = be64(h + 16);
    r->dst_hi = be64(h + 24);
    r->dst_lo = be64(h + 32);
    r->ip_len = 40 + plen;

    uint8_t nh = h[6];
    uint32_t pos = 40;             /* relative to the IPv6 header */
    uint32_t end = 40 + plen;
    for (int depth = 0; depth < 32; depth++) {
        if (nh == 44) {            /* fragment header */
            if (pos + 8 > end)
                return PKT_IPV6_BAD_EXT;
            if (pos + 8 > avail)
                return PKT_IP_TRUNC_HDR;
            const uint8_t *f = h + pos;
            uint32_t fo = be16(f + 2) & 0xFFF8;
            int more = f[3] & 1;
            nh = f[0];
            r->l3_hdr_len = (uint16_t)pos;
            pos += 8;
            if (fo || more) {
                r->proto = nh;
                r->frag_id = be32(f + 4);
                r->frag_off = fo;
                r->frag_more = (uint8_t)more;
                r->l4_off = off + pos;
                r->l4_len = end - pos;
                return beyond ? PKT_IP_LEN_BEYOND_FRAME : PKT_FRAGMENT;
            }
            continue;              /* atomic fragment: carry on */
        }
        if (!is_v6_ext(nh))
            break;
        if (pos + 8 > end)
            return PKT_IPV6_BAD_EXT;
        if (pos + 2 > avail)
            return PKT_IP_TRUNC_HDR;
        uint32_t elen = nh == 51 ? ((uint32_t)h[pos + 1] + 2) * 4 : ((uint32_t)h[pos + 1] + 1) * 8;
        nh = h[pos];
        pos += elen;
        if (pos > end)
            return PKT_IPV6_BAD_EXT;
    }
    if (is_v6_ext(nh) || nh == 44)
        return PKT_IPV6_BAD_EXT;   /* chain too long */
    r->proto = nh;
    r->l3_hdr_len = (uint16_t)(pos > 0xFFFF ? 0xFFFF : pos);
    int status = decode_l4(p, caplen, off + pos, end - pos, r);
    return beyond && status == PKT_OK ? PKT_IP_LEN_BEYOND_FRAME : status;
}

static void decode_one(const uint8_t *p, pkt_t *r)
{
    uint32_t caplen = r->caplen;
    l3_t l3 = find_l3(p, caplen, r->linktype);

    if (l3.status != PKT_OK) {
        r->status = (uint8_t)l3.status;
        return;
    }
    r->l3_off = l3.off;
    if (l3.off >= caplen) {
        r->status = PKT_IP_TRUNC_HDR;
        return;
    }
    int version = l3.version ? l3.version : p[l3.off] >> 4;
    int status;
    if (version == 4)
        status = decode_ipv4(p, caplen, r->wirelen, l3.off, r);
    else if (version == 6)
        status = decode_ipv6(p, caplen, r->wirelen, l3.off, r);
    else
        status = l3.version ? PKT_BAD_IP_VERSION : PKT_NOT_IP;
    r->status = (uint8_t)status;
}

void decode_rows(const uint8_t *buf, size_t buflen, pkt_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pkt_t *r = rows + i;
        if ((size_t)r->frame_off + r->caplen > buflen) {  /* defensive: never read outside */
            r->status = PKT_TRUNC_LINK;
            continue;
        }
        decode_one(buf + r->frame_off, r);
    }
}
