/*
 * The sensor's compiled core: the loops that are inherently sequential
 * (capture record walk, per-packet header decode, TCP state machine,
 * record formatting).  Python owns the pipeline; these functions only
 * fill caller-provided row arrays, so every stage boundary is a numpy
 * structured array whose layout is declared here and exported to Python.
 *
 * Everything read from a capture is untrusted: every access to packet
 * bytes is bounds-checked against the captured length.
 */
#ifndef SENSOR_FASTPATH_H
#define SENSOR_FASTPATH_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Packet rows: written by the capture walkers (capture columns) and   */
/* completed in place by the decoder (header columns).                 */
/* ------------------------------------------------------------------ */

enum pkt_status {
    PKT_OK = 0,            /* tracked transport: TCP, UDP, ICMP, ICMPv6 */
    PKT_FRAGMENT,          /* IP fragment awaiting reassembly */
    PKT_ABSORBED,          /* fragment consumed by reassembly (set in Python) */
    PKT_NOT_IP,            /* ARP, LLDP, STP, ...: counted, not an error */
    PKT_OTHER_PROTO,       /* IP, but not TCP/UDP/ICMP (GRE, ESP, IGMP, ...) */
    PKT_WLAN_SKIPPED,      /* 802.11 management/control/encrypted/null data */
    PKT_UNSUPPORTED_LINK,  /* link type we do not decode */
    /* malformed: counted and reported with the frame's file offset */
    PKT_TRUNC_LINK,        /* frame shorter than its link-layer header */
    PKT_BAD_IP_VERSION,    /* IP version nibble disagrees with the link layer */
    PKT_IP_HDR_SHORT,      /* IPv4 header length field below 20 bytes */
    PKT_IP_TRUNC_HDR,      /* captured bytes end inside the IP header chain */
    PKT_IP_BAD_LEN,        /* IPv4 total length smaller than its header */
    PKT_IP_LEN_BEYOND_FRAME, /* IP length larger than the frame on the wire */
    PKT_IPV6_BAD_EXT,      /* IPv6 extension headers run past the payload */
    PKT_TCP_BAD_DOFF,      /* TCP data offset below 5 or beyond the IP payload */
    PKT_L4_SHORT,          /* IP payload shorter than the transport header */
    PKT_L4_TRUNC,          /* captured bytes end inside the transport header */
    PKT_STATUS_COUNT
};

#define PKT_FIRST_MALFORMED PKT_TRUNC_LINK

typedef struct {
    int64_t  ts;            /* capture time, ns since the epoch */
    uint64_t frame;         /* 0-based frame number in the capture */
    uint64_t src_hi, src_lo;/* IPv6 address, or IPv4 as ::ffff:a.b.c.d */
    uint64_t dst_hi, dst_lo;
    uint32_t frame_off;     /* offset of the frame in the batch buffer */
    uint32_t caplen;        /* bytes captured */
    uint32_t wirelen;       /* bytes on the wire */
    uint32_t seq, ack;      /* TCP sequence and acknowledgement numbers */
    uint32_t ip_len;        /* IP datagram length (header + payload) */
    uint32_t l4_len;        /* TCP/UDP payload or ICMP message bytes; fragment data */
    uint32_t l4_off;        /* frame offset of the TCP/UDP payload or fragment data */
    uint32_t l3_off;        /* frame offset of the IP header */
    uint32_t frag_id;       /* IPv4 identification / IPv6 fragment identification */
    uint32_t frag_off;      /* fragment offset in bytes */
    uint16_t sport, dport;  /* ICMP: type, code */
    uint16_t window, urg_ptr;
    uint16_t linktype;
    uint16_t l3_hdr_len;    /* IPv4 header, or IPv6 header + extensions before the fragment header */
    uint16_t wrong_frag;    /* malformed fragments folded into this row by reassembly */
    uint8_t  proto;         /* transport protocol number */
    uint8_t  ip_ver;        /* 4, 6, or 0 when not IP */
    uint8_t  tcp_flags;
    uint8_t  status;        /* enum pkt_status */
    uint8_t  frag_more;     /* more-fragments flag */
    uint8_t  ip_csum_bad;   /* IPv4 header checksum wrong (checked on fragments) */
} pkt_t;

/* ------------------------------------------------------------------ */
/* Capture walkers                                                     */
/* ------------------------------------------------------------------ */

