
/*
 * bench/loadgen.c: the load generator of the benchmark (bench/README.md).
 *
 * One process on epoll drives many clients, WebSocket or HTTP/1.1
 * keep-alive, each a line of a plan file:
 *
 *     <user> <conversation it sends to, or -> [<conversation>:<seq> ...]
 *
 * A WebSocket client connects with a token it mints itself (HS256 over the
 * server's secret), reads hello, and resumes the listed conversations at
 * the listed seqs, so that it must receive every event after them: each
 * new_message is checked against the last seq of its conversation on that
 * connection (a gap is a loss, a repeat a duplicate, a step back out of
 * order) and, at the end, against where Postgres stands (bench/run).
 *
 * Senders put "P<phase>T<microseconds>" in each message: the time the
 * message was due, so that a late generator shows up as latency instead of
 * hiding it.  Receivers take the delivery latency from it; the ack (or the
 * HTTP answer) gives the round trip of the sender.  Latencies go to
 * histograms exact to the microsecond up to 2 ms and to 1/1024 above.
 *
 * Leanness: one read() per socket wakeup into one buffer per process, no
 * allocation per message; a connection holds bytes of its own only while a
 * frame is incomplete.  Connections spread over the source addresses
 * 127.0.0.2, 127.0.0.3 ... (28,232 ports each towards one server port).  A
 * process raises its file limit to the hard limit and forks as many
 * processes as the plan needs beyond it; each writes its own result file,
 * which bench/run merges.
 *
 * The parent talks to bench/run over stdin and stdout: "READY ..." once
 * every client has connected, then (with --wait) it waits for "go", runs
 * the phases, prints "DONE" and waits for "quit" before it closes the
 * connections, so that memory can be measured while they are open.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>


#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT  24
#endif

#define LG_RBUF           (256 * 1024)
#define LG_WBUF           (64 * 1024)
#define LG_EVENTS         1024
#define LG_MAX_PHASES     32
#define LG_MAX_SOURCES    250
#define LG_HTTP_QUEUE     64
#define LG_RESERVED_FDS   32
#define LG_SECS           120     /* seconds of a phase counted one by one */

#define LG_SUB_BITS       10
#define LG_HIST_BUCKETS   ((41 - LG_SUB_BITS) << LG_SUB_BITS)

#define LG_H_DELIVERY     0
#define LG_H_ACK          1
#define LG_H_HTTP         2
#define LG_NHIST          3

/* the RFC 6455 example key and its accept value */
#define LG_WS_KEY         "dGhlIHNhbXBsZSBub25jZQ=="
#define LG_WS_ACCEPT      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define LG_EV_TIMER       0xffffff01u
#define LG_EV_STDIN       0xffffff02u
#define LG_EV_SIGNAL      0xffffff03u
#define LG_EV_CHILD       0xffffff04u     /* + child number in the high bits */


typedef enum {
    LG_FREE = 0,
    LG_CONNECTING,
    LG_HANDSHAKE,
    LG_HELLO,
    LG_RESUMING,
    LG_READY,
    LG_CLOSED,
    LG_FAILED
} lg_state_e;


typedef enum {
    LG_STAGE_CONNECT = 0,
    LG_STAGE_WAIT_GO,
    LG_STAGE_SEND,
    LG_STAGE_DRAIN,
    LG_STAGE_FINAL,
    LG_STAGE_DONE,
    LG_STAGE_EXIT
} lg_stage_e;


typedef struct {
    uint64_t        *counts;
    uint64_t         n;
    uint64_t         max;
    uint64_t         sum;
} lg_hist_t;


typedef struct {
    int64_t          id;
    uint64_t         acked;
    int64_t          max_acked_seq;
} lg_conv_t;


typedef struct {
    uint32_t         conv;          /* index in lg.convs */
    int64_t          last;          /* the seq last received */
} lg_sub_t;


typedef struct {
    int              fd;
    uint8_t          state;
    uint8_t          http;
    uint8_t          counted;       /* settled: ready or failed once */
    uint16_t         nsubs;
    int32_t          send_conv;     /* index in lg.convs, or -1 */
    uint32_t         outstanding;   /* sends without their answer */
    const char      *user;
    lg_sub_t        *subs;

    u_char          *carry;         /* an incomplete frame or header */
    uint32_t         carry_len;
    uint32_t         carry_cap;

    u_char          *out;           /* what a write() left unsent */
    uint32_t         out_len;
    uint32_t         out_cap;

    /* HTTP */
    char            *auth;          /* "Authorization: Bearer ...\r\n" */
    uint64_t         t_req;         /* when the request in flight was due */
    int64_t          body_left;     /* -1: the header is not complete */
    uint32_t         status;
    uint32_t         req_phase;
    uint64_t        *queue;         /* due times of requests waiting */
    uint16_t         qhead;
    uint16_t         qlen;
} lg_conn_t;


typedef struct {
    double           rate;          /* messages or requests a second */
    uint64_t         start_us;
    uint64_t         end_us;
    uint64_t         drained_us;
    uint64_t         sent;
    uint64_t         acked;
    uint64_t         errors;
    uint64_t         delivered;
    uint64_t         delivered_bytes;
    uint64_t         http_ok;
    uint64_t         http_err;
    uint64_t         limited;       /* of errors and http_err: 429,
                                       rate_limited */
    uint64_t         overflow;
    uint64_t         late_us;       /* the worst lateness of a send */
    uint64_t         cpu_ns;        /* this process */
    uint64_t         watch_ns;      /* the watched pids (nginx workers) */
    lg_hist_t        hist[LG_NHIST];
    uint32_t         sec_ok[LG_SECS];   /* answers accepted, a second */
    uint32_t         sec_lim[LG_SECS];  /* refused by a rate limit */
} lg_phase_t;


static struct {
    /* configuration */
    struct sockaddr_in   server;
    char                 host[64];
    const char          *path;
    struct in_addr       sources[LG_MAX_SOURCES];
    int                  nsources;
    u_char               secret[512];
    size_t               secret_len;
    const char          *tenant;
    const char          *out;
    const char          *get_paths;
    int                  http;
    int                  wait;
    int                  inflight;
    int                  procs;
    int                  closed;        /* outstanding per sender, or 0 */
    int                  poisson;
    int                  reconnect;
    int                  content_bytes;
    int                  quickack;
    double               phase_secs;
    uint64_t             drain_us;
    uint64_t             quiet_us;
    uint64_t             final_max_us;
    uint64_t             stop_p99;
    uint64_t             max_us;
    double               rates[LG_MAX_PHASES];
    int                  nphases;
    pid_t                watch[64];
    int                  nwatch;

    /* the plan, shared by every process until fork */
    char                *plan;
    lg_conn_t           *conns;
    uint32_t             nconns;
    lg_conv_t           *convs;
    uint32_t             nconvs;
    uint32_t            *conv_index;    /* conversation id -> index + 1 */
    int64_t              max_conv_id;
    uint32_t             total_senders;
    char               **paths;
    uint32_t             npaths;
    uint32_t             next_path;

    /* this process */
    int                  proc;          /* 0: the parent */
    int                  nprocs;
    pid_t                children[256];
    int                  child_fds[256];
    int                  child_ready[256];
    int                  child_done[256];
    int                  to_parent;
    uint32_t             lo, hi;        /* my slice of conns */
    uint32_t            *senders;
    uint32_t             nsenders;
    uint32_t             next_sender;
    uint32_t             next_connect;
    uint32_t            *reconnects;
    uint32_t             nreconnects;
    uint32_t             connecting;
    uint32_t             ready;
    uint32_t             failed;
    uint32_t             settled;
    uint32_t             ready_total;   /* of the children */
    uint32_t             failed_total;
    uint64_t             start_us;
    uint64_t             ready_us;
    int                  ep;
    int                  tfd;
    uint64_t             armed;
    int                  sfd;
    u_char              *rbuf;
    u_char              *wbuf;
    uint64_t             now;
    uint64_t             last_rx;
    uint32_t             rng;

    lg_stage_e           stage;
    int                  phase;
    double               my_rate;
    uint64_t             next_send;
    uint64_t             stage_end;
    uint64_t             cpu0;
    uint64_t             watch0;
    int                  reported;
    int                  printed_done;
    int                  go_early;
    int                  all_ready_printed;
    uint32_t             stopped_at;    /* phase that passed stop_p99 + 1 */

    lg_phase_t           phases[LG_MAX_PHASES];

    /* totals */
    uint64_t             gaps;
    uint64_t             dups;
    uint64_t             ooo;
    uint64_t             untracked;     /* of conversations not followed */
    uint64_t             presence;
    uint64_t             other;
    uint64_t             closes;
    uint64_t             reconnected;
    uint64_t             errors_printed;
    uint64_t             pongs;
} lg;


static void lg_usage(void);
static void lg_die(const char *fmt, ...);
static void lg_warn(const char *fmt, ...);
static uint64_t lg_now(void);
static uint64_t lg_cpu_ns(void);
static uint64_t lg_watch_ns(void);
static uint32_t lg_random(void);

static void lg_hist_init(lg_hist_t *h);
static void lg_hist_add(lg_hist_t *h, uint64_t v);
static uint64_t lg_hist_percentile(lg_hist_t *h, double p);
static uint32_t lg_bucket(uint64_t v);
static uint64_t lg_bucket_value(uint32_t i);

static size_t lg_base64url(u_char *dst, const u_char *src, size_t len);
static size_t lg_token(char *buf, size_t size, const char *user);

static void lg_read_secret(const char *name);
static void lg_read_plan(const char *name);
static void lg_read_paths(const char *name);
static void lg_parse_rates(const char *s);
static void lg_parse_watch(const char *s);
static uint32_t lg_conv(int64_t id);

