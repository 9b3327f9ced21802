
/*
 * bench/floor.c: what one write() of a frame to a loopback TCP socket
 * costs on this machine, the floor under the server's cost per delivery.
 *
 * The writer (this process) holds the accepted ends of --conns connections,
 * as an nginx worker does; a forked reader holds the other ends and reads
 * them on epoll, one read per wakeup, as the load generator does.  Each
 * round writes the frame once to every connection, as a broadcast does,
 * then sleeps --interval-us.  The cost is the writer's CPU time over the
 * writes, measured around the write loops only: on loopback it includes
 * the kernel's receive path, which runs in the writer's context.
 *
 * With --batch K the writer puts K frames in one write() every K rounds,
 * as a server that writes several pending frames to a connection in one
 * call does; the cost is then given per frame.
 *
 *   floor --size 420 --conns 1000 --rounds 200 --batch 1,4
 *
 * prints one line per batch size:
 *   floor batch 1 size 420 conns 1000 writes 200000 cpu_us_per_frame 5.9
 *   wall_us_per_frame 6.1 eagain 0
 */


#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>


#define FL_RBUF  (256 * 1024)


static void fl_die(const char *what);
static uint64_t fl_ns(clockid_t clock);
static void fl_reader(int *fds, int n);
static void fl_run(int *fds, int n, size_t size, int rounds, int batch,
    long interval_us);


