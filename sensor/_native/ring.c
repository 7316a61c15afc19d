/*
 * Live capture: an AF_PACKET socket with a memory-mapped TPACKET_V3 ring.
 *
 * The kernel fills whole blocks of frames; the sensor hands each ready
 * block back after copying its frames out as classic-pcap records
 * (nanosecond timestamps, host byte order), so live batches go through
 * the same record walker, decoder and pipeline as a replayed file.  One
 * copy per frame is the price of that sharing, and it is small next to
 * decoding.  VLAN tags the NIC stripped are put back, as libpcap does,
 * so a live record equals the replayed one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ring.h"

#define PCAP_REC_HDR 16
#define VLAN_TAG 4
#define LOOPBACK 1001  /* Ethernet records, and every frame is seen leaving and arriving */

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

/* the pcap link type of an interface's ARPHRD type, or -1 */
static int linktype_of(int fd, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        return -1;
    switch (ifr.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
        return 1;   /* LINKTYPE_ETHERNET */
    case ARPHRD_LOOPBACK:
        return LOOPBACK; /* Ethernet too, with an all-zero header */
    case ARPHRD_NONE:
        return 101; /* LINKTYPE_RAW: tun devices */
    default:
        return -2;
    }
}

int ring_open(ring_t *r, const ring_config_t *c, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (strlen(c->ifname) >= IFNAMSIZ) {
        snprintf(err, errlen, "interface name '%s' is too long", c->ifname);
        return -1;
    }
    int fd = socket(AF_PACKET, SOCK_RAW, 0);  /* protocol 0: nothing arrives before bind */
    if (fd < 0)
        return fail(err, errlen, "AF_PACKET socket (needs CAP_NET_RAW)");
    r->fd = fd;
    unsigned int ifindex = if_nametoindex(c->ifname);
    if (!ifindex) {
        snprintf(err, errlen, "no interface named '%s'", c->ifname);
        goto bad;
    }
    r->linktype = linktype_of(fd, c->ifname);
    if (r->linktype == LOOPBACK) {
        r->linktype = 1;
        r->loopback = 1;
    }
    if (r->linktype < 0) {
        snprintf(err, errlen, "interface '%s' has a link type the sensor does not capture", c->ifname);
        goto bad;
    }
    if (c->filter_len) {
        struct sock_fprog prog = {(unsigned short)c->filter_len, (struct sock_filter *)c->filter};
        if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) {
            fail(err, errlen, "attaching the capture filter");
            goto bad;
        }
    }
    /* stamp frames as they enter the stack, not as each socket sees them:
       more exact, and every capture of the interface (tcpdump's too)
       gets the same time for a frame */
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
        fail(err, errlen, "SO_TIMESTAMPNS");
        goto bad;
    }
    int version = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0) {
        fail(err, errlen, "TPACKET_V3");
        goto bad;
    }
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = c->block_size;
    req.tp_block_nr = c->block_count;
    req.tp_frame_size = 2048;  /* only a hint with V3: frames are packed */
    req.tp_frame_nr = (c->block_size / req.tp_frame_size) * c->block_count;
    req.tp_retire_blk_tov = c->block_timeout_ms;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
        fail(err, errlen, "PACKET_RX_RING");
        goto bad;
    }
    r->map_len = (size_t)c->block_size * c->block_count;
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    if (r->map == MAP_FAILED) {
        r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (r->map == MAP_FAILED) {
            r->map = NULL;
            fail(err, errlen, "mapping the capture ring");
            goto bad;
        }
    }
    r->block_size = c->block_size;
    r->block_count = c->block_count;
    r->snaplen = c->snaplen;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        fail(err, errlen, "binding to the interface");
        goto bad;
    }
    if (c->promiscuous) {
        struct packet_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.mr_ifindex = (int)ifindex;
        mr.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
            fail(err, errlen, "promiscuous mode");
            goto bad;
        }
    }
    return 0;
bad:
    ring_close(r);
    return -1;
}

/* one frame as a pcap record at out; returns the bytes written */
static size_t copy_frame(const ring_t *r, const struct tpacket3_hdr *h, uint8_t *out)
{
    const uint8_t *frame = (const uint8_t *)h + h->tp_mac;
    uint32_t caplen = h->tp_snaplen, wirelen = h->tp_len;
    int vlan = r->linktype == 1 && (h->tp_status & TP_STATUS_VLAN_VALID) && caplen >= 12;
    if (r->snaplen && caplen > r->snaplen)
        caplen = r->snaplen;
    uint32_t rec_caplen = caplen + (vlan ? VLAN_TAG : 0);
    uint32_t rec_wirelen = wirelen + (vlan ? VLAN_TAG : 0);
    uint32_t hdr[4] = {h->tp_sec, h->tp_nsec, rec_caplen, rec_wirelen};
    memcpy(out, hdr, sizeof hdr);
    uint8_t *p = out + PCAP_REC_HDR;
    if (vlan) {
        uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) && h->hv1.tp_vlan_tpid
                            ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
        uint16_t tag[2] = {htons(tpid), htons((uint16_t)h->hv1.tp_vlan_tci)};
        memcpy(p, frame, 12);
        memcpy(p + 12, tag, VLAN_TAG);
        memcpy(p + 12 + VLAN_TAG, frame + 12, caplen - 12);
    } else {
        memcpy(p, frame, caplen);
    }
    return PCAP_REC_HDR + rec_caplen;
}

size_t ring_drain(ring_t *r, uint8_t *out, size_t cap, size_t *packets)
{
    size_t used = 0;
    *packets = 0;
    /* a block's records never outgrow the block: a record header (16
       bytes) plus a VLAN tag is smaller than a frame's tpacket3 header */
    while (cap - used >= r->block_size) {
        struct tpacket_block_desc *block =
            (struct tpacket_block_desc *)(r->map + (size_t)r->current * r->block_size);
        if (!(__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            break;
        uint32_t n = block->hdr.bh1.num_pkts;
        const uint8_t *at = (const uint8_t *)block + block->hdr.bh1.offset_to_first_pkt;
        for (uint32_t i = 0; i < n; i++) {
            const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)at;
            const struct sockaddr_ll *sll =
                (const struct sockaddr_ll *)((const uint8_t *)h + TPACKET_ALIGN(sizeof *h));
            /* on loopback, keep each frame once (arriving), as libpcap does */
            if (!(r->loopback && sll->sll_pkttype == PACKET_OUTGOING)) {
                used += copy_frame(r, h, out + used);
                ++*packets;
            }
            at += h->tp_next_offset;
        }
        __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        r->current = (r->current + 1) % r->block_count;
    }
    return used;
}

int ring_stats(ring_t *r, uint64_t *packets, uint64_t *drops, uint64_t *freezes)
{
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return -1;
    /* the kernel resets its counters on every read: the ring accumulates */
    r->packets += st.tp_packets;
    r->drops += st.tp_drops;
    r->freezes += st.tp_freeze_q_cnt;
    *packets = r->packets;
    *drops = r->drops;
    *freezes = r->freezes;
    return 0;
}

void ring_close(ring_t *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    if (r->fd >= 0)
        close(r->fd);
    r->map = NULL;
    r->fd = -1;
}
