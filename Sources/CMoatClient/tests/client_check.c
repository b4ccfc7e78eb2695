/*
 * client_check.c - drives every documented status of the C client, in C, so
 * it can run under Valgrind (examples/run-example.sh does):
 *
 *   client_check SOCKET TENANT EMAIL      (password in $MOAT_PASSWORD)
 *
 * Against the live daemon at SOCKET: Health, sign-in, Validate, List,
 * UNIMPLEMENTED, UNAUTHENTICATED (no session, bad credentials, bad token),
 * the typed stubs of moat_stubs.h,
 * INVALID_ARGUMENT (bad payload), FRAME_TOO_LARGE (client limit and the
 * daemon's id-0 answer), a wrong response descriptor. Against fake servers
 * on threads: a timeout, a connection closed mid-call, a truncated frame,
 * garbage, a wrong id, an oversized frame, an id-0 error, an idle connection
 * the server closed (the client reconnects). And: daemon not running
 * (ENOENT, ECONNREFUSED), bad arguments. Exit 0 when every check passes.
 */
#define _GNU_SOURCE 1

#include <moat_client.h>
#include <moat_stubs.h>
#include <moat/rpc/v1/envelope.pb-c.h>
#include <moat/v1/health.pb-c.h>
#include <moat/v1/sessions.pb-c.h>
#include <moat/v1/users.pb-c.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        checks++;                                                                                             \
        if (!(cond)) {                                                                                        \
            failures++;                                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                     \
            fprintf(stderr, "\n");                                                                            \
        }                                                                                                     \
    } while (0)

#define CHECK_STATUS(st, want_code, want_reason, want_local)                                                  \
    CHECK((st).code == (want_code) && strcmp((st).reason, (want_reason)) == 0 && (st).local == (want_local), \
          "got %s (%s) local=%d: %s", moat_code_name((st).code), (st).reason, (st).local, (st).message)

static void say(const char *what, const moat_status *st) {
    printf("  %-44s %s (%s)%s %s\n", what, moat_code_name(st->code), st->reason[0] ? st->reason : "-",
           st->local ? " [local]" : "", st->message);
}

/* ---- fake servers ------------------------------------------------------- */

enum fake_mode {
    FAKE_SILENT,      /* reads the request, never answers */
    FAKE_CLOSE,       /* reads the request, closes */
    FAKE_TRUNCATED,   /* answers half a frame, closes */
    FAKE_GARBAGE,     /* answers a frame that is not a Response */
    FAKE_WRONG_ID,    /* answers another id */
    FAKE_HUGE,        /* announces a 2 GiB frame */
    FAKE_ID0,         /* answers id 0 RESOURCE_EXHAUSTED TOO_MANY_CONNECTIONS, closes */
    FAKE_IDLE_CLOSE,  /* closes the first connection at once; answers OK on the next */
};

struct fake {
    enum fake_mode mode;
    char path[108];
    int listener;
    pthread_t thread;
};

