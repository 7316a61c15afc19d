/*
 * KDD content features 10-22, from the cleartext of a TCP connection.
 *
 * Each direction of an analyzed connection is reassembled in sequence
 * order (retransmissions and overlaps delivered once, out-of-order
 * segments held a while, holes skipped), telnet option negotiation is
 * stripped, the bytes are cut into lines, and a per-protocol state machine
 * reads them: login sessions (telnet, rlogin, rsh, rexec), FTP, POP3,
 * IMAP, HTTP, SMTP.  What the machines look for is data
 * (sensor/features/content_rules.py), handed over as pattern groups.
 * At most `cap` bytes per direction are analyzed.
 */
#define _GNU_SOURCE  /* memmem */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"

#define LINE_MAX_BYTES 512
#define OOO_MAX_SEGMENTS 32
#define OOO_MAX_BYTES (64 * 1024)

/* ---------------------------------------------------------- patterns */

typedef struct {
    const uint8_t *p;
    uint16_t len;
} pat_t;

struct content_rules {
    pat_t *pats;
    uint16_t start[CG_COUNT + 1];
    uint8_t *blob;
};

content_rules_t *content_rules_new(const uint8_t *blob, size_t len)
{
    content_rules_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->blob = malloc(len ? len : 1);
    r->pats = calloc(len / 2 + 1, sizeof(pat_t));
    if (!r->blob || !r->pats)
        goto fail;
    memcpy(r->blob, blob, len);
    size_t pos = 0, n = 0;
    for (int g = 0; g < CG_COUNT; g++) {
        r->start[g] = (uint16_t)n;
        if (pos + 2 > len)
            goto fail;
        uint16_t count = (uint16_t)(r->blob[pos] | r->blob[pos + 1] << 8);
        pos += 2;
        for (uint16_t i = 0; i < count; i++) {
            if (pos + 2 > len)
                goto fail;
            uint16_t plen = (uint16_t)(r->blob[pos] | r->blob[pos + 1] << 8);
            pos += 2;
            if (pos + plen > len || plen == 0)
                goto fail;
            r->pats[n].p = r->blob + pos;
            r->pats[n].len = plen;
            n++;
            pos += plen;
        }
    }
    r->start[CG_COUNT] = (uint16_t)n;
    if (pos != len)
        goto fail;
    return r;
fail:
    content_rules_free(r);
    return NULL;
}

void content_rules_free(content_rules_t *r)
{
    if (!r)
        return;
    free(r->pats);
    free(r->blob);
    free(r);
}

static const uint8_t *find(const uint8_t *s, size_t n, const uint8_t *p, size_t m)
{
    if (m > n)
        return NULL;
    return memmem(s, n, p, m);
}

static int contains(const content_rules_t *r, int g, const uint8_t *s, size_t n)
{
    for (int i = r->start[g]; i < r->start[g + 1]; i++)
        if (find(s, n, r->pats[i].p, r->pats[i].len))
            return 1;
    return 0;
}

static int starts(const content_rules_t *r, int g, const uint8_t *s, size_t n)
{
    for (int i = r->start[g]; i < r->start[g + 1]; i++)
        if (r->pats[i].len <= n && !memcmp(s, r->pats[i].p, r->pats[i].len))
            return 1;
    return 0;
}

static int ends(const content_rules_t *r, int g, const uint8_t *s, size_t n)
{
    for (int i = r->start[g]; i < r->start[g + 1]; i++)
        if (r->pats[i].len <= n && !memcmp(s + n - r->pats[i].len, r->pats[i].p, r->pats[i].len))
            return 1;
    return 0;
}

static int equals(const content_rules_t *r, int g, const uint8_t *s, size_t n)
{
    for (int i = r->start[g]; i < r->start[g + 1]; i++)
        if (r->pats[i].len == n && !memcmp(s, r->pats[i].p, n))
            return 1;
    return 0;
}

static int separator(uint8_t c)
{
    return isspace(c) || strchr(";|&()<>`'\"=", c) != NULL || c == 0;
}

/* Number of the group's patterns found as commands or words: a token (cut
   at whitespace and shell punctuation) equal to the pattern, or a path
   whose last component is (so /bin/sh counts as sh). */
