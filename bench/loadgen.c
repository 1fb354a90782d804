/*
 * HTTP/1.1 load generator for bench/gateway.py: plain or TLS with a client certificate (which
 * wrk cannot present), one blocking thread per connection, so that the same client drives the
 * gateway, nginx and the upstream directly. bench/gateway.py compiles it into a temporary
 * directory at run time (gcc -O2 -pthread loadgen.c -lssl -lcrypto); no binary is kept.
 *
 *   loadgen -m handshake|keepalive -a HOST -p PORT -u PATH -c CONNECTIONS -w WARMUP -d SECONDS
 *           [-r RATE] [-t -C CERT.pem -K KEY.pem -s SNI] [-H HOST-HEADER] [-o LATENCIES]
 *
 * handshake: every connection loops TCP connect, a full TLS handshake (the client keeps no
 *   sessions and offers no tickets, so nothing is ever resumed), one GET PATH with
 *   "Connection: close", the whole response, close_notify and close. Latency: connect to the
 *   end of the response.
 * keepalive: every connection sends GET PATH sequentially on one kept-alive connection
 *   (reconnecting only when the server closes). Latency: request written to the end of the
 *   response; with -r RATE (requests/s over all connections) requests are paced on a fixed
 *   schedule and latency counts from the scheduled time (no coordinated omission).
 *
 * The server certificate is not verified (the same for every target; it keeps the client's
 * CPU low). Only 200 responses count; anything else is an error.
 *
 * Protocol on stdout: "MEASURE" when the measured window starts, "DONE" when it ends, then one
 * JSON line with the results. -o writes every latency of the window (microseconds, native
 * uint32) to a file, for pooling several windows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 65536

enum { WARMUP = 0, MEASURE = 1, STOP = 2 };

static atomic_int phase = WARMUP;
static int handshake_mode;
static int use_tls;
static int connections = 1;
static double rate;
static struct sockaddr_in address;
static SSL_CTX *ssl_ctx;
static const char *sni;
static char request[2048];
static size_t request_length;
static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static char negotiated[160];

typedef struct {
    int index;
    uint32_t *latencies; /* microseconds */
    size_t count, capacity;
    uint64_t errors, non200, opened, bytes, behind;
    double start;
    char last_error[160];
} worker_t;

typedef struct {
    int fd;
    SSL *ssl;
    char buf[BUFSZ];
    size_t start, end;
} conn_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double when) {
    struct timespec ts;
    ts.tv_sec = (time_t)when;
    ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void fail(worker_t *w, const char *what) {
    if (atomic_load(&phase) == MEASURE) w->errors++;
    unsigned long code = ERR_peek_last_error();
    if (code)
        snprintf(w->last_error, sizeof w->last_error, "%s: %s", what,
                 ERR_reason_error_string(code));
    else
        snprintf(w->last_error, sizeof w->last_error, "%s: %s", what,
                 errno ? strerror(errno) : "closed");
    ERR_clear_error();
}

static void conn_close(conn_t *c) {
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* send close_notify; do not wait for the peer's */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->start = c->end = 0;
}

static int conn_open(conn_t *c, worker_t *w) {
    c->start = c->end = 0;
    c->ssl = NULL;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return fail(w, "socket"), -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval timeout = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address) != 0) {
        fail(w, "connect");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    w->opened++;
    if (!use_tls) return 0;
    c->ssl = SSL_new(ssl_ctx);
    SSL_set_fd(c->ssl, c->fd);
    if (sni) SSL_set_tlsext_host_name(c->ssl, sni);
    if (SSL_connect(c->ssl) != 1) {
        fail(w, "handshake");
        SSL_free(c->ssl);
        c->ssl = NULL;
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    if (!negotiated[0]) {
        pthread_mutex_lock(&info_lock);
        snprintf(negotiated, sizeof negotiated, "%s %s, group %s", SSL_get_version(c->ssl),
                 SSL_get_cipher_name(c->ssl),
                 SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl))
                     ? SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl))
                     : "?");
        pthread_mutex_unlock(&info_lock);
    }
    return 0;
}