int
main(int argc, char **argv)
{
    int                 ch, i, n, lfd, one, rounds, batches[16], nbatch;
    int                *server, *client;
    long                interval;
    char               *p, *end;
    pid_t               pid;
    size_t              size;
    socklen_t           len;
    struct rlimit       rl;
    struct sockaddr_in  addr, src;

    static const struct option  options[] = {
        { "size", required_argument, NULL, 's' },
        { "conns", required_argument, NULL, 'c' },
        { "rounds", required_argument, NULL, 'r' },
        { "batch", required_argument, NULL, 'b' },
        { "interval-us", required_argument, NULL, 'i' },
        { NULL, 0, NULL, 0 }
    };

    size = 420;
    n = 1000;
    rounds = 200;
    interval = 2000;
    batches[0] = 1;
    nbatch = 1;

    while ((ch = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (ch) {
        case 's':
            size = (size_t) atol(optarg);
            break;
        case 'c':
            n = atoi(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'i':
            interval = atol(optarg);
            break;
        case 'b':
            nbatch = 0;
            for (p = optarg; *p && nbatch < 16; p = *end ? end + 1 : end) {
                batches[nbatch++] = (int) strtol(p, &end, 10);
                if (end == p || batches[nbatch - 1] < 1) {
                    fprintf(stderr, "floor: bad --batch\n");
                    return 2;
                }
            }
            break;
        default:
            fprintf(stderr, "usage: floor [--size B] [--conns N] "
                            "[--rounds R] [--batch 1,4] [--interval-us U]\n");
            return 2;
        }
    }

    if (size < 2 || size > 65535 || n < 1 || n > 9000 || rounds < 1) {
        fprintf(stderr, "floor: --size 2..65535, --conns 1..9000\n");
        return 2;
    }

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        fl_die("socket");
    }

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0
        || listen(lfd, 4096) != 0)
    {
        fl_die("listen");
    }

    len = sizeof(addr);
    getsockname(lfd, (struct sockaddr *) &addr, &len);

    server = calloc((size_t) n, sizeof(int));
    client = calloc((size_t) n, sizeof(int));
    if (server == NULL || client == NULL) {
        fl_die("calloc");
    }

    one = 1;

    for (i = 0; i < n; i++) {
        client[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (client[i] < 0) {
            fl_die("socket");
        }

        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t) (i % 8));

        if (bind(client[i], (struct sockaddr *) &src, sizeof(src)) != 0
            || connect(client[i], (struct sockaddr *) &addr, sizeof(addr))
               != 0)
        {
            fl_die("connect");
        }

        server[i] = accept(lfd, NULL, NULL);
        if (server[i] < 0) {
            fl_die("accept");
        }

        /* as nginx: non-blocking, and no delay for small frames */
        setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(client[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    close(lfd);

    pid = fork();
    if (pid < 0) {
        fl_die("fork");
    }

    if (pid == 0) {
        for (i = 0; i < n; i++) {
            close(server[i]);
        }
        fl_reader(client, n);
        _exit(0);
    }

    for (i = 0; i < n; i++) {
        close(client[i]);
    }

    for (i = 0; i < nbatch; i++) {
        fl_run(server, n, size, rounds, batches[i], interval);
    }

    for (i = 0; i < n; i++) {
        close(server[i]);
    }

    waitpid(pid, NULL, 0);

    return 0;
}


static void
fl_die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}


static uint64_t
fl_ns(clockid_t clock)
{
    struct timespec  ts;

    clock_gettime(clock, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}


static void
fl_reader(int *fds, int n)
{
    int                  ep, i, k, open;
    char                *buf;
    ssize_t              r;
    struct epoll_event   ee, ev[512];

    buf = malloc(FL_RBUF);
    ep = epoll_create1(0);
    if (buf == NULL || ep < 0) {
        fl_die("reader");
    }

    for (i = 0; i < n; i++) {
        ee.events = EPOLLIN;
        ee.data.u32 = (uint32_t) i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ee);
    }

    open = n;

    while (open > 0) {
        k = epoll_wait(ep, ev, 512, -1);
        if (k < 0 && errno != EINTR) {
            fl_die("epoll_wait");
        }

        for (i = 0; i < k; i++) {
            r = read(fds[ev[i].data.u32], buf, FL_RBUF);
            if (r <= 0) {
                close(fds[ev[i].data.u32]);
                open--;
            }
        }
    }
}


static void
fl_run(int *fds, int n, size_t size, int rounds, int batch, long interval_us)
{
    int              r, i, k;
    u_char          *frame, *p;
    size_t           flen, len;
    ssize_t          w;
    uint64_t         cpu, wall, t0, c0, writes, eagain;
    struct timespec  pause;

    /* a server text frame: unmasked, with a 16-bit length when it must */

    flen = size + (size < 126 ? 2 : 4);
    frame = malloc(flen * (size_t) batch);
    if (frame == NULL) {
        fl_die("malloc");
    }

    for (k = 0; k < batch; k++) {
        p = frame + flen * (size_t) k;
        p[0] = 0x81;
        if (size < 126) {
            p[1] = (u_char) size;
            p += 2;
        } else {
            p[1] = 126;
            p[2] = (u_char) (size >> 8);
            p[3] = (u_char) size;
            p += 4;
        }
        memset(p, 'x', size);
    }

    len = flen * (size_t) batch;
    cpu = 0;
    wall = 0;
    writes = 0;
    eagain = 0;

    pause.tv_sec = interval_us / 1000000;
    pause.tv_nsec = (interval_us % 1000000) * 1000;

    for (r = 0; r < rounds; r += batch) {
        t0 = fl_ns(CLOCK_MONOTONIC);
        c0 = fl_ns(CLOCK_THREAD_CPUTIME_ID);

        for (i = 0; i < n; i++) {
            w = send(fds[i], frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN) {
                    fl_die("send");
                }
                eagain++;
                continue;
            }
            writes++;
        }

        cpu += fl_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
        wall += fl_ns(CLOCK_MONOTONIC) - t0;

        nanosleep(&pause, NULL);
    }

    printf("floor batch %d size %zu conns %d writes %llu frames %llu "
           "cpu_us_per_write %.3f cpu_us_per_frame %.3f "
           "wall_us_per_frame %.3f eagain %llu\n",
           batch, size, n, (unsigned long long) writes,
           (unsigned long long) writes * (unsigned long long) batch,
           writes ? (double) cpu / 1e3 / (double) writes : 0.0,
           writes ? (double) cpu / 1e3 / (double) (writes * batch) : 0.0,
           writes ? (double) wall / 1e3 / (double) (writes * batch) : 0.0,
           (unsigned long long) eagain);
    fflush(stdout);

    free(frame);
}
