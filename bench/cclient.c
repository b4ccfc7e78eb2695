/*
 * cclient: Sessions.Validate through the Moat C client (Sources/CMoatClient),
 * closed loop: N threads, each with its own connection (moat_client_connect),
 * calling moat_call() for the seeded sessions' tokens in turn, one call in
 * flight per connection. What a C service calling Moat sees, client costs
 * included (protobuf-c coding, the library's framing, one blocking
 * write/read pair per call).
 *
 *   cclient --socket PATH --seeds FILE [--connections N] [--duration S] [--warmup S]
 *
 * FILE is a moat-bench seed file (`moat-bench seed --out FILE`): its T lines
 * are the tenants' slugs, its S lines "S<TAB>tenant<TAB>user<TAB>id<TAB>token".
 *
 * Output (one line): connections=N calls=C seconds=S calls_per_second=X
 *   p50_ms=.. p90_ms=.. p99_ms=.. p999_ms=.. max_ms=.. errors=E
 *   total_calls=T cpu_us_per_call=U (user + system CPU of this process from getrusage over
 *   the whole run, warmup included, divided by every call made, as moat-bench
 *   counts its own)
 *
 * Build (bench/compare does this):
 *   make -C Sources/CMoatClient BUILD=/tmp/cmoat
 *   cc -O2 -ISources/CMoatClient/include $(pkg-config --cflags libprotobuf-c) \
 *      bench/cclient.c /tmp/cmoat/libmoatclient.a -lprotobuf-c -lpthread -o cclient
 */
#define _GNU_SOURCE
#include <moat_client.h>
#include <moat/v1/sessions.pb-c.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int tenant;
    char *token;
} session_t;

typedef struct {
    int index;
    uint64_t *samples;
    size_t n_samples, cap_samples;
    uint64_t calls, errors;
    int connect_failed;
    pthread_t thread;
} worker_t;

static const char *socket_path;
static char **tenants;
static size_t n_tenants;
static session_t *sessions;
static size_t n_sessions;
static int n_connections = 16;
static uint64_t measure_start_ns, measure_end_ns;
static pthread_barrier_t connected, go;
static char first_error[1024];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

static void note_error(const moat_status *st) {
    pthread_mutex_lock(&error_lock);
    if (first_error[0] == '\0')
        snprintf(first_error, sizeof first_error, "%s (%s): %s", moat_code_name(st->code),
                 st->reason[0] ? st->reason : "-", st->message);
    pthread_mutex_unlock(&error_lock);
}

static void *run(void *arg) {
    worker_t *w = arg;
    moat_status st;
    moat_client *client = moat_client_connect(socket_path, 5000, &st);
    if (client == NULL) {
        note_error(&st);
        w->connect_failed = 1;
    }
    pthread_barrier_wait(&connected);
    pthread_barrier_wait(&go);
    if (client == NULL) return NULL;
    size_t next = n_sessions * (size_t)w->index / (size_t)n_connections;
    for (;;) {
        uint64_t start = now_ns();
        if (start >= measure_end_ns) break;
        const session_t *s = &sessions[next];
        if (++next == n_sessions) next = 0;
        Moat__V1__ValidateRequest req = MOAT__V1__VALIDATE_REQUEST__INIT;
        req.token = s->token;
        ProtobufCMessage *out = NULL;
        int code = moat_call(client, "/moat.v1.Sessions/Validate", tenants[s->tenant], NULL, &req.base,
                             &moat__v1__validate_response__descriptor, &out, &st);
        uint64_t end = now_ns();
        w->calls++;
        if (code == MOAT_OK) {
            moat_message_free(out);
        } else {
            note_error(&st);
        }
        if (start < measure_start_ns) continue;
        if (code != MOAT_OK) {
            w->errors++;
            continue;
        }
        if (w->n_samples == w->cap_samples) {
            w->cap_samples = w->cap_samples ? w->cap_samples * 2 : 1 << 16;
            w->samples = realloc(w->samples, w->cap_samples * sizeof *w->samples);
            if (w->samples == NULL) {
                perror("cclient: realloc");
                exit(1);
            }
        }
        w->samples[w->n_samples++] = end - start;
    }
    moat_client_close(client);
    return NULL;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

static void read_seeds(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t tenant_cap = 0, session_cap = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = '\0';
        if (line[0] == 'T' && line[1] == '\t') {
            if (n_tenants == tenant_cap) {
                tenant_cap = tenant_cap ? tenant_cap * 2 : 16;
                tenants = realloc(tenants, tenant_cap * sizeof *tenants);
            }
            tenants[n_tenants++] = strdup(line + 2);
        } else if (line[0] == 'S' && line[1] == '\t') {
            /* S tenant user id token */
            char *fields[5];
            int n = 0;
            for (char *p = line, *tab; n < 5; p = tab + 1) {
                fields[n++] = p;
                tab = strchr(p, '\t');
                if (tab == NULL) break;
                *tab = '\0';
            }
            if (n != 5) continue;
            if (n_sessions == session_cap) {
                session_cap = session_cap ? session_cap * 2 : 1024;
                sessions = realloc(sessions, session_cap * sizeof *sessions);
            }
            sessions[n_sessions].tenant = atoi(fields[1]);
            sessions[n_sessions].token = strdup(fields[4]);
            n_sessions++;
        }
    }
    free(line);
    fclose(f);
    for (size_t i = 0; i < n_sessions; i++) {
        if (sessions[i].tenant < 0 || (size_t)sessions[i].tenant >= n_tenants) {
            fprintf(stderr, "cclient: %s: a session names tenant %d of %zu\n", path, sessions[i].tenant, n_tenants);
            exit(2);
        }
    }
    if (n_sessions == 0) {
        fprintf(stderr, "cclient: %s has no sessions\n", path);
        exit(2);
    }
}

