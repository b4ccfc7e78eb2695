/*
 * rawserver: the bare minimum a request/response service over a Unix socket
 * must do, as a yardstick for moatd. Same framing as Moat (4-byte big-endian
 * length, then the body): it reads whole request frames and answers each with
 * a fixed response frame of --response-bytes. No parsing, no allocation per
 * call. One epoll loop per thread (default: the number of CPUs), connections
 * spread over them, as moatd spreads them over its event loops.
 *
 *   rawserver --socket PATH [--response-bytes N] [--threads T]
 *
 * Runs until SIGTERM/SIGINT; removes the socket file on exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FRAME (1 << 20)

typedef struct {
    int fd;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    int want_out;
} conn_t;

typedef struct {
    int epfd;
    pthread_t thread;
} loop_t;

static uint8_t *response_frame;
static size_t response_size;
static volatile sig_atomic_t stopping;
static const char *socket_path;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void conn_close(int epfd, conn_t *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Writes what is pending; 0 = all written, 1 = would block, -1 = error. */
static int conn_flush(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            return -1;
        }
    }
    c->out_len = c->out_off = 0;
    return 0;
}

static void queue_response(conn_t *c) {
    if (c->out_len + response_size > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
        while (cap < c->out_len + response_size) cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out) die("realloc");
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, response_frame, response_size);
    c->out_len += response_size;
}

/* Reads what is available and answers every complete frame. */
static int conn_read(conn_t *c) {
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) die("realloc");
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        c->in_len += (size_t)n;
        size_t off = 0;
        while (c->in_len - off >= 4) {
            uint32_t len = (uint32_t)c->in[off] << 24 | (uint32_t)c->in[off + 1] << 16 |
                           (uint32_t)c->in[off + 2] << 8 | c->in[off + 3];
            if (len > MAX_FRAME) return -1;
            if (c->in_len - off < 4 + (size_t)len) break;
            off += 4 + len;
            queue_response(c);
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if ((size_t)n < room) break; /* drained (short read) */
    }
    return conn_flush(c) < 0 ? -1 : 0;
}

static void *loop_main(void *arg) {
    loop_t *loop = arg;
    struct epoll_event events[64];
    while (!stopping) {
        int n = epoll_wait(loop->epfd, events, 64, 200);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                conn_close(loop->epfd, c);
                continue;
            }
            int rc = 0;
            if (events[i].events & EPOLLIN) rc = conn_read(c);
            if (rc == 0 && (events[i].events & EPOLLOUT)) rc = conn_flush(c) < 0 ? -1 : 0;
            if (rc < 0) {
                conn_close(loop->epfd, c);
                continue;
            }
            /* Ask for EPOLLOUT only while output is stuck behind a full send buffer. */
            int want_out = c->out_len > c->out_off;
            if (want_out != c->want_out) {
                struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(loop->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = want_out;
            }
        }
    }
    return NULL;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    size_t response_bytes = 160;
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) socket_path = argv[++i];
        else if (!strcmp(argv[i], "--response-bytes") && i + 1 < argc) response_bytes = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: rawserver --socket PATH [--response-bytes N] [--threads T]\n");
            return 2;
        }
    }
    if (!socket_path || threads < 1) {
        fprintf(stderr, "usage: rawserver --socket PATH [--response-bytes N] [--threads T]\n");
        return 2;
    }
    /* The response frame: length prefix + body (response_bytes counts both). */
    response_size = response_bytes < 4 ? 4 : response_bytes;
    response_frame = calloc(1, response_size);
    uint32_t body = (uint32_t)(response_size - 4);
    response_frame[0] = body >> 24;
    response_frame[1] = body >> 16;
    response_frame[2] = body >> 8;
    response_frame[3] = body;
    for (size_t i = 4; i < response_size; i++) response_frame[i] = (uint8_t)('a' + i % 26);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, socket_path);
    unlink(socket_path);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0) die("bind");
    if (listen(lfd, 1024) < 0) die("listen");

    loop_t *loops = calloc((size_t)threads, sizeof(loop_t));
    for (int i = 0; i < threads; i++) {
        loops[i].epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loops[i].epfd < 0) die("epoll_create1");
        pthread_create(&loops[i].thread, NULL, loop_main, &loops[i]);
    }
    fprintf(stderr, "rawserver: listening on %s, %d thread(s), %zu-byte responses\n", socket_path, threads,
            response_size);

    int next = 0;
    while (!stopping) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            die("accept4");
        }
        conn_t *c = calloc(1, sizeof(conn_t));
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(loops[next].epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        next = (next + 1) % threads;
    }
    unlink(socket_path);
    return 0;
}