static void lg_start(void);
static void lg_run(void);
static void lg_tick(void);
static void lg_arm_timer(void);
static void lg_connect_more(void);
static void lg_connect(lg_conn_t *c);
static void lg_connected(lg_conn_t *c);
static void lg_settle(lg_conn_t *c, int ok);
static void lg_close(lg_conn_t *c, const char *why);
static int lg_write(lg_conn_t *c, u_char *data, size_t len);
static void lg_flush(lg_conn_t *c);
static void lg_event(lg_conn_t *c, uint32_t events);
static void lg_read(lg_conn_t *c);
static int lg_keep(lg_conn_t *c, u_char *p, size_t len);
static ssize_t lg_handshake(lg_conn_t *c, u_char *p, size_t len);
static size_t lg_frames(lg_conn_t *c, u_char *p, size_t len);
static void lg_control(lg_conn_t *c, int opcode, u_char *p, size_t len);
static void lg_message(lg_conn_t *c, u_char *p, size_t len);
static void lg_new_message(lg_conn_t *c, u_char *p, size_t len);
static void lg_ack(lg_conn_t *c, u_char *p, size_t len);
static void lg_resume(lg_conn_t *c);
static int lg_send_frame(lg_conn_t *c, int opcode, u_char *p, size_t len);
static void lg_send(lg_conn_t *c, uint64_t due);
static void lg_http_send(lg_conn_t *c, uint64_t due);
static size_t lg_http_response(lg_conn_t *c, u_char *p, size_t len);
static void lg_http_done(lg_conn_t *c);
static void lg_http_schedule(uint64_t due);

static void lg_go(void);
static void lg_phase_start(void);
static void lg_phase_end(void);
static void lg_count(lg_phase_t *ph, int ok);
static void lg_finish(void);
static void lg_report(void);
static void lg_control_line(char *line);
static void lg_child_line(int k, char *line);
static void lg_quit(void);
static void lg_fork(void);


static const struct option  lg_options[] = {
    { "port", required_argument, NULL, 'p' },
    { "host", required_argument, NULL, 'H' },
    { "path", required_argument, NULL, 'u' },
    { "sources", required_argument, NULL, 's' },
    { "secret", required_argument, NULL, 'k' },
    { "tenant", required_argument, NULL, 't' },
    { "plan", required_argument, NULL, 'l' },
    { "out", required_argument, NULL, 'o' },
    { "http", no_argument, NULL, 'h' },
    { "get-paths", required_argument, NULL, 'g' },
    { "wait", no_argument, NULL, 'w' },
    { "inflight", required_argument, NULL, 'i' },
    { "procs", required_argument, NULL, 'P' },
    { "rates", required_argument, NULL, 'r' },
    { "phase-secs", required_argument, NULL, 'S' },
    { "drain-ms", required_argument, NULL, 'd' },
    { "quiet-ms", required_argument, NULL, 'q' },
    { "final-max-ms", required_argument, NULL, 'F' },
    { "closed", required_argument, NULL, 'c' },
    { "poisson", no_argument, NULL, 'e' },
    { "reconnect", no_argument, NULL, 'R' },
    { "content-bytes", required_argument, NULL, 'b' },
    { "stop-p99-us", required_argument, NULL, 'x' },
    { "watch", required_argument, NULL, 'W' },
    { "max-secs", required_argument, NULL, 'm' },
    { "quickack", no_argument, NULL, 'Q' },
    { NULL, 0, NULL, 0 }
};


int
main(int argc, char **argv)
{
    int          ch, n;
    const char  *plan, *secret;

    plan = NULL;
    secret = NULL;

    strcpy(lg.host, "127.0.0.1");
    lg.path = "/ws/chat";
    lg.tenant = "bench";
    lg.out = "loadgen";
    lg.inflight = 128;
    lg.nsources = 8;
    lg.phase_secs = 5;
    lg.drain_us = 500000;
    lg.quiet_us = 1000000;
    lg.final_max_us = 20000000;
    lg.content_bytes = 64;
    lg.max_us = 900 * 1000000ULL;
    lg.server.sin_family = AF_INET;
    lg.server.sin_port = htons(8080);

    while ((ch = getopt_long(argc, argv, "", lg_options, NULL)) != -1) {
        switch (ch) {
        case 'p':
            lg.server.sin_port = htons((uint16_t) atoi(optarg));
            break;
        case 'H':
            snprintf(lg.host, sizeof(lg.host), "%s", optarg);
            break;
        case 'u':
            lg.path = optarg;
            break;
        case 's':
            lg.nsources = atoi(optarg);
            break;
        case 'k':
            secret = optarg;
            break;
        case 't':
            lg.tenant = optarg;
            break;
        case 'l':
            plan = optarg;
            break;
        case 'o':
            lg.out = optarg;
            break;
        case 'h':
            lg.http = 1;
            break;
        case 'g':
            lg.get_paths = optarg;
            lg.http = 1;
            break;
        case 'w':
            lg.wait = 1;
            break;
        case 'i':
            lg.inflight = atoi(optarg);
            break;
        case 'P':
            lg.procs = atoi(optarg);
            break;
        case 'r':
            lg_parse_rates(optarg);
            break;
        case 'S':
            lg.phase_secs = atof(optarg);
            break;
        case 'd':
            lg.drain_us = (uint64_t) atoll(optarg) * 1000;
            break;
        case 'q':
            lg.quiet_us = (uint64_t) atoll(optarg) * 1000;
            break;
        case 'F':
            lg.final_max_us = (uint64_t) atoll(optarg) * 1000;
            break;
        case 'c':
            lg.closed = atoi(optarg);
            break;
        case 'e':
            lg.poisson = 1;
            break;
        case 'R':
            lg.reconnect = 1;
            break;
        case 'b':
            lg.content_bytes = atoi(optarg);
            break;
        case 'x':
            lg.stop_p99 = (uint64_t) atoll(optarg);
            break;
        case 'W':
            lg_parse_watch(optarg);
            break;
        case 'm':
            lg.max_us = (uint64_t) atoll(optarg) * 1000000;
            break;
        case 'Q':
            lg.quickack = 1;
            break;
        default:
            lg_usage();
        }
    }

    if (plan == NULL || secret == NULL || optind != argc) {
        lg_usage();
    }

    if (lg.nsources < 1 || lg.nsources > LG_MAX_SOURCES) {
        lg_die("--sources takes 1 to %d", LG_MAX_SOURCES);
    }

    if (lg.content_bytes < 24 || lg.content_bytes > 8192) {
        lg_die("--content-bytes takes 24 to 8192");
    }

    if (lg.closed && lg.nphases == 0) {
        lg.rates[0] = 0;
        lg.nphases = 1;
    }

    if (inet_pton(AF_INET, lg.host, &lg.server.sin_addr) != 1) {
        lg_die("--host takes an IPv4 address, not \"%s\"", lg.host);
    }

    for (n = 0; n < lg.nsources; n++) {
        lg.sources[n].s_addr = htonl(0x7f000002u + (uint32_t) n);
    }

    lg_read_secret(secret);
    lg_read_plan(plan);

    if (lg.get_paths) {
        lg_read_paths(lg.get_paths);
    }

    signal(SIGPIPE, SIG_IGN);

    lg_fork();
    lg_start();
    lg_run();

    return 0;
}


static void
lg_usage(void)
{
    fprintf(stderr,
        "usage: loadgen --plan FILE --secret FILE [options]\n"
        "  --port N --host ADDR --path /ws/chat --tenant T\n"
        "  --sources N         source addresses 127.0.0.2 and on (8)\n"
        "  --http              plan lines are HTTP clients (POST messages)\n"
        "  --get-paths FILE    HTTP clients GET these paths in turn\n"
        "  --rates R1,R2,...   a phase per rate (messages or requests/s)\n"
        "  --phase-secs S      length of each phase (5)\n"
        "  --closed K          closed loop: K requests in flight a sender\n"
        "  --poisson           Poisson arrivals instead of even spacing\n"
        "  --stop-p99-us US    stop the phases after one whose p99 passes\n"
        "  --drain-ms MS       pause after each phase (500)\n"
        "  --quiet-ms MS       the end: until nothing came for MS (1000)\n"
        "  --watch PID,...     CPU time of these pids per phase\n"
        "  --reconnect         reconnect and resume closed clients\n"
        "  --inflight N        handshakes at once per process (128)\n"
        "  --procs N           processes (at least what the fd limit needs)\n"
        "  --wait              wait for go and quit lines on stdin\n"
        "  --out PREFIX        results to PREFIX.<process>\n");
    exit(2);
}


static void
lg_die(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "loadgen[%d]: ", lg.proc);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}


static void
lg_warn(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "loadgen[%d]: ", lg.proc);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static uint64_t
lg_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


static uint64_t
lg_cpu_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}


/* time on CPU of the watched processes: schedstat counts nanoseconds */

static uint64_t
lg_watch_ns(void)
{
    int                 i;
    char                name[64];
    FILE               *f;
    unsigned long long  ns, total;

    total = 0;

    for (i = 0; i < lg.nwatch; i++) {
        snprintf(name, sizeof(name), "/proc/%d/schedstat", (int) lg.watch[i]);
        f = fopen(name, "r");
        if (f == NULL) {
            continue;
        }
        if (fscanf(f, "%llu", &ns) == 1) {
            total += ns;
        }
        fclose(f);
    }

    return total;
}


static uint32_t
lg_random(void)
{
    /* xorshift32: cheap, and good enough for masks and arrivals */
    lg.rng ^= lg.rng << 13;
    lg.rng ^= lg.rng >> 17;
    lg.rng ^= lg.rng << 5;
    return lg.rng;
}


/* histograms: exact below 2^11 us, then 1024 buckets per power of two */

