#!/usr/bin/env python3
"""tests/storage/make_hostile.py - writes the hostile VHD corpus (spec section 5 rows).

Builds tiny VHDs byte by byte (4 KiB blocks keep every file a few KiB), then one mutant
per hostile row of the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification). Output: tests/storage/hostile/*.vhd
(rejected by `vhd check`) and the single-file ones copied into tests/fuzz/corpus/vhd/.
Run from anywhere: python3 tests/storage/make_hostile.py
"""
import os, shutil, struct, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hostile")
FUZZ = os.path.join(HERE, "..", "fuzz", "corpus", "vhd")


def csum(b, off):
    s = sum(b[:off]) + sum(b[off + 4:])
    return (~s) & 0xFFFFFFFF


def footer(size, dtype, data_offset, uid, creator=b"vpc ", cver=0x00050000):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI", f, 8, 2, 0x00010000, data_offset, 0)
    f[28:32] = creator
    struct.pack_into(">IIQQII", f, 32, cver, 0x5769326B, size, size, 0, dtype)
    f[68:84] = uid
    struct.pack_into(">I", f, 64, csum(f, 64))
    return f


def header(max_bat, bs, table_off=1536, parent_uuid=bytes(16), parent_name=""):
    h = bytearray(1024)
    h[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", h, 8, 0xFFFFFFFFFFFFFFFF, table_off, 0x00010000, max_bat, bs)
    h[40:56] = parent_uuid
    name = parent_name.encode("utf-16-be")
    h[64:64 + len(name)] = name
    struct.pack_into(">I", h, 36, csum(h, 36))
    return h


def dynamic(size=64 * 1024, bs=4096, blocks=None, dtype=3, parent_uuid=bytes(16),
            parent_name="", uid=None):
    """blocks: {index: (bitmap_byte, data_byte)}; returns (bytes, uid)."""
    uid = uid or uuid.uuid4().bytes
    n = (size + bs - 1) // bs
    bat_bytes = (n * 4 + 511) // 512 * 512
    meta_end = 1536 + bat_bytes
    bat = [0xFFFFFFFF] * n
    body = bytearray()
    pos = meta_end
    for i, (bmb, db) in sorted((blocks or {}).items()):
        bat[i] = pos // 512
        bm = bytes([bmb]) * 512
        body += bm + bytes([db]) * bs
        pos += 512 + bs
    f = footer(size, dtype, 512, uid)
    img = bytearray(f) + header(n, bs, parent_uuid=parent_uuid, parent_name=parent_name)
    img += b"".join(struct.pack(">I", e) for e in bat) + b"\xff" * (bat_bytes - n * 4)
    img += body + f
    return img, uid


def refresh(img, hdr_off=512):
    """Recompute both footer checksums and the header checksum after a mutation."""
    for off in (0, len(img) - 512):
        struct.pack_into(">I", img, off + 64, csum(img[off:off + 512], 64))
    h = img[hdr_off:hdr_off + 1024]
    struct.pack_into(">I", img, hdr_off + 36, csum(h, 36))
    return img


def set_footer(img, fmt, off, *vals):
    for base in (0, len(img) - 512):
        struct.pack_into(fmt, img, base + off, *vals)


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(FUZZ, exist_ok=True)
    cases = {}
    good, uid = dynamic(blocks={0: (0xFF, 0xAA), 3: (0xF0, 0x55)})
    cases["good-dynamic"] = good
    cases["empty"] = b""
    cases["truncated-100"] = bytes(good[:100])
    cases["truncated-mid"] = bytes(good[:len(good) - 300])
    b = bytearray(good); b[-512 + 70] ^= 1; b[70] ^= 1
    cases["bad-footer-checksum"] = b
    b = bytearray(good); b[512 + 100] ^= 1
    cases["bad-header-checksum"] = b
    b = bytearray(good); set_footer(b, ">I", 60, 5); cases["type-5"] = refresh(b)
    b = bytearray(good); set_footer(b, ">I", 60, 2); cases["type-fixed-with-header"] = refresh(b)
    b = bytearray(good); set_footer(b, ">Q", 16, 1 << 40); cases["data-offset-past-eof"] = refresh(b)
    b = bytearray(good); set_footer(b, ">Q", 48, 1 << 60); cases["absurd-size"] = refresh(b)
    b = bytearray(good); set_footer(b, ">Q", 48, 1000); cases["size-not-sector"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 512 + 32, 3000); cases["block-size-3000"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 512 + 32, 1 << 31); cases["block-size-2g"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 512 + 28, 0xFFFFFFFF); cases["max-bat-huge"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 512 + 28, 2); cases["max-bat-small"] = refresh(b)
    b = bytearray(good); struct.pack_into(">Q", b, 512 + 16, 1537); cases["table-offset-unaligned"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 1536 + 3 * 4, 0x00100000); cases["bat-past-eof"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 1536 + 3 * 4, 0xFFFFFFFE); cases["bat-near-2tib"] = refresh(b)
    b = bytearray(good); struct.pack_into(">I", b, 1536 + 3 * 4, 1); cases["bat-into-header"] = refresh(b)
    e0 = struct.unpack_from(">I", b, 1536)[0]
    b = bytearray(good); struct.pack_into(">I", b, 1536 + 3 * 4, e0 + 1); cases["bat-overlap"] = refresh(b)
    b = bytearray(good); b[-512:] = b[:512]; struct.pack_into(">Q", b, len(b) - 512 + 48, 32768)
    cases["footers-differ"] = refresh(b)
    b = bytearray(good); b[-512:] = bytes(512); cases["trailing-footer-zeroed"] = b
    fixed = bytearray(8192) + footer(8192, 2, 0xFFFFFFFFFFFFFFFF, uuid.uuid4().bytes)
    cases["good-fixed"] = fixed
    b = bytearray(fixed); b[-512 + 80] ^= 0xFF; cases["fixed-bad-checksum"] = b
    b = bytearray(fixed); struct.pack_into(">Q", b, len(b) - 512 + 48, 1 << 20)
    struct.pack_into(">I", b, len(b) - 512 + 64, csum(b[-512:], 64)); cases["fixed-size-past-eof"] = b
    # sector 0 of a fixed disk holding a crafted dynamic footer (row 6): trailing wins
    b = bytearray(fixed); b[0:512] = good[0:512]; cases["good-fixed-guest-conectix"] = b
    # differencing disks: self loop, missing parent, uuid mismatch, two-file loop
    luid = uuid.uuid4().bytes
    img, _ = dynamic(dtype=4, parent_uuid=luid, parent_name="diff-loop-self.vhd", uid=luid)
    cases["diff-loop-self"] = img
    img, _ = dynamic(dtype=4, parent_uuid=uuid.uuid4().bytes, parent_name="no-such-parent.vhd")
    cases["diff-missing-parent"] = img
    img, _ = dynamic(dtype=4, parent_uuid=uuid.uuid4().bytes, parent_name="good-dynamic.vhd")
    cases["diff-uuid-mismatch"] = img
    img, _ = dynamic(dtype=4, parent_uuid=uid, parent_name="../good-dynamic.vhd")
    cases["diff-parent-path-escape"] = img
    ua, ub = uuid.uuid4().bytes, uuid.uuid4().bytes
    cases["diff-loop-a"], _ = dynamic(dtype=4, parent_uuid=ub, parent_name="diff-loop-b.vhd", uid=ua)
    cases["diff-loop-b"], _ = dynamic(dtype=4, parent_uuid=ua, parent_name="diff-loop-a.vhd", uid=ub)
    img, _ = dynamic(dtype=4, parent_uuid=uid, parent_name="good-dynamic.vhd")
    struct.pack_into(">IIIIQ", img, 512 + 576, 0x57327275, 0xFFFFFFFF, 0xFFFFFF00, 0, 1 << 50)
    cases["diff-locator-garbage"] = refresh(img)
    for name, data in cases.items():
        with open(os.path.join(OUT, name + ".vhd"), "wb") as f:
            f.write(data)
        if not name.startswith("diff-loop-") or name == "diff-loop-self":
            shutil.copy(os.path.join(OUT, name + ".vhd"), os.path.join(FUZZ, name + ".vhd"))


if __name__ == "__main__":
    main()
