// Unary gRPC calls over HTTP/2 cleartext (prior knowledge) on nghttp2's client session, many
// streams per connection, driven by one epoll loop per thread.
#ifndef SWAPLINE_LOADGEN_GRPC_CLIENT_H
#define SWAPLINE_LOADGEN_GRPC_CLIENT_H

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

// Outcomes of a call: gRPC status codes 0..16, then the failures that never produced one.
enum {
    OUTCOME_OK = 0,
    OUTCOME_GRPC_MAX = 16,
    OUTCOME_TRANSPORT = 17,     // stream reset, HTTP status other than 200, no valid grpc-status
    OUTCOME_BAD_RESPONSE = 18,  // grpc-status 0 but a malformed or unexpected message
    OUTCOME_COUNT = 19
};

const char *outcome_name(int outcome);

int64_t monotonic_ns(void);

// A load generator out of memory has no useful way to go on.
void *xrealloc(void *pointer, size_t size);

// A loopback server: the tool refuses every other address (see endpoint_parse).
struct endpoint {
    char authority[80];  // "host:port" as given, sent as :authority
    struct sockaddr_storage address;
    socklen_t address_length;
};

// Parses HOST:PORT or [IPV6]:PORT; only 127.0.0.0/8, ::1 and localhost are accepted.
bool endpoint_parse(struct endpoint *endpoint, const char *text, char *error, size_t error_size);

struct byte_buffer {
    uint8_t *bytes;
    size_t length, capacity;
};

struct call;
typedef void (*call_done_fn)(struct call *call);

// One unary call. Its owner reuses it for its next call once `done` has run.
struct call {
    struct connection *connection;
    struct byte_buffer request;  // 5-byte gRPC prefix + message, filled by call_encode
    size_t request_sent;
    struct byte_buffer response;  // DATA as received: prefixed message(s)
    int http_status;
    int grpc_status;  // -1 until a valid grpc-status header arrives
    uint32_t reset_code;
    char grpc_message[96];
    int64_t started_ns;
    call_done_fn done;
    struct call *next_done;
};

struct event_loop;

struct connection {
    int fd;
    nghttp2_session *session;
    const struct endpoint *endpoint;
    struct event_loop *loop;
    struct byte_buffer output;  // bytes nghttp2 produced that the socket has not taken yet
    size_t output_sent;
    bool polling_output;
};

struct event_loop {
    int epoll_fd;
    struct connection **connections;
    size_t connection_count;
    // Calls whose stream closed during the current turn. Their `done` runs after nghttp2
    // returns, so that no new request is submitted from inside an nghttp2 callback.
    struct call *done_head, **done_tail;
};

bool connection_open(struct connection *connection, const struct endpoint *endpoint);
void connection_close(struct connection *connection);

bool event_loop_init(struct event_loop *loop);
bool event_loop_add(struct event_loop *loop, struct connection *connection);
// Waits up to timeout_ms for socket events, feeds them to nghttp2, runs the `done` of every
// finished call and flushes every connection. False when a connection failed.
bool event_loop_turn(struct event_loop *loop, int timeout_ms);
void event_loop_close(struct event_loop *loop);

void call_encode(struct call *call, const ProtobufCMessage *message);
// Submits the encoded request to `path` (a string literal: nghttp2 reads it without copying).
bool call_start(struct call *call, struct connection *connection, const char *path);
// OUTCOME_OK only for HTTP 200, grpc-status 0 and exactly one uncompressed message.
int call_outcome(const struct call *call);
// The response message of a call whose outcome is OUTCOME_OK.
const uint8_t *call_message(const struct call *call, size_t *length);

#endif