static int words(const content_rules_t *r, int g, const uint8_t *s, size_t n)
{
    int hits = 0;
    for (int i = r->start[g]; i < r->start[g + 1]; i++) {
        const uint8_t *p = r->pats[i].p;
        size_t m = r->pats[i].len;
        size_t a = 0;
        while (a < n) {
            while (a < n && separator(s[a]))
                a++;
            size_t b = a;
            while (b < n && !separator(s[b]))
                b++;
            size_t base = a;
            for (size_t k = a; k < b; k++)
                if (s[k] == '/')
                    base = k + 1;
            if ((b - a == m && !memcmp(s + a, p, m)) || (b - base == m && !memcmp(s + base, p, m))) {
                hits++;
                break;
            }
            a = b;
        }
    }
    return hits;
}

/* ------------------------------------------------------------- state */

typedef struct ooo {
    struct ooo *next;
    uint32_t seq, len;
    uint8_t data[];
} ooo_t;

typedef struct {
    uint32_t next;            /* next sequence number expected */
    uint32_t delivered;       /* bytes analyzed */
    uint32_t held;            /* bytes waiting out of order */
    uint16_t line_len;
    uint8_t started, done;    /* done: nothing more wanted from this side */
    uint8_t iac;              /* telnet option parser state */
    uint8_t cr;               /* last byte ended a line with CR */
    uint8_t first;            /* no byte seen yet from this side */
    uint16_t prompt_at;       /* length of the unfinished line when last read as a prompt */
    ooo_t *ooo;
    uint8_t line[LINE_MAX_BYTES];
} side_t;

enum { LS_START, LS_USER_PROMPT, LS_USER_SENT, LS_PASS_PROMPT, LS_PASS_SENT, LS_IN };
enum { CMD_NONE, CMD_USER, CMD_PASS, CMD_STORE, CMD_MKD, CMD_HELO, CMD_DATA, CMD_AUTH, CMD_LOGIN };

struct content {
    uint8_t kind, state, last_cmd, root, su_pending, shell_started, in_body, rsh_fields;
    uint8_t skip_line;        /* the next client line answers su's password prompt */
    uint32_t cap;
    uint64_t server_hi, server_lo;  /* for EPSV replies */
    uint16_t hot, compromised, num_root, file_creations, access_files;
    uint8_t failed, logged_in, root_shell, su_attempted, shells, host_login, guest_login;
    uint8_t user_len, tag_len;
    char user[48];
    char tag[24];
    side_t side[2];           /* [0] client, [1] server */
};

static void bump16(uint16_t *v)
{
    if (*v < UINT16_MAX)
        (*v)++;
}

static void bump8(uint8_t *v)
{
    if (*v < UINT8_MAX)
        (*v)++;
}

content_t *content_new(uint8_t kind, uint32_t cap, uint64_t server_hi, uint64_t server_lo)
{
    /* most of the struct is the two line buffers, which need no zeroing */
    content_t *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    memset(c, 0, offsetof(content_t, side));
    for (int d = 0; d < 2; d++)
        memset(c->side + d, 0, offsetof(side_t, line));
    c->kind = kind;
    c->cap = cap;
    c->server_hi = server_hi;
    c->server_lo = server_lo;
    return c;
}

void content_free(content_t *c)
{
    if (!c)
        return;
    for (int d = 0; d < 2; d++) {
        ooo_t *o = c->side[d].ooo;
        while (o) {
            ooo_t *next = o->next;
            free(o);
            o = next;
        }
    }
    free(c);
}

size_t content_size(void)
{
    return sizeof(content_t);
}

void content_features(const content_t *c, conn_t *out)
{
    out->hot = c->hot;
    out->num_failed_logins = c->failed;
    out->logged_in = c->logged_in;
    out->num_compromised = c->compromised;
    out->root_shell = c->root_shell;
    out->su_attempted = c->su_attempted;
    out->num_root = c->num_root;
    out->num_file_creations = c->file_creations;
    out->num_shells = c->shells;
    out->num_access_files = c->access_files;
    out->is_host_login = c->host_login;
    out->is_guest_login = c->guest_login;
}

/* ------------------------------------------------------------- lines */

static size_t trim_right(const uint8_t *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\0'))
        n--;
    return n;
}

