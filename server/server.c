/* The studio's daemon: libmicrohttpd on 127.0.0.1, a thread per connection. Every request is
 * checked before anything else runs: the Host header (DNS rebinding), the per-run token (query,
 * header or cookie, compared in constant time) and, for requests that change state, the Origin.
 * Then the body is collected within the upload limit and the request goes to api.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <glib/gstdio.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "http.h"

extern char **environ;

static char token[33];
static int port;
static char host_ip[32], host_name[32], origin_ip[48], origin_name[48];
static atomic_llong last_request;
static studio_options options;

static long long now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec;
}

/* ---- ts_ctx pool: a context is used by one thread at a time ---- */

#define CTX_POOL 3
static ts_ctx *pool[CTX_POOL];
static int pool_free[CTX_POOL], pool_made;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

ts_ctx *studio_ctx_get(void) {
    pthread_mutex_lock(&pool_lock);
    ts_ctx *got = NULL;
    while (!got) {
        for (int i = 0; i < pool_made && !got; i++)
            if (pool_free[i]) pool_free[i] = 0, got = pool[i];
        if (got) break;
        if (pool_made < CTX_POOL) {
            ts_ctx_options o;
            ts_ctx_options_init(&o);
            o.max_pixels = options.max_pixels;
            if (ts_ctx_new(&o, &pool[pool_made]) != TS_OK) break;
            got = pool[pool_made++];
            break;
        }
        pthread_cond_wait(&pool_cond, &pool_lock);
    }
    pthread_mutex_unlock(&pool_lock);
    return got;
}

void studio_ctx_put(ts_ctx *ctx) {
    if (!ctx) return;
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < pool_made; i++)
        if (pool[i] == ctx) pool_free[i] = 1;
    pthread_cond_signal(&pool_cond);
    pthread_mutex_unlock(&pool_lock);
}

/* ---- responses ---- */

static const char csp[] = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: "
                          "mediastream:; style-src 'self'; script-src 'self'; connect-src 'self'";

enum MHD_Result studio_send(struct MHD_Connection *c, int status, struct MHD_Response *r,
                            const char *type) {
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (type) MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result studio_send_buffer(struct MHD_Connection *c, int status, const void *data,
                                   size_t len, const char *type) {
    return studio_send(
        c, status, MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY), type);
}

enum MHD_Result studio_send_json(struct MHD_Connection *c, int status, json_t *j) {
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (!txt) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    return studio_send(c, status, r, "application/json");
}

enum MHD_Result studio_send_error(struct MHD_Connection *c, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return studio_send_json(c, status, json_pack("{s:s}", "error", msg));
}

/* ---- security ---- */

/* Equal strings, in time that depends only on the length of want. */
static int same_secret(const char *got, const char *want) {
    size_t n = strlen(want);
    if (!got || strlen(got) != n) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(got[i] ^ want[i]);
    return diff == 0;
}

static const char *header(struct MHD_Connection *c, const char *name) {
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* 0 when the request may go on; otherwise the response was queued (or failed). */
static int refuse(struct MHD_Connection *c, const char *method, int *from_query,
                  enum MHD_Result *ret) {
    const char *host = header(c, MHD_HTTP_HEADER_HOST);
    if (!host || (strcmp(host, host_ip) && strcmp(host, host_name))) {
        static const char msg[] = "trueshot studio: refused: unknown Host\n";
        *ret = studio_send_buffer(c, 421, msg, sizeof msg - 1, "text/plain; charset=utf-8");
        return 1;
    }
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    const char *h = header(c, "X-Trueshot-Token");
    const char *k = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "ts_token");
    *from_query = same_secret(q, token);
    if (!*from_query && !same_secret(h, token) && !same_secret(k, token)) {
        *ret = studio_send_error(c, 403,
                                 "This studio needs the link with its token: open the address "
                                 "trueshot studio printed.");
        return 1;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        const char *origin = header(c, "Origin");
        if (origin && strcmp(origin, origin_ip) && strcmp(origin, origin_name)) {
            *ret = studio_send_error(c, 403, "Refused: this request came from another site.");
            return 1;
        }
    }
    return 0;
}

