/*
 * moat_client.c - the C client of the Moat daemon. See include/moat_client.h.
 *
 * One blocking, non-shared connection per client: a call sends one frame
 * (4-byte big-endian length + moat.rpc.v1.Request) and reads frames until
 * its answer, with poll() bounding every wait by the call's deadline.
 */
#if !defined(_GNU_SOURCE) && defined(__linux__)
#define _GNU_SOURCE 1
#endif

#include "moat_client.h"

#include "moat/rpc/v1/envelope.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead. */
#endif

#define MOAT_CLIENT_VERSION "0.1.0"
#define MOAT_MAX_FRAME_LIMIT ((size_t)64 << 20)

/* From the generated registry (generated/moat_registry.c). */
extern const ProtobufCMessageDescriptor *const moat_registry_messages[];
extern const ProtobufCServiceDescriptor *const moat_registry_services[];

struct moat_client {
    int fd; /* -1 while not connected */
    char *path;
    int timeout_ms;
    size_t max_frame;
    uint64_t next_id;
    size_t n_metadata;
    char **metadata_keys;
    char **metadata_values;
};

/* ---- statuses ----------------------------------------------------------- */

static void copy_text(char *dst, size_t size, const char *src) {
    if (src == NULL) src = "";
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void status_ok(moat_status *st) {
    st->code = MOAT_OK;
    st->local = 0;
    st->sys_errno = 0;
    st->reason[0] = '\0';
    st->message[0] = '\0';
    st->n_details = 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int status_local(moat_status *st, int code, const char *reason, int sys_errno, const char *format, ...) {
    status_ok(st);
    st->code = code;
    st->local = 1;
    st->sys_errno = sys_errno;
    copy_text(st->reason, sizeof st->reason, reason);
    va_list args;
    va_start(args, format);
    vsnprintf(st->message, sizeof st->message, format, args);
    va_end(args);
    return code;
}

static void errno_text(int err, char *buf, size_t size) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    const char *text = strerror_r(err, buf, size);
    if (text != buf) copy_text(buf, size, text);
#else
    if (strerror_r(err, buf, size) != 0) snprintf(buf, size, "errno %d", err);
#endif
}

static int detail_order(const void *a, const void *b) {
    const Moat__Rpc__V1__Status__DetailsEntry *x = *(Moat__Rpc__V1__Status__DetailsEntry *const *)a;
    const Moat__Rpc__V1__Status__DetailsEntry *y = *(Moat__Rpc__V1__Status__DetailsEntry *const *)b;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

/* Copies the daemon's status (NULL means OK, proto3's absent message). */
static int status_from_daemon(moat_status *st, Moat__Rpc__V1__Status *from) {
    status_ok(st);
    if (from == NULL) return MOAT_OK;
    st->code = (int)from->code;
    copy_text(st->reason, sizeof st->reason, from->reason);
    copy_text(st->message, sizeof st->message, from->message);
    if (from->n_details > 0) {
        qsort(from->details, from->n_details, sizeof from->details[0], detail_order);
        for (size_t i = 0; i < from->n_details && st->n_details < MOAT_STATUS_MAX_DETAILS; i++) {
            moat_status_detail *d = &st->details[st->n_details++];
            copy_text(d->key, sizeof d->key, from->details[i]->key);
            copy_text(d->value, sizeof d->value, from->details[i]->value);
        }
    }
    return st->code;
}

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *moat_code_name(int code) {
    if (code < 0 || (size_t)code >= sizeof code_names / sizeof code_names[0]) return "UNKNOWN_CODE";
    return code_names[code];
}

const char *moat_status_detail_value(const moat_status *status, const char *key) {
    if (status == NULL || key == NULL) return NULL;
    for (size_t i = 0; i < status->n_details && i < MOAT_STATUS_MAX_DETAILS; i++) {
        if (strcmp(status->details[i].key, key) == 0) return status->details[i].value;
    }
    return NULL;
}

const char *moat_client_version(void) { return MOAT_CLIENT_VERSION; }

/* ---- time and sockets ----------------------------------------------------- */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until `deadline` for poll(), at least 0. */
static int remaining_ms(int64_t deadline) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    if (left > 1000000000) return 1000000000;
    return (int)left;
}

/* Waits until fd is ready for `events` or the deadline passes.
 * Returns 1 ready, 0 timed out, -1 error (errno set). */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0) return 1;
        if (n == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

static void disconnect(moat_client *client) {
    if (client->fd >= 0) {
        close(client->fd);
        client->fd = -1;
    }
}

static int open_socket(void) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return fd;
#endif
}