static const uint8_t *skip_space(const uint8_t *s, const uint8_t *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

static int verb_is(const uint8_t *s, size_t n, const char *verb)
{
    size_t m = strlen(verb);
    if (n < m || (n > m && s[m] != ' '))
        return 0;
    for (size_t i = 0; i < m; i++)
        if (toupper(s[i]) != verb[i])
            return 0;
    return 1;
}

static int reply_code(const uint8_t *s, size_t n)
{
    if (n < 3 || !isdigit(s[0]) || !isdigit(s[1]) || !isdigit(s[2]) || (n > 3 && s[3] != ' ' && s[3] != '-'))
        return -1;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

static void set_user(content_t *c, const content_rules_t *r, const uint8_t *u, size_t n)
{
    n = trim_right(u, n);
    if (n > sizeof(c->user))
        n = sizeof(c->user);
    memcpy(c->user, u, n);
    c->user_len = (uint8_t)n;
    if (contains(r, CG_GUEST_USER, u, n))
        c->guest_login = 1;
    if (contains(r, CG_HOST_USER, u, n))
        c->host_login = 1;
}

static int user_is_root(const content_t *c)
{
    return c->user_len == 4 && !memcmp(c->user, "root", 4);
}

/* ----------------------------------------------------- login sessions */

static void command_line(content_t *c, const content_rules_t *r, const uint8_t *s, size_t n)
{
    n = trim_right(s, n);
    const uint8_t *end = s + n;
    s = skip_space(s, end);
    n = (size_t)(end - s);
    if (!n)
        return;
    if (equals(r, CG_SU_COMMAND, s, n)) {
        c->su_attempted = 1;
        c->su_pending = 1;
    }
    size_t first = 0;
    while (first < n && s[first] != ' ' && s[first] != '\t')
        first++;
    if (equals(r, CG_SHELL_COMMAND, s, first))
        bump8(&c->shells);
    int hot = words(r, CG_HOT_WORD, s, n);
    if (starts(r, CG_HOT_PREFIX, s, n)) {
        /* '/tmp/' counts only before digits, as gure's /tmp/<digits> */
        if (n >= 2 && s[0] == '.' && s[1] == '/')
            hot++;
        else if (n > 5 && isdigit(s[5]))
            hot++;
    }
    if (contains(r, CG_HOT_CONTAINS, s, n) && !contains(r, CG_HOT_EXCEPT, s, n))
        hot++;
    for (int i = 0; i < hot; i++)
        bump16(&c->hot);
    if (contains(r, CG_FILE_CREATION, s, n))
        bump16(&c->file_creations);
    if (contains(r, CG_ACCESS_FILE, s, n) && !contains(r, CG_ACCESS_EXCEPT, s, n))
        bump16(&c->access_files);
    if (c->root)
        bump16(&c->num_root);
}

static void logged_in(content_t *c)
{
    c->logged_in = 1;
    c->state = LS_IN;
    if (!c->shell_started) {
        c->shell_started = 1;
        bump8(&c->shells);
    }
}

/* Server text: a finished line, or an unfinished one that may be a prompt. */
static void session_server(content_t *c, const content_rules_t *r, const uint8_t *s, size_t n, int prompt)
{
    size_t t = trim_right(s, n);
    if (c->state != LS_IN) {
        if (starts(r, CG_LOGIN_BANNER, s, t)) {
            logged_in(c);
        } else if (contains(r, CG_LOGIN_FAILED, s, t)) {
            if (!prompt)
                bump8(&c->failed);
            c->state = LS_START;
        } else if (contains(r, CG_PASSWORD_PROMPT, s, t)) {
            c->state = LS_PASS_PROMPT;
        } else if (contains(r, CG_LOGIN_PROMPT, s, t)) {
            c->state = LS_USER_PROMPT;
        } else if (c->state >= LS_USER_SENT && ends(r, CG_SHELL_PROMPT, s, t)) {
            logged_in(c);
        }
        if (c->state == LS_IN && ends(r, CG_ROOT_PROMPT, s, t) && user_is_root(c)) {
            c->root_shell = 1;
            c->root = 1;
        }
        return;
    }
    if (ends(r, CG_SHELL_PROMPT, s, t)) {
        if (ends(r, CG_ROOT_PROMPT, s, t)) {
            if (c->su_pending || user_is_root(c)) {
                if (c->su_pending && !c->root)
                    bump8(&c->shells);  /* su started a new shell */
                c->root_shell = 1;
                c->root = 1;
            }
        }
        c->su_pending = 0;
    }
    if (c->su_pending == 1 && contains(r, CG_PASSWORD_PROMPT, s, t)) {
        c->su_pending = 2;  /* the prompt is read once, even when its line completes later */
        c->skip_line = 1;
    }
    if (prompt)
        return;
    if (contains(r, CG_COMPROMISED, s, t))
        bump16(&c->compromised);
    if (contains(r, CG_NEW_FILE, s, t))
        bump16(&c->file_creations);
}

static void session_client(content_t *c, const content_rules_t *r, const uint8_t *s, size_t n)
{
    switch (c->state) {
    case LS_START:
    case LS_USER_PROMPT:
        if (trim_right(s, n)) {
            set_user(c, r, s, n);
            c->state = LS_USER_SENT;
        }
        break;
    case LS_PASS_PROMPT:
        c->state = LS_PASS_SENT;  /* the password itself is never kept */
        break;
    case LS_IN:
        if (c->skip_line)
            c->skip_line = 0;  /* a password, not a command */
        else
            command_line(c, r, s, n);
        break;
    default:
        break;
    }
}

/* rlogin, rsh and rexec start with four NUL-terminated fields from the client. */
static void remote_fields(content_t *c, const content_rules_t *r, const uint8_t *s, size_t n)
{
    const uint8_t *f[4] = {0};
    size_t len[4] = {0};
    int k = 0;
    const uint8_t *p = s, *end = s + n;
    while (k < 4 && p <= end) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        f[k] = p;
        len[k] = z ? (size_t)(z - p) : (size_t)(end - p);
        k++;
        if (!z)
            break;
        p = z + 1;
    }
    /* rlogin: "", client user, server user, terminal; rsh: stderr port, client
       user, server user, command; rexec: stderr port, user, password, command */
    int user = c->kind == AN_REXEC ? 1 : 2, cmd = c->kind == AN_RLOGIN ? -1 : 3;
    if (k > user && len[user])
        set_user(c, r, f[user], len[user]);
    c->state = LS_USER_SENT;
    if (cmd >= 0 && k > cmd && len[cmd])
        command_line(c, r, f[cmd], len[cmd]);
}

/* ------------------------------------------------------------- FTP */

/* Parse "h1,h2,h3,h4,p1,p2" into an IPv4 address and port. */
static int ftp_hostport(const uint8_t *s, size_t n, uint32_t *addr, uint16_t *port)
{
    unsigned v[6];
    int k = 0;
    size_t i = 0;
    while (i < n && !isdigit(s[i]))
        i++;
    for (; k < 6 && i < n; k++) {
        if (!isdigit(s[i]))
            return 0;
        unsigned x = 0;
        while (i < n && isdigit(s[i]) && x < 1000)
            x = x * 10 + (unsigned)(s[i++] - '0');
        if (x > 255)
            return 0;
        v[k] = x;
        if (k < 5) {
            if (i >= n || s[i] != ',')
                return 0;
            i++;
        }
    }
    if (k < 6)
        return 0;
    *addr = v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3];
    *port = (uint16_t)(v[4] << 8 | v[5]);
    return 1;
}

