/*
 * dp: the data-plane bench's native half (compiled by bench/_dp_native.py).
 *
 * Python can not drive 1000 rps on 16 connections with sub-millisecond timing on a
 * shared 2-core machine without its own scheduling noise showing up in the latencies it
 * is supposed to measure, and Debian ships no fixed-rate generator (wrk has no rate
 * mode, wrk2 and fortio are not packaged). So both ends of the bench are here, in one
 * single-threaded epoll program each:
 *
 *   dp serve PORT BODY_BYTES
 *       HTTP/1.1 keep-alive server answering every request with BODY_BYTES of body.
 *       It is the bench's application: cheap enough never to be the bottleneck.
 *
 *   dp load HOST PORT HOST_HEADER CONNECTIONS RATE DURATION WARMUP OUT_FILE
 *       RATE > 0: open loop at RATE requests/s in total, spread evenly over the
 *       connections (each connection has its own schedule, staggered). Latency is
 *       measured from the *intended* send time, so a stalled response delays the next
 *       request without hiding it (no coordinated omission, as wrk2 does it).
 *       RATE = 0: closed loop, every connection sends its next request as soon as the
 *       previous response is complete (maximum throughput); latency from the send.
 *       Only requests intended after WARMUP seconds are recorded. Prints the line
 *       "measuring" when the warmup ends, then one JSON summary line at the end, and
 *       writes the recorded latencies (uint64 nanoseconds, native order) to OUT_FILE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAX_EVENTS 256
#define DRAIN_NS 3000000000ULL /* after the end, wait this long for responses in flight */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Index just past the first "\r\n\r\n" in buf[0..len), or 0 when there is none yet. */
static size_t header_end(const char *buf, size_t len) {
    const char *p = memmem(buf, len, "\r\n\r\n", 4);
    return p ? (size_t)(p - buf) + 4 : 0;
}

/* Value of a header (case-insensitive name) within the header block, or NULL. */
static const char *header_value(const char *buf, size_t hlen, const char *name) {
    size_t n = strlen(name);
    const char *line = memchr(buf, '\n', hlen);
    while (line && (size_t)(line - buf) + 1 < hlen) {
        line++;
        size_t rest = hlen - (size_t)(line - buf);
        if (rest > n + 1 && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') v++;
            return v;
        }
        line = memchr(line, '\n', rest);
    }
    return NULL;
}

/* ------------------------------------------------------------------ serve */

struct sconn {
    int fd;
    size_t inlen;
    size_t outlen, outoff;
    char in[BUF];
    char *out;
    size_t outcap;
};

static char *response;
static size_t response_len;

static void sconn_close(int ep, struct sconn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static int sconn_flush(int ep, struct sconn *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            return -1;
        }
        c->outoff += (size_t)w;
    }
    c->outoff = c->outlen = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/* Answer every complete request in the input buffer; -1 closes the connection. */
static int sconn_serve(struct sconn *c) {
    for (;;) {
        size_t hlen = header_end(c->in, c->inlen);
        if (!hlen) return c->inlen == BUF ? -1 : 0;
        const char *cl = header_value(c->in, hlen, "content-length");
        size_t body = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
        if (hlen + body > BUF) return -1;
        if (c->inlen < hlen + body) return 0;
        if (c->outlen + response_len > c->outcap) {
            c->outcap = (c->outlen + response_len) * 2;
            c->out = realloc(c->out, c->outcap);
            if (!c->out) die("realloc");
        }
        memcpy(c->out + c->outlen, response, response_len);
        c->outlen += response_len;
        memmove(c->in, c->in + hlen + body, c->inlen - hlen - body);
        c->inlen -= hlen + body;
    }
}

static _Noreturn void serve(int port, size_t body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n\r\n",
                     body);
    response_len = (size_t)n + body;
    response = malloc(response_len);
    memcpy(response, head, (size_t)n);
    memset(response + n, 'x', body);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 1024) < 0) die("listen");
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    fprintf(stderr, "dp serve: listening on :%d, %zu-byte bodies\n", port, body);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int k = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) die("epoll_wait");
        for (int i = 0; i < k; i++) {
            struct sconn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    set_nodelay(fd);
                    c = calloc(1, sizeof *c);
                    if (!c) die("calloc");
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                if (sconn_flush(ep, c) < 0) {
                    sconn_close(ep, c);
                    continue;
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(c->fd, c->in + c->inlen, BUF - c->inlen);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    sconn_close(ep, c);
                    continue;
                }
                if (r > 0) c->inlen += (size_t)r;
                if (sconn_serve(c) < 0 || sconn_flush(ep, c) < 0) sconn_close(ep, c);
            }
        }
    }
}