static int connect_failed(moat_status *st, const char *path, int err) {
    char text[128];
    errno_text(err, text, sizeof text);
    if (err == ENOENT) {
        return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_NOT_CONNECTED, err,
                            "cannot connect to %s: the daemon is not running (no socket file: %s)", path, text);
    }
    if (err == ECONNREFUSED) {
        return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_NOT_CONNECTED, err,
                            "cannot connect to %s: the daemon is not running (nothing listens: %s)", path, text);
    }
    return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_NOT_CONNECTED, err, "cannot connect to %s: %s", path, text);
}

/* Connects client->fd to client->path by `deadline`. */
static int connect_client(moat_client *client, int64_t deadline, moat_status *st) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path, client->path, strlen(client->path)); /* length checked at creation */

    int fd = open_socket();
    if (fd < 0) return connect_failed(st, client->path, errno);
    for (;;) {
        if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0) break;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
            /* The listen backlog is full: try again shortly, until the deadline. */
            if (now_ms() >= deadline) {
                close(fd);
                return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_NOT_CONNECTED, err,
                                    "cannot connect to %s: the daemon's backlog stayed full", client->path);
            }
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
            nanosleep(&pause, NULL);
            continue;
        }
        if (err == EINPROGRESS) {
            int ready = wait_fd(fd, POLLOUT, deadline);
            int so_error = 0;
            socklen_t len = sizeof so_error;
            if (ready == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error == 0) break;
            close(fd);
            if (ready == 0) {
                return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_NOT_CONNECTED, ETIMEDOUT,
                                    "cannot connect to %s: timed out", client->path);
            }
            return connect_failed(st, client->path, so_error != 0 ? so_error : errno);
        }
        close(fd);
        return connect_failed(st, client->path, err);
    }
    client->fd = fd;
    return MOAT_OK;
}

/* True if the daemon closed the connection (or sent something, which outside
 * a call can only be a connection-level error before it closes). */
static int connection_is_stale(const moat_client *client) {
    struct pollfd p = {.fd = client->fd, .events = POLLIN, .revents = 0};
    int n;
    do n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    return n != 0; /* ready, hung up, or poll failed: do not trust it */
}

enum io_result { IO_OK = 0, IO_CLOSED, IO_TIMEOUT, IO_ERROR };

/* Sends all of buf. *sent counts the bytes the kernel accepted. */
static enum io_result send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline, size_t *sent, int *err) {
    *sent = 0;
    while (*sent < len) {
        ssize_t n = send(fd, buf + *sent, len - *sent, MSG_NOSIGNAL);
        if (n > 0) {
            *sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ready = wait_fd(fd, POLLOUT, deadline);
            if (ready == 1) continue;
            if (ready == 0) return IO_TIMEOUT;
        }
        *err = errno;
        return (*err == EPIPE || *err == ECONNRESET || *err == ENOTCONN) ? IO_CLOSED : IO_ERROR;
    }
    return IO_OK;
}

/* Reads exactly len bytes. */
static enum io_result recv_all(int fd, uint8_t *buf, size_t len, int64_t deadline, int *err) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) return IO_CLOSED;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int ready = wait_fd(fd, POLLIN, deadline);
            if (ready == 1) continue;
            if (ready == 0) return IO_TIMEOUT;
        }
        *err = errno;
        return errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
    }
    return IO_OK;
}

/* ---- the client ----------------------------------------------------------- */

