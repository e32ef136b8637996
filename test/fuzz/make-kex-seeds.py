#!/usr/bin/env python3
"""Writes test/fuzz/seeds/fuzz_kex/: for every key exchange method one server
reply sequence that fuzz_kex's exchange completes (H and K derived), and a
few that each method must refuse at a different check.

Input format (see fuzz_kex.c): byte 0 picks the method (its index in
evssh_kex_supported_list()), then messages, each a message number, a
16-bit big-endian length and the body. The values are chosen so the
exchange gets through every check with fuzz_kex's fixed ephemeral keys:
X25519 peer value 9 (the base point), ECDH peer point a fresh public key of
the curve (made with openssl), DH f = 4 (a square, so in the prime-order
subgroup of every safe-prime group), GEX group the RFC 3526 2048-bit MODP
group, computed here from its definition; KEM ciphertexts are arbitrary
bytes (decapsulation takes any ciphertext). Host key and signature are
well-formed ssh-ed25519 blobs (kex.c only carries them).

Run from anywhere: python3 test/fuzz/make-kex-seeds.py (needs openssl)."""
import os
import re
import struct
import subprocess

def methods(top):
    """evssh_kex_supported_list() as kex.c defines it (the seeds' byte 0 is an index into it)."""
    src = open(os.path.join(top, "src", "kex.c")).read()
    start = src.index("#define KEX_LIST")
    body = src[start:src.index("\n\n", start)]
    return "".join(re.findall(r'"([^"]*)"', body)).split(",")


CURVES = {"ecdh-sha2-nistp256": ("prime256v1", 65), "ecdh-sha2-nistp384": ("secp384r1", 97),
          "ecdh-sha2-nistp521": ("secp521r1", 133)}


def string(b):
    return struct.pack(">I", len(b)) + b


def mpint(v):
    if v == 0:
        return string(b"")
    b = v.to_bytes((v.bit_length() + 7) // 8, "big")
    if b[0] & 0x80:
        b = b"\0" + b
    return string(b)


def msg(num, body):
    assert len(body) < 65536
    return bytes([num]) + struct.pack(">H", len(body)) + body


def pi_bits(bits):
    """floor(pi * 2^bits), by Machin's formula in integers (with guard bits)."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inv(x):
        total, term, n, sign = 0, one // x, 1, 1
        x2 = x * x
        while term:
            total += sign * (term // n)
            term //= x2
            n += 2
            sign = -sign
        return total

    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> guard


def modp_2048():
    # RFC 3526 section 3: p = 2^2048 - 2^1984 - 1 + 2^64 * ( [2^1918 pi] + 124476 )
    p = (1 << 2048) - (1 << 1984) - 1 + (1 << 64) * (pi_bits(1918) + 124476)
    assert format(p, "x").startswith("ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd1"), "pi went wrong"
    return p


def ec_point(curve, length):
    key = subprocess.run(["openssl", "ecparam", "-genkey", "-name", curve, "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "ec", "-pubout", "-outform", "DER"], input=key, check=True,
                         capture_output=True).stdout
    point = der[-length:]
    assert point[0] == 4
    return point


HOSTKEY = string(string(b"ssh-ed25519") + string(bytes(range(32))))
SIG = string(string(b"ssh-ed25519") + string(bytes(64)))


def reply(value_field):
    return HOSTKEY + value_field + SIG


def main():
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(top, "test", "fuzz", "seeds", "fuzz_kex")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if not f.startswith("regress-"):
            os.unlink(os.path.join(out, f))
    seeds = {}
    METHODS = methods(top)
    x25519_9 = bytes([9]) + bytes(31)
    for i, m in enumerate(METHODS):
        name = m.replace("@", "_at_")
        if m.startswith("mlkem"):
            ok = reply(string(bytes((j * 7) & 0xff for j in range(1088)) + x25519_9))
            seeds[name + "_short"] = bytes([i]) + msg(31, reply(string(bytes(1087) + x25519_9)))
        elif m.startswith("sntrup"):
            ok = reply(string(bytes((j * 5) & 0xff for j in range(1039)) + x25519_9))
        elif m.startswith("curve25519"):
            ok = reply(string(x25519_9))
            seeds[name + "_zero_point"] = bytes([i]) + msg(31, reply(string(bytes(32))))
        elif m in CURVES:
            curve, length = CURVES[m]
            point = ec_point(curve, length)
            ok = reply(string(point))
            bad = bytearray(point)
            bad[-1] ^= 1   # off the curve
            seeds[name + "_off_curve"] = bytes([i]) + msg(31, reply(string(bytes(bad))))
        elif m.endswith("group-exchange-sha256"):
            group = msg(31, mpint(modp_2048()) + mpint(2))
            seeds[name] = bytes([i]) + group + msg(33, reply(mpint(4)))
            seeds[name + "_small_group"] = bytes([i]) + msg(31, mpint((1 << 1023) + 1) + mpint(2))
            seeds[name + "_f_is_1"] = bytes([i]) + group + msg(33, reply(mpint(1)))
            continue
        else:
            ok = reply(mpint(4))
            if m.endswith("group14-sha256"):
                seeds[name + "_f_is_1"] = bytes([i]) + msg(31, reply(mpint(1)))
        seeds[name] = bytes([i]) + msg(31, ok)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("fuzz_kex seeds: %d" % len(seeds))


if __name__ == "__main__":
    main()