/* ------------------------------------------------------------------- load */

enum cstate { DOWN, CONNECTING, IDLE, WAITING };

struct lconn {
    int fd;
    enum cstate state;
    uint64_t due;      /* intended time of the next request */
    uint64_t intended; /* intended time of the request in flight */
    uint64_t idle_since;
    size_t inlen;
    char in[BUF];
};

struct stats {
    uint64_t sent, completed, errors, connects, bytes_in, missed;
    /* Wake-up lateness: sends on connections that were idle before their due time, so
     * any delay is the machine's (scheduling, stalls), not a slow response's. */
    uint64_t late_samples, late_1ms, late_10ms, late_max;
    uint64_t status[6]; /* by class: [1]=1xx .. [5]=5xx, [0]=other */
    uint64_t *lat;
    size_t nlat, caplat;
};

static struct addrinfo *target;
static char request[512];
static size_t request_len;
static struct stats st;

static void record(uint64_t latency) {
    if (st.nlat == st.caplat) {
        st.caplat = st.caplat ? st.caplat * 2 : 65536;
        st.lat = realloc(st.lat, st.caplat * sizeof *st.lat);
        if (!st.lat) die("realloc");
    }
    st.lat[st.nlat++] = latency;
}

static void lconn_open(int ep, struct lconn *c) {
    c->fd = socket(target->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    set_nodelay(c->fd);
    c->inlen = 0;
    st.connects++;
    if (connect(c->fd, target->ai_addr, target->ai_addrlen) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        c->state = DOWN;
        st.errors++;
        return;
    }
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void lconn_drop(int ep, struct lconn *c, int failed) {
    if (failed) st.errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = DOWN;
}

static void lconn_send(int ep, struct lconn *c, uint64_t intended) {
    ssize_t w = write(c->fd, request, request_len);
    if (w != (ssize_t)request_len) { /* a 100-byte request always fits a fresh socket */
        lconn_drop(ep, c, 1);
        return;
    }
    c->intended = intended;
    c->state = WAITING;
    st.sent++;
}

/* Parse a complete response if there is one: 1 done, 0 need more, -1 broken. */
static int lconn_response(struct lconn *c, int *status, int *close_after) {
    size_t hlen = header_end(c->in, c->inlen);
    if (!hlen) return c->inlen == BUF ? -1 : 0;
    if (c->inlen < 12 || strncmp(c->in, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(c->in + 9);
    if (header_value(c->in, hlen, "transfer-encoding")) return -1; /* not used by the bench */
    const char *cl = header_value(c->in, hlen, "content-length");
    size_t body = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
    const char *conn = header_value(c->in, hlen, "connection");
    *close_after = conn && strncasecmp(conn, "close", 5) == 0;
    if (c->inlen < hlen + body) return hlen + body > BUF ? -1 : 0;
    st.bytes_in += hlen + body;
    memmove(c->in, c->in + hlen + body, c->inlen - hlen - body);
    c->inlen -= hlen + body;
    return 1;
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void arm(int tfd, uint64_t at) {
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at / 1000000000ULL);
    its.it_value.tv_nsec = (long)(at % 1000000000ULL);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int load(const char *host, const char *port, const char *host_header, int nconn,
                double rate, double duration, double warmup, const char *out) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, &target);
    if (rc != 0) {
        fprintf(stderr, "dp load: %s: %s\n", host, gai_strerror(rc));
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET / HTTP/1.1\r\nhost: %s\r\nuser-agent: isthmus-dp\r\n\r\n",
                                   host_header);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);

    int ep = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(duration * 1e9);
    uint64_t interval = rate > 0 ? (uint64_t)(1e9 * nconn / rate) : 0;
    struct lconn *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = -1;
        conns[i].due = start + (rate > 0 ? (uint64_t)(1e9 * i / rate) : 0);
        lconn_open(ep, &conns[i]);
    }

    int announced = 0;
    double cpu_from = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        uint64_t now = now_ns();
        if (!announced && now >= measure_from) {
            cpu_from = cpu_now();
            printf("measuring\n");
            fflush(stdout);
            announced = 1;
        }
        /* Send what is due on idle connections; reopen dropped ones while sending. */
        uint64_t next = UINT64_MAX;
        int busy = 0;
        for (int i = 0; i < nconn; i++) {
            struct lconn *c = &conns[i];
            if (c->state == WAITING || c->state == CONNECTING) busy = 1;
            if (now >= end) continue;
            if (c->state == DOWN) lconn_open(ep, c);
            if (c->state != IDLE) continue;
            uint64_t due = rate > 0 ? c->due : now;
            if (due <= now) {
                if (rate > 0 && c->idle_since <= due && due >= measure_from) {
                    uint64_t late = now - due;
                    st.late_samples++;
                    if (late > 1000000ULL) st.late_1ms++;
                    if (late > 10000000ULL) st.late_10ms++;
                    if (late > st.late_max) st.late_max = late;
                }
                lconn_send(ep, c, due);
                if (rate > 0) c->due += interval;
                if (c->state == WAITING) busy = 1;
            } else if (due < next) {
                next = due;
            }
        }
        if (now >= end && (!busy || now >= end + DRAIN_NS)) break;
        if (now < end && end < next) next = end;
        if (now >= end) next = end + DRAIN_NS;
        if (next != UINT64_MAX) arm(tfd, next);
        int k = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) die("epoll_wait");
        now = now_ns();
        for (int i = 0; i < k; i++) {
            struct lconn *c = events[i].data.ptr;
            if (!c) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("timerfd");
                continue;
            }
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    lconn_drop(ep, c, 1);
                    continue;
                }
                c->state = IDLE;
                c->idle_since = now;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->inlen, BUF - c->inlen);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                lconn_drop(ep, c, c->state == WAITING);
                continue;
            }
            if (r < 0) continue;
            c->inlen += (size_t)r;
            if (c->state != WAITING) {
                lconn_drop(ep, c, 1); /* bytes nobody asked for */
                continue;
            }
            int status = 0, close_after = 0;
            int done = lconn_response(c, &status, &close_after);
            if (done < 0) {
                lconn_drop(ep, c, 1);
                continue;
            }
            if (!done) continue;
            st.completed++;
            st.status[status >= 100 && status < 600 ? status / 100 : 0]++;
            if (c->intended >= measure_from && c->intended < end) record(now - c->intended);
            c->state = IDLE;
            c->idle_since = now;
            if (close_after) lconn_drop(ep, c, 0);
        }
    }
    uint64_t finished = now_ns();
    double cpu = cpu_now() - cpu_from;

    /* Requests whose intended time passed before the end but were never sent. */
    if (rate > 0)
        for (int i = 0; i < nconn; i++)
            for (uint64_t d = conns[i].due; d < end; d += interval)
                if (d >= measure_from) st.missed++;
    uint64_t in_flight = 0;
    for (int i = 0; i < nconn; i++)
        if (conns[i].state == WAITING) in_flight++;

    FILE *f = fopen(out, "wb");
    if (!f) die(out);
    if (st.nlat && fwrite(st.lat, sizeof *st.lat, st.nlat, f) != st.nlat) die("fwrite");
    fclose(f);
    printf("{\"sent\": %lu, \"completed\": %lu, \"errors\": %lu, \"connects\": %lu, "
           "\"in_flight_at_end\": %lu, \"missed\": %lu, \"recorded\": %zu, \"bytes_in\": %lu, "
           "\"status\": {\"1xx\": %lu, \"2xx\": %lu, \"3xx\": %lu, \"4xx\": %lu, \"5xx\": %lu, "
           "\"other\": %lu}, \"measured_seconds\": %.6f, \"wall_seconds\": %.6f, "
           "\"cpu_seconds\": %.6f, \"late\": {\"samples\": %lu, \"over_1ms\": %lu, "
           "\"over_10ms\": %lu, \"max_ms\": %.3f}}\n",
           st.sent, st.completed, st.errors, st.connects, in_flight, st.missed, st.nlat,
           st.bytes_in, st.status[1], st.status[2], st.status[3], st.status[4], st.status[5],
           st.status[0], (double)(end - measure_from) / 1e9, (double)(finished - start) / 1e9,
           cpu, st.late_samples, st.late_1ms, st.late_10ms, (double)st.late_max / 1e6);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        serve(atoi(argv[2]), (size_t)strtoul(argv[3], NULL, 10));
    if (argc == 10 && strcmp(argv[1], "load") == 0)
        return load(argv[2], argv[3], argv[4], atoi(argv[5]), atof(argv[6]), atof(argv[7]),
                    atof(argv[8]), argv[9]);
    fprintf(stderr,
            "usage: dp serve PORT BODY_BYTES\n"
            "       dp load HOST PORT HOST_HEADER CONNECTIONS RATE DURATION WARMUP OUT_FILE\n");
    return 2;
}
