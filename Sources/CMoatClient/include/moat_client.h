/*
 * moat_client.h - the C client of the Moat daemon (moatd).
 *
 * Moat speaks a gRPC-style protobuf RPC over a Unix stream socket. Each
 * direction is a sequence of frames: a 4-byte big-endian length L, then L
 * bytes of one envelope message (moat.rpc.v1.Request from the client,
 * moat.rpc.v1.Response from the daemon; proto/moat/rpc/v1/envelope.proto).
 * The request and response messages of every method are generated from
 * proto/ by protoc-c; include the ones you use:
 *
 *     #include <moat_client.h>
 *     #include <moat/v1/users.pb-c.h>
 *     #include <moat/v1/sessions.pb-c.h>
 *
 * A minimal call (error handling shortened):
 *
 *     moat_status st;
 *     moat_client *c = moat_client_connect("/run/moat/moat.sock", 5000, &st);
 *     if (c == NULL) { fprintf(stderr, "%s (%s): %s\n",
 *                              moat_code_name(st.code), st.reason, st.message); ... }
 *     Moat__V1__ValidateRequest req = MOAT__V1__VALIDATE_REQUEST__INIT;
 *     req.token = token;
 *     ProtobufCMessage *out = NULL;
 *     if (moat_call(c, "/moat.v1.Sessions/Validate", "acme", NULL, &req.base,
 *                   &moat__v1__validate_response__descriptor, &out, &st) == MOAT_OK) {
 *         Moat__V1__ValidateResponse *v = (Moat__V1__ValidateResponse *)out;
 *         printf("user %s\n", v->user_id);
 *         moat_message_free(out);
 *     }
 *     moat_client_close(c);
 *
 * Generated messages: initialize with the type's __INIT macro (or its
 * ..._init() function); string fields start as "" (NULL also encodes as
 * empty). protoc-c does not support proto3 `optional`, so scripts/generate
 * hands such fields to it as the equivalent one-field oneof (same wire format,
 * same presence): set both the case and the value, e.g.
 *
 *     Moat__V1__UpdatePolicyRequest up = MOAT__V1__UPDATE_POLICY_REQUEST__INIT;
 *     up._require_two_factor_case =
 *         MOAT__V1__UPDATE_POLICY_REQUEST___REQUIRE_TWO_FACTOR_REQUIRE_TWO_FACTOR;
 *     up.require_two_factor = 0;   // sent: "set to false", not "unchanged"
 *
 * Linking: `cc app.c $(pkg-config --cflags --libs moatclient)` after
 * `make install` in Sources/CMoatClient (see its Makefile), or the SwiftPM
 * target CMoatClient.
 *
 * ERRORS. Every function that can fail fills a moat_status and returns its
 * code (MOAT_OK, 0, on success); none aborts, none leaves memory behind on
 * any path. Codes are gRPC's canonical codes, the same numbers the daemon
 * uses. A status either comes from the daemon (status.local == 0: code,
 * message, reason and details exactly as moatd sent them, e.g.
 * UNAUTHENTICATED "INVALID_CREDENTIALS") or from this library
 * (status.local == 1), with these codes and reasons:
 *
 *   MOAT_UNAVAILABLE        "NOT_CONNECTED"     cannot connect: the daemon is not
 *                                               running (sys_errno ENOENT: no socket
 *                                               file; ECONNREFUSED: nothing listens),
 *                                               or EACCES etc.
 *   MOAT_UNAVAILABLE        "CONNECTION_CLOSED" the connection was lost during the
 *                                               call (the daemon stopped or closed it)
 *   MOAT_DEADLINE_EXCEEDED  "DEADLINE_EXCEEDED" no complete answer within the call's
 *                                               timeout (plus MOAT_CLIENT_GRACE_MS)
 *   MOAT_RESOURCE_EXHAUSTED "FRAME_TOO_LARGE"   the request, or the response the daemon
 *                                               announces, is over the client's frame
 *                                               limit (moat_client_set_max_frame_bytes)
 *   MOAT_INTERNAL           "PROTOCOL_ERROR"    the daemon's answer is not a Response,
 *                                               has the wrong id, or its payload does
 *                                               not decode as the response descriptor
 *   MOAT_INVALID_ARGUMENT   "INVALID_ARGUMENT"  a NULL or unusable argument (method
 *                                               NULL or empty, socket path too long...)
 *   MOAT_RESOURCE_EXHAUSTED "OUT_OF_MEMORY"     an allocation failed
 *
 * Classes of daemon statuses a caller typically handles (see the README's
 * wire-protocol section and the .proto comments for each method's reasons):
 *
 *   MOAT_UNAUTHENTICATED    bad credentials ("INVALID_CREDENTIALS"), an unknown,
 *                           revoked or expired token ("SESSION_INVALID"), a user
 *                           method called without a token ("SESSION_REQUIRED")
 *   MOAT_PERMISSION_DENIED  an administrator method called by another process
 *                           ("ADMIN_REQUIRED")
 *   MOAT_NOT_FOUND          no such tenant/user/session in this tenant
 *   MOAT_INVALID_ARGUMENT   bad input ("PASSWORD_TOO_SHORT", "INVALID_PAYLOAD"...)
 *   MOAT_RESOURCE_EXHAUSTED "SIGN_IN_LOCKED" (see details "retry_after_seconds"),
 *                           "OVERLOADED", and the connection-level "FRAME_TOO_LARGE"
 *   MOAT_UNIMPLEMENTED      unknown method path ("UNKNOWN_METHOD")
 *   MOAT_UNAVAILABLE        the daemon is shutting down ("SHUTTING_DOWN")
 *   MOAT_DEADLINE_EXCEEDED  the daemon ran past the call's deadline
 *
 * CONNECTIONS. A client holds one connection. After a failure that concerns
 * the connection (CONNECTION_CLOSED, DEADLINE_EXCEEDED from the client,
 * PROTOCOL_ERROR on the envelope, FRAME_TOO_LARGE for a response, any status
 * the daemon sends with id 0) the connection is closed, and the next call
 * connects again. Before each call the client also checks whether the daemon
 * closed the idle connection (idle timeout, restart) and, if so, reconnects
 * first, so a long-lived client survives a daemon restart: the calls made
 * while the daemon is down fail with UNAVAILABLE, the first call after it is
 * back succeeds. A call whose request was sent when the connection broke is
 * never resent (it may have run).
 *
 * THREADS. A moat_client is not thread-safe: use one client per thread (or
 * serialize the calls on a client with your own lock). Different clients are
 * independent and may be used from different threads at the same time; the
 * library has no global state and never touches signal dispositions (it sends
 * with MSG_NOSIGNAL, so a closed connection never raises SIGPIPE). Calls on a
 * client are sequential: each waits for its answer; request ids increase
 * from 1.
 */