static uint32_t
lg_bucket(uint64_t v)
{
    unsigned  e, sh;

    if (v < (2u << LG_SUB_BITS)) {
        return (uint32_t) v;
    }

    e = 63 - (unsigned) __builtin_clzll(v);
    if (e > 39) {
        return LG_HIST_BUCKETS - 1;
    }

    sh = e - LG_SUB_BITS;
    return ((sh + 1) << LG_SUB_BITS) + (uint32_t) (v >> sh)
           - (1u << LG_SUB_BITS);
}


/* the middle of a bucket */

static uint64_t
lg_bucket_value(uint32_t i)
{
    uint32_t  sh;

    if (i < (2u << LG_SUB_BITS)) {
        return i;
    }

    sh = (i >> LG_SUB_BITS) - 1;
    return ((uint64_t) ((i & ((1u << LG_SUB_BITS) - 1))
                        + (1u << LG_SUB_BITS)) << sh)
           + ((1ULL << sh) >> 1);
}


static void
lg_hist_init(lg_hist_t *h)
{
    h->counts = calloc(LG_HIST_BUCKETS, sizeof(uint64_t));
    if (h->counts == NULL) {
        lg_die("out of memory");
    }
}


static void
lg_hist_add(lg_hist_t *h, uint64_t v)
{
    if (h->counts == NULL) {
        return;
    }

    h->counts[lg_bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}


static uint64_t
lg_hist_percentile(lg_hist_t *h, double p)
{
    uint32_t  i;
    uint64_t  want, seen;

    if (h->counts == NULL || h->n == 0) {
        return 0;
    }

    want = (uint64_t) ceil(p / 100.0 * (double) h->n);
    if (want == 0) {
        want = 1;
    }

    seen = 0;

    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            return lg_bucket_value(i) < h->max ? lg_bucket_value(i) : h->max;
        }
    }

    return h->max;
}


/* tokens: HS256 JWTs, as the server's chat_jwt_key secret_file= checks */

static size_t
lg_base64url(u_char *dst, const u_char *src, size_t len)
{
    size_t         i;
    uint32_t       v;
    u_char        *p;
    static const char  a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    p = dst;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        *p++ = a[(v >> 6) & 63];
        *p++ = a[v & 63];
    }

    if (len - i == 1) {
        v = (uint32_t) src[i] << 16;
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        *p++ = a[(v >> 6) & 63];
    }

    return (size_t) (p - dst);
}


static size_t
lg_token(char *buf, size_t size, const char *user)
{
    int           n;
    char          claims[512];
    size_t        len;
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  maclen;
    time_t        now;
    static const char  header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

    if (size < 1024) {
        lg_die("token buffer too small");
    }

    now = time(NULL);
    n = snprintf(claims, sizeof(claims),
                 "{\"sub\":\"%s\",\"tid\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
                 user, lg.tenant, (long) now, (long) now + 7 * 86400);
    if (n < 0 || (size_t) n >= sizeof(claims)) {
        lg_die("user name too long: %s", user);
    }

    len = lg_base64url((u_char *) buf, (const u_char *) header,
                       sizeof(header) - 1);
    buf[len++] = '.';
    len += lg_base64url((u_char *) buf + len, (u_char *) claims, (size_t) n);

    if (HMAC(EVP_sha256(), lg.secret, (int) lg.secret_len, (u_char *) buf,
             len, mac, &maclen) == NULL)
    {
        lg_die("HMAC failed");
    }

    buf[len++] = '.';
    len += lg_base64url((u_char *) buf + len, mac, maclen);
    buf[len] = '\0';

    return len;
}


/* the plan */

static void
lg_read_secret(const char *name)
{
    FILE    *f;
    size_t   n;

    f = fopen(name, "r");
    if (f == NULL) {
        lg_die("cannot open %s: %s", name, strerror(errno));
    }

    n = fread(lg.secret, 1, sizeof(lg.secret), f);
    fclose(f);

    /* like the server: a trailing newline is not the secret */
    while (n && (lg.secret[n - 1] == '\n' || lg.secret[n - 1] == '\r')) {
        n--;
    }

    if (n == 0 || n == sizeof(lg.secret)) {
        lg_die("%s: empty or too long", name);
    }

    lg.secret_len = n;
}


static char *
lg_slurp(const char *name, size_t *len)
{
    FILE   *f;
    char   *data;
    long    size;

    f = fopen(name, "r");
    if (f == NULL) {
        lg_die("cannot open %s: %s", name, strerror(errno));
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    data = malloc((size_t) size + 1);
    if (data == NULL || fread(data, 1, (size_t) size, f) != (size_t) size) {
        lg_die("cannot read %s", name);
    }

    fclose(f);
    data[size] = '\0';
    *len = (size_t) size;

    return data;
}


static uint32_t
lg_conv(int64_t id)
{
    return lg.conv_index[id] - 1;
}


static void
lg_read_plan(const char *name)
{
    char       *p, *line, *tok, *save, *colon;
    size_t      len;
    int64_t     id;
    uint32_t    i, n, k;
    lg_conn_t  *c;

    lg.plan = lg_slurp(name, &len);

    /* first pass: how many clients, and the largest conversation id */

    n = 0;
    lg.max_conv_id = 0;

    for (p = lg.plan; *p; p++) {
        if (*p == '\n') {
            n++;
        }
        if (*p == ' ' && p[1] >= '0' && p[1] <= '9') {
            id = strtoll(p + 1, NULL, 10);
            if (id > lg.max_conv_id) {
                lg.max_conv_id = id;
            }
        }
    }

    if (lg.max_conv_id > 50000000) {
        lg_die("conversation ids up to 50,000,000 only");
    }

    lg.conns = calloc(n + 1, sizeof(lg_conn_t));
    lg.conv_index = calloc((size_t) lg.max_conv_id + 1, sizeof(uint32_t));
    lg.convs = calloc(1024, sizeof(lg_conv_t));
    if (lg.conns == NULL || lg.conv_index == NULL || lg.convs == NULL) {
        lg_die("out of memory");
    }

    k = 1024;

    for (line = strtok_r(lg.plan, "\n", &save), i = 0; line;
         line = strtok_r(NULL, "\n", &save))
    {
        char  *save2;

        tok = strtok_r(line, " \t", &save2);
        if (tok == NULL || tok[0] == '#') {
            continue;
        }

        c = &lg.conns[i++];
        c->fd = -1;
        c->user = tok;
        c->send_conv = -1;
        c->http = (uint8_t) lg.http;
        c->body_left = -1;

        tok = strtok_r(NULL, " \t", &save2);
        if (tok && strcmp(tok, "-") != 0) {
            id = strtoll(tok, NULL, 10);
            if (id <= 0) {
                lg_die("plan: bad conversation \"%s\"", tok);
            }
            if (lg.conv_index[id] == 0) {
                if (lg.nconvs == k) {
                    k *= 2;
                    lg.convs = realloc(lg.convs, k * sizeof(lg_conv_t));
                    if (lg.convs == NULL) {
                        lg_die("out of memory");
                    }
                }
                lg.convs[lg.nconvs].id = id;
                lg.convs[lg.nconvs].acked = 0;
                lg.convs[lg.nconvs].max_acked_seq = 0;
                lg.conv_index[id] = ++lg.nconvs;
            }
            c->send_conv = (int32_t) lg_conv(id);
            lg.total_senders++;
        }

        /* conversation:seq pairs, into an array of the client's own */

        p = save2;
        n = 0;
        if (p) {
            for (; *p; p++) {
                if (*p == ':') {
                    n++;
                }
            }
        }

        if (n == 0) {
            continue;
        }

        c->subs = calloc(n, sizeof(lg_sub_t));
        if (c->subs == NULL) {
            lg_die("out of memory");
        }

        while ((tok = strtok_r(NULL, " \t", &save2)) != NULL) {
            colon = strchr(tok, ':');
            if (colon == NULL) {
                lg_die("plan: \"%s\" is not conversation:seq", tok);
            }
            id = strtoll(tok, NULL, 10);
            if (id <= 0 || id > lg.max_conv_id) {
                lg_die("plan: bad conversation \"%s\"", tok);
            }
            if (lg.conv_index[id] == 0) {
                if (lg.nconvs == k) {
                    k *= 2;
                    lg.convs = realloc(lg.convs, k * sizeof(lg_conv_t));
                    if (lg.convs == NULL) {
                        lg_die("out of memory");
                    }
                }
                lg.convs[lg.nconvs].id = id;
                lg.convs[lg.nconvs].acked = 0;
                lg.convs[lg.nconvs].max_acked_seq = 0;
                lg.conv_index[id] = ++lg.nconvs;
            }
            c->subs[c->nsubs].conv = lg_conv(id);
            c->subs[c->nsubs].last = strtoll(colon + 1, NULL, 10);
            c->nsubs++;
        }
    }

    lg.nconns = i;

    if (lg.nconns == 0) {
        lg_die("plan %s names no client", name);
    }
}


static void
lg_read_paths(const char *name)
{
    char      *data, *line, *save;
    size_t     len;
    uint32_t   n;

    data = lg_slurp(name, &len);

    n = 1;
    for (line = data; *line; line++) {
        n += (*line == '\n');
    }

    lg.paths = calloc(n, sizeof(char *));
    if (lg.paths == NULL) {
        lg_die("out of memory");
    }

    for (line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
    {
        if (line[0] == '/') {
            lg.paths[lg.npaths++] = line;
        }
    }

    if (lg.npaths == 0) {
        lg_die("%s names no path", name);
    }
}


static void
lg_parse_rates(const char *s)
{
    char  *end;

    while (*s) {
        if (lg.nphases == LG_MAX_PHASES) {
            lg_die("at most %d phases", LG_MAX_PHASES);
        }
        lg.rates[lg.nphases++] = strtod(s, &end);
        if (end == s) {
            lg_die("--rates: bad number at \"%s\"", s);
        }
        s = (*end == ',') ? end + 1 : end;
    }
}


static void
lg_parse_watch(const char *s)
{
    char  *end;

    while (*s && lg.nwatch < 64) {
        lg.watch[lg.nwatch++] = (pid_t) strtol(s, &end, 10);
        if (end == s) {
            lg_die("--watch: bad pid at \"%s\"", s);
        }
        s = (*end == ',') ? end + 1 : end;
    }
}


/*
 * Processes: as many as the file limit asks, the parent first.  Each takes
 * a slice of the clients; the parent learns over a pipe when a child is
 * ready and when it is done, and tells them to go and to quit by signals.
 */

static void
lg_fork(void)
{
    int            k, fds[2];
    pid_t          pid;
    uint32_t       cap, per;
    sigset_t       set;
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        lg_die("getrlimit: %s", strerror(errno));
    }

    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        lg_warn("setrlimit: %s", strerror(errno));
        getrlimit(RLIMIT_NOFILE, &rl);
    }

    cap = (uint32_t) rl.rlim_cur - LG_RESERVED_FDS;
    lg.nprocs = (int) ((lg.nconns + cap - 1) / cap);
    if (lg.procs > lg.nprocs) {
        lg.nprocs = lg.procs;
    }
    if (lg.nprocs > 256) {
        lg_die("more than 256 processes needed");
    }

    per = (lg.nconns + (uint32_t) lg.nprocs - 1) / (uint32_t) lg.nprocs;

    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);

    fflush(stdout);
    fflush(stderr);

    lg.proc = 0;
    lg.to_parent = -1;

    for (k = 1; k < lg.nprocs; k++) {
        if (pipe2(fds, O_CLOEXEC) != 0) {
            lg_die("pipe: %s", strerror(errno));
        }

        pid = fork();
        if (pid < 0) {
            lg_die("fork: %s", strerror(errno));
        }

        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            close(fds[0]);
            lg.proc = k;
            lg.to_parent = fds[1];
            break;
        }

        close(fds[1]);
        lg.children[k] = pid;
        lg.child_fds[k] = fds[0];
    }

    lg.lo = (uint32_t) lg.proc * per;
    lg.hi = lg.lo + per < lg.nconns ? lg.lo + per : lg.nconns;
    if (lg.lo > lg.hi) {
        lg.lo = lg.hi;
    }

    if (lg.proc != 0) {
        for (k = 1; k < lg.nprocs; k++) {
            if (lg.child_fds[k] > 0) {
                close(lg.child_fds[k]);
            }
        }
    }

    lg.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (lg.sfd < 0) {
        lg_die("signalfd: %s", strerror(errno));
    }
}