enum walk_status {
    WALK_NEED_MORE = 0,   /* stopped at an incomplete record: read more */
    WALK_FULL,            /* the output rows are full: call again */
    WALK_BAD_RECORD,      /* damaged record at *pos */
    WALK_CONTROL_BLOCK,   /* pcapng SHB/IDB at *pos: parse it in Python */
};

enum walk_damage {
    DAMAGE_NONE = 0,
    DAMAGE_CAPLEN_OVER_SNAPLEN,
    DAMAGE_CAPLEN_OVER_MAX,
    DAMAGE_BLOCK_LENGTH,      /* pcapng total length < 12, unaligned or huge */
    DAMAGE_BLOCK_TRAILER,     /* pcapng trailing length differs */
    DAMAGE_BLOCK_BODY,        /* pcapng packet fields do not fit the block */
    DAMAGE_UNKNOWN_INTERFACE,
    DAMAGE_COUNT
};

#define MAX_CAPLEN 262144u            /* libpcap's largest snapshot length */
#define MAX_PCAPNG_BLOCK (16u << 20)  /* libpcap's largest pcapng block */

typedef struct {
    uint32_t linktype;
    uint32_t snaplen;     /* 0: unlimited */
    int32_t  tsresol;     /* >= 0: 10^-n seconds; < 0: 2^-(-n) seconds */
    int32_t  fcs_len;
    int64_t  tsoffset_ns;
} iface_t;

typedef struct {
    size_t   pos;         /* in: where to start; out: where the walk stopped */
    size_t   n;           /* rows written */
    uint64_t next_frame;  /* frame number of the next row */
    int64_t  last_ts;     /* last timestamp (pcapng SPB has none) */
    int      status;      /* enum walk_status */
    int      damage;      /* enum walk_damage when status == WALK_BAD_RECORD */
} walk_t;

void walk_pcap(const uint8_t *buf, size_t end, int swapped, int nsec, size_t rec_hdr_len,
               uint32_t snaplen, uint32_t linktype, pkt_t *out, size_t max_out, walk_t *w);
void walk_pcapng(const uint8_t *buf, size_t end, int swapped, const iface_t *ifaces,
                 size_t n_ifaces, pkt_t *out, size_t max_out, walk_t *w);
/* Search for the next plausible record at or after start.  Returns its
   position; or sets *need_more and returns the position from which the
   caller must keep data and read more; or returns (size_t)-1 at EOF when
   no record follows. */
size_t resync_pcap(const uint8_t *buf, size_t start, size_t end, int swapped, int nsec,
                   size_t rec_hdr_len, uint32_t snaplen, int64_t last_ts, int at_eof,
                   int *need_more);
size_t resync_pcapng(const uint8_t *buf, size_t start, size_t end, int swapped, int at_eof,
                     int *need_more);

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

void decode_rows(const uint8_t *buf, size_t buflen, pkt_t *rows, size_t n);

/* ------------------------------------------------------------------ */
/* Connection records                                                  */
/* ------------------------------------------------------------------ */

#define HIST_MAX 32

enum tcp_ep_state {   /* Zeek's TCP endpoint states */
    EP_INACTIVE = 0, EP_SYN_SENT, EP_SYN_ACK_SENT, EP_PARTIAL,
    EP_ESTABLISHED, EP_CLOSED, EP_RESET
};

enum conn_state {     /* Zeek conn_state values */
    CS_S0 = 0, CS_S1, CS_SF, CS_REJ, CS_S2, CS_S3, CS_RSTO, CS_RSTR,
    CS_RSTOS0, CS_RSTRH, CS_SH, CS_SHR, CS_OTH, CS_COUNT
};

enum end_reason {
    END_TIMEOUT = 0,   /* inactivity or close/attempt delay expired */
    END_REUSE,         /* a new SYN reused the 5-tuple */
    END_LIFETIME,      /* UDP/ICMP record reached its maximum lifetime */
    END_FLUSH,         /* end of input */
    END_EVICTED,       /* the table was full: it had been idle longest */
    END_COUNT
};

/* content analyzers and their pattern groups (order: content_rules.py) */
enum analyzer { AN_NONE = 0, AN_LOGIN, AN_RLOGIN, AN_RSH, AN_REXEC, AN_FTP, AN_POP3, AN_IMAP,
                AN_HTTP, AN_SMTP, AN_COUNT };

