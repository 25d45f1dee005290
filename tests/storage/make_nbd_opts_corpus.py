#!/usr/bin/env python3
"""tests/storage/make_nbd_opts_corpus.py - client byte streams for the nbd_opts fuzz target.

Each file is one policy byte (bit 0: TLS required, bit 1: the transport can start TLS)
followed by everything a client sends (NBD proto.md, "TLS support"; the export names are
xapi-nbd's "/<uuid>?session_id=<ref>" form). Output: tests/fuzz/corpus/nbd_opts/.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_nbd_corpus import FLAGS, go, meta, opt, req  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "nbd_opts")
GOOD = b"/disk?session_id=ok"
STARTTLS = opt(5)
TLS_REQUIRED, TLS_CAPABLE = 1, 2


def main():
    os.makedirs(OUT, exist_ok=True)
    both = bytes([TLS_REQUIRED | TLS_CAPABLE])
    c = {
        "tls-session": both + FLAGS + STARTTLS + opt(8) + meta(10, [b"base:allocation"], GOOD) +
        go(GOOD) + req(0, 0, 4096) + req(7, 0, 1 << 20, 8) + req(2),
        "tls-required-refusals": both + FLAGS + go(GOOD) + opt(6, struct.pack(">IH", 0, 0)) +
        opt(3) + opt(8) + opt(1, GOOD),
        "starttls-twice-and-body": both + FLAGS + opt(5, b"x") + STARTTLS + STARTTLS + opt(2),
        "starttls-unsupported": bytes([0]) + FLAGS + STARTTLS + go(GOOD) + req(2),
        "names": bytes([TLS_CAPABLE]) + FLAGS + go(b"/disk?session_id=bad") + go(b"/other?session_id=ok") +
        go(b"disk") + go(b"/disk%zz?session_id=ok") + go(b"/disk?session_id=o%6b") +
        go(b"/di\0sk") + meta(9, [], GOOD) + opt(3) + opt(1, GOOD) + req(0, 0, 65536) +
        req(0, 0, 65537) + req(2),
        "forget-after-starttls": bytes([TLS_CAPABLE]) + FLAGS + opt(8) + STARTTLS +
        meta(10, [b"base:allocation"], GOOD) + go(GOOD) + req(7, 0, 4096) + req(2),
        "export-name-before-tls": both + FLAGS + opt(1, GOOD),
    }
    for name, data in c.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
