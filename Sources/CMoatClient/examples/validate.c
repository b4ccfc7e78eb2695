/*
 * validate.c - an example service using the Moat C client: it signs a user
 * in, validates the session token the way a service does on every request,
 * lists the user's sessions and signs out again.
 *
 *   validate [-s SOCKET] [-k] TENANT EMAIL
 *
 *   -s SOCKET  the daemon's socket (default $MOAT_SOCKET, else ./moat-data/moat.sock)
 *   -k         keep the session (do not sign out at the end)
 *   The password is read from $MOAT_PASSWORD, else from the first line of
 *   stdin; never from the command line.
 *
 * Exit status: 0 ok, 1 a call failed ("validate: CODE (REASON): message"),
 * 2 bad usage.
 *
 * Build: make example (in Sources/CMoatClient), or with the library installed:
 *   cc validate.c -o validate $(pkg-config --cflags --libs moatclient)
 */
#define _POSIX_C_SOURCE 200809L

#include <moat_client.h>
#include <moat_stubs.h> /* one typed function per rpc, generated from proto/ */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failed(const char *what, const moat_status *st) {
    fprintf(stderr, "validate: %s: %s (%s): %s\n", what, moat_code_name(st->code),
            st->reason[0] ? st->reason : "-", st->message);
    const char *retry = moat_status_detail_value(st, "retry_after_seconds");
    if (retry != NULL) fprintf(stderr, "validate: retry after %s s\n", retry);
    return 1;
}

static const char *when(int64_t unix_seconds, char *buf, size_t size) {
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (unix_seconds <= 0 || gmtime_r(&t, &tm) == NULL) return "-";
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

static const char *role_name(int role) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&moat__v1__tenant_role__descriptor, role);
    if (v == NULL) return "?";
    const char *prefix = "TENANT_ROLE_";
    return strncmp(v->name, prefix, strlen(prefix)) == 0 ? v->name + strlen(prefix) : v->name;
}

static const char *or_dash(const char *s) { return s != NULL && s[0] != '\0' ? s : "-"; }

/* Reads the password: $MOAT_PASSWORD or one line of stdin (caller frees). */
static char *read_password(void) {
    const char *env = getenv("MOAT_PASSWORD");
    if (env != NULL) return strdup(env);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n <= 0) {
        free(line);
        return NULL;
    }
    if (line[n - 1] == '\n') line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
    return line;
}