#ifndef MOAT_CLIENT_H
#define MOAT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: gRPC's canonical codes (moat.rpc.v1.Code), same numbers. */
enum {
    MOAT_OK = 0,
    MOAT_CANCELLED = 1,
    MOAT_UNKNOWN = 2,
    MOAT_INVALID_ARGUMENT = 3,
    MOAT_DEADLINE_EXCEEDED = 4,
    MOAT_NOT_FOUND = 5,
    MOAT_ALREADY_EXISTS = 6,
    MOAT_PERMISSION_DENIED = 7,
    MOAT_RESOURCE_EXHAUSTED = 8,
    MOAT_FAILED_PRECONDITION = 9,
    MOAT_ABORTED = 10,
    MOAT_OUT_OF_RANGE = 11,
    MOAT_UNIMPLEMENTED = 12,
    MOAT_INTERNAL = 13,
    MOAT_UNAVAILABLE = 14,
    MOAT_DATA_LOSS = 15,
    MOAT_UNAUTHENTICATED = 16
};

/* Reasons of the statuses this library produces itself (status.local == 1). */
#define MOAT_REASON_NOT_CONNECTED "NOT_CONNECTED"
#define MOAT_REASON_CONNECTION_CLOSED "CONNECTION_CLOSED"
#define MOAT_REASON_DEADLINE_EXCEEDED "DEADLINE_EXCEEDED"
#define MOAT_REASON_FRAME_TOO_LARGE "FRAME_TOO_LARGE"
#define MOAT_REASON_PROTOCOL_ERROR "PROTOCOL_ERROR"
#define MOAT_REASON_INVALID_ARGUMENT "INVALID_ARGUMENT"
#define MOAT_REASON_OUT_OF_MEMORY "OUT_OF_MEMORY"

/* Defaults. */
#define MOAT_DEFAULT_TIMEOUT_MS 10000
#define MOAT_DEFAULT_MAX_FRAME_BYTES (1u << 20)
/* The client waits this much longer than the call's timeout, so the daemon's
 * own DEADLINE_EXCEEDED answer normally arrives first and the connection
 * stays open. */
#define MOAT_CLIENT_GRACE_MS 500

/* Sizes of the status buffers; longer texts are truncated (still
 * NUL-terminated). */
#define MOAT_STATUS_MESSAGE_SIZE 512
#define MOAT_STATUS_REASON_SIZE 128
#define MOAT_STATUS_DETAIL_KEY_SIZE 64
#define MOAT_STATUS_DETAIL_VALUE_SIZE 192
#define MOAT_STATUS_MAX_DETAILS 8

typedef struct moat_status_detail {
    char key[MOAT_STATUS_DETAIL_KEY_SIZE];
    char value[MOAT_STATUS_DETAIL_VALUE_SIZE];
} moat_status_detail;

/* The outcome of a call. Plain data: no allocation, nothing to free; it may
 * live on the stack. Every function taking a moat_status * fills all of it
 * (a NULL pointer is allowed when the caller only wants the returned code). */
