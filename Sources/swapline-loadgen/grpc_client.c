#include "grpc_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

// nghttp2's output is gathered up to this size before one send(): one syscall per batch of
// frames instead of one per frame.
enum { OUTPUT_BATCH_BYTES = 64 * 1024, READ_CHUNK_BYTES = 64 * 1024 };

static const char *const grpc_code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    "transport", "bad-response",
};
_Static_assert(sizeof grpc_code_names / sizeof grpc_code_names[0] == OUTCOME_COUNT, "one name per outcome");

const char *outcome_name(int outcome) { return grpc_code_names[outcome]; }

int64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

void *xrealloc(void *pointer, size_t size) {
    void *grown = realloc(pointer, size);
    if (grown == NULL) {
        fputs("swapline-loadgen: out of memory\n", stderr);
        abort();
    }
    return grown;
}

static void buffer_reserve(struct byte_buffer *buffer, size_t extra) {
    if (buffer->length + extra <= buffer->capacity) return;
    size_t capacity = buffer->capacity ? buffer->capacity : 512;
    while (capacity < buffer->length + extra) capacity *= 2;
    buffer->bytes = xrealloc(buffer->bytes, capacity);
    buffer->capacity = capacity;
}

static void buffer_append(struct byte_buffer *buffer, const uint8_t *bytes, size_t length) {
    buffer_reserve(buffer, length);
    memcpy(buffer->bytes + buffer->length, bytes, length);
    buffer->length += length;
}

// --- endpoints ----------------------------------------------------------------------------

bool endpoint_parse(struct endpoint *endpoint, const char *text, char *error, size_t error_size) {
    memset(endpoint, 0, sizeof *endpoint);
    const char *original = text;
    const char *colon = strrchr(text, ':');
    if (colon == NULL || strlen(text) >= sizeof endpoint->authority) {
        snprintf(error, error_size, "expected HOST:PORT, got '%s'", text);
        return false;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        snprintf(error, error_size, "bad port in '%s'", text);
        return false;
    }
    char host[64];
    size_t host_length = (size_t)(colon - text);
    if (host_length >= 2 && text[0] == '[' && text[host_length - 1] == ']') {
        text++;
        host_length -= 2;
    }
    if (host_length >= sizeof host) {
        snprintf(error, error_size, "host too long in '%s'", original);
        return false;
    }
    memcpy(host, text, host_length);
    host[host_length] = '\0';
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");

    struct sockaddr_in *v4 = (struct sockaddr_in *)&endpoint->address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&endpoint->address;
    // Load is only ever sent to this machine: a benchmark must not hit anything else.
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1 && (ntohl(v4->sin_addr.s_addr) >> 24) == 127) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        endpoint->address_length = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        endpoint->address_length = sizeof *v6;
    } else {
        snprintf(error, error_size, "'%s' is not a loopback address (127.0.0.0/8, ::1, localhost)", host);
        return false;
    }
    strcpy(endpoint->authority, original);
    return true;
}

// --- nghttp2 callbacks --------------------------------------------------------------------

static int parse_status(const uint8_t *value, size_t length) {
    if (length == 0 || length > 3) return -1;
    int number = 0;
    for (size_t i = 0; i < length; i++) {
        if (value[i] < '0' || value[i] > '9') return -1;
        number = number * 10 + (value[i] - '0');
    }
    return number;
}

#define NAME_IS(literal) (name_length == sizeof(literal) - 1 && memcmp(name, literal, name_length) == 0)

// Response headers and trailers alike: a Trailers-Only response carries grpc-status in its
// one HEADERS frame, a normal one in the trailing HEADERS frame.
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_length, const uint8_t *value, size_t value_length, uint8_t flags,
                     void *user_data) {
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    struct call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL) return 0;
    if (NAME_IS(":status")) {
        call->http_status = parse_status(value, value_length);
    } else if (NAME_IS("grpc-status")) {
        int status = parse_status(value, value_length);
        call->grpc_status = status <= OUTCOME_GRPC_MAX ? status : -1;
    } else if (NAME_IS("grpc-message")) {
        size_t kept = value_length < sizeof call->grpc_message - 1 ? value_length : sizeof call->grpc_message - 1;
        memcpy(call->grpc_message, value, kept);
        call->grpc_message[kept] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t length, void *user_data) {
    (void)flags;
    (void)user_data;
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call != NULL) buffer_append(&call->response, data, length);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    struct connection *connection = user_data;
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL) return 0;
    call->reset_code = error_code;
    call->next_done = NULL;
    *connection->loop->done_tail = call;
    connection->loop->done_tail = &call->next_done;
    return 0;
}