int main(int argc, char **argv) {
    const char *seeds = NULL;
    double duration = 5, warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value == NULL) goto usage;
        if (strcmp(arg, "--socket") == 0) socket_path = value;
        else if (strcmp(arg, "--seeds") == 0) seeds = value;
        else if (strcmp(arg, "--connections") == 0) n_connections = atoi(value);
        else if (strcmp(arg, "--duration") == 0) duration = atof(value);
        else if (strcmp(arg, "--warmup") == 0) warmup = atof(value);
        else goto usage;
        i++;
    }
    if (socket_path == NULL || seeds == NULL || n_connections < 1 || duration <= 0 || warmup < 0) goto usage;
    read_seeds(seeds);

    worker_t *workers = calloc((size_t)n_connections, sizeof *workers);
    pthread_barrier_init(&connected, NULL, (unsigned)n_connections + 1);
    pthread_barrier_init(&go, NULL, (unsigned)n_connections + 1);
    for (int i = 0; i < n_connections; i++) {
        workers[i].index = i;
        pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    }
    /* The clock starts once every connection is up; the workers read the
     * window after the second barrier, which orders these stores before. */
    pthread_barrier_wait(&connected);
    measure_start_ns = now_ns() + (uint64_t)(warmup * 1e9);
    measure_end_ns = measure_start_ns + (uint64_t)(duration * 1e9);
    double cpu_before = cpu_seconds();
    pthread_barrier_wait(&go);
    uint64_t calls = 0, errors = 0;
    size_t n = 0;
    int failed = 0;
    for (int i = 0; i < n_connections; i++) {
        pthread_join(workers[i].thread, NULL);
        calls += workers[i].calls;
        errors += workers[i].errors;
        n += workers[i].n_samples;
        failed |= workers[i].connect_failed;
    }
    double cpu = cpu_seconds() - cpu_before;
    if (failed) {
        fprintf(stderr, "cclient: cannot connect: %s\n", first_error);
        return 1;
    }
    uint64_t *all = malloc((n ? n : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < n_connections; i++) {
        memcpy(all + at, workers[i].samples, workers[i].n_samples * sizeof *all);
        at += workers[i].n_samples;
    }
    qsort(all, n, sizeof *all, compare_u64);
    if (errors > 0) fprintf(stderr, "cclient: %llu errors, the first: %s\n", (unsigned long long)errors, first_error);
    printf("connections=%d calls=%zu seconds=%.3f calls_per_second=%.1f p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f "
           "p999_ms=%.4f max_ms=%.4f errors=%llu total_calls=%llu cpu_us_per_call=%.2f\n",
           n_connections, n, duration, (double)n / duration, percentile_ms(all, n, 50), percentile_ms(all, n, 90),
           percentile_ms(all, n, 99), percentile_ms(all, n, 99.9), n ? (double)all[n - 1] / 1e6 : 0,
           (unsigned long long)errors, (unsigned long long)calls, calls ? cpu * 1e6 / (double)calls : 0);
    return 0;

usage:
    fprintf(stderr, "usage: cclient --socket PATH --seeds FILE [--connections N] [--duration S] [--warmup S]\n");
    return 2;
}