typedef struct moat_status {
    /* MOAT_OK or another code above. */
    int code;
    /* 1 if this library produced the status (no answer from the daemon),
     * 0 if the daemon sent it. */
    int local;
    /* For local statuses caused by a system call: its errno, else 0. */
    int sys_errno;
    /* A stable machine-readable reason, e.g. "PASSWORD_TOO_SHORT"; "" for OK. */
    char reason[MOAT_STATUS_REASON_SIZE];
    /* A human-readable message; "" for OK. Never contains secrets. */
    char message[MOAT_STATUS_MESSAGE_SIZE];
    /* The daemon's details (e.g. "retry_after_seconds"), at most
     * MOAT_STATUS_MAX_DETAILS of them, in key order. */
    size_t n_details;
    moat_status_detail details[MOAT_STATUS_MAX_DETAILS];
} moat_status;

/* An open connection to the daemon. Opaque. */
typedef struct moat_client moat_client;

/* Connects to the daemon listening on the Unix socket `socket_path`.
 *
 * `timeout_ms` bounds the connection attempt and is the default timeout of
 * every call on the client (0 or negative: MOAT_DEFAULT_TIMEOUT_MS). The
 * timeout travels to the daemon as the request's deadline; the client itself
 * waits MOAT_CLIENT_GRACE_MS longer.
 *
 * Returns the client, or NULL with `status` set (UNAVAILABLE "NOT_CONNECTED"
 * when the daemon is not running; INVALID_ARGUMENT for a NULL, empty or too
 * long path; RESOURCE_EXHAUSTED "OUT_OF_MEMORY"). Free it with
 * moat_client_close(). */
moat_client *moat_client_connect(const char *socket_path, int timeout_ms, moat_status *status);

/* Closes the connection and frees the client. NULL is a no-op. */
void moat_client_close(moat_client *client);

/* Changes the timeout of the next calls (0 or negative: the default). */
void moat_client_set_timeout(moat_client *client, int timeout_ms);

/* Changes the largest frame the client sends or accepts, in bytes
 * (0: MOAT_DEFAULT_MAX_FRAME_BYTES; at most 64 MiB). The daemon has its own
 * limit (limits.max_frame_bytes, default 1 MiB). */
void moat_client_set_max_frame_bytes(moat_client *client, size_t max_frame_bytes);

/* Sets (or with value NULL removes) a metadata entry sent with every
 * following call, e.g. "user-agent", "client-ip", "request-id". Returns
 * MOAT_OK, or INVALID_ARGUMENT / RESOURCE_EXHAUSTED. */
int moat_client_set_metadata(moat_client *client, const char *key, const char *value);

/* Calls `method` (e.g. "/moat.v1.Sessions/Validate") with a protobuf-c
 * message and decodes the answer.
 *
 *   tenant          the tenant's slug or id; NULL or "" for methods that
 *                   are not tenant-scoped (Health, Tenants)
 *   authorization   the end user's session token for user methods, or NULL
 *   request         the request message (e.g. &req.base); NULL sends an
 *                   empty payload
 *   response_descriptor  the method's response type, e.g.
 *                   &moat__v1__validate_response__descriptor
 *   response        on MOAT_OK, set to the decoded message, to be freed with
 *                   moat_message_free(); otherwise set to NULL
 *   status          filled on every return (may be NULL)
 *
 * Returns status->code: MOAT_OK, a code the daemon sent, or a local one
 * (see ERRORS above). */
int moat_call(moat_client *client, const char *method, const char *tenant, const char *authorization,
              const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_descriptor,
              ProtobufCMessage **response, moat_status *status);

/* The same on bytes: sends `request` (`request_len` bytes, the serialized
 * request message; NULL/0 for empty) and, on MOAT_OK, sets *response to a
 * malloc'ed copy of the response payload and *response_len to its length
 * (*response is NULL when the payload is empty). Free it with moat_free().
 * On failure *response is NULL and *response_len 0. */
int moat_call_raw(moat_client *client, const char *method, const char *tenant, const char *authorization,
                  const uint8_t *request, size_t request_len, uint8_t **response, size_t *response_len,
                  moat_status *status);

/* Frees a message returned by moat_call() (protobuf_c_message_free_unpacked
 * with the default allocator). NULL is a no-op. */
void moat_message_free(ProtobufCMessage *message);

/* Frees bytes returned by moat_call_raw(). NULL is a no-op. */
void moat_free(void *bytes);

/* The name of a code ("OK", "UNAUTHENTICATED", ...), or "UNKNOWN_CODE". */
const char *moat_code_name(int code);

/* The value of a detail of a status (e.g. "retry_after_seconds"), or NULL. */
const char *moat_status_detail_value(const moat_status *status, const char *key);

/* The descriptor of a generated message by its full protobuf name, e.g.
 * "moat.v1.SignInRequest"; NULL if there is none. Convenient from FFIs that
 * cannot take the address of a C global. */
const ProtobufCMessageDescriptor *moat_message_descriptor(const char *full_name);

/* The request and response descriptors of a method path, e.g.
 * "/moat.v1.Users/SignIn". Returns MOAT_OK, or MOAT_UNIMPLEMENTED when the
 * generated code has no such method (either out-pointer may be NULL). */
int moat_method_types(const char *method, const ProtobufCMessageDescriptor **request,
                      const ProtobufCMessageDescriptor **response);

/* The library's version, e.g. "0.1.0". */
const char *moat_client_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MOAT_CLIENT_H */
