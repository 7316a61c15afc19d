/* Live capture ring (AF_PACKET, TPACKET_V3); see ring.c. */
#ifndef SENSOR_RING_H
#define SENSOR_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *ifname;
    unsigned int snaplen;          /* bytes kept per frame; 0: all */
    int promiscuous;
    const void *filter;            /* classic BPF instructions (struct sock_filter[]) */
    unsigned int filter_len;       /* instructions; 0: no filter */
    unsigned int block_size;       /* bytes, a power-of-two multiple of the page size */
    unsigned int block_count;
    unsigned int block_timeout_ms; /* the kernel hands over a part-filled block after this */
} ring_config_t;

typedef struct {
    int fd;
    int linktype;
    int loopback;                      /* drop the outgoing copy of each frame */
    uint8_t *map;
    size_t map_len;
    unsigned int block_size, block_count, current, snaplen;
    uint64_t packets, drops, freezes;  /* kernel counters, accumulated */
} ring_t;

int ring_open(ring_t *r, const ring_config_t *c, char *err, size_t errlen);
size_t ring_drain(ring_t *r, uint8_t *out, size_t cap, size_t *packets);
int ring_stats(ring_t *r, uint64_t *packets, uint64_t *drops, uint64_t *freezes);
void ring_close(ring_t *r);

#endif