moat_client *moat_client_connect(const char *socket_path, int timeout_ms, moat_status *status) {
    moat_status scratch;
    moat_status *st = status != NULL ? status : &scratch;
    if (socket_path == NULL || socket_path[0] == '\0') {
        status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0, "no socket path");
        return NULL;
    }
    struct sockaddr_un address;
    if (strlen(socket_path) >= sizeof address.sun_path) {
        status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, ENAMETOOLONG,
                     "socket path is longer than %zu bytes", sizeof address.sun_path - 1);
        return NULL;
    }
    moat_client *client = calloc(1, sizeof *client);
    char *path = client != NULL ? strdup(socket_path) : NULL;
    if (path == NULL) {
        free(client);
        status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
        return NULL;
    }
    client->fd = -1;
    client->path = path;
    client->timeout_ms = timeout_ms > 0 ? timeout_ms : MOAT_DEFAULT_TIMEOUT_MS;
    client->max_frame = MOAT_DEFAULT_MAX_FRAME_BYTES;
    client->next_id = 1;
    if (connect_client(client, now_ms() + client->timeout_ms, st) != MOAT_OK) {
        moat_client_close(client);
        return NULL;
    }
    status_ok(st);
    return client;
}

void moat_client_close(moat_client *client) {
    if (client == NULL) return;
    disconnect(client);
    for (size_t i = 0; i < client->n_metadata; i++) {
        free(client->metadata_keys[i]);
        free(client->metadata_values[i]);
    }
    free(client->metadata_keys);
    free(client->metadata_values);
    free(client->path);
    free(client);
}

void moat_client_set_timeout(moat_client *client, int timeout_ms) {
    if (client != NULL) client->timeout_ms = timeout_ms > 0 ? timeout_ms : MOAT_DEFAULT_TIMEOUT_MS;
}

void moat_client_set_max_frame_bytes(moat_client *client, size_t max_frame_bytes) {
    if (client == NULL) return;
    if (max_frame_bytes == 0) max_frame_bytes = MOAT_DEFAULT_MAX_FRAME_BYTES;
    if (max_frame_bytes > MOAT_MAX_FRAME_LIMIT) max_frame_bytes = MOAT_MAX_FRAME_LIMIT;
    client->max_frame = max_frame_bytes;
}

int moat_client_set_metadata(moat_client *client, const char *key, const char *value) {
    if (client == NULL || key == NULL || key[0] == '\0') return MOAT_INVALID_ARGUMENT;
    for (size_t i = 0; i < client->n_metadata; i++) {
        if (strcmp(client->metadata_keys[i], key) != 0) continue;
        if (value == NULL) {
            free(client->metadata_keys[i]);
            free(client->metadata_values[i]);
            client->n_metadata--;
            client->metadata_keys[i] = client->metadata_keys[client->n_metadata];
            client->metadata_values[i] = client->metadata_values[client->n_metadata];
            return MOAT_OK;
        }
        char *copy = strdup(value);
        if (copy == NULL) return MOAT_RESOURCE_EXHAUSTED;
        free(client->metadata_values[i]);
        client->metadata_values[i] = copy;
        return MOAT_OK;
    }
    if (value == NULL) return MOAT_OK;
    size_t n = client->n_metadata + 1;
    char **keys = realloc(client->metadata_keys, n * sizeof *keys);
    if (keys == NULL) return MOAT_RESOURCE_EXHAUSTED;
    client->metadata_keys = keys;
    char **values = realloc(client->metadata_values, n * sizeof *values);
    if (values == NULL) return MOAT_RESOURCE_EXHAUSTED;
    client->metadata_values = values;
    char *key_copy = strdup(key);
    char *value_copy = strdup(value);
    if (key_copy == NULL || value_copy == NULL) {
        free(key_copy);
        free(value_copy);
        return MOAT_RESOURCE_EXHAUSTED;
    }
    keys[client->n_metadata] = key_copy;
    values[client->n_metadata] = value_copy;
    client->n_metadata = n;
    return MOAT_OK;
}