static void
lg_start(void)
{
    int                 k;
    uint32_t            i;
    struct epoll_event  ee;

    lg.rng = (uint32_t) getpid() * 2654435761u ^ (uint32_t) lg_now();
    if (lg.rng == 0) {
        lg.rng = 1;
    }

    lg.rbuf = malloc(LG_RBUF);
    lg.wbuf = malloc(LG_WBUF);
    lg.senders = calloc(lg.hi - lg.lo + 1, sizeof(uint32_t));
    lg.reconnects = calloc(lg.hi - lg.lo + 1, sizeof(uint32_t));
    if (lg.rbuf == NULL || lg.wbuf == NULL || lg.senders == NULL
        || lg.reconnects == NULL)
    {
        lg_die("out of memory");
    }

    for (i = lg.lo; i < lg.hi; i++) {
        if (lg.conns[i].send_conv >= 0 || lg.get_paths) {
            lg.senders[lg.nsenders++] = i;
        }
    }

    lg.ep = epoll_create1(EPOLL_CLOEXEC);
    lg.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (lg.ep < 0 || lg.tfd < 0) {
        lg_die("epoll/timerfd: %s", strerror(errno));
    }

    ee.events = EPOLLIN;
    ee.data.u64 = LG_EV_TIMER;
    epoll_ctl(lg.ep, EPOLL_CTL_ADD, lg.tfd, &ee);

    ee.data.u64 = LG_EV_SIGNAL;
    epoll_ctl(lg.ep, EPOLL_CTL_ADD, lg.sfd, &ee);

    if (lg.proc == 0) {
        if (lg.wait) {
            ee.data.u64 = LG_EV_STDIN;
            epoll_ctl(lg.ep, EPOLL_CTL_ADD, 0, &ee);
        }

        for (k = 1; k < lg.nprocs; k++) {
            ee.data.u64 = LG_EV_CHILD | ((uint64_t) k << 32);
            epoll_ctl(lg.ep, EPOLL_CTL_ADD, lg.child_fds[k], &ee);
        }
    }

    lg.start_us = lg_now();
    lg.now = lg.start_us;
    lg.last_rx = lg.now;
    lg.next_connect = lg.lo;
    lg.stage = LG_STAGE_CONNECT;
}


static void
lg_run(void)
{
    int                 i, n;
    ssize_t             r;
    uint32_t            id;
    uint64_t            data;
    char                line[256];
    struct epoll_event  ev[LG_EVENTS];
    struct signalfd_siginfo  si;

    lg_tick();

    while (lg.stage != LG_STAGE_EXIT) {

        lg_arm_timer();

        n = epoll_wait(lg.ep, ev, LG_EVENTS, 1000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            lg_die("epoll_wait: %s", strerror(errno));
        }

        lg.now = lg_now();

        for (i = 0; i < n; i++) {
            data = ev[i].data.u64;
            id = (uint32_t) data;

            if (id < lg.nconns) {
                lg_event(&lg.conns[id], ev[i].events);
                continue;
            }

            switch (id) {

            case LG_EV_TIMER:
                while (read(lg.tfd, line, 8) > 0) { /* void */ }
                lg.armed = 0;
                break;

            case LG_EV_SIGNAL:
                while (read(lg.sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGUSR1) {
                        lg_go();
                    } else if (si.ssi_signo == SIGUSR2) {
                        lg_quit();
                    }
                }
                break;

            case LG_EV_STDIN:
                r = read(0, line, sizeof(line) - 1);
                if (r <= 0) {
                    /* bench/run went away */
                    lg_quit();
                    break;
                }
                line[r] = '\0';
                lg_control_line(line);
                break;

            case LG_EV_CHILD:
                r = read(lg.child_fds[data >> 32], line, sizeof(line) - 1);
                if (r <= 0) {
                    lg_die("child %d died", (int) (data >> 32));
                }
                line[r] = '\0';
                lg_child_line((int) (data >> 32), line);
                break;
            }
        }

        lg.now = lg_now();
        lg_tick();

        if (lg.now - lg.start_us > lg.max_us) {
            lg_die("gave up after --max-secs");
        }
    }
}


/* the next thing that is due: a send, the end of a stage, a connect */

static void
lg_arm_timer(void)
{
    uint64_t           at;
    struct itimerspec  its;

    at = UINT64_MAX;

    if (lg.stage == LG_STAGE_SEND) {
        if (lg.my_rate > 0 && !lg.closed && lg.next_send < at) {
            at = lg.next_send;
        }
        if (lg.stage_end < at) {
            at = lg.stage_end;
        }

    } else if (lg.stage == LG_STAGE_DRAIN) {
        at = lg.stage_end;

    } else if (lg.stage == LG_STAGE_FINAL) {
        at = lg.now + 50000;
    }

    if (lg.nreconnects) {
        at = at < lg.now + 10000 ? at : lg.now + 10000;
    }

    if (at == UINT64_MAX || at == lg.armed) {
        return;
    }

    if (at <= lg.now) {
        at = lg.now + 1;
    }

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t) (at / 1000000);
    its.it_value.tv_nsec = (long) (at % 1000000) * 1000;

    timerfd_settime(lg.tfd, TFD_TIMER_ABSTIME, &its, NULL);
    lg.armed = at;
}


static void
lg_tick(void)
{
    uint32_t   n;
    uint64_t   interval, u;
    lg_conn_t *c;

    lg_connect_more();

    switch (lg.stage) {

    case LG_STAGE_CONNECT:
        if (lg.settled < lg.hi - lg.lo) {
            break;
        }

        lg.ready_us = lg.now;
        lg.stage = LG_STAGE_WAIT_GO;

        if (lg.go_early) {
            lg_go();
        }

        if (lg.proc != 0) {
            dprintf(lg.to_parent, "R %u %u\n", lg.ready, lg.failed);
        } else {
            lg_child_line(0, "R");
        }
        break;

    case LG_STAGE_SEND:
        if (lg.now >= lg.stage_end) {
            lg.stage = LG_STAGE_DRAIN;
            lg.phases[lg.phase].end_us = lg.now;
            lg.stage_end = lg.now + lg.drain_us;
            break;
        }

        if (lg.closed || lg.my_rate <= 0 || lg.nsenders == 0) {
            break;
        }

        interval = (uint64_t) (1e6 / lg.my_rate);
        if (interval == 0) {
            interval = 1;
        }

        for (n = 0; lg.next_send <= lg.now && n < 100000; n++) {

            if (lg.now - lg.next_send > lg.phases[lg.phase].late_us) {
                lg.phases[lg.phase].late_us = lg.now - lg.next_send;
            }

            if (lg.poisson) {
                c = &lg.conns[lg.senders[lg_random() % lg.nsenders]];
            } else {
                c = &lg.conns[lg.senders[lg.next_sender++ % lg.nsenders]];
            }

            if (c->http) {
                lg_http_schedule(lg.next_send);

            } else if (c->state == LG_READY) {
                lg_send(c, lg.next_send);

            } else {
                lg.phases[lg.phase].overflow++;
            }

            if (lg.poisson) {
                u = lg_random() | 1;
                lg.next_send += (uint64_t) (-log((double) u / 4294967296.0)
                                            * (double) interval);
            } else {
                lg.next_send += interval;
            }
        }
        break;

    case LG_STAGE_DRAIN:
        if (lg.now >= lg.stage_end) {
            lg_phase_end();
        }
        break;

    case LG_STAGE_FINAL:
        if ((lg.now - lg.last_rx >= lg.quiet_us && lg.nreconnects == 0
             && lg.connecting == 0)
            || lg.now - lg.stage_end >= lg.final_max_us)
        {
            lg_finish();
        }
        break;

    default:
        break;
    }
}


