#!/usr/bin/env python3
"""zipcrypto.py OUT GOOD BAD: writes a zip of two deflated entries, a.txt
and b.txt, under zip's traditional encryption with the passphrase GOOD,
made so that the passphrase BAD passes the one-byte check of a.txt's
encryption header (as 1 wrong passphrase in 256 does), so a reader that
accepts BAD for it gets data that do not decode. Deterministic."""
import random
import struct
import sys
import zlib

M = 0xFFFFFFFF


def crc_byte(crc, b):
    # The table step of CRC-32 with no inversion before or after.
    return zlib.crc32(bytes([b]), crc ^ M) ^ M


class Keys:
    def __init__(self, password):
        self.k = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self.update(b)

    def update(self, b):
        k0, k1, k2 = self.k
        k0 = crc_byte(k0, b)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & M
        k2 = crc_byte(k2, k1 >> 24)
        self.k = [k0, k1, k2]

    def stream(self):
        t = (self.k[2] | 2) & 0xFFFF
        return ((t * (t ^ 1)) >> 8) & 0xFF

    def encrypt(self, data):
        out = bytearray()
        for b in data:
            out.append(b ^ self.stream())
            self.update(b)
        return bytes(out)

    def decrypt(self, data):
        out = bytearray()
        for c in data:
            b = c ^ self.stream()
            out.append(b)
            self.update(b)
        return bytes(out)


def header(rng, good, bad, check, fooled):
    """A 12-byte encryption header for good; when fooled, one that bad
    passes too."""
    while True:
        plain = bytes(rng.randrange(256) for _ in range(11)) + bytes([check])
        keys = Keys(good)
        enc = keys.encrypt(plain)
        if not fooled or Keys(bad).decrypt(enc)[11] == check:
            return enc, keys


def main():
    out, good, bad = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    rng = random.Random(20261204)
    entries = [(b"a.txt", b"the first entry, which the wrong passphrase seems to open\n" * 40, True),
               (b"b.txt", b"the second entry\n" * 10, False)]
    body, central = bytearray(), bytearray()
    dostime, dosdate = 0x6000, 0x5984
    for name, data, fooled in entries:
        crc = zlib.crc32(data)
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = comp.compress(data) + comp.flush()
        enc_head, keys = header(rng, good, bad, crc >> 24, fooled)
        payload = enc_head + keys.encrypt(packed)
        offset = len(body)
        fields = (20, 1, 8, dostime, dosdate, crc, len(payload), len(data), len(name), 0)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 8, dostime, dosdate,
                               crc, len(payload), len(data), len(name), 0, 0, 0, 0, 0o100644 << 16,
                               offset) + name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                       len(body), 0)
    with open(out, "wb") as f:
        f.write(body + central + eocd)


main()
