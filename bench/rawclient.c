/*
 * rawclient: closed-loop request/response load over a Unix socket, the
 * counterpart of rawserver (and of `moat-bench` and `redis-benchmark`: one
 * epoll thread by default, one call in flight per connection). Sends request
 * frames of --request-bytes (length prefix included) and waits for each
 * response frame before the next. Prints calls/s and exact latency
 * percentiles of the measured window.
 *
 *   rawclient --socket PATH [--connections N] [--request-bytes R]
 *             [--duration S] [--warmup S] [--threads T]
 *
 * Output (one line): connections=N calls=C seconds=S calls_per_second=X
 *                    p50_ms=.. p90_ms=.. p99_ms=.. p999_ms=.. max_ms=.. errors=E
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    uint64_t sent_ns;
    size_t out_off;   /* bytes of the current request written */
    uint8_t in[1 << 16];
    size_t in_len;
} conn_t;

typedef struct {
    int first, count;  /* connections [first, first+count) */
    conn_t *conns;
    uint64_t *samples;
    size_t n_samples, cap_samples;
    uint64_t errors;
    pthread_t thread;
} worker_t;

static const char *socket_path;
static uint8_t *request_frame;
static size_t request_size = 110;
static uint64_t measure_start_ns, measure_end_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int connect_socket(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, socket_path, sizeof(addr.sun_path) - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes (the rest of) the current request; 0 done, 1 blocked, -1 error. */
static int send_request(conn_t *c) {
    while (c->out_off < request_size) {
        ssize_t n = write(c->fd, request_frame + c->out_off, request_size - c->out_off);
        if (n > 0) c->out_off += (size_t)n;
        else if (n < 0 && errno == EINTR) continue;
        else if (n < 0 && errno == EAGAIN) return 1;
        else return -1;
    }
    return 0;
}

static void record(worker_t *w, uint64_t sent, uint64_t latency) {
    if (sent < measure_start_ns || sent >= measure_end_ns) return;
    if (w->n_samples == w->cap_samples) {
        w->cap_samples = w->cap_samples ? w->cap_samples * 2 : 1 << 16;
        w->samples = realloc(w->samples, w->cap_samples * sizeof(uint64_t));
        if (!w->samples) {
            perror("realloc");
            exit(1);
        }
    }
    w->samples[w->n_samples++] = latency;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < w->count; i++) {
        conn_t *c = &w->conns[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        c->sent_ns = now_ns();
        c->out_off = 0;
        if (send_request(c) < 0) w->errors++;
    }
    int active = w->count;
    struct epoll_event events[256];
    while (active > 0) {
        int n = epoll_wait(epfd, events, 256, 100);
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (c->out_off < request_size && send_request(c) < 0) goto failed;
            ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
            if (r == 0) goto failed;
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                goto failed;
            }
            c->in_len += (size_t)r;
            if (c->in_len < 4) continue;
            uint32_t len = (uint32_t)c->in[0] << 24 | (uint32_t)c->in[1] << 16 | (uint32_t)c->in[2] << 8 | c->in[3];
            if (4 + (size_t)len > sizeof(c->in)) goto failed;
            if (c->in_len < 4 + (size_t)len) continue;
            /* One call in flight: a complete frame is the whole answer. */
            c->in_len -= 4 + len;
            memmove(c->in, c->in + 4 + len, c->in_len);
            record(w, c->sent_ns, now - c->sent_ns);
            if (now >= measure_end_ns) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                active--;
                continue;
            }
            c->sent_ns = now;
            c->out_off = 0;
            if (send_request(c) < 0) goto failed;
            continue;
        failed:
            w->errors++;
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            active--;
        }
        if (now > measure_end_ns + 10000000000ull) break; /* 10 s past the end: give up */
    }
    close(epfd);
    return NULL;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t rank = (size_t)((p / 100.0) * (double)n);
    if (rank >= n) rank = n - 1;
    return (double)sorted[rank] / 1e6;
}

int main(int argc, char **argv) {
    int connections = 1, threads = 1;
    double duration = 5, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) socket_path = argv[++i];
        else if (!strcmp(argv[i], "--connections") && i + 1 < argc) connections = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--request-bytes") && i + 1 < argc) request_size = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--duration") && i + 1 < argc) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: rawclient --socket PATH [--connections N] [--request-bytes R] [--duration S] "
                    "[--warmup S] [--threads T]\n");
            return 2;
        }
    }
    if (!socket_path || connections < 1 || threads < 1 || request_size < 4) {
        fprintf(stderr, "rawclient: bad arguments\n");
        return 2;
    }
    if (threads > connections) threads = connections;
    request_frame = calloc(1, request_size);
    uint32_t body = (uint32_t)(request_size - 4);
    request_frame[0] = body >> 24;
    request_frame[1] = body >> 16;
    request_frame[2] = body >> 8;
    request_frame[3] = body;
    for (size_t i = 4; i < request_size; i++) request_frame[i] = (uint8_t)('A' + i % 26);

    conn_t *conns = calloc((size_t)connections, sizeof(conn_t));
    for (int i = 0; i < connections; i++) {
        conns[i].fd = connect_socket();
        if (conns[i].fd < 0) {
            perror("rawclient: connect");
            return 1;
        }
    }
    uint64_t start = now_ns();
    measure_start_ns = start + (uint64_t)(warmup * 1e9);
    measure_end_ns = measure_start_ns + (uint64_t)(duration * 1e9);
    worker_t *workers = calloc((size_t)threads, sizeof(worker_t));
    int first = 0;
    for (int t = 0; t < threads; t++) {
        int count = connections / threads + (t < connections % threads ? 1 : 0);
        workers[t].first = first;
        workers[t].count = count;
        workers[t].conns = conns + first;
        first += count;
        pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
    }
    size_t total = 0;
    uint64_t errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(workers[t].thread, NULL);
        total += workers[t].n_samples;
        errors += workers[t].errors;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof(uint64_t));
    size_t k = 0;
    for (int t = 0; t < threads; t++) {
        memcpy(all + k, workers[t].samples, workers[t].n_samples * sizeof(uint64_t));
        k += workers[t].n_samples;
    }
    qsort(all, total, sizeof(uint64_t), compare_u64);
    printf("connections=%d calls=%zu seconds=%.3f calls_per_second=%.1f p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f "
           "p999_ms=%.4f max_ms=%.4f errors=%llu\n",
           connections, total, duration, (double)total / duration, pct(all, total, 50), pct(all, total, 90),
           pct(all, total, 99), pct(all, total, 99.9), total ? (double)all[total - 1] / 1e6 : 0.0,
           (unsigned long long)errors);
    return errors ? 1 : 0;
}