/* Builds the frame of one request: length prefix + serialized envelope. */
static int build_frame(moat_client *client, uint64_t id, const char *method, const char *tenant,
                       const char *authorization, const uint8_t *payload, size_t payload_len, uint8_t **frame,
                       size_t *frame_len, moat_status *st) {
    Moat__Rpc__V1__Request request = MOAT__RPC__V1__REQUEST__INIT;
    request.id = id;
    request.method = (char *)method;
    request.tenant = (char *)(tenant != NULL ? tenant : "");
    request.authorization = (char *)(authorization != NULL ? authorization : "");
    request.timeout_ms = (uint32_t)client->timeout_ms;
    request.payload.data = (uint8_t *)payload;
    request.payload.len = payload != NULL ? payload_len : 0;

    Moat__Rpc__V1__Request__MetadataEntry *entries = NULL;
    Moat__Rpc__V1__Request__MetadataEntry **pointers = NULL;
    if (client->n_metadata > 0) {
        entries = calloc(client->n_metadata, sizeof *entries);
        pointers = calloc(client->n_metadata, sizeof *pointers);
        if (entries == NULL || pointers == NULL) {
            free(entries);
            free(pointers);
            return status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < client->n_metadata; i++) {
            moat__rpc__v1__request__metadata_entry__init(&entries[i]);
            entries[i].key = client->metadata_keys[i];
            entries[i].value = client->metadata_values[i];
            pointers[i] = &entries[i];
        }
        request.n_metadata = client->n_metadata;
        request.metadata = pointers;
    }

    int code = MOAT_OK;
    size_t size = moat__rpc__v1__request__get_packed_size(&request);
    if (size > client->max_frame || size > UINT32_MAX) {
        code = status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_FRAME_TOO_LARGE, 0,
                            "request of %zu bytes is over the %zu-byte frame limit", size, client->max_frame);
    } else if ((*frame = malloc(4 + size)) == NULL) {
        code = status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
    } else {
        uint8_t *out = *frame;
        out[0] = (uint8_t)(size >> 24);
        out[1] = (uint8_t)(size >> 16);
        out[2] = (uint8_t)(size >> 8);
        out[3] = (uint8_t)size;
        moat__rpc__v1__request__pack(&request, out + 4);
        *frame_len = 4 + size;
    }
    free(entries);
    free(pointers);
    return code;
}

/* Reads the answer to request `id`: one frame. On MOAT_OK, *answer is the
 * decoded Response. Every failure that leaves the stream unusable closes the
 * connection. */
static int read_answer(moat_client *client, uint64_t id, const char *method, int timeout, int64_t deadline,
                       Moat__Rpc__V1__Response **answer, moat_status *st) {
    int code;
    int err = 0;
    uint8_t header[4];
    enum io_result io = recv_all(client->fd, header, sizeof header, deadline, &err);
    if (io == IO_OK) {
        size_t length = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
        if (length > client->max_frame) {
            disconnect(client);
            return status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_FRAME_TOO_LARGE, 0,
                                "the daemon sent a %zu-byte frame (limit %zu)", length, client->max_frame);
        }
        uint8_t *body = malloc(length > 0 ? length : 1);
        if (body == NULL) {
            disconnect(client);
            return status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
        }
        io = recv_all(client->fd, body, length, deadline, &err);
        if (io == IO_OK) {
            Moat__Rpc__V1__Response *response = moat__rpc__v1__response__unpack(NULL, length, body);
            free(body);
            if (response == NULL) {
                disconnect(client);
                return status_local(st, MOAT_INTERNAL, MOAT_REASON_PROTOCOL_ERROR, 0,
                                    "the daemon's answer is not a moat.rpc.v1.Response (%zu bytes)", length);
            }
            if (response->id == 0) {
                /* A connection-level error; the daemon closes the connection. */
                disconnect(client);
                code = status_from_daemon(st, response->status);
                moat__rpc__v1__response__free_unpacked(response, NULL);
                if (code == MOAT_OK) {
                    return status_local(st, MOAT_INTERNAL, MOAT_REASON_PROTOCOL_ERROR, 0,
                                        "the daemon answered id 0 without an error");
                }
                return code;
            }
            if (response->id != id) {
                uint64_t got = response->id;
                moat__rpc__v1__response__free_unpacked(response, NULL);
                disconnect(client);
                return status_local(st, MOAT_INTERNAL, MOAT_REASON_PROTOCOL_ERROR, 0,
                                    "the daemon answered request %llu while request %llu was waiting",
                                    (unsigned long long)got, (unsigned long long)id);
            }
            code = status_from_daemon(st, response->status);
            if (code != MOAT_OK) {
                moat__rpc__v1__response__free_unpacked(response, NULL);
                return code;
            }
            *answer = response;
            return MOAT_OK;
        }
        free(body);
    }
    disconnect(client);
    if (io == IO_TIMEOUT) {
        return status_local(st, MOAT_DEADLINE_EXCEEDED, MOAT_REASON_DEADLINE_EXCEEDED, 0,
                            "no answer to %s within %d ms", method, timeout);
    }
    if (io == IO_CLOSED && err == 0) {
        return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_CONNECTION_CLOSED, 0,
                            "the daemon closed the connection during %s", method);
    }
    char text[128];
    errno_text(err, text, sizeof text);
    return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_CONNECTION_CLOSED, err,
                        "connection to the daemon lost during %s: %s", method, text);
}