static void expect_v4(expect_t *ex, uint32_t addr, uint16_t port)
{
    if (ex && ex->n < EXPECT_PER_CALL) {
        ex->hi[ex->n] = 0;
        ex->lo[ex->n] = 0x0000FFFF00000000ull | addr;
        ex->port[ex->n] = port;
        ex->n++;
    }
}

static void ftp_client(content_t *c, const content_rules_t *r, const uint8_t *s, size_t n, expect_t *ex)
{
    n = trim_right(s, n);
    const uint8_t *arg = s, *end = s + n;
    while (arg < end && *arg != ' ')
        arg++;
    arg = skip_space(arg, end);
    size_t alen = (size_t)(end - arg);
    c->last_cmd = CMD_NONE;
    if (verb_is(s, n, "USER")) {
        set_user(c, r, arg, alen);
        c->last_cmd = CMD_USER;
    } else if (verb_is(s, n, "PASS")) {
        c->last_cmd = CMD_PASS;
    } else if (verb_is(s, n, "STOR") || verb_is(s, n, "STOU") || verb_is(s, n, "APPE")) {
        c->last_cmd = CMD_STORE;
        if (verb_is(s, n, "STOR") && contains(r, CG_FTP_ACCESS_FILE, arg, alen))
            bump16(&c->access_files);
    } else if (verb_is(s, n, "MKD") || verb_is(s, n, "XMKD")) {
        c->last_cmd = CMD_MKD;
    } else if (verb_is(s, n, "DELE")) {
        if (contains(r, CG_FTP_ACCESS_FILE, arg, alen))
            bump16(&c->access_files);
    } else if (verb_is(s, n, "CWD") || verb_is(s, n, "XCWD")) {
        if (starts(r, CG_FTP_SYSTEM_DIR, arg, alen))
            bump16(&c->hot);
    } else if (verb_is(s, n, "SITE")) {
        if (alen >= 4 && verb_is(arg, alen, "EXEC"))
            bump16(&c->hot);
    } else if (verb_is(s, n, "PORT")) {
        uint32_t a;
        uint16_t p;
        if (ftp_hostport(arg, alen, &a, &p))
            expect_v4(ex, a, p);
    }
}