static ssize_t read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
    (void)session;
    (void)stream_id;
    (void)user_data;
    struct call *call = source->ptr;
    size_t left = call->request.length - call->request_sent;
    size_t count = left < length ? left : length;
    memcpy(buffer, call->request.bytes + call->request_sent, count);
    call->request_sent += count;
    if (call->request_sent == call->request.length) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)count;
}

// --- connections --------------------------------------------------------------------------

static void connection_fail(const struct connection *connection, const char *what) {
    fprintf(stderr, "swapline-loadgen: connection to %s: %s\n", connection->endpoint->authority, what);
}

bool connection_open(struct connection *connection, const struct endpoint *endpoint) {
    memset(connection, 0, sizeof *connection);
    connection->endpoint = endpoint;
    connection->fd = socket(endpoint->address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connection->fd < 0) {
        perror("swapline-loadgen: socket");
        return false;
    }
    // A blocking connect is immediate on loopback; the socket turns non-blocking afterwards.
    if (connect(connection->fd, (const struct sockaddr *)&endpoint->address, endpoint->address_length) != 0) {
        connection_fail(connection, strerror(errno));
        close(connection->fd);
        return false;
    }
    int one = 1;
    setsockopt(connection->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(connection->fd, F_SETFL, fcntl(connection->fd, F_GETFL) | O_NONBLOCK);

    nghttp2_session_callbacks *callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    int rv = nghttp2_session_client_new(&connection->session, callbacks, connection);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) {
        connection_fail(connection, nghttp2_strerror(rv));
        close(connection->fd);
        return false;
    }
    // Large windows so that flow control never throttles many small responses.
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    nghttp2_submit_settings(connection->session, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]);
    nghttp2_session_set_local_window_size(connection->session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    return true;
}

void connection_close(struct connection *connection) {
    nghttp2_session_del(connection->session);
    close(connection->fd);
    free(connection->output.bytes);
}

static bool connection_poll_output(struct connection *connection, bool wanted) {
    if (connection->polling_output == wanted) return true;
    struct epoll_event event = {.events = EPOLLIN | (wanted ? EPOLLOUT : 0), .data.ptr = connection};
    if (epoll_ctl(connection->loop->epoll_fd, EPOLL_CTL_MOD, connection->fd, &event) != 0) {
        connection_fail(connection, strerror(errno));
        return false;
    }
    connection->polling_output = wanted;
    return true;
}

static bool connection_flush(struct connection *connection) {
    struct byte_buffer *output = &connection->output;
    for (;;) {
        if (connection->output_sent > 0) {
            memmove(output->bytes, output->bytes + connection->output_sent, output->length - connection->output_sent);
            output->length -= connection->output_sent;
            connection->output_sent = 0;
        }
        while (output->length < OUTPUT_BATCH_BYTES) {
            const uint8_t *data;
            ssize_t produced = nghttp2_session_mem_send(connection->session, &data);
            if (produced < 0) {
                connection_fail(connection, nghttp2_strerror((int)produced));
                return false;
            }
            if (produced == 0) break;
            buffer_append(output, data, (size_t)produced);
        }
        if (output->length == 0) return connection_poll_output(connection, false);
        ssize_t sent = send(connection->fd, output->bytes, output->length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return connection_poll_output(connection, true);
            connection_fail(connection, strerror(errno));
            return false;
        }
        connection->output_sent = (size_t)sent;
        if ((size_t)sent < output->length) return connection_poll_output(connection, true);
    }
}

static bool connection_read(struct connection *connection) {
    uint8_t chunk[READ_CHUNK_BYTES];
    for (;;) {
        ssize_t count = recv(connection->fd, chunk, sizeof chunk, 0);
        if (count == 0) {
            connection_fail(connection, "closed by the server");
            return false;
        }
        if (count < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            connection_fail(connection, strerror(errno));
            return false;
        }
        ssize_t used = nghttp2_session_mem_recv(connection->session, chunk, (size_t)count);
        if (used < 0) {
            connection_fail(connection, nghttp2_strerror((int)used));
            return false;
        }
    }
}

// --- event loop ---------------------------------------------------------------------------

bool event_loop_init(struct event_loop *loop) {
    memset(loop, 0, sizeof *loop);
    loop->done_tail = &loop->done_head;
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0) {
        perror("swapline-loadgen: epoll_create1");
        return false;
    }
    return true;
}