/* One call on bytes. On MOAT_OK, *answer is the decoded Response (its payload
 * is the method's answer), to be freed by the caller. */
static int call_bytes(moat_client *client, const char *method, const char *tenant, const char *authorization,
                      const uint8_t *payload, size_t payload_len, Moat__Rpc__V1__Response **answer,
                      moat_status *st) {
    *answer = NULL;
    if (client == NULL) {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0, "no client");
    }
    if (method == NULL || method[0] == '\0') {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0, "no method");
    }
    if (payload == NULL && payload_len != 0) {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0, "payload is NULL");
    }
    int timeout = client->timeout_ms;
    int64_t deadline = now_ms() + timeout + MOAT_CLIENT_GRACE_MS;

    uint64_t id = client->next_id++;
    if (client->next_id == 0) client->next_id = 1;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int code = build_frame(client, id, method, tenant, authorization, payload, payload_len, &frame, &frame_len, st);
    if (code != MOAT_OK) return code;

    /* Connect, or reconnect when the daemon closed the idle connection. A
     * send that the kernel refused outright on a reused connection (nothing
     * of the request left this process) is retried once on a new one. */
    int fresh = 0;
    enum io_result io = IO_OK;
    int err = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (client->fd >= 0 && connection_is_stale(client)) disconnect(client);
        if (client->fd < 0) {
            int64_t connect_deadline = now_ms() + timeout;
            code = connect_client(client, connect_deadline < deadline ? connect_deadline : deadline, st);
            if (code != MOAT_OK) {
                free(frame);
                return code;
            }
            fresh = 1;
        }
        size_t sent = 0;
        err = 0;
        io = send_all(client->fd, frame, frame_len, deadline, &sent, &err);
        if (io == IO_CLOSED && sent == 0 && !fresh) {
            disconnect(client);
            continue;
        }
        break;
    }
    free(frame);
    if (io == IO_TIMEOUT) {
        disconnect(client);
        return status_local(st, MOAT_DEADLINE_EXCEEDED, MOAT_REASON_DEADLINE_EXCEEDED, 0,
                            "could not send %s within %d ms", method, timeout);
    }
    if (io != IO_OK) {
        /* The daemon may have said why before it closed (for example
         * CALLER_NOT_ALLOWED or TOO_MANY_CONNECTIONS, with id 0). */
        code = read_answer(client, id, method, timeout, now_ms() + 100, answer, st);
        if (code == MOAT_OK || !st->local) return code;
        disconnect(client);
        char text[128];
        errno_text(err, text, sizeof text);
        return status_local(st, MOAT_UNAVAILABLE, MOAT_REASON_CONNECTION_CLOSED, err,
                            "connection to the daemon lost while sending %s: %s", method, text);
    }
    return read_answer(client, id, method, timeout, deadline, answer, st);
}

int moat_call_raw(moat_client *client, const char *method, const char *tenant, const char *authorization,
                  const uint8_t *request, size_t request_len, uint8_t **response, size_t *response_len,
                  moat_status *status) {
    moat_status scratch;
    moat_status *st = status != NULL ? status : &scratch;
    if (response != NULL) *response = NULL;
    if (response_len != NULL) *response_len = 0;
    if (response == NULL || response_len == NULL) {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0,
                            "response and response_len are required");
    }
    Moat__Rpc__V1__Response *answer = NULL;
    int code = call_bytes(client, method, tenant, authorization, request, request_len, &answer, st);
    if (code != MOAT_OK) return code;
    if (answer->payload.len > 0) {
        uint8_t *copy = malloc(answer->payload.len);
        if (copy == NULL) {
            moat__rpc__v1__response__free_unpacked(answer, NULL);
            return status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
        }
        memcpy(copy, answer->payload.data, answer->payload.len);
        *response = copy;
        *response_len = answer->payload.len;
    }
    moat__rpc__v1__response__free_unpacked(answer, NULL);
    status_ok(st);
    return MOAT_OK;
}

