/*
 * Closed-loop WebSocket echo load in C, for benchmarks/serve.py.
 *
 * Why C: on a 2-core machine the load client shares the cores with the
 * server.  The Python client (ws_clients.py) spends about 29 us of CPU per
 * echoed message, so with two server processes the clients take a third of
 * the machine and the measured speed-up is the client's, not the server's.
 * This client spends only the system calls (one write, a share of a read and
 * of an epoll_wait per message), so the cores go to the server.
 *
 * Behaviour matches ws_clients.py's echo: each connection sends a text frame,
 * waits for the echo, sends again; one warm-up, then latencies are recorded
 * for SECONDS.  Frames go out masked with an all-zero key (RFC 6455 allows
 * any key; zero makes masking free).
 *
 *     ws_echo_load HOST PORT PATH CONNECTIONS SECONDS
 *
 * prints one JSON line: messages, total, rate, p50_ms, p99_ms, and lost: the
 * connections the server closed or dropped (the run goes on without them).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 65536

static const char PAYLOAD[] = "{\"type\": \"bench\", \"text\": \"hello, echo\"}";

struct connection {
    int fd; /* -1 once the server has closed or dropped it */
    size_t used;
    double sent_at;
    unsigned char buffer[BUFFER];
};

static unsigned char frame[256];
static size_t frame_length;
static double *latencies;
static size_t latency_count, latency_capacity;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static void build_frame(void) {
    size_t length = sizeof(PAYLOAD) - 1;
    frame[0] = 0x81;                 /* FIN, text */
    frame[1] = 0x80 | (unsigned char)length; /* masked, length < 126 */
    memset(frame + 2, 0, 4);         /* the all-zero mask key */
    memcpy(frame + 6, PAYLOAD, length);
    frame_length = 6 + length;
}

static void send_all(int fd, const void *data, size_t length) {
    const char *cursor = data;
    while (length) {
        ssize_t written = write(fd, cursor, length);
        if (written < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue; /* a 47-byte frame into an empty socket buffer */
            fail("write");
        }
        cursor += written;
        length -= (size_t)written;
    }
}

static void record(double latency) {
    if (latency_count == latency_capacity) {
        latency_capacity = latency_capacity ? latency_capacity * 2 : 65536;
        latencies = realloc(latencies, latency_capacity * sizeof(double));
        if (!latencies)
            fail("realloc");
    }
    latencies[latency_count++] = latency;
}

/* Blocking connect and upgrade; bytes after the 101 response stay buffered. */
static void open_connection(struct connection *c, const char *host, int port,
                            const char *path) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1)
        fail("inet_pton (the host must be an IPv4 address)");
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        fail("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address) < 0)
        fail("connect");
    char request[1024];
    int length = snprintf(request, sizeof request,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Origin: http://%s:%d\r\n\r\n",
                          path, host, port, host, port);
    send_all(c->fd, request, (size_t)length);
    c->used = 0;
    for (;;) {
        ssize_t got = read(c->fd, c->buffer + c->used, BUFFER - c->used);
        if (got <= 0)
            fail("reading the handshake response");
        c->used += (size_t)got;
        unsigned char *end = memmem(c->buffer, c->used, "\r\n\r\n", 4);
        if (!end)
            continue;
        if (!memmem(c->buffer, (size_t)(end - c->buffer), " 101 ", 5)) {
            fprintf(stderr, "handshake refused: %.*s\n", (int)(end - c->buffer),
                    c->buffer);
            exit(1);
        }
        size_t header = (size_t)(end - c->buffer) + 4;
        memmove(c->buffer, c->buffer + header, c->used - header);
        c->used -= header;
        break;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* Parse whole server frames (unmasked); returns messages echoed back, or -1
 * when the server sent a close frame. */
static long consume(struct connection *c, int measuring, int running) {
    size_t position = 0;
    long messages = 0;
    while (c->used - position >= 2) {
        unsigned char first = c->buffer[position], second = c->buffer[position + 1];
        size_t length = second & 0x7F, start = position + 2;
        if (length == 126) {
            if (c->used - start < 2)
                break;
            length = ((size_t)c->buffer[start] << 8) | c->buffer[start + 1];
            start += 2;
        } else if (length == 127) {
            fprintf(stderr, "unexpected 64-bit frame length\n");
            exit(1);
        }
        if (c->used - start < length)
            break;
        int opcode = first & 0x0F;
        if (opcode == 1 || opcode == 2) {
            double at = now();
            if (measuring)
                record(at - c->sent_at);
            messages++;
            if (running) {
                c->sent_at = at;
                send_all(c->fd, frame, frame_length);
            }
        } else if (opcode == 8) {
            return -1;
        }
        position = start + length;
    }
    memmove(c->buffer, c->buffer + position, c->used - position);
    c->used -= position;
    return messages;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), count = atoi(argv[4]);
    double seconds = atof(argv[5]);
    double warmup = seconds / 4 < 1.0 ? seconds / 4 : 1.0;
    build_frame();
    struct connection *connections = calloc((size_t)count, sizeof *connections);
    int poll = epoll_create1(0);
    if (!connections || poll < 0)
        fail("setup");
    for (int i = 0; i < count; i++) {
        open_connection(&connections[i], host, port, path);
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &connections[i]};
        if (epoll_ctl(poll, EPOLL_CTL_ADD, connections[i].fd, &event) < 0)
            fail("epoll_ctl");
    }
    double started = now();
    for (int i = 0; i < count; i++) {
        connections[i].sent_at = started;
        send_all(connections[i].fd, frame, frame_length);
    }
    double measure_from = started + warmup, measure_until = measure_from + seconds;
    long total = 0, in_flight = count, lost = 0;
    struct epoll_event events[512];
    for (;;) {
        double at = now();
        int running = at < measure_until;
        if (!running && in_flight == 0)
            break;
        if (at > measure_until + 5) {
            fprintf(stderr, "%ld echoes never came back\n", in_flight);
            return 1;
        }
        int ready = epoll_wait(poll, events, 512, 1000);
        if (ready < 0 && errno != EINTR)
            fail("epoll_wait");
        int measuring = at >= measure_from && running;
        for (int i = 0; i < ready; i++) {
            struct connection *c = events[i].data.ptr;
            ssize_t got = read(c->fd, c->buffer + c->used, BUFFER - c->used);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            long echoed = -1;
            if (got > 0) {
                c->used += (size_t)got;
                echoed = consume(c, measuring, running);
            }
            if (echoed < 0) { /* closed or dropped: its message is not coming */
                close(c->fd);
                c->fd = -1;
                lost++;
                in_flight--;
                continue;
            }
            total += echoed;
            if (!running)
                in_flight -= echoed;
        }
    }
    static const unsigned char close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};
    for (int i = 0; i < count; i++) {
        if (connections[i].fd < 0)
            continue;
        send_all(connections[i].fd, close_frame, sizeof close_frame);
        close(connections[i].fd);
    }
    qsort(latencies, latency_count, sizeof(double), by_value);
    double p50 = latency_count ? latencies[latency_count / 2] : 0;
    double p99 = latency_count ? latencies[(size_t)(latency_count * 0.99)] : 0;
    printf("{\"messages\": %zu, \"total\": %ld, \"rate\": %.1f, \"p50_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"lost\": %ld}\n",
           latency_count, total, latency_count / seconds, p50 * 1000, p99 * 1000,
           lost);
    return 0;
}
