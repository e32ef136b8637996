#!/usr/bin/python3
"""A scripted hostile SSH server on 127.0.0.1 for test/test_hostile.c.

paramiko completes a real version exchange, key exchange and authentication
("none" is accepted for any user); the user name then picks the scenario,
and the server misbehaves from there: hand-built messages sent with
Transport._send_message and its own entries in the transport's handler
table for the connection-protocol messages (80, 90..100), so that no
paramiko Channel object stands between the scenario and the wire.

    /usr/bin/python3 server.py WORKDIR

writes WORKDIR/known_hosts (its fresh ECDSA host key under
[127.0.0.1]:PORT), prints "READY <ssh port> <trickle port>" on stdout, and
serves until killed. The trickle port never completes a version line: it
sends "SSH-2.0-" one byte per TRICKLE_SECONDS. What a scenario observes is
appended to WORKDIR/<user>.report, one line per fact, and "END" once the
client is gone. Exit status 77 (skip) when paramiko cannot be imported.

Scenarios (user names):
  idle                well behaved; exec sends "tick\\n" every 0.25 s
  unconfirmed-KIND    confirms the first channel as server channel 0, leaves
                      the second unconfirmed and sends it KIND (request,
                      data, close, eof, adjust); reports any message that
                      then comes for remote channel 0 as "BAD"
  never-reads         confirms with a 2 GiB window, answers exec, then stops
                      reading the socket for good
  ignore-window       on exec pushes 16 MiB in 32 KiB packets, ignoring the
                      client's window
  oversize-packet     on exec sends one 40000-byte CHANNEL_DATA
  exit-flood          on exec sends FLOOD exit-status / exit-signal requests
                      with 32 KB of trailing bytes each, then EOF and CLOSE
  open-flood          on the global request "flood@hostile" opens OPENS
                      channels, then reports the answers in the global
                      request "report@hostile" (and in the report file)
  rekey-stall         on a channel open sends a KEXINIT and never another
                      byte, nor reads one
  push-1g             on exec pushes 1 GiB through a proper paramiko channel
                      (window respected) until the client closes it
  agent-kinds         on exec opens one agent channel of each name a server
                      may use (auth-agent@openssh.com, auth-agent,
                      agent-connect), asks each for the agent's identities
                      and reports "KIND identities=N" (or "KIND refused
                      reason=R"), then ends the exec with status 0
  agent-unasked       the same, for a client that never asked for agent
                      forwarding (each open must be refused)
"""
import os
import queue
import socket
import struct
import sys
import threading
import time
import traceback

try:
    import paramiko
    from paramiko.common import (
        cMSG_CHANNEL_CLOSE, cMSG_CHANNEL_DATA, cMSG_CHANNEL_EOF, cMSG_CHANNEL_OPEN,
        cMSG_CHANNEL_OPEN_SUCCESS, cMSG_CHANNEL_REQUEST, cMSG_CHANNEL_SUCCESS,
        cMSG_CHANNEL_WINDOW_ADJUST, cMSG_GLOBAL_REQUEST, cMSG_KEXINIT)
    from paramiko.message import Message
except ImportError as e:  # pragma: no cover
    print("SKIP: paramiko not importable by %s: %s" % (sys.executable, e), flush=True)
    sys.exit(77)

TRICKLE_SECONDS = 1.0
FLOOD = 3000          # exit reports before EOF
OPENS = 3000          # channel opens in the open flood
CHUNK = 32768

WORKDIR = sys.argv[1] if len(sys.argv) > 1 else "."
LOG = open(os.path.join(WORKDIR, "server.log"), "a", buffering=1)
REPORT_LOCK = threading.Lock()


def log(msg):
    LOG.write("%.3f %s\n" % (time.time(), msg))


def report(user, line):
    with REPORT_LOCK:
        with open(os.path.join(WORKDIR, user + ".report"), "a") as f:
            f.write(line + "\n")