int moat_call(moat_client *client, const char *method, const char *tenant, const char *authorization,
              const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_descriptor,
              ProtobufCMessage **response, moat_status *status) {
    moat_status scratch;
    moat_status *st = status != NULL ? status : &scratch;
    if (response != NULL) *response = NULL;
    if (response == NULL) {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0, "response is required");
    }
    if (response_descriptor == NULL || response_descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0,
                            "response_descriptor is not a message descriptor");
    }
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    if (request != NULL) {
        if (request->descriptor == NULL || request->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
            return status_local(st, MOAT_INVALID_ARGUMENT, MOAT_REASON_INVALID_ARGUMENT, 0,
                                "request is not an initialized protobuf-c message");
        }
        payload_len = protobuf_c_message_get_packed_size(request);
        payload = malloc(payload_len > 0 ? payload_len : 1);
        if (payload == NULL) {
            return status_local(st, MOAT_RESOURCE_EXHAUSTED, MOAT_REASON_OUT_OF_MEMORY, ENOMEM, "out of memory");
        }
        protobuf_c_message_pack(request, payload);
    }
    Moat__Rpc__V1__Response *answer = NULL;
    int code = call_bytes(client, method, tenant, authorization, payload, payload_len, &answer, st);
    free(payload);
    if (code != MOAT_OK) return code;
    ProtobufCMessage *message =
        protobuf_c_message_unpack(response_descriptor, NULL, answer->payload.len, answer->payload.data);
    size_t answer_len = answer->payload.len;
    moat__rpc__v1__response__free_unpacked(answer, NULL);
    if (message == NULL) {
        return status_local(st, MOAT_INTERNAL, MOAT_REASON_PROTOCOL_ERROR, 0,
                            "the answer to %s (%zu bytes) does not decode as %s", method, answer_len,
                            response_descriptor->name);
    }
    *response = message;
    status_ok(st);
    return MOAT_OK;
}

void moat_message_free(ProtobufCMessage *message) {
    if (message != NULL) protobuf_c_message_free_unpacked(message, NULL);
}

void moat_free(void *bytes) { free(bytes); }

/* ---- descriptors ------------------------------------------------------------ */

const ProtobufCMessageDescriptor *moat_message_descriptor(const char *full_name) {
    if (full_name == NULL) return NULL;
    if (full_name[0] == '.') full_name++;
    for (size_t i = 0; moat_registry_messages[i] != NULL; i++) {
        if (strcmp(moat_registry_messages[i]->name, full_name) == 0) return moat_registry_messages[i];
    }
    return NULL;
}

int moat_method_types(const char *method, const ProtobufCMessageDescriptor **request,
                      const ProtobufCMessageDescriptor **response) {
    if (request != NULL) *request = NULL;
    if (response != NULL) *response = NULL;
    if (method == NULL || method[0] != '/') return MOAT_UNIMPLEMENTED;
    const char *service = method + 1;
    const char *slash = strchr(service, '/');
    if (slash == NULL || slash == service || slash[1] == '\0') return MOAT_UNIMPLEMENTED;
    size_t service_len = (size_t)(slash - service);
    for (size_t i = 0; moat_registry_services[i] != NULL; i++) {
        const ProtobufCServiceDescriptor *s = moat_registry_services[i];
        if (strlen(s->name) != service_len || strncmp(s->name, service, service_len) != 0) continue;
        for (unsigned m = 0; m < s->n_methods; m++) {
            if (strcmp(s->methods[m].name, slash + 1) != 0) continue;
            if (request != NULL) *request = s->methods[m].input;
            if (response != NULL) *response = s->methods[m].output;
            return MOAT_OK;
        }
    }
    return MOAT_UNIMPLEMENTED;
}