/* connections */

static void
lg_connect_more(void)
{
    lg_conn_t  *c;

    while (lg.connecting < (uint32_t) lg.inflight) {

        if (lg.next_connect < lg.hi) {
            c = &lg.conns[lg.next_connect++];

        } else if (lg.nreconnects) {
            c = &lg.conns[lg.reconnects[--lg.nreconnects]];

        } else {
            return;
        }

        lg_connect(c);
    }
}


static void
lg_connect(lg_conn_t *c)
{
    int                 fd, one;
    uint32_t            i;
    struct sockaddr_in  src;
    struct epoll_event  ee;

    i = (uint32_t) (c - lg.conns);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lg_warn("socket: %s", strerror(errno));
        lg_settle(c, 0);
        c->state = LG_FAILED;
        return;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));

    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr = lg.sources[i % (uint32_t) lg.nsources];

    if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0
        || (connect(fd, (struct sockaddr *) &lg.server, sizeof(lg.server))
            != 0 && errno != EINPROGRESS))
    {
        if (lg.failed < 5) {
            lg_warn("connect: %s", strerror(errno));
        }
        close(fd);
        c->state = LG_FAILED;
        lg_settle(c, 0);
        return;
    }

    c->fd = fd;
    c->state = LG_CONNECTING;
    c->carry_len = 0;
    c->out_len = 0;
    c->outstanding = 0;
    c->body_left = -1;
    lg.connecting++;

    ee.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ee.data.u64 = i;

    if (epoll_ctl(lg.ep, EPOLL_CTL_ADD, fd, &ee) != 0) {
        lg_die("epoll_ctl: %s", strerror(errno));
    }
}


/* the first time a client is ready or fails, it counts for READY */

static void
lg_settle(lg_conn_t *c, int ok)
{
    if (c->counted) {
        return;
    }

    c->counted = 1;
    lg.settled++;

    if (ok) {
        lg.ready++;
    } else {
        lg.failed++;
    }
}


static void
lg_connected(lg_conn_t *c)
{
    int                 err;
    size_t              n;
    socklen_t           len;
    char                token[1024];
    struct epoll_event  ee;

    err = 0;
    len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

    if (err) {
        if (lg.failed < 5) {
            lg_warn("connect: %s", strerror(err));
        }
        lg_close(c, NULL);
        return;
    }

    ee.events = EPOLLIN | EPOLLRDHUP;
    ee.data.u64 = (uint64_t) (c - lg.conns);
    epoll_ctl(lg.ep, EPOLL_CTL_MOD, c->fd, &ee);

    if (c->http) {
        if (c->auth == NULL) {
            n = lg_token(token, sizeof(token), c->user);
            c->auth = malloc(n + 32);
            c->queue = calloc(LG_HTTP_QUEUE, sizeof(uint64_t));
            if (c->auth == NULL || c->queue == NULL) {
                lg_die("out of memory");
            }
            snprintf(c->auth, n + 32, "Authorization: Bearer %s\r\n", token);
        }

        c->state = LG_READY;
        lg.connecting--;
        lg_settle(c, 1);

        if (lg.stage == LG_STAGE_SEND) {
            if (c->qlen) {
                c->qhead = (uint16_t) ((c->qhead + 1) % LG_HTTP_QUEUE);
                c->qlen--;
                lg_http_send(c, c->queue[(c->qhead + LG_HTTP_QUEUE - 1)
                                         % LG_HTTP_QUEUE]);

            } else if (lg.closed) {
                lg_http_send(c, lg.now);
            }
        }

        return;
    }

    lg_token(token, sizeof(token), c->user);

    n = (size_t) snprintf((char *) lg.wbuf, LG_WBUF,
                          "GET %s HTTP/1.1\r\n"
                          "Host: %s:%u\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: " LG_WS_KEY "\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Authorization: Bearer %s\r\n\r\n",
                          lg.path, lg.host, ntohs(lg.server.sin_port), token);

    c->state = LG_HANDSHAKE;
    (void) lg_write(c, lg.wbuf, n);
}


static void
lg_close(lg_conn_t *c, const char *why)
{
    int  was;

    was = c->state;

    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }

    if (was >= LG_CONNECTING && was < LG_READY) {
        lg.connecting--;
    }

    c->carry_len = 0;
    c->out_len = 0;

    /* HTTP/1.1 servers close keep-alive connections now and then */

    if (c->http && c->counted && lg.stage < LG_STAGE_DONE) {
        if (c->outstanding) {
            lg.phases[c->req_phase].http_err++;
            if (why && lg.errors_printed++ < 5) {
                lg_warn("%s: a request lost: %s", c->user, why);
            }
            c->outstanding = 0;
        }
        c->state = LG_CLOSED;
        lg.reconnects[lg.nreconnects++] = (uint32_t) (c - lg.conns);
        return;
    }

    if (was == LG_READY || (c->counted && lg.reconnect)) {
        lg.closes++;

        if (why && lg.closes <= 5) {
            lg_warn("%s: closed: %s", c->user, why);
        }

        if (lg.reconnect && lg.stage < LG_STAGE_DONE) {
            c->state = LG_CLOSED;
            lg.reconnects[lg.nreconnects++] = (uint32_t) (c - lg.conns);
            lg.reconnected++;
            return;
        }

        c->state = LG_CLOSED;
        return;
    }

    if (why && lg.failed < 5) {
        lg_warn("%s: failed: %s", c->user, why);
    }

    c->state = LG_FAILED;
    lg_settle(c, 0);
}


static int
lg_write(lg_conn_t *c, u_char *data, size_t len)
{
    ssize_t             n;
    struct epoll_event  ee;

    if (c->out_len == 0) {
        n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n == (ssize_t) len) {
            return 0;
        }

        if (n < 0) {
            if (errno != EAGAIN) {
                lg_close(c, strerror(errno));
                return -1;
            }
            n = 0;
        }

        data += n;
        len -= (size_t) n;

        ee.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ee.data.u64 = (uint64_t) (c - lg.conns);
        epoll_ctl(lg.ep, EPOLL_CTL_MOD, c->fd, &ee);
    }

    /* rare: the socket is full; keep the rest until it is writable */

    if (c->out_len + len > c->out_cap) {
        c->out_cap = (uint32_t) (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL) {
            lg_die("out of memory");
        }
    }

    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t) len;

    return 0;
}


static void
lg_flush(lg_conn_t *c)
{
    ssize_t             n;
    struct epoll_event  ee;

    n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN) {
            lg_close(c, strerror(errno));
        }
        return;
    }

    memmove(c->out, c->out + n, c->out_len - (size_t) n);
    c->out_len -= (uint32_t) n;

    if (c->out_len == 0) {
        ee.events = EPOLLIN | EPOLLRDHUP;
        ee.data.u64 = (uint64_t) (c - lg.conns);
        epoll_ctl(lg.ep, EPOLL_CTL_MOD, c->fd, &ee);
    }
}


static void
lg_event(lg_conn_t *c, uint32_t events)
{
    if (c->fd < 0) {
        return;
    }

    if (c->state == LG_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            lg_connected(c);
        }
        return;
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        lg_read(c);
    }

    if (c->fd >= 0 && (events & EPOLLOUT) && c->out_len) {
        lg_flush(c);
    }
}


/* one read a wakeup; what is left of a frame waits in the carry */

static void
lg_read(lg_conn_t *c)
{
    u_char   *p;
    size_t    have, used;
    ssize_t   n, k;

    have = c->carry_len;
    if (have) {
        memcpy(lg.rbuf, c->carry, have);
    }

    n = read(c->fd, lg.rbuf + have, LG_RBUF - have);

    if (lg.quickack) {
        /* a diagnosis: no delayed ACKs from this side (see --quickack) */
        int  one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }

    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        lg_close(c, n == 0 ? "the server closed" : strerror(errno));
        return;
    }

    lg.last_rx = lg.now;
    have += (size_t) n;
    p = lg.rbuf;

    if (c->http) {
        while (have && c->fd >= 0) {
            used = lg_http_response(c, p, have);
            if (used == 0) {
                break;
            }
            p += used;
            have -= used;
        }

    } else {
        if (c->state == LG_HANDSHAKE) {
            k = lg_handshake(c, p, have);
            if (k <= 0) {
                if (k == 0) {
                    (void) lg_keep(c, p, have);
                }
                return;
            }
            p += k;
            have -= (size_t) k;
        }

        used = lg_frames(c, p, have);
        p += used;
        have -= used;
    }

    if (c->fd >= 0) {
        (void) lg_keep(c, p, have);
    }
}


static int
lg_keep(lg_conn_t *c, u_char *p, size_t len)
{
    if (len > c->carry_cap) {
        c->carry_cap = (uint32_t) (len < 512 ? 512 : len * 2);
        if (c->carry_cap > LG_RBUF / 2) {
            c->carry_cap = LG_RBUF / 2;
        }
        if (len > c->carry_cap) {
            lg_close(c, "a frame larger than the read buffer");
            return -1;
        }
        free(c->carry);
        c->carry = malloc(c->carry_cap);
        if (c->carry == NULL) {
            lg_die("out of memory");
        }
    }

    if (len) {
        memmove(c->carry, p, len);
    }
    c->carry_len = (uint32_t) len;

    return 0;
}


/* the answer to the upgrade: the bytes it took, 0 incomplete, -1 refused */