enum content_group {
    CG_LOGIN_PROMPT = 0, CG_PASSWORD_PROMPT, CG_LOGIN_FAILED, CG_LOGIN_BANNER, CG_SHELL_PROMPT,
    CG_ROOT_PROMPT, CG_COMPROMISED, CG_NEW_FILE, CG_SU_COMMAND, CG_SHELL_COMMAND, CG_HOT_WORD,
    CG_HOT_PREFIX, CG_HOT_CONTAINS, CG_HOT_EXCEPT, CG_FILE_CREATION, CG_ACCESS_FILE,
    CG_ACCESS_EXCEPT, CG_GUEST_USER, CG_HOST_USER, CG_FTP_SYSTEM_DIR, CG_FTP_ACCESS_FILE,
    CG_HTTP_HOT, CG_HTTP_CGI, CG_HTTP_SHELL_META, CG_COUNT
};

typedef struct {
    uint64_t uid;          /* stable id, printed as 'C' + base62 */
    uint64_t order;        /* creation sequence: order of the first packet */
    int64_t  ts_first, ts_last;
    uint64_t orig_hi, orig_lo, resp_hi, resp_lo;
    uint64_t orig_bytes, resp_bytes;
    uint64_t orig_ip_bytes, resp_ip_bytes;
    uint64_t orig_pkts, resp_pkts;
    uint64_t first_frame;  /* capture frame number of the first packet */
    uint32_t urgent, wrong_fragment;
    uint16_t orig_p, resp_p;   /* ICMP: type, code */
    uint8_t  proto, ip_ver, conn_state, hist_len;
    uint8_t  orig_state, resp_state, end_reason, ftp_data;
    char     history[HIST_MAX];
    /* KDD content features 10-22 (num_outbound_cmds is always 0) */
    uint16_t hot, num_compromised, num_root, num_file_creations, num_access_files;
    uint8_t  num_failed_logins, logged_in, root_shell, su_attempted, num_shells;
    uint8_t  is_host_login, is_guest_login, pad_;
} conn_t;

/* FTP data connections announced by PORT/PASV/EPSV: (address, port) */
#define EXPECT_PER_CALL 4
typedef struct {
    uint64_t hi[EXPECT_PER_CALL], lo[EXPECT_PER_CALL];
    uint16_t port[EXPECT_PER_CALL];
    int n;
} expect_t;

typedef struct content content_t;
typedef struct content_rules content_rules_t;

content_rules_t *content_rules_new(const uint8_t *blob, size_t len);
void content_rules_free(content_rules_t *r);
content_t *content_new(uint8_t kind, uint32_t cap, uint64_t server_hi, uint64_t server_lo);
void content_free(content_t *c);
size_t content_size(void);
/* One TCP segment of direction dir (0: client): its sequence number, where
   the direction's stream starts, its captured bytes and its true length.
   Returns the number of holes skipped, or -1 when memory ran out. */
int content_segment(content_t *c, const content_rules_t *r, int dir, uint32_t seq, uint32_t start,
                    const uint8_t *data, uint32_t caplen, uint32_t len, expect_t *ex);
/* End of the connection: skip the holes left; holes[d] += holes per direction. */
void content_finish(content_t *c, const content_rules_t *r, int holes[2]);
void content_features(const content_t *c, conn_t *out);

typedef struct {
    int64_t tcp_inactivity;       /* established connections */
    int64_t tcp_handshake;        /* neither side past the handshake */
    int64_t tcp_attempt;          /* unanswered SYN, from the first SYN */
    int64_t tcp_close;            /* after a complete close or a reset */
    int64_t udp_inactivity;
    int64_t icmp_inactivity;
    int64_t max_lifetime;         /* UDP and ICMP records */
} timeouts_t;

typedef struct tracker tracker_t;

/* Records are released in creation (start) order; at most about
   reorder_limit finished records wait behind an open connection. */
tracker_t *tracker_new(const timeouts_t *t, const uint8_t *likely_tcp, const uint8_t *likely_udp,
                       uint64_t hash_seed, uint64_t uid_seed, size_t reorder_limit,
                       const uint8_t *analyzer_port, const uint8_t *rules, size_t rules_len,
                       uint32_t content_cap);
void tracker_set_limits(tracker_t *tr, size_t max_flows, size_t max_bytes, int64_t hold_ns);
uint64_t tracker_evicted(const tracker_t *tr);
void tracker_free(tracker_t *tr);
/* Each returns 0, or -1 when memory ran out. Released records accumulate
   in the tracker's output buffer until tracker_clear_output(). */