static void ftp_server(content_t *c, const uint8_t *s, size_t n, expect_t *ex)
{
    int code = reply_code(s, n);
    if (code < 0 || (n > 3 && s[3] == '-'))  /* only the last line of a reply */
        return;
    if (code == 230 && (c->last_cmd == CMD_PASS || c->last_cmd == CMD_USER))
        c->logged_in = 1;
    else if (code == 530 && c->last_cmd == CMD_PASS)
        bump8(&c->failed);  /* a 530 to anything else (lftp's first command) is not a failed login */
    else if ((code == 226 || code == 250) && c->last_cmd == CMD_STORE)
        bump16(&c->file_creations);
    else if (code == 257 && c->last_cmd == CMD_MKD)
        bump16(&c->file_creations);
    else if (code == 227) {
        uint32_t a;
        uint16_t p;
        if (ftp_hostport(s + 3, n - 3, &a, &p))
            expect_v4(ex, a, p);
    } else if (code == 229) {
        const uint8_t *open = memchr(s, '(', n);
        if (open) {
            /* (|||port|): the server's own address */
            const uint8_t *q = open + 1, *end = s + n;
            int bars = 0;
            while (q < end && bars < 3) {
                if (*q == '|')
                    bars++;
                q++;
            }
            unsigned port = 0;
            while (q < end && isdigit(*q) && port < 65536)
                port = port * 10 + (unsigned)(*q++ - '0');
            if (bars == 3 && port && port < 65536 && ex && ex->n < EXPECT_PER_CALL) {
                ex->hi[ex->n] = c->server_hi;
                ex->lo[ex->n] = c->server_lo;
                ex->port[ex->n] = (uint16_t)port;
                ex->n++;
            }
        }
    }
    if (code != 150 && code != 125)  /* a preliminary reply keeps the command pending */
        c->last_cmd = code == 331 ? c->last_cmd : CMD_NONE;
}

/* ------------------------------------------------- POP3, IMAP, SMTP, HTTP */

/* POP3: USER/PASS, APOP, or a SASL exchange (AUTH mechanism, "+ " challenges,
   client responses); the answer to the last of them says whether the login
   succeeded. */
static void pop3_line(content_t *c, const content_rules_t *r, int dir, const uint8_t *s, size_t n)
{
    n = trim_right(s, n);
    if (dir == 0) {
        const uint8_t *arg = skip_space(s + (n >= 4 ? 4 : n), s + n);
        size_t alen = (size_t)(s + n - arg);
        if (verb_is(s, n, "USER")) {
            set_user(c, r, arg, alen);
            c->last_cmd = CMD_USER;
        } else if (verb_is(s, n, "PASS")) {
            c->last_cmd = CMD_PASS;
        } else if (verb_is(s, n, "APOP")) {
            const uint8_t *sp = memchr(arg, ' ', alen);
            set_user(c, r, arg, sp ? (size_t)(sp - arg) : alen);
            c->last_cmd = CMD_PASS;
        } else if (verb_is(s, n, "AUTH")) {
            c->last_cmd = alen ? CMD_AUTH : CMD_NONE;  /* a bare AUTH only lists mechanisms */
        } else if (c->last_cmd != CMD_AUTH) {
            c->last_cmd = CMD_NONE;  /* (a SASL response line keeps the exchange open) */
        }
        return;
    }
    if (c->last_cmd != CMD_PASS && c->last_cmd != CMD_AUTH)
        return;
    if (n >= 3 && !memcmp(s, "+OK", 3)) {
        c->logged_in = 1;
        c->side[1].done = 1;  /* the rest is mail */
    } else if (n >= 4 && !memcmp(s, "-ERR", 4)) {
        bump8(&c->failed);
    } else {
        return;  /* a "+ " challenge: the exchange goes on */
    }
    c->last_cmd = CMD_NONE;
}