static ssize_t
lg_handshake(lg_conn_t *c, u_char *p, size_t len)
{
    u_char  *end;

    end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len > 8192) {
            lg_close(c, "an endless handshake answer");
            return -1;
        }
        return 0;
    }

    if (len < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0
        || memmem(p, (size_t) (end - p), LG_WS_ACCEPT,
                  sizeof(LG_WS_ACCEPT) - 1) == NULL)
    {
        if (lg.failed < 5) {
            lg_warn("%s: handshake refused: %.*s", c->user,
                    (int) (len < 200 ? len : 200), (char *) p);
        }
        lg_close(c, NULL);
        return -1;
    }

    c->state = LG_HELLO;

    return end + 4 - p;
}


/* whole frames of the server: unmasked, each a whole message */

static size_t
lg_frames(lg_conn_t *c, u_char *buf, size_t len)
{
    int       opcode;
    u_char   *p, *last;
    uint64_t  n;
    size_t    off;

    p = buf;
    last = buf + len;

    while (last - p >= 2 && c->fd >= 0) {
        opcode = p[0] & 0x0f;
        n = p[1] & 0x7f;
        off = 2;

        if (p[1] & 0x80) {
            lg_close(c, "the server masked a frame");
            break;
        }

        if (n == 126) {
            if (last - p < 4) {
                break;
            }
            n = (uint64_t) p[2] << 8 | p[3];
            off = 4;

        } else if (n == 127) {
            if (last - p < 10) {
                break;
            }
            n = 0;
            for (off = 2; off < 10; off++) {
                n = n << 8 | p[off];
            }
        }

        if ((uint64_t) (last - p) < off + n) {
            break;
        }

        if (opcode == 0x1) {
            lg_message(c, p + off, (size_t) n);

        } else {
            lg_control(c, opcode, p + off, (size_t) n);
        }

        p += off + n;
    }

    return (size_t) (p - buf);
}


static void
lg_control(lg_conn_t *c, int opcode, u_char *p, size_t len)
{
    char  why[64];

    switch (opcode) {

    case 0x9:
        lg.pongs++;
        (void) lg_send_frame(c, 0xA, p, len);
        break;

    case 0x8:
        snprintf(why, sizeof(why), "close frame %u",
                 len >= 2 ? (unsigned) (p[0] << 8 | p[1]) : 0);
        lg_close(c, why);
        break;

    case 0xA:
        break;

    default:
        lg_close(c, "an unexpected opcode");
    }
}


static int
lg_prefix(u_char *p, size_t len, const char *s, size_t n)
{
    return len >= n && memcmp(p, s, n) == 0;
}

#define lg_is(p, len, s)  lg_prefix(p, len, s, sizeof(s) - 1)


static int64_t
lg_int(u_char **pp, u_char *last)
{
    int64_t  v;
    u_char  *p;

    v = 0;
    for (p = *pp; p < last && *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
    }

    *pp = p;
    return v;
}


static void
lg_message(lg_conn_t *c, u_char *p, size_t len)
{
    if (lg_is(p, len, "{\"type\":\"new_message\"")) {
        lg_new_message(c, p, len);

    } else if (lg_is(p, len, "{\"type\":\"ack\"")) {
        lg_ack(c, p, len);

    } else if (lg_is(p, len, "{\"type\":\"presence\"")) {
        lg.presence++;

    } else if (lg_is(p, len, "{\"type\":\"hello\"")) {
        if (c->state == LG_HELLO) {
            lg_resume(c);
        }

    } else if (lg_is(p, len, "{\"type\":\"resumed\"")) {
        if (c->state == LG_RESUMING) {
            c->state = LG_READY;
            lg.connecting--;
            lg_settle(c, 1);
            if (lg.closed && lg.stage == LG_STAGE_SEND
                && c->send_conv >= 0)
            {
                while (c->outstanding < (uint32_t) lg.closed) {
                    lg_send(c, lg.now);
                }
            }
        }

    } else if (lg_is(p, len, "{\"type\":\"error\"")) {
        if (c->state == LG_RESUMING) {
            lg_warn("%s: resume refused: %.*s", c->user,
                    (int) (len < 300 ? len : 300), (char *) p);
            lg_close(c, NULL);
            return;
        }
        if (lg.errors_printed++ < 5) {
            lg_warn("%s: %.*s", c->user, (int) (len < 300 ? len : 300),
                    (char *) p);
        }
        if (lg.stage >= LG_STAGE_SEND && lg.stage <= LG_STAGE_FINAL) {
            lg.phases[lg.phase].errors++;
            if (memmem(p, len, "\"rate_limited\"", 14) != NULL) {
                lg.phases[lg.phase].limited++;
                lg_count(&lg.phases[lg.phase], 0);
            }
        }
        if (c->outstanding) {
            c->outstanding--;
        }
        if (lg.closed && lg.stage == LG_STAGE_SEND && c->send_conv >= 0) {
            lg_send(c, lg.now);
        }

    } else {
        lg.other++;
    }
}


/*
 * {"type":"new_message","conversation_id":C,"seq":S,"message":{...
 * "content":"P<phase>T<us> ..."...}}: checked against the last seq of C
 * on this connection; the latency from the time the message was due.
 */

static void
lg_new_message(lg_conn_t *c, u_char *p, size_t len)
{
    int64_t     conv, seq;
    uint32_t    k, ci, ph;
    uint64_t    t;
    u_char     *q, *last;
    lg_sub_t   *s;
    lg_phase_t *phase;
    static const char  cid[] = "\"conversation_id\":";
    static const char  sq[] = ",\"seq\":";
    static const char  ct[] = "\"content\":\"P";

    if (len < 64) {
        lg.other++;
        return;
    }

    last = p + len;
    q = p + sizeof("{\"type\":\"new_message\",") - 1;

    if (!lg_is(q, (size_t) (last - q), cid)) {
        lg.other++;
        return;
    }

    q += sizeof(cid) - 1;
    conv = lg_int(&q, last);

    if (!lg_is(q, (size_t) (last - q), sq)) {
        lg.other++;
        return;
    }

    q += sizeof(sq) - 1;
    seq = lg_int(&q, last);

    s = NULL;
    if (conv > 0 && conv <= lg.max_conv_id && lg.conv_index[conv]) {
        ci = lg_conv(conv);
        for (k = 0; k < c->nsubs; k++) {
            if (c->subs[k].conv == ci) {
                s = &c->subs[k];
                break;
            }
        }
    }

    if (s == NULL) {
        lg.untracked++;

    } else if (seq == s->last + 1) {
        s->last = seq;

    } else if (seq > s->last + 1) {
        lg.gaps += (uint64_t) (seq - s->last - 1);
        s->last = seq;

    } else if (seq == s->last) {
        lg.dups++;

    } else {
        lg.ooo++;
    }

    q = memmem(q, (size_t) (last - q), ct, sizeof(ct) - 1);
    if (q == NULL) {
        return;
    }

    q += sizeof(ct) - 1;
    ph = (uint32_t) lg_int(&q, last);
    if (q == last || *q != 'T' || ph >= (uint32_t) lg.nphases) {
        return;
    }

    q++;
    t = (uint64_t) lg_int(&q, last);

    phase = &lg.phases[ph];
    phase->delivered++;
    phase->delivered_bytes += len;
    lg_hist_add(&phase->hist[LG_H_DELIVERY], lg.now > t ? lg.now - t : 0);
}


/* {"type":"ack","req":"a<phase>.<us>","message":{"id":..,"conversation_id"
 * :C,"seq":S,...}} */

static void
lg_ack(lg_conn_t *c, u_char *p, size_t len)
{
    int64_t      conv, seq;
    uint32_t     ph;
    uint64_t     t;
    u_char      *q, *last;
    lg_conv_t   *cv;
    lg_phase_t  *phase;
    static const char  rq[] = "{\"type\":\"ack\",\"req\":\"a";
    static const char  cid[] = "\"conversation_id\":";
    static const char  sq[] = ",\"seq\":";

    last = p + len;

    if (!lg_is(p, len, rq)) {
        lg.other++;
        return;
    }

    q = p + sizeof(rq) - 1;
    ph = (uint32_t) lg_int(&q, last);
    if (q == last || *q != '.' || ph >= (uint32_t) lg.nphases) {
        lg.other++;
        return;
    }

    q++;
    t = (uint64_t) lg_int(&q, last);

    phase = &lg.phases[ph];
    phase->acked++;
    lg_count(phase, 1);
    lg_hist_add(&phase->hist[LG_H_ACK], lg.now > t ? lg.now - t : 0);

    if (c->outstanding) {
        c->outstanding--;
    }

    q = memmem(q, (size_t) (last - q), cid, sizeof(cid) - 1);
    if (q) {
        q += sizeof(cid) - 1;
        conv = lg_int(&q, last);
        if (lg_is(q, (size_t) (last - q), sq)
            && conv > 0 && conv <= lg.max_conv_id && lg.conv_index[conv])
        {
            q += sizeof(sq) - 1;
            seq = lg_int(&q, last);
            cv = &lg.convs[lg_conv(conv)];
            cv->acked++;
            if (seq > cv->max_acked_seq) {
                cv->max_acked_seq = seq;
            }
        }
    }

    if (lg.closed && lg.stage == LG_STAGE_SEND && c->send_conv >= 0) {
        lg_send(c, lg.now);
    }
}


/* resume at the plan's seqs (or where the client got since) */

static void
lg_resume(lg_conn_t *c)
{
    u_char    *p, *last;
    uint32_t   k;

    p = lg.wbuf + 16;
    last = lg.wbuf + LG_WBUF - 64;

    p += sprintf((char *) p,
                 "{\"type\":\"resume\",\"req\":\"r\",\"conversations\":{");

    for (k = 0; k < c->nsubs && p < last - 48; k++) {
        p += sprintf((char *) p, "%s\"%" PRId64 "\":%" PRId64,
                     k ? "," : "", lg.convs[c->subs[k].conv].id,
                     c->subs[k].last);
    }

    *p++ = '}';
    *p++ = '}';

    c->state = LG_RESUMING;
    (void) lg_send_frame(c, 0x1, lg.wbuf + 16, (size_t) (p - lg.wbuf - 16));
}