int tracker_process(tracker_t *tr, const pkt_t *rows, size_t n, const uint8_t *buf, size_t buflen);
int tracker_expire(tracker_t *tr, int64_t now);
int tracker_flush(tracker_t *tr);
conn_t *tracker_output(tracker_t *tr, size_t *n);
void tracker_clear_output(tracker_t *tr);
size_t tracker_held(const tracker_t *tr);
uint64_t tracker_released_late(const tracker_t *tr);
size_t tracker_active(const tracker_t *tr);
size_t tracker_memory(const tracker_t *tr);

/* ------------------------------------------------------------------ */
/* Traffic windows (KDD features 23-41)                                */
/* ------------------------------------------------------------------ */

typedef struct {
    int64_t  time_window;       /* ns: 2 s */
    uint32_t host_window;       /* N: the last N records */
    uint32_t time_max_records;  /* bound on the time window in floods */
    uint32_t serror_flags;      /* bit per KDD flag code counted as a SYN error */
    uint32_t rerror_flags;      /* bit per KDD flag code counted as a REJ error */
    uint16_t count_cap;         /* 511 */
    uint16_t host_count_cap;    /* 255 */
    uint8_t  complement_diff;   /* diff rates as complements instead of distinct counts */
    uint8_t  earlier_only;      /* host-window rates over earlier records only */
} window_cfg_t;

typedef struct {
    uint16_t count, srv_count, dst_host_count, dst_host_srv_count;
    uint32_t pad_;
    double serror_rate, srv_serror_rate, rerror_rate, srv_rerror_rate;
    double same_srv_rate, diff_srv_rate, srv_diff_host_rate;
    double dst_host_same_srv_rate, dst_host_diff_srv_rate, dst_host_same_src_port_rate;
    double dst_host_srv_diff_host_rate, dst_host_serror_rate, dst_host_srv_serror_rate;
    double dst_host_rerror_rate, dst_host_srv_rerror_rate;
} winfeat_t;

typedef struct windows windows_t;

windows_t *windows_new(const window_cfg_t *cfg, uint64_t hash_seed);
void windows_free(windows_t *w);
/* Traffic features of n connection records in start order.  Each record's
   KDD service and flag codes are read from, and its winfeat_t written to,
   a row of a wider feature array: row i starts at feats + i * stride.
   Returns 0, or -1 when memory ran out. */
int windows_process(windows_t *w, const conn_t *conns, size_t n, uint8_t *feats, size_t stride,
                    size_t service_at, size_t flag_at, size_t winfeat_at);
size_t windows_memory(const windows_t *w);
double kdd_rate(double k, double n);

/* ------------------------------------------------------------------ */
/* Formatter: JSON lines / CSV from column descriptions                */
/* ------------------------------------------------------------------ */

enum col_kind {
    COL_INT = 0,      /* integer of width/sign given by fmt */
    COL_FIXED,        /* float with a fixed number of decimals */
    COL_NS_SECONDS,   /* int64 nanoseconds printed as seconds.micro */
    COL_ENUM,         /* unsigned index into a string table */
    COL_ADDR,         /* (hi, lo) pair: IPv4-mapped or IPv6 address */
    COL_CHARS,        /* fixed char field with a length column */
    COL_UID,          /* uint64 printed as 'C' + base62 */
    COL_OPEN,         /* start a nested JSON object */
    COL_CLOSE,        /* end it */
};

typedef struct {
    int kind;
    const char *key;      size_t key_len;
    const uint8_t *base;  ptrdiff_t stride;  char fmt;   /* 'b','B','h','H','i','I','q','Q','f','d' */
    const uint8_t *base2; ptrdiff_t stride2; char fmt2;  /* lo half of an address; length of chars */
    int decimals;         /* COL_FIXED */
    size_t width;         /* COL_CHARS field width */
    const char *const *names; const size_t *name_lens; size_t n_names;  /* COL_ENUM */
} column_t;

/* Returns bytes written, or -1 when out_cap is too small. */
ptrdiff_t format_rows(const column_t *cols, size_t n_cols, size_t n_rows, int csv,
                      char *out, size_t out_cap);
size_t format_row_bound(const column_t *cols, size_t n_cols);

#endif