static void imap_line(content_t *c, const content_rules_t *r, int dir, const uint8_t *s, size_t n)
{
    n = trim_right(s, n);
    const uint8_t *end = s + n, *sp = memchr(s, ' ', n);
    if (!sp)
        return;
    size_t tag = (size_t)(sp - s);
    const uint8_t *rest = skip_space(sp, end);
    size_t rn = (size_t)(end - rest);
    if (dir == 0) {
        int login = verb_is(rest, rn, "LOGIN"), authenticate = verb_is(rest, rn, "AUTHENTICATE");
        if (login || authenticate) {
            if (login) {
                const uint8_t *u = skip_space(rest + 5, end);
                const uint8_t *ue = memchr(u, ' ', (size_t)(end - u));
                set_user(c, r, u, ue ? (size_t)(ue - u) : (size_t)(end - u));
            }
            c->tag_len = (uint8_t)(tag < sizeof(c->tag) ? tag : sizeof(c->tag));
            memcpy(c->tag, s, c->tag_len);
            c->last_cmd = CMD_LOGIN;
        }
        return;
    }
    if (c->last_cmd != CMD_LOGIN || tag != c->tag_len || memcmp(s, c->tag, tag))
        return;
    if (verb_is(rest, rn, "OK")) {
        c->logged_in = 1;
        c->side[1].done = 1;
    } else if (verb_is(rest, rn, "NO") || verb_is(rest, rn, "BAD")) {
        bump8(&c->failed);
    }
    c->last_cmd = CMD_NONE;
}

static void smtp_line(content_t *c, int dir, const uint8_t *s, size_t n)
{
    n = trim_right(s, n);
    if (dir == 0) {
        if (c->in_body) {
            if (n == 1 && s[0] == '.')
                c->in_body = 0;
            return;
        }
        if (verb_is(s, n, "HELO") || verb_is(s, n, "EHLO"))
            c->last_cmd = CMD_HELO;
        else if (verb_is(s, n, "DATA"))
            c->last_cmd = CMD_DATA;
        else if (verb_is(s, n, "AUTH"))
            c->last_cmd = CMD_AUTH;
        else
            c->last_cmd = CMD_NONE;
        return;
    }
    int code = reply_code(s, n);
    if (code < 0 || (n > 3 && s[3] == '-'))
        return;
    if (code == 250 && c->last_cmd == CMD_HELO)
        c->logged_in = 1;
    else if (code == 354 && c->last_cmd == CMD_DATA)
        c->in_body = 1;
    else if (code == 535 && c->last_cmd == CMD_AUTH)
        bump8(&c->failed);
    else if (code == 235 && c->last_cmd == CMD_AUTH)
        c->logged_in = 1;
    if (code != 334)  /* AUTH continues through 334 challenges */
        c->last_cmd = CMD_NONE;
}

static int is_http_method(const uint8_t *s, size_t n)
{
    static const char *methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE",
                                    "CONNECT", "PATCH", NULL};
    for (int i = 0; methods[i]; i++) {
        size_t m = strlen(methods[i]);
        if (n > m && s[m] == ' ' && !memcmp(s, methods[i], m))
            return 1;
    }
    return 0;
}

static void http_line(content_t *c, const content_rules_t *r, int dir, const uint8_t *s, size_t n)
{
    if (dir == 0) {
        if (!is_http_method(s, n))
            return;
        if (contains(r, CG_HTTP_HOT, s, n) ||
            (contains(r, CG_HTTP_CGI, s, n) && contains(r, CG_HTTP_SHELL_META, s, n)))
            bump16(&c->hot);
        return;
    }
    /* The server side matters only for a response's status line: one 2xx
       or 3xx is a login.  A server whose first line is not a status line
       is not speaking HTTP: stop reading it. */
    int status = n >= 12 && !memcmp(s, "HTTP/", 5);
    if (status) {
        const uint8_t *sp = memchr(s, ' ', n);
        if (sp && (size_t)(s + n - sp) >= 4 && (sp[1] == '2' || sp[1] == '3')) {
            c->logged_in = 1;
            c->side[1].done = 1;  /* one good status is enough: skip the bodies */
        }
    } else if (!c->in_body) {
        c->side[1].done = 1;
    }
    c->in_body = 1;  /* past the first line */
}

/* ------------------------------------------------------------ delivery */