def msg(code, *parts):
    """A message: code byte, then ("u", int) / ("s", bytes|str) / ("b", bool) / ("raw", bytes)."""
    m = Message()
    m.add_byte(code)
    for kind, value in parts:
        if kind == "u":
            m.add_int(value)
        elif kind == "s":
            m.add_string(value)
        elif kind == "b":
            m.add_boolean(value)
        else:
            m.add_bytes(value)
    return m


class Raw:
    """Connection-protocol messages handled here instead of by paramiko."""

    def __init__(self, t, user):
        self.t = t
        self.user = user
        self.opens = []          # client's sender ids, in order
        self.watch = False       # unconfirmed-*: report what comes for channel 0
        self.bad = []
        self.answers = {"confirmed": 0, "failed": 0, "reason4": 0}
        self.probes = {}         # agent-*: our channel id -> queue of events
        table = dict(paramiko.Transport._handler_table)
        for n in (80, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100):
            table[n] = self.handler(n)
        t._handler_table = table

    def handler(self, n):
        def run(t, m):
            try:
                self.on_message(n, m)
            except Exception:
                log("handler %d: %s" % (n, traceback.format_exc()))
        return run

    def send(self, m):
        self.t._send_message(m)

    def confirm(self, client_id, server_id, window, maxp=CHUNK):
        self.send(msg(cMSG_CHANNEL_OPEN_SUCCESS, ("u", client_id), ("u", server_id), ("u", window), ("u", maxp)))

    def on_message(self, n, m):
        scenario = self.user
        if n == 80:
            name = m.get_text()
            m.get_boolean()
            if scenario == "open-flood" and name == "flood@hostile":
                threading.Thread(target=self.open_flood, daemon=True).start()
            return
        if n == 90:
            kind = m.get_text()
            sender = m.get_int()
            window = m.get_int()
            m.get_int()
            self.opens.append(sender)
            self.on_open(kind, sender, window)
            return
        recipient = m.get_int()
        if recipient in self.probes:
            self.on_probe(n, recipient, m)
            return
        if self.watch and recipient == 0:
            self.bad.append("BAD message %d for remote channel 0" % n)
            report(self.user, self.bad[-1])
        if n in (91, 92) and scenario == "open-flood":
            if n == 91:
                self.answers["confirmed"] += 1
            else:
                self.answers["failed"] += 1
                if m.get_int() == 4:
                    self.answers["reason4"] += 1
            if self.answers["confirmed"] + self.answers["failed"] == OPENS:
                text = "confirmed=%(confirmed)d failed=%(failed)d reason4=%(reason4)d" % self.answers
                report(self.user, text)
                self.send(msg(cMSG_GLOBAL_REQUEST, ("s", "report@hostile"), ("b", False), ("s", text)))
            return
        if n == 98:
            kind = m.get_text()
            want = m.get_boolean()
            if want:
                self.send(msg(cMSG_CHANNEL_SUCCESS, ("u", self.opens[-1] if self.opens else 0)))
            if kind == "exec":
                self.on_exec(self.opens[-1] if self.opens else 0)

    # -- scenarios ---------------------------------------------------------

    def on_open(self, kind, sender, window):
        s = self.user
        if s.startswith("unconfirmed-"):
            if len(self.opens) == 1:
                self.confirm(sender, 0, 2 * 1024 * 1024)   # a live channel: server channel 0
                report(self.user, "confirmed client channel %d as server channel 0" % sender)
                return
            what = s.split("-", 1)[1]
            hostile = {
                "request": msg(cMSG_CHANNEL_REQUEST, ("u", sender), ("s", "exit-status"), ("b", True), ("u", 3)),
                "data": msg(cMSG_CHANNEL_DATA, ("u", sender), ("s", b"x" * 100)),
                "close": msg(cMSG_CHANNEL_CLOSE, ("u", sender)),
                "eof": msg(cMSG_CHANNEL_EOF, ("u", sender)),
                "adjust": msg(cMSG_CHANNEL_WINDOW_ADJUST, ("u", sender), ("u", 1000)),
            }[what]
            self.watch = True
            self.send(hostile)
            report(self.user, "sent %s for unconfirmed client channel %d" % (what, sender))
            return
        if s == "rekey-stall":
            cookie = os.urandom(16)
            names = ["curve25519-sha256@libssh.org", "ecdsa-sha2-nistp256", "aes128-ctr", "aes128-ctr",
                     "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]
            parts = [("raw", cookie)] + [("s", x) for x in names] + [("b", False), ("u", 0)]
            self.send(msg(cMSG_KEXINIT, *parts))
            report(self.user, "sent KEXINIT, going silent")
            time.sleep(600)   # the transport thread: nothing read or sent again
            return
        window_to_client = 0x7fffffff if s == "never-reads" else 2 * 1024 * 1024
        self.confirm(sender, 10 + len(self.opens), window_to_client)

    def on_exec(self, client_id):
        s = self.user
        if s == "never-reads":
            report(self.user, "exec started, no longer reading")
            time.sleep(600)   # blocks the only reader of the socket
        elif s == "ignore-window":
            threading.Thread(target=self.push_blind, args=(client_id,), daemon=True).start()
        elif s == "oversize-packet":
            self.send(msg(cMSG_CHANNEL_DATA, ("u", client_id), ("s", b"o" * 40000)))
            report(self.user, "sent 40000 bytes in one packet")
        elif s == "exit-flood":
            threading.Thread(target=self.exit_flood, args=(client_id,), daemon=True).start()
        elif s in ("agent-kinds", "agent-unasked"):
            threading.Thread(target=self.agent_probe, args=(client_id,), daemon=True).start()

    def on_probe(self, n, ours, m):
        q = self.probes[ours]
        if n == 91:
            q.put(("open", m.get_int()))
        elif n == 92:
            q.put(("refused", m.get_int()))
        elif n == 94:
            q.put(("data", m.get_binary()))
        elif n in (96, 97):
            q.put(("closed", n))

    def agent_probe(self, client_id):
        """One channel of each agent type: REQUEST_IDENTITIES (11) through
        it, IDENTITIES_ANSWER (12) counted."""
        try:
            for i, kind in enumerate(("auth-agent@openssh.com", "auth-agent", "agent-connect")):
                ours = 7000 + i
                q = queue.Queue()
                self.probes[ours] = q
                self.send(msg(cMSG_CHANNEL_OPEN, ("s", kind), ("u", ours), ("u", 1 << 20), ("u", CHUNK)))
                what, value = q.get(timeout=30)
                if what == "refused":
                    report(self.user, "%s refused reason=%d" % (kind, value))
                    continue
                theirs = value
                self.send(msg(cMSG_CHANNEL_DATA, ("u", theirs), ("s", struct.pack(">IB", 1, 11))))
                got = b""
                while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
                    what, value = q.get(timeout=30)
                    if what != "data":
                        break
                    got += value
                if len(got) >= 9 and got[4] == 12:
                    report(self.user, "%s identities=%d" % (kind, struct.unpack(">I", got[5:9])[0]))
                else:
                    report(self.user, "%s bad answer %r" % (kind, got[:16]))
                self.send(msg(cMSG_CHANNEL_CLOSE, ("u", theirs)))
            report(self.user, "probe done")
            self.send(msg(cMSG_CHANNEL_REQUEST, ("u", client_id), ("s", "exit-status"), ("b", False), ("u", 0)))
            self.send(msg(cMSG_CHANNEL_EOF, ("u", client_id)))
            self.send(msg(cMSG_CHANNEL_CLOSE, ("u", client_id)))
        except Exception:
            report(self.user, "probe failed: %s" % traceback.format_exc().replace("\n", " | "))

    def push_blind(self, client_id):
        block = b"w" * CHUNK
        sent = 0
        try:
            for _ in range(16 * 1024 * 1024 // CHUNK):
                self.send(msg(cMSG_CHANNEL_DATA, ("u", client_id), ("s", block)))
                sent += CHUNK
        except Exception as e:
            log("push_blind stopped after %d: %s" % (sent, e))
        report(self.user, "pushed %d bytes ignoring the window" % sent)

    def exit_flood(self, client_id):
        trailing = b"\xee" * 32768
        try:
            for i in range(FLOOD):
                if i % 2 == 0:
                    self.send(msg(cMSG_CHANNEL_REQUEST, ("u", client_id), ("s", "exit-status"), ("b", False),
                                  ("u", i), ("raw", trailing)))
                else:
                    name = "SIG%d" % i
                    self.send(msg(cMSG_CHANNEL_REQUEST, ("u", client_id), ("s", "exit-signal"), ("b", False),
                                  ("s", name), ("b", False), ("s", "flood"), ("s", ""), ("raw", trailing)))
            self.send(msg(cMSG_CHANNEL_DATA, ("u", client_id), ("s", "done\n")))
            self.send(msg(cMSG_CHANNEL_EOF, ("u", client_id)))
            self.send(msg(cMSG_CHANNEL_CLOSE, ("u", client_id)))
            report(self.user, "sent %d exit reports, last status %d, last signal SIG%d" %
                   (FLOOD, FLOOD - 2, FLOOD - 1))
        except Exception as e:
            log("exit_flood: %s" % e)

    def open_flood(self):
        try:
            for i in range(OPENS):
                self.send(msg(cMSG_CHANNEL_OPEN, ("s", "flood@hostile"), ("u", 5000 + i), ("u", CHUNK),
                              ("u", CHUNK)))
            report(self.user, "sent %d channel opens" % OPENS)
        except Exception as e:
            log("open_flood: %s" % e)


class Iface(paramiko.ServerInterface):
    def __init__(self, t):
        self.t = t
        self.user = None

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_none(self, username):
        self.user = username
        log("auth as %s" % username)
        if username != "idle" and username != "push-1g":
            Raw(self.t, username)
        return paramiko.AUTH_SUCCESSFUL

    def check_auth_password(self, username, password):
        return self.check_auth_none(username)

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        target = {"idle": tick, "push-1g": push}.get(self.user)
        if target:
            threading.Thread(target=target, args=(channel, self.user), daemon=True).start()
        return True


def tick(chan, user):
    try:
        while not chan.closed:
            chan.sendall(b"tick\n")
            time.sleep(0.25)
    except Exception:
        pass


def push(chan, user):
    block = b"p" * CHUNK
    sent = 0
    try:
        while sent < 1024 * 1024 * 1024 and not chan.closed:
            chan.sendall(block)
            sent += CHUNK
    except Exception as e:
        log("push stopped: %s" % e)
    report(user, "pushed %d bytes" % sent)


def serve_ssh(conn, key):
    t = paramiko.Transport(conn)
    t.add_server_key(key)
    iface = Iface(t)
    try:
        t.start_server(server=iface)
        while t.is_active():
            time.sleep(0.1)
    except Exception as e:
        log("connection: %s" % e)
    if iface.user:
        report(iface.user, "END")
    t.close()


def serve_trickle(conn):
    banner = b"SSH-2.0-" + b"t" * 240   # never a line end
    try:
        for c in banner:
            conn.sendall(bytes([c]))
            time.sleep(TRICKLE_SECONDS)
    except OSError:
        pass
    conn.close()


def accept_loop(sock, serve, *args):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,) + args, daemon=True).start()


def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def main():
    key = paramiko.ECDSAKey.generate(bits=256)
    ssh, trickle = listener(), listener()
    port = ssh.getsockname()[1]
    with open(os.path.join(WORKDIR, "known_hosts"), "w") as f:
        f.write("[127.0.0.1]:%d %s %s\n" % (port, key.get_name(), key.get_base64()))
    threading.Thread(target=accept_loop, args=(trickle, serve_trickle), daemon=True).start()
    print("READY %d %d" % (port, trickle.getsockname()[1]), flush=True)
    accept_loop(ssh, serve_ssh, key)


if __name__ == "__main__":
    main()
