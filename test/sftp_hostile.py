#!/usr/bin/python3
# sftp_hostile.py: a scripted SFTP server for test_sftp_faults, run by sshd
# as a subsystem command ("Subsystem hostile-MODE /usr/bin/python3 this MODE")
# so the SSH layer is real and only SFTP misbehaves. It speaks just enough
# of version 3 (INIT/VERSION, OPEN, FSTAT, READ, CLOSE, STAT) to serve one
# read-only file of SIZE bytes whose byte at offset i is (i * 7 + 3) & 0xff,
# then breaks the protocol the way MODE says:
#   oversize   a 16 MiB packet length in reply to the first request
#   malformed  a STATUS without its code in reply to the first request
#   unknown-id a STATUS for an id nobody asked about
#   type0      a packet of type 0 (no reply type) for the pending request
#   too-much   DATA longer than the READ asked for
#   banner     text on stdout before the VERSION (a chatty login script)
#   version2   VERSION 2
#   silent     reads everything, answers nothing (not even VERSION)
#   reorder    a correct server that answers READs in reverse order, in
#              batches, and returns every third READ short (the client
#              must reassemble by offset and ask again for the rest)
import os
import select
import struct
import sys

SIZE = 3 * 1024 * 1024 + 12345
mode = sys.argv[1] if len(sys.argv) > 1 else "reorder"
inp = sys.stdin.buffer
out = sys.stdout.buffer


def content(off, n):
    return bytes(((i * 7 + 3) & 0xFF) for i in range(off, off + n))


def read_exact(n):
    b = b""
    while len(b) < n:
        chunk = inp.read(n - len(b))
        if not chunk:
            sys.exit(0)
        b += chunk
    return b


def packet():
    (length,) = struct.unpack(">I", read_exact(4))
    body = read_exact(length)
    return body[0], body[1:]


def send(ptype, payload):
    out.write(struct.pack(">IB", len(payload) + 1, ptype) + payload)
    out.flush()


def string(b):
    return struct.pack(">I", len(b)) + b


def status(rid, code, msg=b""):
    send(101, struct.pack(">II", rid, code) + string(msg) + string(b""))


def u32(b, off=0):
    return struct.unpack(">I", b[off:off + 4])[0]


def main():
    ptype, _ = packet()
    if ptype != 1:
        sys.exit(1)
    if mode == "silent":
        while inp.read(65536):
            pass
        return
    if mode == "banner":
        out.write(b"Welcome to the machine!\n")
        out.flush()
    send(2, struct.pack(">I", 2 if mode == "version2" else 3))
    served = 0
    held = []  # reorder: replies waiting to go out, newest first
    while True:
        if mode == "reorder" and held:
            ready, _, _ = select.select([sys.stdin], [], [], 0.02)
            if not ready or len(held) >= 8:
                for p in reversed(held):
                    send(*p)
                held = []
                if not ready:
                    continue
        ptype, body = packet()
        rid = u32(body)
        served += 1
        if mode == "oversize":
            out.write(struct.pack(">I", 16 * 1024 * 1024) + b"\x65" + b"\0" * 100)
            out.flush()
            continue
        if mode == "malformed":
            send(101, struct.pack(">I", rid))
            continue
        if mode == "unknown-id":
            status(rid + 1000, 0)
            continue
        if mode == "type0":
            send(0, struct.pack(">I", rid) + b"\0" * 8)
            continue
        if ptype == 3:  # OPEN
            send(102, struct.pack(">I", rid) + string(b"h1"))
        elif ptype in (8, 17, 7):  # FSTAT, STAT, LSTAT
            send(105, struct.pack(">IIQI", rid, 0x1 | 0x4, SIZE, 0o100644))
        elif ptype == 5:  # READ
            hlen = u32(body, 4)
            off, n = struct.unpack(">QI", body[8 + hlen:8 + hlen + 12])
            if off >= SIZE:
                reply = (101, struct.pack(">II", rid, 1) + string(b"End of file") + string(b""))
            else:
                n = min(n, SIZE - off)
                if mode == "reorder" and served % 3 == 0:
                    n = max(1, n // 2)
                data = content(off, n)
                if mode == "too-much":
                    data += b"x" * 10
                reply = (103, struct.pack(">I", rid) + string(data))
            if mode == "reorder":
                held.append(reply)
            else:
                send(*reply)
        elif ptype == 4:  # CLOSE
            status(rid, 0)
        else:
            status(rid, 8, b"Operation unsupported")


main()