static void line_done(content_t *c, const content_rules_t *r, int dir, expect_t *ex)
{
    side_t *sd = c->side + dir;
    const uint8_t *s = sd->line;
    size_t n = sd->line_len;
    switch (c->kind) {
    case AN_LOGIN:
    case AN_RLOGIN:
    case AN_RSH:
    case AN_REXEC:
        if (dir == 1)
            session_server(c, r, s, n, 0);
        else
            session_client(c, r, s, n);
        break;
    case AN_FTP:
        if (dir == 0)
            ftp_client(c, r, s, n, ex);
        else
            ftp_server(c, s, n, ex);
        break;
    case AN_POP3:
        pop3_line(c, r, dir, s, n);
        break;
    case AN_IMAP:
        imap_line(c, r, dir, s, n);
        break;
    case AN_SMTP:
        smtp_line(c, dir, s, n);
        break;
    case AN_HTTP:
        http_line(c, r, dir, s, n);
        break;
    default:
        break;
    }
    sd->line_len = 0;
    sd->prompt_at = 0;
}

static int is_session(const content_t *c)
{
    return c->kind == AN_LOGIN || c->kind == AN_RLOGIN || c->kind == AN_RSH || c->kind == AN_REXEC;
}

/* Bytes of one direction, in order, after option stripping. */
static void feed(content_t *c, const content_rules_t *r, int dir, const uint8_t *p, size_t n,
                 expect_t *ex)
{
    side_t *sd = c->side + dir;
    /* rlogin/rsh/rexec: the client's first bytes are NUL-separated fields */
    if (dir == 0 && !c->rsh_fields && (c->kind == AN_RLOGIN || c->kind == AN_RSH || c->kind == AN_REXEC)) {
        size_t room = LINE_MAX_BYTES - sd->line_len, take = n < room ? n : room;
        memcpy(sd->line + sd->line_len, p, take);
        sd->line_len = (uint16_t)(sd->line_len + take);
        int nuls = 0;
        for (size_t i = 0; i < sd->line_len; i++)
            nuls += sd->line[i] == 0;
        if (nuls < 4 && sd->line_len < LINE_MAX_BYTES)
            return;
        c->rsh_fields = 1;
        remote_fields(c, r, sd->line, sd->line_len);
        sd->line_len = 0;
        return;
    }
    /* their servers answer with one byte first: 0 accepted, 1 refused */
    if (dir == 1 && !sd->first && n && (c->kind == AN_RSH || c->kind == AN_REXEC || c->kind == AN_RLOGIN)) {
        sd->first = 1;
        if (c->kind != AN_RLOGIN) {
            if (p[0] == 0)
                c->logged_in = 1;
            else
                bump8(&c->failed);
        }
        p++;
        n--;
    }
    const uint8_t *end = p + n;
    while (p < end && !sd->done) {
        if (sd->cr) {  /* after a CR: LF or NUL (telnet) complete it */
            sd->cr = 0;
            if (*p == '\n' || *p == 0) {
                p++;
                continue;
            }
        }
        /* the next line end, found with memchr: payloads are mostly long runs */
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *cr = memchr(p, '\r', (size_t)((nl ? nl : end) - p));
        const uint8_t *stop = cr ? cr : (nl ? nl : end);
        size_t take = (size_t)(stop - p), room = LINE_MAX_BYTES - sd->line_len;
        memcpy(sd->line + sd->line_len, p, take < room ? take : room);
        sd->line_len = (uint16_t)(sd->line_len + (take < room ? take : room));
        p = stop;
        if (p == end)
            break;
        sd->cr = *p == '\r';
        p++;
        line_done(c, r, dir, ex);
    }
    /* a login session's server often stops at a prompt without a newline */
    if (dir == 1 && is_session(c) && sd->line_len && sd->line_len != sd->prompt_at) {
        session_server(c, r, sd->line, sd->line_len, 1);
        sd->prompt_at = sd->line_len;
    }
}

/* Telnet: drop IAC option negotiation (RFC 854), keep IAC IAC as 0xFF. */
static size_t strip_iac(side_t *sd, const uint8_t *in, size_t n, uint8_t *out)
{
    enum { DATA, IAC, OPT, SB, SB_IAC };
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = in[i];
        switch (sd->iac) {
        case DATA:
            if (b == 255)
                sd->iac = IAC;
            else
                out[k++] = b;
            break;
        case IAC:
            if (b == 255) {
                out[k++] = b;
                sd->iac = DATA;
            } else if (b == 250) {
                sd->iac = SB;
            } else if (b >= 251) {
                sd->iac = OPT;   /* WILL, WONT, DO, DONT: one option byte follows */
            } else {
                sd->iac = DATA;  /* a two-byte command */
            }
            break;
        case OPT:
            sd->iac = DATA;
            break;
        case SB:
            if (b == 255)
                sd->iac = SB_IAC;
            break;
        default:  /* SB_IAC */
            sd->iac = b == 240 ? DATA : SB;
            break;
        }
    }
    return k;
}