static int read_exact(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one request frame; returns its id (0 on failure). */
static uint64_t read_request(int fd) {
    uint8_t header[4];
    if (read_exact(fd, header, 4) != 0) return 0;
    size_t len = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
    uint8_t *body = malloc(len ? len : 1);
    if (body == NULL || read_exact(fd, body, len) != 0) {
        free(body);
        return 0;
    }
    Moat__Rpc__V1__Request *request = moat__rpc__v1__request__unpack(NULL, len, body);
    free(body);
    if (request == NULL) return 0;
    uint64_t id = request->id;
    moat__rpc__v1__request__free_unpacked(request, NULL);
    return id;
}

static void send_response(int fd, uint64_t id, int code, const char *reason) {
    Moat__Rpc__V1__Status status = MOAT__RPC__V1__STATUS__INIT;
    status.code = (Moat__Rpc__V1__Code)code;
    status.reason = (char *)reason;
    status.message = (char *)"from the fake server";
    Moat__Rpc__V1__Response response = MOAT__RPC__V1__RESPONSE__INIT;
    response.id = id;
    response.status = code != 0 ? &status : NULL;
    size_t len = moat__rpc__v1__response__get_packed_size(&response);
    uint8_t *frame = malloc(4 + len);
    frame[0] = (uint8_t)(len >> 24), frame[1] = (uint8_t)(len >> 16), frame[2] = (uint8_t)(len >> 8),
    frame[3] = (uint8_t)len;
    moat__rpc__v1__response__pack(&response, frame + 4);
    send(fd, frame, 4 + len, MSG_NOSIGNAL);
    free(frame);
}

static void *fake_main(void *arg) {
    struct fake *f = arg;
    int fd = accept(f->listener, NULL, NULL);
    if (fd < 0) return NULL;
    if (f->mode == FAKE_IDLE_CLOSE) {
        close(fd);
        fd = accept(f->listener, NULL, NULL);
        if (fd < 0) return NULL;
        uint64_t id = read_request(fd);
        send_response(fd, id, 0, "");
        read_request(fd); /* until the client closes */
        close(fd);
        return NULL;
    }
    uint64_t id = read_request(fd);
    static const uint8_t garbage[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    static const uint8_t truncated[] = {0, 0, 0, 100, 8, 1};
    switch (f->mode) {
    case FAKE_SILENT: read_request(fd); break; /* blocks until the client gives up */
    case FAKE_CLOSE: break;
    case FAKE_TRUNCATED: send(fd, truncated, sizeof truncated, MSG_NOSIGNAL); break;
    case FAKE_GARBAGE: send(fd, garbage, sizeof garbage, MSG_NOSIGNAL); read_request(fd); break;
    case FAKE_WRONG_ID: send_response(fd, id + 41, 0, ""); read_request(fd); break;
    case FAKE_HUGE: send(fd, huge, sizeof huge, MSG_NOSIGNAL); read_request(fd); break;
    case FAKE_ID0: send_response(fd, 0, MOAT_RESOURCE_EXHAUSTED, "TOO_MANY_CONNECTIONS"); break;
    case FAKE_IDLE_CLOSE: break;
    }
    close(fd);
    return NULL;
}

static int fake_start(struct fake *f, enum fake_mode mode) {
    static int counter;
    f->mode = mode;
    snprintf(f->path, sizeof f->path, "/tmp/moat-fake-%d-%d.sock", (int)getpid(), counter++);
    unlink(f->path);
    f->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, f->path);
    if (bind(f->listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(f->listener, 4) != 0) {
        perror("fake server");
        return -1;
    }
    return pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(struct fake *f) {
    shutdown(f->listener, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->listener);
    unlink(f->path);
}

/* Health.Check against a fake server in `mode`; returns the status. */
static moat_status fake_call(enum fake_mode mode, int timeout_ms) {
    struct fake f;
    moat_status st;
    memset(&st, 0, sizeof st);
    if (fake_start(&f, mode) != 0) {
        st.code = -1;
        return st;
    }
    moat_client *c = moat_client_connect(f.path, timeout_ms, &st);
    if (c != NULL && mode == FAKE_IDLE_CLOSE) {
        struct timespec idle = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        nanosleep(&idle, NULL);
    }
    if (c != NULL) {
        Moat__V1__CheckRequest check = MOAT__V1__CHECK_REQUEST__INIT;
        ProtobufCMessage *out = (ProtobufCMessage *)1;
        moat_call(c, "/moat.v1.Health/Check", NULL, NULL, &check.base, &moat__v1__check_response__descriptor, &out,
                  &st);
        CHECK(out == NULL || st.code == MOAT_OK, "response must be NULL on failure");
        moat_message_free(out);
        moat_client_close(c);
    }
    fake_stop(&f);
    return st;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc != 4 || getenv("MOAT_PASSWORD") == NULL) {
        fprintf(stderr, "usage: MOAT_PASSWORD=... client_check SOCKET TENANT EMAIL\n");
        return 2;
    }
    const char *path = argv[1], *tenant = argv[2], *email = argv[3], *password = getenv("MOAT_PASSWORD");
    moat_status st;
    ProtobufCMessage *out = NULL;

    printf("daemon not running, bad arguments\n");
    CHECK(moat_client_connect("/nonexistent/moat.sock", 1000, &st) == NULL, "connected?");
    CHECK_STATUS(st, MOAT_UNAVAILABLE, "NOT_CONNECTED", 1);
    CHECK(st.sys_errno == ENOENT, "errno %d", st.sys_errno);
    say("connect /nonexistent/moat.sock", &st);
    {
        /* A socket file nothing listens on (a daemon that died). */
        char dead[108];
        snprintf(dead, sizeof dead, "/tmp/moat-dead-%d.sock", (int)getpid());
        unlink(dead);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, dead);
        CHECK(bind(fd, (struct sockaddr *)&address, sizeof address) == 0, "bind");
        close(fd);
        CHECK(moat_client_connect(dead, 1000, &st) == NULL, "connected?");
        CHECK_STATUS(st, MOAT_UNAVAILABLE, "NOT_CONNECTED", 1);
        CHECK(st.sys_errno == ECONNREFUSED, "errno %d", st.sys_errno);
        say("connect to a dead socket file", &st);
        unlink(dead);
    }
    CHECK(moat_client_connect(NULL, 0, &st) == NULL, "NULL path");
    CHECK_STATUS(st, MOAT_INVALID_ARGUMENT, "INVALID_ARGUMENT", 1);
    {
        char long_path[300];
        memset(long_path, 'x', sizeof long_path - 1);
        long_path[sizeof long_path - 1] = '\0';
        CHECK(moat_client_connect(long_path, 0, NULL) == NULL, "long path");
    }
    CHECK(moat_call(NULL, "/moat.v1.Health/Check", NULL, NULL, NULL, &moat__v1__check_response__descriptor, &out,
                    &st) == MOAT_INVALID_ARGUMENT,
          "NULL client");

    printf("live daemon at %s\n", path);
    moat_client *c = moat_client_connect(path, 5000, &st);
    CHECK(c != NULL, "connect: %s", st.message);
    if (c == NULL) return 1;
    moat_client_set_metadata(c, "user-agent", "client_check");
    moat_client_set_metadata(c, "request-id", "one");
    moat_client_set_metadata(c, "request-id", "two");
    moat_client_set_metadata(c, "request-id", NULL);

    Moat__V1__CheckRequest check = MOAT__V1__CHECK_REQUEST__INIT;
    CHECK(moat_call(c, "/moat.v1.Health/Check", NULL, NULL, &check.base, &moat__v1__check_response__descriptor,
                    &out, &st) == MOAT_OK,
          "Health.Check: %s", st.message);
    if (out != NULL) CHECK(((Moat__V1__CheckResponse *)out)->status == 1, "SERVING");
    moat_message_free(out);
    out = NULL;

    CHECK(moat_call(c, "/moat.v1.Nope/Nothing", NULL, NULL, &check.base, &moat__v1__check_response__descriptor, &out,
                    &st) == MOAT_UNIMPLEMENTED,
          "unknown method");
    CHECK_STATUS(st, MOAT_UNIMPLEMENTED, "UNKNOWN_METHOD", 0);
    say("unknown method", &st);

    Moat__V1__ListSessionsRequest list = MOAT__V1__LIST_SESSIONS_REQUEST__INIT;
    moat_call(c, "/moat.v1.Sessions/List", tenant, NULL, &list.base, &moat__v1__list_sessions_response__descriptor,
              &out, &st);
    CHECK_STATUS(st, MOAT_UNAUTHENTICATED, "SESSION_REQUIRED", 0);
    say("user method without a session", &st);

    char nobody[96];
    snprintf(nobody, sizeof nobody, "nobody-%d-%lld@example.invalid", (int)getpid(), (long long)now_ms());
    Moat__V1__SignInRequest sign_in = MOAT__V1__SIGN_IN_REQUEST__INIT;
    sign_in.email = nobody;
    sign_in.password = (char *)"not the password";
    moat_call(c, "/moat.v1.Users/SignIn", tenant, NULL, &sign_in.base, &moat__v1__sign_in_response__descriptor,
              &out, &st);
    CHECK_STATUS(st, MOAT_UNAUTHENTICATED, "INVALID_CREDENTIALS", 0);
    say("bad credentials", &st);

    sign_in.email = (char *)email;
    sign_in.password = (char *)password;
    CHECK(moat_call(c, "/moat.v1.Users/SignIn", tenant, NULL, &sign_in.base, &moat__v1__sign_in_response__descriptor,
                    &out, &st) == MOAT_OK,
          "sign in: %s", st.message);
    char *token = out != NULL ? strdup(((Moat__V1__SignInResponse *)out)->session_token) : strdup("");
    moat_message_free(out);
    out = NULL;

    Moat__V1__ValidateRequest validate = MOAT__V1__VALIDATE_REQUEST__INIT;
    validate.token = token;
    CHECK(moat_call(c, "/moat.v1.Sessions/Validate", tenant, NULL, &validate.base,
                    &moat__v1__validate_response__descriptor, &out, &st) == MOAT_OK,
          "validate: %s", st.message);
    moat_message_free(out);
    out = NULL;
    CHECK(moat_call(c, "/moat.v1.Sessions/List", tenant, token, &list.base,
                    &moat__v1__list_sessions_response__descriptor, &out, &st) == MOAT_OK,
          "list: %s", st.message);
    if (out != NULL) CHECK(((Moat__V1__ListSessionsResponse *)out)->n_sessions >= 1, "sessions");
    moat_message_free(out);
    out = NULL;

    /* The typed stubs (moat_stubs.h): the same calls, path and response
     * type fixed by the generator. */
    {
        Moat__V1__ValidateResponse *typed = NULL;
        CHECK(moat_sessions_validate(c, tenant, NULL, &validate, &typed, &st) == MOAT_OK, "typed validate: %s",
              st.message);
        CHECK(typed != NULL && typed->session_id[0] != '\0', "typed validate answer");
        if (typed != NULL) moat_message_free(&typed->base);
        Moat__V1__CheckResponse *health = NULL;
        CHECK(moat_health_check(c, NULL, NULL, NULL, &health, &st) == MOAT_OK, "typed health, NULL request");
        CHECK(health != NULL && health->status == 1, "typed health SERVING");
        if (health != NULL) moat_message_free(&health->base);
        CHECK(moat_health_check(c, NULL, NULL, &check, NULL, &st) == MOAT_OK, "typed health, answer not wanted");
        Moat__V1__ListSessionsResponse *none = NULL;
        CHECK(moat_sessions_list(c, tenant, NULL, &list, &none, &st) == MOAT_UNAUTHENTICATED && none == NULL,
              "typed list without a session: no answer");
        CHECK_STATUS(st, MOAT_UNAUTHENTICATED, "SESSION_REQUIRED", 0);
        CHECK(moat_sessions_validate(NULL, tenant, NULL, &validate, &typed, &st) == MOAT_INVALID_ARGUMENT &&
                  typed == NULL,
              "typed call on a NULL client");
        say("typed stubs (moat_sessions_validate, moat_health_check, moat_sessions_list)", &st);
    }

    validate.token = (char *)"not-a-token";
    moat_call(c, "/moat.v1.Sessions/Validate", tenant, NULL, &validate.base, &moat__v1__validate_response__descriptor,
              &out, &st);
    CHECK_STATUS(st, MOAT_UNAUTHENTICATED, "SESSION_INVALID", 0);
    say("unknown token", &st);

    static const uint8_t bad_payload[] = {0xff, 0xff, 0xff};
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    moat_call_raw(c, "/moat.v1.Sessions/Validate", tenant, NULL, bad_payload, sizeof bad_payload, &raw, &raw_len, &st);
    CHECK_STATUS(st, MOAT_INVALID_ARGUMENT, "INVALID_PAYLOAD", 0);
    CHECK(raw == NULL && raw_len == 0, "raw out on failure");
    say("undecodable payload", &st);

    /* The daemon answers Health with a CheckResponse; decoding it as a
     * SignInResponse fails (field 1 is a varint, not a string). */
    moat_call(c, "/moat.v1.Health/Check", NULL, NULL, &check.base, &moat__v1__sign_in_response__descriptor, &out, &st);
    CHECK_STATUS(st, MOAT_INTERNAL, "PROTOCOL_ERROR", 1);
    say("answer does not decode as the descriptor", &st);

    size_t big_len = 2u << 20;
    uint8_t *big = calloc(1, big_len);
    moat_call_raw(c, "/moat.v1.Health/Check", NULL, NULL, big, big_len, &raw, &raw_len, &st);
    CHECK_STATUS(st, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", 1);
    say("request over the client's frame limit", &st);
    /* Over the daemon's limit (1 MiB by default) but not the client's. */
    moat_client_set_max_frame_bytes(c, 4u << 20);
    moat_call_raw(c, "/moat.v1.Health/Check", NULL, NULL, big, (3u << 20) / 2, &raw, &raw_len, &st);
    CHECK_STATUS(st, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", 0);
    say("request over the daemon's frame limit", &st);
    free(big);
    moat_client_set_max_frame_bytes(c, 0);
    /* The daemon closed that connection; the next call reconnects. */
    CHECK(moat_call_raw(c, "/moat.v1.Health/Check", NULL, NULL, NULL, 0, &raw, &raw_len, &st) == MOAT_OK,
          "after the daemon closed: %s", st.message);
    CHECK(raw != NULL && raw_len > 0, "raw answer");
    moat_free(raw);
    raw = NULL;

    Moat__V1__SignOutRequest sign_out = MOAT__V1__SIGN_OUT_REQUEST__INIT;
    CHECK(moat_call(c, "/moat.v1.Users/SignOut", tenant, token, &sign_out.base,
                    &moat__v1__sign_out_response__descriptor, &out, &st) == MOAT_OK,
          "sign out: %s", st.message);
    moat_message_free(out);
    out = NULL;
    free(token);
    moat_client_close(c);

    printf("fake servers\n");
    int64_t started = now_ms();
    st = fake_call(FAKE_SILENT, 200);
    int64_t took = now_ms() - started;
    CHECK_STATUS(st, MOAT_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", 1);
    CHECK(took >= 200 + MOAT_CLIENT_GRACE_MS - 20 && took < 3000, "took %lld ms", (long long)took);
    say("no answer (200 ms timeout)", &st);
    st = fake_call(FAKE_CLOSE, 2000);
    CHECK_STATUS(st, MOAT_UNAVAILABLE, "CONNECTION_CLOSED", 1);
    say("closed during the call", &st);
    st = fake_call(FAKE_TRUNCATED, 2000);
    CHECK_STATUS(st, MOAT_UNAVAILABLE, "CONNECTION_CLOSED", 1);
    say("truncated frame", &st);
    st = fake_call(FAKE_GARBAGE, 2000);
    CHECK_STATUS(st, MOAT_INTERNAL, "PROTOCOL_ERROR", 1);
    say("not a Response", &st);
    st = fake_call(FAKE_WRONG_ID, 2000);
    CHECK_STATUS(st, MOAT_INTERNAL, "PROTOCOL_ERROR", 1);
    say("wrong id", &st);
    st = fake_call(FAKE_HUGE, 2000);
    CHECK_STATUS(st, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", 1);
    say("2 GiB frame announced", &st);
    st = fake_call(FAKE_ID0, 2000);
    CHECK_STATUS(st, MOAT_RESOURCE_EXHAUSTED, "TOO_MANY_CONNECTIONS", 0);
    say("connection-level error (id 0)", &st);
    st = fake_call(FAKE_IDLE_CLOSE, 2000);
    CHECK(st.code == MOAT_OK, "reconnect after an idle close: %s (%s) %s", moat_code_name(st.code), st.reason,
          st.message);
    say("idle connection closed by the server", &st);

    printf("client_check: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