int main(int argc, char **argv) {
    const char *socket_path = getenv("MOAT_SOCKET");
    if (socket_path == NULL || socket_path[0] == '\0') socket_path = "./moat-data/moat.sock";
    int keep = 0, opt;
    while ((opt = getopt(argc, argv, "s:kh")) != -1) {
        switch (opt) {
        case 's': socket_path = optarg; break;
        case 'k': keep = 1; break;
        default:
            fprintf(stderr, "usage: validate [-s SOCKET] [-k] TENANT EMAIL   (password: $MOAT_PASSWORD or stdin)\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: validate [-s SOCKET] [-k] TENANT EMAIL   (password: $MOAT_PASSWORD or stdin)\n");
        return 2;
    }
    const char *tenant = argv[optind], *email = argv[optind + 1];
    char *password = read_password();
    if (password == NULL) {
        fprintf(stderr, "validate: no password ($MOAT_PASSWORD or a line on stdin)\n");
        return 2;
    }

    int rc = 1;
    char t1[64], t2[64];
    moat_status st;
    ProtobufCMessage *out = NULL;
    char *token = NULL;
    moat_client *moat = moat_client_connect(socket_path, 5000, &st);
    if (moat == NULL) {
        rc = failed("connect", &st);
        goto done;
    }
    moat_client_set_metadata(moat, "user-agent", "moat-validate/0.1 (C example)");

    /* Health: any caller. */
    Moat__V1__CheckRequest check = MOAT__V1__CHECK_REQUEST__INIT;
    Moat__V1__CheckResponse *health = NULL;
    if (moat_health_check(moat, NULL, NULL, &check, &health, &st) != MOAT_OK) {
        rc = failed("Health.Check", &st);
        goto done;
    }
    out = &health->base;
    printf("daemon      %s, moatd %s, up %llus (client %s)\n",
           protobuf_c_enum_descriptor_get_value(&moat__v1__check_response__serving_status__descriptor,
                                                health->status)->name,
           health->version, (unsigned long long)health->uptime_seconds, moat_client_version());
    moat_message_free(out);
    out = NULL;

    /* Sign in: public. */
    Moat__V1__ClientDetails details = MOAT__V1__CLIENT_DETAILS__INIT;
    details.user_agent = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
    details.ip = "127.0.0.1";
    details.location = "Build machine";
    details.device_name = "validate.c";
    Moat__V1__SignInRequest sign_in = MOAT__V1__SIGN_IN_REQUEST__INIT;
    sign_in.email = (char *)email;
    sign_in.password = password;
    sign_in.client = &details;
    Moat__V1__SignInResponse *signed_in = NULL;
    if (moat_users_sign_in(moat, tenant, NULL, &sign_in, &signed_in, &st) != MOAT_OK) {
        rc = failed("Users.SignIn", &st);
        goto done;
    }
    out = &signed_in->base;
    token = strdup(signed_in->session_token);
    printf("signed in   %s (%s) in %s, session %s\n", signed_in->user ? signed_in->user->email : email,
           signed_in->user ? signed_in->user->id : "?", tenant, signed_in->session ? signed_in->session->id : "?");
    moat_message_free(out);
    out = NULL;
    if (token == NULL) goto done;

    /* Validate: what a service does with the token on every request. */
    Moat__V1__ValidateRequest validate = MOAT__V1__VALIDATE_REQUEST__INIT;
    validate.token = token;
    Moat__V1__ValidateResponse *valid = NULL;
    if (moat_sessions_validate(moat, tenant, NULL, &validate, &valid, &st) != MOAT_OK) {
        rc = failed("Sessions.Validate", &st);
        goto done;
    }
    out = &valid->base;
    printf("validate    valid: %s (%s), role %s, tenant %s, session %s\n", valid->email, valid->user_id,
           role_name(valid->role), valid->tenant_id, valid->session_id);
    printf("            second factor %s, 2FA setup required %s, idle expiry %s, absolute expiry %s\n",
           valid->second_factor_satisfied ? "yes" : "no", valid->two_factor_setup_required ? "yes" : "no",
           when(valid->expires_at_unix, t1, sizeof t1), when(valid->absolute_expires_at_unix, t2, sizeof t2));
    moat_message_free(out);
    out = NULL;

    /* List: a user method, with the token as authorization. */
    Moat__V1__ListSessionsRequest list = MOAT__V1__LIST_SESSIONS_REQUEST__INIT;
    Moat__V1__ListSessionsResponse *sessions = NULL;
    if (moat_sessions_list(moat, tenant, token, &list, &sessions, &st) != MOAT_OK) {
        rc = failed("Sessions.List", &st);
        goto done;
    }
    out = &sessions->base;
    printf("sessions    %zu (* = this one)\n", sessions->n_sessions);
    for (size_t i = 0; i < sessions->n_sessions; i++) {
        const Moat__V1__Session *s = sessions->sessions[i];
        printf("  %c %s  %s, %s, %s  ip %s  %s  device %s  last active %s  signed in %s\n", s->current ? '*' : ' ',
               s->id, or_dash(s->device_type), or_dash(s->os), or_dash(s->browser), or_dash(s->ip),
               or_dash(s->location), or_dash(s->device_name), when(s->last_active_at_unix, t1, sizeof t1),
               when(s->created_at_unix, t2, sizeof t2));
    }
    moat_message_free(out);
    out = NULL;

    if (!keep) {
        Moat__V1__SignOutRequest sign_out = MOAT__V1__SIGN_OUT_REQUEST__INIT;
        Moat__V1__SignOutResponse *signed_out = NULL;
        if (moat_users_sign_out(moat, tenant, token, &sign_out, &signed_out, &st) != MOAT_OK) {
            rc = failed("Users.SignOut", &st);
            goto done;
        }
        moat_message_free(&signed_out->base);
        /* The token is dead the moment SignOut returns. */
        Moat__V1__ValidateResponse *stale = NULL;
        int code = moat_sessions_validate(moat, tenant, NULL, &validate, &stale, &st);
        if (stale != NULL) moat_message_free(&stale->base);
        if (code != MOAT_UNAUTHENTICATED) {
            fprintf(stderr, "validate: the token still validates after SignOut (%s)\n", moat_code_name(code));
            goto done;
        }
        printf("signed out  validate now answers %s (%s)\n", moat_code_name(st.code), st.reason);
    }
    rc = 0;

done:
    moat_message_free(out);
    if (token != NULL) {
        memset(token, 0, strlen(token));
        free(token);
    }
    memset(password, 0, strlen(password));
    free(password);
    moat_client_close(moat);
    return rc;
}