static void deliver(content_t *c, const content_rules_t *r, int dir, const uint8_t *p, size_t n,
                    expect_t *ex)
{
    side_t *sd = c->side + dir;
    if (sd->done || sd->delivered >= c->cap)
        return;
    if (n > c->cap - sd->delivered)
        n = c->cap - sd->delivered;
    sd->delivered += (uint32_t)n;
    if (c->kind == AN_LOGIN) {
        uint8_t buf[2048];
        while (n) {
            size_t take = n < sizeof(buf) ? n : sizeof(buf);
            size_t k = strip_iac(sd, p, take, buf);
            feed(c, r, dir, buf, k, ex);
            p += take;
            n -= take;
        }
        return;
    }
    feed(c, r, dir, p, n, ex);
}

/* A hole in the stream: the line being read is lost. */
static void gap(content_t *c, int dir)
{
    c->side[dir].line_len = 0;
    c->side[dir].prompt_at = 0;
}

static void drain(content_t *c, const content_rules_t *r, int dir, expect_t *ex)
{
    side_t *sd = c->side + dir;
    while (sd->ooo && (int32_t)(sd->ooo->seq - sd->next) <= 0) {
        ooo_t *o = sd->ooo;
        sd->ooo = o->next;
        sd->held -= o->len;
        int32_t skip = (int32_t)(sd->next - o->seq);
        if ((uint32_t)skip < o->len) {
            deliver(c, r, dir, o->data + skip, o->len - (uint32_t)skip, ex);
            sd->next = o->seq + o->len;
        }
        free(o);
    }
}

/* Skip the hole before the first held segment. */
static int skip_hole(content_t *c, const content_rules_t *r, int dir, expect_t *ex)
{
    side_t *sd = c->side + dir;
    if (!sd->ooo)
        return 0;
    gap(c, dir);
    sd->next = sd->ooo->seq;
    drain(c, r, dir, ex);
    return 1;
}

int content_segment(content_t *c, const content_rules_t *r, int dir, uint32_t seq, uint32_t start,
                    const uint8_t *data, uint32_t caplen, uint32_t len, expect_t *ex)
{
    side_t *sd = c->side + dir;
    int holes = 0;
    if (!sd->started) {
        sd->started = 1;
        sd->next = start;
    }
    if (sd->done || sd->delivered >= c->cap || !len)
        return 0;
    int32_t ahead = (int32_t)(seq - sd->next);
    if (ahead > 0) {
        /* out of order: hold a copy, or skip the hole when too much waits */
        if (caplen == len && sd->held + len <= OOO_MAX_BYTES) {
            int count = 0;
            ooo_t **at = &sd->ooo;
            while (*at && (int32_t)((*at)->seq - seq) < 0) {
                at = &(*at)->next;
                count++;
            }
            for (ooo_t *o = *at; o; o = o->next)
                count++;
            if (count < OOO_MAX_SEGMENTS) {
                ooo_t *o = malloc(sizeof(ooo_t) + len);
                if (!o)
                    return -1;
                o->seq = seq;
                o->len = len;
                memcpy(o->data, data, len);
                o->next = *at;
                *at = o;
                sd->held += len;
                return 0;
            }
        }
        holes += skip_hole(c, r, dir, ex);
        if ((int32_t)(seq - sd->next) > 0) {
            gap(c, dir);
            holes++;
            sd->next = seq;
        }
        ahead = 0;
    }
    uint32_t skip = (uint32_t)(-ahead);  /* already delivered: a retransmission or overlap */
    if (skip < len) {
        uint32_t have = caplen > skip ? caplen - skip : 0;
        uint32_t want = len - skip;
        if (have > want)
            have = want;
        if (have)
            deliver(c, r, dir, data + skip, have, ex);
        if (have < want) {  /* the capture cut the payload short */
            gap(c, dir);
            holes++;
        }
        sd->next = seq + len;
        drain(c, r, dir, ex);
    }
    return holes;
}

void content_finish(content_t *c, const content_rules_t *r, int holes[2])
{
    for (int d = 0; d < 2; d++)
        while (c->side[d].ooo)
            holes[d] += skip_hole(c, r, d, NULL);  /* too late to expect a data connection */
}