bool event_loop_add(struct event_loop *loop, struct connection *connection) {
    connection->loop = loop;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = connection};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, connection->fd, &event) != 0) {
        perror("swapline-loadgen: epoll_ctl");
        return false;
    }
    loop->connections = xrealloc(loop->connections, (loop->connection_count + 1) * sizeof *loop->connections);
    loop->connections[loop->connection_count++] = connection;
    return true;
}

void event_loop_close(struct event_loop *loop) {
    close(loop->epoll_fd);
    free(loop->connections);
}

static void run_finished_calls(struct event_loop *loop) {
    while (loop->done_head != NULL) {
        struct call *call = loop->done_head;
        loop->done_head = call->next_done;
        if (loop->done_head == NULL) loop->done_tail = &loop->done_head;
        call->done(call);
    }
}

bool event_loop_turn(struct event_loop *loop, int timeout_ms) {
    struct epoll_event events[64];
    int ready = epoll_wait(loop->epoll_fd, events, sizeof events / sizeof events[0], timeout_ms);
    if (ready < 0 && errno != EINTR) {
        perror("swapline-loadgen: epoll_wait");
        return false;
    }
    for (int i = 0; i < ready; i++) {
        struct connection *connection = events[i].data.ptr;
        if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !connection_read(connection)) return false;
    }
    // A stream can also close while output is produced, so repeat until nothing is left.
    do {
        run_finished_calls(loop);
        for (size_t i = 0; i < loop->connection_count; i++) {
            struct connection *connection = loop->connections[i];
            if (!connection_flush(connection)) return false;
            if (!nghttp2_session_want_read(connection->session) && !nghttp2_session_want_write(connection->session)) {
                connection_fail(connection, "ended by the server (GOAWAY)");
                return false;
            }
        }
    } while (loop->done_head != NULL);
    return true;
}

// --- calls --------------------------------------------------------------------------------

void call_encode(struct call *call, const ProtobufCMessage *message) {
    size_t size = protobuf_c_message_get_packed_size(message);
    call->request.length = 0;
    buffer_reserve(&call->request, 5 + size);
    uint8_t *prefix = call->request.bytes;
    prefix[0] = 0;  // not compressed
    prefix[1] = (uint8_t)(size >> 24);
    prefix[2] = (uint8_t)(size >> 16);
    prefix[3] = (uint8_t)(size >> 8);
    prefix[4] = (uint8_t)size;
    protobuf_c_message_pack(message, prefix + 5);
    call->request.length = 5 + size;
}

#define HEADER(name, value, value_length) \
    {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, (value_length), \
     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}
#define LITERAL_HEADER(name, value) HEADER(name, value, sizeof(value) - 1)

bool call_start(struct call *call, struct connection *connection, const char *path) {
    call->connection = connection;
    call->request_sent = 0;
    call->response.length = 0;
    call->http_status = 0;
    call->grpc_status = -1;
    call->reset_code = 0;
    call->grpc_message[0] = '\0';
    const char *authority = connection->endpoint->authority;
    const nghttp2_nv headers[] = {
        LITERAL_HEADER(":method", "POST"),
        LITERAL_HEADER(":scheme", "http"),
        HEADER(":path", path, strlen(path)),
        HEADER(":authority", authority, strlen(authority)),
        LITERAL_HEADER("content-type", "application/grpc"),
        LITERAL_HEADER("te", "trailers"),
    };
    const nghttp2_data_provider body = {.source.ptr = call, .read_callback = read_request};
    call->started_ns = monotonic_ns();
    int32_t stream_id = nghttp2_submit_request(connection->session, NULL, headers, sizeof headers / sizeof headers[0],
                                               &body, call);
    if (stream_id < 0) {
        connection_fail(connection, nghttp2_strerror(stream_id));
        return false;
    }
    return true;
}

static uint32_t message_length(const uint8_t *prefix) {
    return (uint32_t)prefix[1] << 24 | (uint32_t)prefix[2] << 16 | (uint32_t)prefix[3] << 8 | prefix[4];
}

int call_outcome(const struct call *call) {
    if (call->reset_code != NGHTTP2_NO_ERROR || call->http_status != 200 || call->grpc_status < 0) {
        return OUTCOME_TRANSPORT;
    }
    if (call->grpc_status != OUTCOME_OK) return call->grpc_status;
    const struct byte_buffer *response = &call->response;
    if (response->length < 5 || response->bytes[0] != 0 || message_length(response->bytes) != response->length - 5) {
        return OUTCOME_BAD_RESPONSE;
    }
    return OUTCOME_OK;
}

const uint8_t *call_message(const struct call *call, size_t *length) {
    *length = call->response.length - 5;
    return call->response.bytes + 5;
}
