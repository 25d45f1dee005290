/* http/websocket.h - WebSocket (RFC 6455) server side: handshake, frames, and a
 * bridge that turns a WebSocket connection into the plain byte stream a
 * tunnel callback (http/http.h) expects.
 *
 * The parsers are pure (no I/O) and any thread may call them. ws_bridge_run()
 * blocks for the connection's life on the calling thread (a tunnel thread)
 * and starts one thread of its own for the inner callback.
 */
#ifndef VESSEL_RPC_WEBSOCKET_H
#define VESSEL_RPC_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/http.h"

#define WS_MAX_PAYLOAD (1u << 20)       /* largest client frame accepted by default */
#define WS_SEND_TIMEOUT_MS 30000        /* a client that takes nothing this long is dropped */

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_TOO_BIG = 1009,
};

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (RFC 6455 4.2.2):
 * base64(SHA-1(key + GUID)). false when @key is not the base64 of 16 bytes
 * (24 characters), which makes the handshake fail (400). */
bool ws_accept_key(const char *key, char out[29]);

/* Whether comma-separated Sec-WebSocket-Protocol @offered lists @proto. */
bool ws_protocol_offered(const char *offered, const char *proto);

struct ws_frame {
    bool fin;
    uint8_t opcode;     /* enum ws_opcode */
    uint64_t len;       /* payload length */
    uint8_t *payload;   /* inside the parsed buffer, already unmasked */
};

/* One client-to-server frame at the start of @buf (@len bytes there).
 * Returns the frame's whole size (> 0) and fills *@f, unmasking its payload
 * in place; 0 when @buf holds only part of a frame; -EPROTO for a protocol
 * error (RSV bits set, an unknown opcode, no mask: clients must mask, 5.1; a
 * control frame fragmented or over 125 bytes, 5.5; a 64-bit length with its
 * top bit set, 5.2); -EMSGSIZE when the payload is over @max_payload. */
ssize_t ws_frame_parse(uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *f);

/* Writes the header of a server frame (FIN, unmasked) into @hdr (room for 10
 * bytes); returns its length. */
size_t ws_frame_header(uint8_t hdr[10], uint8_t opcode, uint64_t len);

/* Fragmentation rules across frames (5.4): a continuation needs a message in
 * progress; a new data frame may not start inside one. Control frames may
 * come between fragments. Returns 0 or -EPROTO. */
struct ws_sequence {
    bool in_message;
};
int ws_sequence_next(struct ws_sequence *s, const struct ws_frame *f);

struct ws_bridge_limits {
    size_t max_payload;   /* 0: WS_MAX_PAYLOAD */
    int send_timeout_ms;  /* 0: WS_SEND_TIMEOUT_MS */
};

/* Runs @inner(@opaque, fd) on a thread of its own with fd one end of a
 * socketpair, and carries bytes between it and the WebSocket client on
 * @client_fd (after the 101): the payload of the client's data frames
 * (binary, text, continuation) to the inner end; whatever the inner end
 * writes to the client as binary frames. Answers pings; ends on a close
 * frame (echoed), a protocol error (close 1002), an oversized frame (1009),
 * the inner side's EOF (1000), or a client that accepts nothing for
 * send_timeout_ms. Returns when both sides are done; @inner has returned and
 * @opaque is its to release. @client_fd is not closed. A @client_fd < 0 runs
 * @inner with -1, as http.h allows. */
void ws_bridge_run(int client_fd, const struct ws_bridge_limits *limits, http_tunnel_fn *inner,
                   void *opaque);

#endif
