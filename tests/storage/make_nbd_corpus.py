#!/usr/bin/env python3
"""tests/storage/make_nbd_corpus.py - client byte streams for the NBD fuzz target.

Each file is everything a client sends to the server (spec section 3 for the wire format,
section 5 "NBD-side hostile clients" for the mutants). Output: tests/fuzz/corpus/nbd/.
"""
import os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "nbd")
IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def go(name=b"", infos=(3,)):
    return opt(7, struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) +
               b"".join(struct.pack(">H", i) for i in infos))


def meta(o, queries, name=b""):
    q = b"".join(struct.pack(">I", len(x)) + x for x in queries)
    return opt(o, struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries)) + q)


def req(cmd, off=0, length=0, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, cmd, cookie, off, length) + payload


FLAGS = struct.pack(">I", 3)
QEMU_NEG = FLAGS + opt(8) + meta(10, [b"base:allocation"]) + go()


def main():
    os.makedirs(OUT, exist_ok=True)
    c = {}
    c["qemu-session"] = (QEMU_NEG + req(0, 0, 4096) + req(1, 4096, 512, 1, 2, b"\xab" * 512) +
                         req(3) + req(7, 0, 1 << 20, 8) + req(6, 0, 8192, 1) + req(4, 0, 4096) +
                         req(0, 512 * 1024, 8192) + req(2))
    c["simple-replies"] = FLAGS + go() + req(0, 0, 512) + req(1, 0, 512, 0, 2, b"x" * 512) + req(2)
    c["export-name-legacy"] = FLAGS + opt(1, b"") + req(0, 0, 1024) + req(2)
    c["list-info-abort"] = FLAGS + opt(3) + opt(6, struct.pack(">I", 0) + struct.pack(">H", 0)) + opt(2)
    c["list-meta"] = FLAGS + opt(8) + meta(9, []) + meta(9, [b"base:"]) + opt(2)
    c["unknown-options"] = FLAGS + opt(11) + opt(99, b"junk") + opt(5) + go()  + req(2)
    c["option-len-4g"] = FLAGS + struct.pack(">QII", IHAVEOPT, 7, 0xFFFFFFFF)
    c["option-len-over-cap"] = FLAGS + struct.pack(">QII", IHAVEOPT, 7, 65537) + b"\0" * 64
    c["bad-client-flags"] = struct.pack(">I", 0xFF)
    c["bad-opt-magic"] = FLAGS + struct.pack(">QII", 0x1234, 7, 0)
    c["go-name-too-long"] = FLAGS + opt(7, struct.pack(">I", 1000) + b"a" * 10) + opt(2)
    c["go-count-too-big"] = FLAGS + opt(7, struct.pack(">I", 0) + struct.pack(">H", 500)) + opt(2)
    c["go-unknown-export"] = FLAGS + go(b"nope") + opt(2)
    c["meta-before-structured"] = FLAGS + meta(10, [b"base:allocation"]) + go() + req(7, 0, 4096) + req(2)
    c["meta-query-no-colon"] = FLAGS + opt(8) + meta(10, [b"nocolon"]) + go() + req(7, 0, 4096) + req(2)
    c["meta-query-len-lies"] = FLAGS + opt(8) + opt(10, struct.pack(">II", 0, 2) + struct.pack(">I", 999) + b"x") + opt(2)
    c["block-status-no-context"] = FLAGS + opt(8) + go() + req(7, 0, 4096) + req(2)
    c["bad-request-magic"] = QEMU_NEG + struct.pack(">IHHQQI", 0xdeadbeef, 0, 0, 1, 0, 512)
    c["write-over-32m"] = QEMU_NEG + req(1, 0, 64 << 20)
    c["write-past-end"] = QEMU_NEG + req(1, (1 << 20) - 512, 1024, 0, 3, b"y" * 1024) + req(2)
    c["offset-overflow"] = QEMU_NEG + req(0, 0xFFFFFFFFFFFFFE00, 1024) + req(2)
    c["length-zero"] = QEMU_NEG + req(0, 0, 0) + req(1, 0, 0) + req(2)
    c["unaligned"] = QEMU_NEG + req(0, 1, 511) + req(1, 3, 5, 0, 2, b"z" * 5) + req(2)
    c["unknown-cmd-flags"] = QEMU_NEG + req(0, 0, 512, 0x80) + req(42, 0, 512) + req(5, 0, 512) + req(2)
    c["write-zeroes-fast"] = QEMU_NEG + req(6, 0, 4096, 0x10) + req(6, 0, 1 << 20, 2) + req(2)
    c["read-df"] = QEMU_NEG + req(0, 0, 1 << 20, 4) + req(2)
    c["half-closed-payload"] = QEMU_NEG + req(1, 0, 4096, 0, 1, b"p" * 100)
    c["disc-pending"] = QEMU_NEG + req(0, 0, 4096, 0, 1) + req(2) + req(0, 0, 4096)
    c["ro-export-write"] = FLAGS + opt(8) + go(b"disk") + req(1, 0, 512, 0, 1, b"w" * 512) + req(4, 0, 512) + req(2)
    for name, data in c.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
