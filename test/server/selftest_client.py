#!/usr/bin/env python3
# Checks of evssh-server that OpenSSH's ssh(1) cannot make: the private
# `echo@evssh` channel request, keyboard-interactive with several prompts,
# the 6-failure disconnect, env requests, signal delivery and exit-signal.
# Uses paramiko (Debian python3-paramiko) as an independent SSH client.
# usage: selftest_client.py PORT KNOWN_HOSTS CLIENT_KEY PASSWORD KBDINT_PROMPTS
import sys
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

port = int(sys.argv[1])
known_hosts, client_key, password = sys.argv[2], sys.argv[3], sys.argv[4]
n_prompts = int(sys.argv[5])
failures = 0

# paramiko ignores exit-signal; capture its fields (signal name, core flag)
_orig_handle_request = paramiko.Channel._handle_request


def _handle_request(self, m):
    start = m.packet.tell()
    if m.get_text() == "exit-signal":
        m.get_boolean()
        self.evssh_exit_signal = (m.get_text(), m.get_boolean())
        return
    m.packet.seek(start)
    return _orig_handle_request(self, m)


paramiko.Channel._handle_request = _handle_request
paramiko.Transport._channel_handler_table[paramiko.common.MSG_CHANNEL_REQUEST] = _handle_request


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


def transport():
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=10)
    # the host key must be one the server listed in its known_hosts
    hk = t.get_remote_server_key()
    line = "%s %s" % (hk.get_name(), hk.get_base64())
    with open(known_hosts) as f:
        listed = [" ".join(l.split()[1:3]) for l in f if l.strip()]
    check(line in listed, "host key %s is in known_hosts" % hk.get_name())
    return t


def key_session():
    t = transport()
    t.auth_publickey("tester", paramiko.Ed25519Key.from_private_key_file(client_key))
    return t


def raw_request(chan, name, want_reply, payload):
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(name)
    m.add_boolean(want_reply)
    if payload is not None:
        m.add_string(payload)
    if want_reply:
        chan._event_pending()
    chan.transport._send_user_message(m)
    if want_reply:
        chan._wait_for_event()


def recv_exactly(chan, n):
    got = b""
    deadline = time.time() + 10
    while len(got) < n and time.time() < deadline:
        b = chan.recv(n - len(got))
        if not b:
            break
        got += b
    return got


# echo@evssh: payload written back as channel data before the success reply
t = key_session()
ch = t.open_session()
ch.exec_command("sleep 30")
for payload in [b"hello, evssh", bytes(range(256)) * 8, b""]:
    raw_request(ch, "echo@evssh", True, payload)
    got = recv_exactly(ch, len(payload)) if payload else b""
    check(got == payload, "echo@evssh echoes %d bytes" % len(payload))
# unknown requests are refused (paramiko closes the channel on failure)
try:
    raw_request(ch, "nosuch@evssh", True, b"x")
    check(False, "unknown channel request refused")
except paramiko.SSHException:
    check(True, "unknown channel request refused")
t.close()

# env requests reach the child; signal request reaches it; exit-signal comes back
t = key_session()
ch = t.open_session()
ch.set_environment_variable("EVSSH_TEST_VAR", "value with spaces")
ch.exec_command('printf "%s" "$EVSSH_TEST_VAR"; echo to-stderr >&2; exec sleep 30')
out = recv_exactly(ch, len(b"value with spaces"))
check(out == b"value with spaces", "env request applied (%r)" % out)
err = b""
deadline = time.time() + 10
while not err.endswith(b"\n") and time.time() < deadline:
    if ch.recv_stderr_ready():
        err += ch.recv_stderr(100)
    else:
        time.sleep(0.01)
check(err == b"to-stderr\n", "stderr arrives as extended data")
raw_request(ch, "signal", False, b"USR1")
ch.recv_exit_status()
sig = getattr(ch, "evssh_exit_signal", None)
check(sig == ("USR1", False), "signal request delivered; exit-signal %r" % (sig,))
t.close()

t = key_session()
ch = t.open_session()
ch.exec_command("exit 42")
check(ch.recv_exit_status() == 42, "exit-status 42")
t.close()

# pty shell with a window-change: the child sees the new size
t = key_session()
ch = t.open_session()
ch.get_pty(term="xterm", width=80, height=24)
ch.invoke_shell()
time.sleep(0.3)
ch.resize_pty(width=123, height=45)
time.sleep(0.3)
ch.send(b"stty size; echo TERM=$TERM; exit 7\n")
out = b""
deadline = time.time() + 10
while not ch.exit_status_ready() and time.time() < deadline:
    if ch.recv_ready():
        out += ch.recv(4096)
    else:
        time.sleep(0.02)
while ch.recv_ready():
    out += ch.recv(4096)
check(b"45 123" in out, "window-change reaches the pty (stty size)")
check(b"TERM=xterm" in out, "pty-req TERM reaches the shell")
check(ch.recv_exit_status() == 7, "pty shell exit status 7")
t.close()

# keyboard-interactive: N prompts; first echo-off "Password: ", then "Question k: "
if n_prompts > 0:
    seen = []

    def good(title, instructions, prompts):
        seen.extend(prompts)
        return [password] + ["answer %d" % k for k in range(1, len(prompts))]

    t = transport()
    t.auth_interactive("tester", good)
    want = [("Password: ", False)] + [("Question %d: " % k, True) for k in range(1, n_prompts)]
    check(seen == want, "kbdint prompts %r" % seen)
    check(t.is_authenticated(), "kbdint with right answers accepted")
    t.close()

    def bad(title, instructions, prompts):
        return [password] + ["wrong"] * (len(prompts) - 1) if len(prompts) > 1 else ["wrong"]

    t = transport()
    try:
        t.auth_interactive("tester", bad)
        check(False, "kbdint with a wrong answer refused")
    except paramiko.AuthenticationException:
        check(True, "kbdint with a wrong answer refused")
    t.close()

# six failed attempts: the server disconnects
t = transport()
refused = 0
for i in range(6):
    try:
        t.auth_password("tester", "wrong-%d" % i)
    except paramiko.AuthenticationException:
        refused += 1
    if i == 4:
        time.sleep(0.3)
        check(t.is_active(), "still connected after 5 failures")
deadline = time.time() + 5
while t.is_active() and time.time() < deadline:
    time.sleep(0.05)
check(refused == 6 and not t.is_active(), "disconnected after 6 failures")
t.close()

# right password still works
t = transport()
t.auth_password("tester", password)
check(t.is_authenticated(), "password accepted")
t.close()

sys.exit(1 if failures else 0)
