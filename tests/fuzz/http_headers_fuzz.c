/* tests/fuzz/http_headers_fuzz.c - fuzz the parsers of http/http.c that are ours.
 *
 * libmicrohttpd parses the request line, headers, cookies and query; what
 * http/http.c parses itself is small but faces configuration and clients:
 * listen addresses ("HOST:PORT", "[V6]:PORT"), comma-separated header token
 * lists (Connection: keep-alive, Upgrade) and Basic credentials. The input is
 * split at its first newline: the part before is fed to every parser, the
 * part after is the token looked for (default "upgrade"). Each parser's
 * result is checked against what its contract promises (http/http.h).
 * Corpus: tests/fuzz/corpus/http_headers/ (replayed under gcc by replay_main.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A check failing is a bug: crash so that the fuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond))                                                                             \
            abort();                                                                             \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *token = strchr(text, '\n');
    if (token)
        *token++ = '\0';

    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (http_parse_listen(text, &ss, &len) == 0) {
        FUZZ_CHECK((ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
                   (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)));
        FUZZ_CHECK(strchr(text, ':') != NULL);
    }

    bool has = http_header_has_token(text, token && *token ? token : "upgrade");
    if (has)
        FUZZ_CHECK(strlen(text) >= strlen(token && *token ? token : "upgrade"));

    char *user = NULL, *password = NULL;
    if (http_parse_basic_auth(text, &user, &password)) {
        FUZZ_CHECK(user && password && !strchr(user, ':'));
        free(user);
        free(password);
    }
    free(text);
    return 0;
}