/* a masked frame; the payload may sit in lg.wbuf at offset 16 */

static int
lg_send_frame(lg_conn_t *c, int opcode, u_char *data, size_t len)
{
    size_t    i, off;
    u_char   *f, mask[4];
    uint32_t  m;
    u_char    frame[LG_WBUF + 16];

    if (len > LG_WBUF) {
        lg_die("frame too long");
    }

    f = frame;
    f[0] = (u_char) (0x80 | opcode);

    if (len < 126) {
        f[1] = (u_char) (0x80 | len);
        off = 2;

    } else {
        f[1] = 0x80 | 126;
        f[2] = (u_char) (len >> 8);
        f[3] = (u_char) len;
        off = 4;
    }

    m = lg_random();
    memcpy(mask, &m, 4);
    memcpy(f + off, mask, 4);
    off += 4;

    for (i = 0; i < len; i++) {
        f[off + i] = data[i] ^ mask[i & 3];
    }

    return lg_write(c, f, off + len);
}


/* a message of the bench: due at "due", tagged with the phase */

static size_t
lg_content(u_char *p, uint64_t due)
{
    int   n;

    n = sprintf((char *) p, "P%uT%" PRIu64 " ", (unsigned) lg.phase, due);

    while (n < lg.content_bytes) {
        p[n] = (u_char) ('a' + n % 26);
        n++;
    }

    return (size_t) n;
}


static void
lg_send(lg_conn_t *c, uint64_t due)
{
    u_char  *p;

    if (c->http) {
        lg_http_send(c, due);
        return;
    }

    p = lg.wbuf + 16;
    p += sprintf((char *) p,
                 "{\"type\":\"send_message\",\"req\":\"a%u.%" PRIu64 "\","
                 "\"conversation_id\":%" PRId64 ",\"content\":\"",
                 (unsigned) lg.phase, due, lg.convs[c->send_conv].id);
    p += lg_content(p, due);
    *p++ = '"';
    *p++ = '}';

    c->outstanding++;
    lg.phases[lg.phase].sent++;

    (void) lg_send_frame(c, 0x1, lg.wbuf + 16, (size_t) (p - lg.wbuf - 16));
}


/* HTTP: one request in flight a connection, the others wait in its queue */

static void
lg_http_schedule(uint64_t due)
{
    uint32_t    i, k;
    lg_conn_t  *c, *best;

    best = NULL;

    for (i = 0; i < lg.nsenders; i++) {
        k = lg.senders[lg.next_sender++ % lg.nsenders];
        c = &lg.conns[k];

        if (c->state != LG_READY) {
            continue;
        }

        if (c->outstanding == 0) {
            lg_http_send(c, due);
            return;
        }

        if (best == NULL || c->qlen < best->qlen) {
            best = c;
        }

        if (i >= 8) {
            break;
        }
    }

    if (best == NULL || best->qlen == LG_HTTP_QUEUE) {
        lg.phases[lg.phase].overflow++;
        return;
    }

    best->queue[(best->qhead + best->qlen) % LG_HTTP_QUEUE] = due;
    best->qlen++;
}


static void
lg_http_send(lg_conn_t *c, uint64_t due)
{
    int       n;
    u_char    body[8400];
    size_t    blen;
    char     *path;
    uint16_t  port;

    port = ntohs(lg.server.sin_port);

    if (lg.get_paths) {
        path = lg.paths[lg.next_path++ % lg.npaths];
        n = snprintf((char *) lg.wbuf, LG_WBUF,
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%s\r\n",
                     path, lg.host, port, c->auth);

    } else {
        blen = (size_t) sprintf((char *) body, "{\"content\":\"");
        blen += lg_content(body + blen, due);
        body[blen++] = '"';
        body[blen++] = '}';

        n = snprintf((char *) lg.wbuf, LG_WBUF,
                     "POST /api/chat/conversations/%" PRId64 "/messages "
                     "HTTP/1.1\r\nHost: %s:%u\r\n%s"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%.*s",
                     lg.convs[c->send_conv].id, lg.host, port, c->auth,
                     blen, (int) blen, (char *) body);
    }

    c->t_req = due;
    c->req_phase = (uint32_t) lg.phase;
    c->outstanding = 1;
    c->body_left = -1;
    lg.phases[lg.phase].sent++;

    (void) lg_write(c, lg.wbuf, (size_t) n);
}


/* bytes of a response: the header (whole, or kept), then body counted */

static size_t
lg_http_response(lg_conn_t *c, u_char *p, size_t len)
{
    u_char    *end, *h, *q;
    size_t     hlen, take;
    int64_t    conv, seq;
    lg_conv_t *cv;

    if (c->body_left < 0) {
        end = memmem(p, len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (len > 16384) {
                lg_close(c, "an endless response header");
            }
            return 0;
        }

        hlen = (size_t) (end + 4 - p);

        if (len < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
            lg_close(c, "not an HTTP/1.1 response");
            return 0;
        }

        c->status = (uint32_t) atoi((char *) p + 9);
        c->body_left = 0;

        for (h = p; h < end; h++) {
            if (*h == '\n' && end - h > 16
                && strncasecmp((char *) h + 1, "content-length:", 15) == 0)
            {
                c->body_left = strtoll((char *) h + 16, NULL, 10);
            }
            if (*h == '\n' && end - h > 19
                && strncasecmp((char *) h + 1, "transfer-encoding:", 18) == 0)
            {
                lg_close(c, "a chunked response (not supported)");
                return 0;
            }
        }

        /* a posted message: its conversation and seq (durability) */

        if (c->status == 201 && !lg.get_paths) {
            q = memmem(end, len - (size_t) (end - p), "\"conversation_id\":",
                       18);
            if (q) {
                q += 18;
                conv = lg_int(&q, p + len);
                if (lg_is(q, (size_t) (p + len - q), ",\"seq\":")
                    && conv > 0 && conv <= lg.max_conv_id
                    && lg.conv_index[conv])
                {
                    q += 7;
                    seq = lg_int(&q, p + len);
                    cv = &lg.convs[lg_conv(conv)];
                    cv->acked++;
                    if (seq > cv->max_acked_seq) {
                        cv->max_acked_seq = seq;
                    }
                }
            }
        }

        take = hlen;

    } else {
        take = 0;
    }

    if ((int64_t) (len - take) >= c->body_left) {
        take += (size_t) c->body_left;
        c->body_left = 0;
        lg_http_done(c);
        return take;
    }

    c->body_left -= (int64_t) (len - take);
    return len;
}


static void
lg_http_done(lg_conn_t *c)
{
    uint64_t     due;
    lg_phase_t  *phase;

    phase = &lg.phases[c->req_phase];

    if (c->status >= 200 && c->status < 300) {
        phase->http_ok++;
        lg_count(phase, 1);
    } else {
        phase->http_err++;
        if (c->status == 429) {
            phase->limited++;
            lg_count(phase, 0);
        }
        if (lg.errors_printed++ < 5) {
            lg_warn("%s: HTTP status %u", c->user, c->status);
        }
    }

    lg_hist_add(&phase->hist[LG_H_HTTP], lg.now - c->t_req);

    c->outstanding = 0;
    c->body_left = -1;

    if (lg.stage != LG_STAGE_SEND) {
        c->qlen = 0;
        return;
    }

    if (c->qlen) {
        due = c->queue[c->qhead];
        c->qhead = (uint16_t) ((c->qhead + 1) % LG_HTTP_QUEUE);
        c->qlen--;
        lg_http_send(c, due);

    } else if (lg.closed) {
        lg_http_send(c, lg.now);
    }
}


/* phases */

/* an answer in the second of its phase it came in */

static void
lg_count(lg_phase_t *ph, int ok)
{
    uint64_t  s;

    if (ph->start_us == 0 || lg.now < ph->start_us) {
        return;
    }

    s = (lg.now - ph->start_us) / 1000000;
    if (s >= LG_SECS) {
        return;
    }

    if (ok) {
        ph->sec_ok[s]++;
    } else {
        ph->sec_lim[s]++;
    }
}


static void
lg_go(void)
{
    if (lg.stage < LG_STAGE_WAIT_GO) {
        /* early: it goes once every client is ready */
        lg.go_early = 1;
        return;
    }

    if (lg.stage != LG_STAGE_WAIT_GO) {
        return;
    }

    lg.phase = -1;
    lg_phase_end();
}


/* ends the phase that drained (if any) and starts the next */

static void
lg_phase_end(void)
{
    int          k;
    uint64_t     p99;
    lg_phase_t  *ph;

    if (lg.phase >= 0) {
        ph = &lg.phases[lg.phase];
        ph->drained_us = lg.now;
        ph->cpu_ns = lg_cpu_ns() - lg.cpu0;
        ph->watch_ns = lg_watch_ns() - lg.watch0;

        /* the sweep stops after a phase slower than asked (a process alone) */

        if (lg.stop_p99) {
            k = ph->hist[LG_H_DELIVERY].n ? LG_H_DELIVERY
                : ph->hist[LG_H_ACK].n ? LG_H_ACK : LG_H_HTTP;
            p99 = lg_hist_percentile(&ph->hist[k], 99);
            if (p99 > lg.stop_p99) {
                lg.stopped_at = (uint32_t) lg.phase + 1;
            }
        }
    }

    lg.phase++;

    if (lg.phase >= lg.nphases || lg.stopped_at) {
        /* late answers count for the last phase that ran */
        lg.phase = lg.phase > 0 ? lg.phase - 1 : 0;
        /* even without phases: what the connects set off (presence) */
        lg.stage = LG_STAGE_FINAL;
        lg.stage_end = lg.now;
        lg.last_rx = lg.now;
        return;
    }

    lg_phase_start();
}