/* ---- requests ---- */

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    studio_request *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)cls, (void)version;
    studio_request *rq = *con_cls;
    if (!rq) {
        atomic_store(&last_request, now_s());
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        enum MHD_Result ret;
        if (refuse(c, method, &rq->token_in_query, &ret)) {
            rq->answered = 1;
            return ret;
        }
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        long long declared = cl ? strtoll(cl, NULL, 10) : 0;
        if (declared > options.max_upload) {
            /* Answered before the body only when the client waits for it (Expect:
             * 100-continue) or the body is absurd: otherwise the client, still writing, would
             * see the connection close instead of the answer. The body is read and dropped. */
            if (header(c, "Expect") || declared > 8LL * options.max_upload) {
                rq->answered = 1;
                return studio_send_error(c, 413,
                                         "This file is larger than the studio's limit of %ld MB.",
                                         options.max_upload >> 20);
            }
            rq->too_big = 1;
        }
        return MHD_YES;
    }
    if (rq->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        /* The body, within the upload limit (a chunked upload has no Content-Length). */
        if (!rq->too_big && rq->len + *upload_size > (size_t)options.max_upload) rq->too_big = 1;
        if (!rq->too_big) {
            if (rq->len + *upload_size > rq->cap) {
                size_t cap = rq->cap ? rq->cap : 65536;
                while (cap < rq->len + *upload_size) cap *= 2;
                char *b = realloc(rq->body, cap);
                if (!b) return MHD_NO;
                rq->body = b, rq->cap = cap;
            }
            memcpy(rq->body + rq->len, upload, *upload_size);
            rq->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    rq->answered = 1;
    if (rq->too_big)
        return studio_send_error(c, 413, "This file is larger than the studio's limit of %ld MB.",
                                 options.max_upload >> 20);
    atomic_store(&last_request, now_s());
    enum MHD_Result r = studio_route(c, url, method, rq, token);
    atomic_store(&last_request, now_s());
    return r;
}

/* ---- lifecycle ---- */

static void open_browser(const char *url) {
    if (!options.open_browser || getenv("TRUESHOT_NO_BROWSER")) return;
    if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY")) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"xdg-open", (char *)url, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ) != 0)
        fprintf(stderr, "trueshot studio: could not start a browser; open the address above\n");
    posix_spawn_file_actions_destroy(&fa);
}

int studio_run(const studio_options *opt) {
    options = *opt;
    /* Up to 64 connection threads: without a cap glibc gives many of them an arena of their own,
     * and freed image buffers stay spread over all of them. */
    mallopt(M_ARENA_MAX, 4);
    if (ts_vips_init() != 0) {
        fprintf(stderr, "trueshot: studio: libvips did not start\n");
        return 10;
    }
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        fprintf(stderr, "trueshot: studio: no random numbers for the token\n");
        return 10;
    }
    for (int i = 0; i < 16; i++) snprintf(token + 2 * i, 3, "%02x", raw[i]);

    GError *gerr = NULL;
    char *dir = g_dir_make_tmp("trueshot-studio-XXXXXX", &gerr);
    if (!dir) {
        fprintf(stderr, "trueshot: studio: cannot create a session folder: %s\n", gerr->message);
        g_error_free(gerr);
        return 8;
    }
    g_chmod(dir, 0700);
    studio_session_init(dir, opt);

    /* Signals are taken by this thread only (sigtimedwait below): the server's threads inherit
     * the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opt->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atomic_store(&last_request, now_s());
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
        (uint16_t)opt->port, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 64u,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
        MHD_OPTION_END);
    int rc = 0;
    if (!d) {
        fprintf(stderr, "trueshot: studio: cannot listen on 127.0.0.1:%d: %s\n", opt->port,
                strerror(errno));
        rc = 8;
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : opt->port;
    snprintf(host_ip, sizeof host_ip, "127.0.0.1:%d", port);
    snprintf(host_name, sizeof host_name, "localhost:%d", port);
    snprintf(origin_ip, sizeof origin_ip, "http://127.0.0.1:%d", port);
    snprintf(origin_name, sizeof origin_name, "http://localhost:%d", port);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/?token=%s", port, token);
    printf("trueshot studio: %s\n", url);
    fflush(stdout);
    fprintf(stderr,
            "trueshot studio: session folder %s (removed when the studio stops)\n"
            "trueshot studio: serving on this computer only; press Ctrl+C to stop\n",
            dir);
    open_browser(url);

    for (;;) {
        struct timespec one = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &one);
        if (sig > 0) {
            fprintf(stderr, "\ntrueshot studio: stopping (%s)\n", strsignal(sig));
            break;
        }
        if (opt->idle_timeout_s > 0 &&
            now_s() - atomic_load(&last_request) >= opt->idle_timeout_s) {
            fprintf(stderr, "trueshot studio: no request for %d s: stopping\n",
                    opt->idle_timeout_s);
            break;
        }
    }
    MHD_stop_daemon(d);
out:
    studio_session_end();
    fprintf(stderr, "trueshot studio: session folder removed\n");
    for (int i = 0; i < pool_made; i++) ts_ctx_free(pool[i]);
    g_free(dir);
    return rc;
}