static int conn_write(conn_t *c, const char *data, size_t length) {
    if (c->ssl) return SSL_write(c->ssl, data, (int)length) == (int)length ? 0 : -1;
    while (length) {
        ssize_t n = write(c->fd, data, length);
        if (n <= 0) return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Reads more into the buffer: >0 bytes read, 0 at EOF, -1 on error. */
static int fill(conn_t *c) {
    if (c->start == c->end) c->start = c->end = 0;
    if (c->end == BUFSZ) {
        if (c->start == 0) return -1; /* a head larger than the buffer */
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    if (c->ssl) {
        int n = SSL_read(c->ssl, c->buf + c->end, (int)(BUFSZ - c->end));
        if (n > 0) {
            c->end += (size_t)n;
            return n;
        }
        int error = SSL_get_error(c->ssl, n);
        return error == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    ssize_t n = read(c->fd, c->buf + c->end, BUFSZ - c->end);
    if (n > 0) c->end += (size_t)n;
    return (int)n; /* 0 at EOF, -1 on error */
}

/* Finds "\r\n" (line) or "\r\n\r\n" (head) from the buffer's start, reading as needed;
 * returns the offset just past it from c->start, or -1. */
static long find(conn_t *c, const char *needle, size_t needle_length) {
    for (;;) {
        char *at = memmem(c->buf + c->start, c->end - c->start, needle, needle_length);
        if (at) return (long)(at - (c->buf + c->start)) + (long)needle_length;
        if (fill(c) <= 0) return -1;
    }
}

static int skip(conn_t *c, uint64_t length) {
    while (length) {
        size_t available = c->end - c->start;
        if (!available) {
            if (fill(c) <= 0) return -1;
            continue;
        }
        size_t take = available < length ? available : (size_t)length;
        c->start += take;
        length -= take;
    }
    return 0;
}

/* Reads one response; sets *status, *keep (connection reusable), *bytes. 0 or -1. */
static int read_response(conn_t *c, int *status, int *keep, uint64_t *bytes) {
    long head_length = find(c, "\r\n\r\n", 4);
    if (head_length < 0) return -1;
    char *head = c->buf + c->start;
    if (head_length < 12 || strncmp(head, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(head + 9);
    *keep = head[7] == '1';
    long long content_length = -1;
    int chunked = 0;
    char *line = memchr(head, '\n', (size_t)head_length) + 1;
    char *end = head + head_length;
    while (line < end - 2) {
        char *next = memchr(line, '\n', (size_t)(end - line));
        if (!next) break;
        if (!strncasecmp(line, "content-length:", 15)) content_length = atoll(line + 15);
        else if (!strncasecmp(line, "transfer-encoding:", 18)) {
            for (char *p = line + 18; p < next - 6; p++)
                if (!strncasecmp(p, "chunked", 7)) chunked = 1;
        } else if (!strncasecmp(line, "connection:", 11)) {
            for (char *p = line + 11; p < next - 4; p++)
                if (!strncasecmp(p, "close", 5)) *keep = 0;
        }
        line = next + 1;
    }
    c->start += (size_t)head_length;
    *bytes = (uint64_t)head_length;
    if (*status == 204 || *status == 304) return 0;
    if (chunked) {
        for (;;) {
            long size_line = find(c, "\r\n", 2);
            if (size_line < 0) return -1;
            unsigned long long size = strtoull(c->buf + c->start, NULL, 16);
            c->start += (size_t)size_line;
            if (size == 0) {
                for (;;) { /* trailers, then the empty line */
                    long trailer = find(c, "\r\n", 2);
                    if (trailer < 0) return -1;
                    c->start += (size_t)trailer;
                    if (trailer == 2) return 0;
                }
            }
            if (skip(c, size + 2) < 0) return -1;
            *bytes += size;
        }
    }
    if (content_length >= 0) {
        *bytes += (uint64_t)content_length;
        return skip(c, (uint64_t)content_length);
    }
    for (;;) { /* until close */
        *bytes += c->end - c->start;
        c->start = c->end;
        int n = fill(c);
        if (n == 0) break;
        if (n < 0) return -1;
    }
    *keep = 0;
    return 0;
}

static void record(worker_t *w, double latency) {
    if (w->count == w->capacity) {
        w->capacity = w->capacity ? w->capacity * 2 : 65536;
        w->latencies = realloc(w->latencies, w->capacity * sizeof *w->latencies);
        if (!w->latencies) abort();
    }
    double us = latency * 1e6;
    w->latencies[w->count++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static void *work(void *argument) {
    worker_t *w = argument;
    conn_t *c = calloc(1, sizeof *c);
    c->fd = -1;
    double interval = rate > 0 ? connections / rate : 0;
    double scheduled = w->start + (interval * w->index) / connections;
    while (atomic_load(&phase) != STOP) {
        double started;
        if (interval > 0) {
            double at = now();
            if (scheduled > at) sleep_until(scheduled);
            else if (at - scheduled > interval && atomic_load(&phase) == MEASURE) w->behind++;
            if (atomic_load(&phase) == STOP) break;
            started = scheduled;
            scheduled += interval;
        } else {
            started = now();
        }
        if (c->fd < 0 && conn_open(c, w) < 0) {
            usleep(10000);
            continue;
        }
        int status = 0, keep = 0;
        uint64_t bytes = 0;
        if (conn_write(c, request, request_length) < 0) {
            fail(w, "write");
            conn_close(c);
            continue;
        }
        if (read_response(c, &status, &keep, &bytes) < 0) {
            fail(w, "read");
            conn_close(c);
            continue;
        }
        if (handshake_mode || !keep) conn_close(c);
        if (atomic_load(&phase) != MEASURE) continue;
        if (status != 200) {
            w->non200++;
            snprintf(w->last_error, sizeof w->last_error, "HTTP status %d", status);
            continue;
        }
        record(w, now() - started);
        w->bytes += bytes;
    }
    conn_close(c);
    free(c);
    return NULL;
}

static int compare(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

static void usage_exit(void) {
    fprintf(stderr, "usage: loadgen -m handshake|keepalive -a HOST -p PORT -u PATH -c N -w S "
                    "-d S [-r RATE] [-t -C CERT -K KEY -s SNI] [-H HOST] [-o FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *mode = "keepalive", *host = "127.0.0.1", *path = "/", *cert = NULL, *key = NULL;
    const char *host_header = NULL, *output = NULL;
    int port = 0;
    double warmup = 1, seconds = 5;
    int option;
    while ((option = getopt(argc, argv, "m:a:p:u:c:w:d:r:tC:K:s:H:o:")) != -1) {
        switch (option) {
        case 'm': mode = optarg; break;
        case 'a': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'u': path = optarg; break;
        case 'c': connections = atoi(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 't': use_tls = 1; break;
        case 'C': cert = optarg; break;
        case 'K': key = optarg; break;
        case 's': sni = optarg; break;
        case 'H': host_header = optarg; break;
        case 'o': output = optarg; break;
        default: usage_exit();
        }
    }
    if (!port || connections < 1 || seconds <= 0) usage_exit();
    handshake_mode = strcmp(mode, "handshake") == 0;
    if (!handshake_mode && strcmp(mode, "keepalive") != 0) usage_exit();
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) usage_exit();
    char default_host[300];
    snprintf(default_host, sizeof default_host, "%s:%d", sni ? sni : host, port);
    request_length = (size_t)snprintf(
        request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench-loadgen\r\n%s\r\n",
        path, host_header ? host_header : default_host,
        handshake_mode ? "Connection: close\r\n" : "");
    if (use_tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
        /* Every handshake is a full one: no client-side session cache, no tickets. */
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        if (cert && SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1) {
            fprintf(stderr, "loadgen: cannot load %s\n", cert);
            return 1;
        }
        if (key && SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "loadgen: cannot load %s\n", key);
            return 1;
        }
    }
    worker_t *workers = calloc((size_t)connections, sizeof *workers);
    pthread_t *threads = calloc((size_t)connections, sizeof *threads);
    double began = now();
    for (int i = 0; i < connections; i++) {
        workers[i].index = i;
        workers[i].start = began;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setstacksize(&attributes, 256 * 1024);
        if (pthread_create(&threads[i], &attributes, work, &workers[i]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread %d\n", i);
            return 1;
        }
        pthread_attr_destroy(&attributes);
    }
    sleep_until(began + warmup);
    double cpu_before = cpu_seconds();
    double measure_start = now();
    atomic_store(&phase, MEASURE);
    printf("MEASURE\n");
    fflush(stdout);
    sleep_until(measure_start + seconds);
    atomic_store(&phase, STOP);
    double measure_end = now();
    double cpu = cpu_seconds() - cpu_before;
    printf("DONE\n");
    fflush(stdout);
    size_t total = 0;
    uint64_t errors = 0, non200 = 0, opened = 0, bytes = 0, behind = 0;
    const char *last_error = "";
    for (int i = 0; i < connections; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].count;
        errors += workers[i].errors;
        non200 += workers[i].non200;
        opened += workers[i].opened;
        bytes += workers[i].bytes;
        behind += workers[i].behind;
        if (workers[i].last_error[0]) last_error = workers[i].last_error;
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < connections; i++) {
        if (workers[i].count) memcpy(all + at, workers[i].latencies, workers[i].count * sizeof *all);
        at += workers[i].count;
    }
    qsort(all, total, sizeof *all, compare);
    if (output) {
        FILE *file = fopen(output, "wb");
        if (!file || fwrite(all, sizeof *all, total, file) != total || fclose(file) != 0) {
            fprintf(stderr, "loadgen: cannot write %s\n", output);
            return 1;
        }
    }
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] : 0)
    char escaped[320];
    size_t e = 0;
    for (const char *p = last_error; *p && e < sizeof escaped - 2; p++)
        if (*p != '"' && *p != '\\') escaped[e++] = *p;
    escaped[e] = 0;
    printf("{\"ok\": %zu, \"seconds\": %.6f, \"errors\": %llu, \"non200\": %llu, "
           "\"opened\": %llu, \"bytes\": %llu, \"behind\": %llu, \"p50_us\": %u, "
           "\"p90_us\": %u, \"p99_us\": %u, \"max_us\": %u, \"cpu_s\": %.6f, "
           "\"tls\": \"%s\", \"last_error\": \"%s\"}\n",
           total, measure_end - measure_start, (unsigned long long)errors,
           (unsigned long long)non200, (unsigned long long)opened, (unsigned long long)bytes,
           (unsigned long long)behind, PCT(0.5), PCT(0.9), PCT(0.99),
           total ? all[total - 1] : 0, cpu, negotiated, escaped);
    fflush(stdout);
    return 0;
}