static void
lg_phase_start(void)
{
    int          k;
    uint32_t     i;
    lg_conn_t   *c;
    lg_phase_t  *ph;

    ph = &lg.phases[lg.phase];
    ph->rate = lg.rates[lg.phase];

    for (k = 0; k < LG_NHIST; k++) {
        lg_hist_init(&ph->hist[k]);
    }

    /* this process's share of the rate: its share of the senders */

    lg.my_rate = lg.total_senders
                 ? ph->rate * (double) lg.nsenders / (double) lg.total_senders
                 : 0;
    if (lg.get_paths) {
        lg.my_rate = ph->rate * (double) lg.nsenders / (double) lg.nconns;
    }

    lg.cpu0 = lg_cpu_ns();
    lg.watch0 = lg_watch_ns();
    ph->start_us = lg.now;
    lg.next_send = lg.now;
    lg.stage = LG_STAGE_SEND;
    lg.stage_end = lg.now + (uint64_t) (lg.phase_secs * 1e6);

    if (lg.closed) {
        for (i = 0; i < lg.nsenders; i++) {
            c = &lg.conns[lg.senders[i]];
            if (c->state != LG_READY) {
                continue;
            }
            if (c->http) {
                lg_http_send(c, lg.now);
                continue;
            }
            while (c->outstanding < (uint32_t) lg.closed) {
                lg_send(c, lg.now);
            }
        }
    }
}


static void
lg_finish(void)
{
    lg.stage = LG_STAGE_DONE;
    lg_report();

    if (lg.proc != 0) {
        dprintf(lg.to_parent, "D\n");
    } else {
        lg_child_line(0, "D");
    }
}


static void
lg_hist_write(FILE *f, const char *name, int phase, lg_hist_t *h)
{
    uint32_t  i;

    if (h->counts == NULL || h->n == 0) {
        return;
    }

    fprintf(f, "hist %s %d %" PRIu64 " %" PRIu64 " %" PRIu64, name, phase,
            h->n, h->max, h->sum);

    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        if (h->counts[i]) {
            fprintf(f, " %" PRIu64 ":%" PRIu64, lg_bucket_value(i),
                    h->counts[i]);
        }
    }

    fputc('\n', f);
}


/*
 * The result file of this process: totals, phases, histograms, and for
 * each conversation its receivers here and how far they got.
 */

static void
lg_report(void)
{
    int          k;
    FILE        *f;
    char         name[512];
    uint32_t     i, j, ci;
    int64_t     *min, *max, *sum;
    uint64_t    *rcv;
    lg_conn_t   *c;
    lg_phase_t  *ph;
    struct rusage  ru;

    snprintf(name, sizeof(name), "%s.%d", lg.out, lg.proc);

    f = fopen(name, "w");
    if (f == NULL) {
        lg_die("cannot write %s: %s", name, strerror(errno));
    }

    getrusage(RUSAGE_SELF, &ru);

    fprintf(f, "proc %d pid %d clients %u ready %u failed %u "
               "connect_us %" PRIu64 " maxrss_kb %ld procs %d\n",
            lg.proc, (int) getpid(), lg.hi - lg.lo, lg.ready, lg.failed,
            lg.ready_us - lg.start_us, ru.ru_maxrss, lg.nprocs);

    fprintf(f, "totals gaps %" PRIu64 " dups %" PRIu64 " ooo %" PRIu64
               " untracked %" PRIu64 " presence %" PRIu64 " other %" PRIu64
               " closes %" PRIu64 " reconnects %" PRIu64 " pongs %" PRIu64
               " cpu_ns %" PRIu64 "\n",
            lg.gaps, lg.dups, lg.ooo, lg.untracked, lg.presence, lg.other,
            lg.closes, lg.reconnected, lg.pongs, lg_cpu_ns());

    for (k = 0; k < lg.nphases; k++) {
        ph = &lg.phases[k];
        if (ph->start_us == 0) {
            continue;
        }

        fprintf(f, "phase %d rate %.3f secs %.6f drained_secs %.6f "
                   "sent %" PRIu64 " acked %" PRIu64 " errors %" PRIu64
                   " delivered %" PRIu64 " delivered_bytes %" PRIu64
                   " http_ok %" PRIu64 " http_err %" PRIu64
                   " limited %" PRIu64
                   " overflow %" PRIu64 " late_us %" PRIu64
                   " cpu_ns %" PRIu64 " watch_ns %" PRIu64 "\n",
                k, ph->rate, (double) (ph->end_us - ph->start_us) / 1e6,
                (double) (ph->drained_us - ph->start_us) / 1e6,
                ph->sent, ph->acked, ph->errors, ph->delivered,
                ph->delivered_bytes, ph->http_ok, ph->http_err, ph->limited,
                ph->overflow,
                ph->late_us, ph->cpu_ns, ph->watch_ns);

        lg_hist_write(f, "delivery", k, &ph->hist[LG_H_DELIVERY]);
        lg_hist_write(f, "ack", k, &ph->hist[LG_H_ACK]);
        lg_hist_write(f, "http", k, &ph->hist[LG_H_HTTP]);

        /* answers a second: accepted:refused by a rate limit */
        for (j = LG_SECS; j > 0; j--) {
            if (ph->sec_ok[j - 1] || ph->sec_lim[j - 1]) {
                break;
            }
        }
        if (j) {
            fprintf(f, "persec %d", k);
            for (i = 0; i < j; i++) {
                fprintf(f, " %u:%u", ph->sec_ok[i], ph->sec_lim[i]);
            }
            fputc('\n', f);
        }
    }

    rcv = calloc(lg.nconvs + 1, sizeof(uint64_t));
    sum = calloc(lg.nconvs + 1, sizeof(int64_t));
    min = calloc(lg.nconvs + 1, sizeof(int64_t));
    max = calloc(lg.nconvs + 1, sizeof(int64_t));
    if (rcv == NULL || sum == NULL || min == NULL || max == NULL) {
        lg_die("out of memory");
    }

    for (i = lg.lo; i < lg.hi; i++) {
        c = &lg.conns[i];
        if (!c->counted || c->state == LG_FAILED || c->http) {
            continue;
        }
        for (j = 0; j < c->nsubs; j++) {
            ci = c->subs[j].conv;
            if (rcv[ci] == 0 || c->subs[j].last < min[ci]) {
                min[ci] = c->subs[j].last;
            }
            if (rcv[ci] == 0 || c->subs[j].last > max[ci]) {
                max[ci] = c->subs[j].last;
            }
            rcv[ci]++;
            sum[ci] += c->subs[j].last;
        }
    }

    for (i = 0; i < lg.nconvs; i++) {
        if (rcv[i] == 0 && lg.convs[i].acked == 0) {
            continue;
        }
        fprintf(f, "conv %" PRId64 " receivers %" PRIu64 " sum_last %" PRId64
                   " min_last %" PRId64 " max_last %" PRId64
                   " acked %" PRIu64 " max_acked_seq %" PRId64 "\n",
                lg.convs[i].id, rcv[i], sum[i], min[i], max[i],
                lg.convs[i].acked, lg.convs[i].max_acked_seq);
    }

    free(rcv);
    free(sum);
    free(min);
    free(max);

    fprintf(f, "end\n");
    fclose(f);
}


/* the parent: bench/run's lines, and the children's */

static void
lg_control_line(char *line)
{
    int  k;

    if (strncmp(line, "go", 2) == 0) {
        for (k = 1; k < lg.nprocs; k++) {
            kill(lg.children[k], SIGUSR1);
        }
        lg_go();

    } else if (strncmp(line, "quit", 4) == 0) {
        lg_quit();
    }
}


static void
lg_child_line(int k, char *line)
{
    int       i, n;
    char     *p;
    unsigned  ok, failed;

    for (p = line; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {

        if (p[0] == 'R') {
            lg.child_ready[k] = 1;
            if (k != 0 && sscanf(p, "R %u %u", &ok, &failed) == 2) {
                lg.ready_total += ok;
                lg.failed_total += failed;
            }

        } else if (p[0] == 'D') {
            lg.child_done[k] = 1;
        }
    }

    if (lg.proc != 0) {
        return;
    }

    n = 0;
    for (i = 0; i < lg.nprocs; i++) {
        n += lg.child_ready[i];
    }

    if (n == lg.nprocs && !lg.all_ready_printed) {
        lg.all_ready_printed = 1;
        printf("READY procs %d ready %u failed %u connect_secs %.3f\n",
               lg.nprocs, lg.ready_total + lg.ready,
               lg.failed_total + lg.failed,
               (double) (lg.now - lg.start_us) / 1e6);
        fflush(stdout);

        if (!lg.wait) {
            lg_control_line("go");
        }
    }

    n = 0;
    for (i = 0; i < lg.nprocs; i++) {
        n += lg.child_done[i];
    }

    if (n == lg.nprocs && !lg.printed_done) {
        lg.printed_done = 1;
        printf("DONE\n");
        fflush(stdout);

        if (!lg.wait) {
            lg_quit();
        }
    }
}


static void
lg_quit(void)
{
    int       k, status;
    uint32_t  i;

    for (i = lg.lo; i < lg.hi; i++) {
        if (lg.conns[i].fd >= 0) {
            close(lg.conns[i].fd);
            lg.conns[i].fd = -1;
        }
    }

    if (lg.proc == 0) {
        for (k = 1; k < lg.nprocs; k++) {
            kill(lg.children[k], SIGUSR2);
        }
        for (k = 1; k < lg.nprocs; k++) {
            waitpid(lg.children[k], &status, 0);
        }
    }

    lg.stage = LG_STAGE_EXIT;
}
