/** @file evssh.h
 * @brief evssh: an event-driven SSH-2 client library in the shape of Ruby's
 * Net::SSH. This is the one public header, and its comments are the
 * contract.
 *
 * The contract that used to live outside the repository (the project's
 * shared API.md) is now these comments together with the guides in docs/:
 * names, argument order and meanings below are binding; later releases add
 * functions, options and fields, and never rename or drop these. Where the
 * contract is silent, evssh does what Net::SSH does
 * (`Net::SSH::Connection::Session` and `Net::SSH::Connection::Channel`),
 * said in C.
 *
 * Conventions that hold for every function below:
 *
 * - **Names**: `evssh_` + object + verb (evssh_channel_on_data()).
 * - **Errors**: a function that can fail returns `int`: `EVSSH_OK` (0) or a
 *   negative `EVSSH_E*` code. evssh_strerror() names a code;
 *   evssh_session_error() gives the session's last detailed message, which
 *   says what failed and where.
 * - **Callbacks** get the object first and the caller's `void *ud` last,
 *   and run only from inside an evssh call that drives the session (the
 *   loop calls, the blocking calls, evssh_session_handle_events(),
 *   evssh_multi_process()) — never from another thread, never from a
 *   setter.
 * - **Handles** are opaque. A session owns its channels. There is no
 *   global mutable state: two sessions may live in two threads; one session
 *   is used by one thread at a time.
 * - **Blocking**: nothing blocks except evssh_start(),
 *   evssh_session_connect(), evssh_session_loop(), evssh_channel_wait(),
 *   evssh_session_exec_wait(), evssh_session_close(), evssh_multi_loop(),
 *   the SFTP calls marked **Blocking** (evssh_sftp_start(), the _wait
 *   transfers), and evssh_session_process() / evssh_multi_process() for up
 *   to their `wait_ms`. Every other call returns at once.
 * - **Callbacks may call anything**, as in Net::SSH: open and close
 *   channels, send data, and the blocking calls too —
 *   evssh_channel_wait(), evssh_session_loop() / evssh_session_process(),
 *   evssh_session_exec_wait() from inside a callback run a nested loop.
 *   Only freeing the object whose callback is running is refused
 *   (`EVSSH_EBUSY`, or nothing happens for a `void` call); it never corrupts
 *   state.
 * - **One iteration** of the loop runs each open channel's on_process
 *   callback once. Data a callback queues is written in the same
 *   iteration; the loop never sleeps in poll while it has bytes it could
 *   send.
 * - **Lifetimes**: a session lives until evssh_session_free(). A channel
 *   handle stays readable (state, exit status, exit signal, properties)
 *   after the channel closed, until the session's loop is next entered from
 *   the outermost level, or for as long as the program holds it
 *   (evssh_channel_hold() / evssh_channel_release()). So
 *   `evssh_channel_wait(ch); evssh_channel_exit_status(ch, &st);` is valid.
 * - **Deadlines**: `ConnectTimeout` bounds TCP connect, version exchange,
 *   key exchange and authentication together; unset, the phases after the
 *   TCP connect are still bounded (60 s). A graceful close waits a few
 *   seconds at most. Nothing waits forever on a silent peer; keepalives
 *   (`ServerAliveInterval`) catch one that dies later.
 * - **Memory is bounded**: every queue the peer or the program can grow
 *   has a limit the program can see and react to (backpressure).
 *
 * The guides: docs/README.md (getting started, the event loop and
 * lifetimes, running inside another loop, many hosts, errors and logging,
 * the Ruby gem).
 */
#ifndef EVSSH_H
#define EVSSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
/** Marks the functions libevssh exports; the library is built with hidden
 * visibility, so nothing else is visible. */
#define EVSSH_API __attribute__((visibility("default")))
#else
#define EVSSH_API
#endif

/* ------------------------------------------------------------------ errors */

/** @defgroup errors Errors
 * Return codes and their names; the detailed message of a failure is
 * evssh_session_error() (or evssh_error::message from evssh_start()).
 * See docs/errors-and-logging.md.
 * @{ */

/** Return codes: `EVSSH_OK` or a negative `EVSSH_E*`. Each code means one
 * kind of failure, so a program can branch on it; the message says the
 * rest.
 *
 * - `EVSSH_OK`: success.
 * - `EVSSH_EINVAL`: a bad argument, an unknown ssh_config keyword or a bad
 *   value (reported when it is set, not at connect), or a call that makes
 *   no sense in the object's state.
 * - `EVSSH_ENOMEM`: an allocation failed; the object is still consistent.
 * - `EVSSH_ECONNECT`: name resolution, TCP connect, ProxyCommand or
 *   ProxyJump failed.
 * - `EVSSH_ETIMEOUT`: `ConnectTimeout` (or the 60 s bound) expired, naming
 *   the phase, or `ServerAliveCountMax` keepalives went unanswered.
 * - `EVSSH_EPROTO`: the peer broke the protocol (bad MAC, oversized or
 *   malformed packet, data beyond the window); also a short read on an
 *   evssh_reader.
 * - `EVSSH_EHOSTKEY`: the host key is not known and `StrictHostKeyChecking`
 *   does not allow learning it, or the evssh_session_set_hostkey_check()
 *   callback refused it. A key that *changed* (or was revoked) has its own
 *   code, `EVSSH_EHOSTKEY_CHANGED` (-14), and is refused in every mode.
 * - `EVSSH_EAUTH`: every authentication method failed; the message lists
 *   what the server allows and what was tried.
 * - `EVSSH_ECLOSED`: the session or channel is already closed.
 * - `EVSSH_EDISCONNECT`: the peer disconnected (its reason is in the
 *   message).
 * - `EVSSH_EBUSY`: not allowed from where it was called (freeing an object
 *   from its own callback, waiting on a channel already being waited on,
 *   connecting twice).
 * - `EVSSH_ENOALGO`: no key exchange, host key, cipher or MAC algorithm in
 *   common; the message gives both lists.
 * - `EVSSH_ECHANNEL`: the server refused to open a channel or to run a
 *   command.
 * - `EVSSH_ESFTP` (-15): the SFTP server answered with an error status.
 */
enum {
  EVSSH_OK = 0,
  EVSSH_EINVAL = -1,      /* bad argument or option */
  EVSSH_ENOMEM = -2,
  EVSSH_ECONNECT = -3,    /* TCP connect / resolve / proxy failed */
  EVSSH_ETIMEOUT = -4,
  EVSSH_EPROTO = -5,      /* peer broke the protocol, bad MAC, oversize packet */
  EVSSH_EHOSTKEY = -6,    /* host key unknown (strict policy) or refused by the program's check */
  EVSSH_EAUTH = -7,       /* every authentication method failed */
  EVSSH_ECLOSED = -8,     /* session or channel already closed */
  EVSSH_EDISCONNECT = -9, /* peer disconnected */
  EVSSH_EBUSY = -10,
  EVSSH_ENOALGO = -11,    /* no algorithm in common */
  EVSSH_ECHANNEL = -12,   /* channel open refused */
  /* additions (not in the original contract) */
  EVSSH_EAGAIN = -13,     /* would exceed a limit now: evssh_channel_send_data with the send
                             queue at its cap (evssh_channel_set_send_limit); try after on_drain */
  EVSSH_EHOSTKEY_CHANGED = -14, /* host key differs from known_hosts, or is revoked */
  EVSSH_ESFTP = -15,      /* the SFTP server answered with an error status */
  EVSSH_ELIMIT = -16      /* a size limit was reached (exec_wait output: evssh_session_set_exec_limit) */
};
/** The name of a return code ("host key verification failed"), a static
 * string; "unknown error" for a code evssh does not define. Never NULL;
 * thread-safe. */
EVSSH_API const char *evssh_strerror(int code);

/** @var evssh_error::code
 * The return code, as evssh_strerror() names it; `EVSSH_OK` on success. */
/** @var evssh_error::message
 * What failed and where, NUL-terminated; "" on success. It holds the whole
 * text, hints at its end included; only a message longer than the array
 * (none the library writes today) is shortened, in its middle, so that its
 * end stays. */
/** What evssh_start() and evssh_session_new_with() report on failure: the
 * code and the whole message. The caller owns the struct (usually on the
 * stack). */
typedef struct evssh_error {
  int code;
  char message[2048];
} evssh_error;

/** @} */

/* --------------------------------------------------------------- wire data */

/** @defgroup wire Wire data
 * Reading and writing SSH wire encodings (RFC 4251 §5): the payloads of
 * channel requests, global requests and server-opened channels that reach
 * the program.
 * @{ */

/** @var evssh_reader::p
 * The next unread byte. */
/** @var evssh_reader::left
 * How many bytes remain from `p` on. */
/** A bounds-checked cursor over received bytes. The bytes belong to evssh
 * and are valid only during the callback that handed the reader over; copy
 * what you keep. A program may also point one at bytes of its own and read
 * them with evssh_read_*(). */
typedef struct evssh_reader {
  const unsigned char *p;
  size_t left;
} evssh_reader;

/** Read one byte. `EVSSH_OK`, or `EVSSH_EPROTO` on a short read, which
 * leaves the reader unchanged (true of every evssh_read_*()). */
EVSSH_API int evssh_read_u8(evssh_reader *r, uint8_t *v);
/** Read an SSH `boolean` (any non-zero byte is true). */
EVSSH_API int evssh_read_bool(evssh_reader *r, bool *v);
/** Read a big-endian `uint32`. */
EVSSH_API int evssh_read_u32(evssh_reader *r, uint32_t *v);
/** Read a big-endian `uint64`. */
EVSSH_API int evssh_read_u64(evssh_reader *r, uint64_t *v);
/** Read an SSH `string`: `*data` points into the reader's bytes (not
 * copied, not NUL-terminated, valid as long as the reader's bytes are) and
 * `*len` is its length. */
EVSSH_API int evssh_read_string(evssh_reader *r, const char **data, size_t *len); /* not NUL-terminated */

/** A growable buffer for building request payloads, owned by the caller. */
typedef struct evssh_buf evssh_buf;
/** A new empty buffer, or NULL when out of memory. Free it with
 * evssh_buf_free(). */
EVSSH_API evssh_buf *evssh_buf_new(void);
/** Free the buffer and its bytes; NULL is ignored. */
EVSSH_API void evssh_buf_free(evssh_buf *b);
/** Append one byte. `EVSSH_OK` or `EVSSH_ENOMEM` (the buffer is unchanged);
 * the same for every evssh_buf_put_*(). */
EVSSH_API int evssh_buf_put_u8(evssh_buf *b, uint8_t v);
/** Append an SSH `boolean` (0 or 1). */
EVSSH_API int evssh_buf_put_bool(evssh_buf *b, bool v);
/** Append a big-endian `uint32`. */
EVSSH_API int evssh_buf_put_u32(evssh_buf *b, uint32_t v);
/** Append a big-endian `uint64`. */
EVSSH_API int evssh_buf_put_u64(evssh_buf *b, uint64_t v);
/** Append an SSH `string`: a `uint32` length, then `len` bytes copied from
 * `data`; `EVSSH_EINVAL` when `len` does not fit in 32 bits. */
EVSSH_API int evssh_buf_put_string(evssh_buf *b, const void *data, size_t len);
/** Append a NUL-terminated C string as an SSH `string` (without the NUL). */
EVSSH_API int evssh_buf_put_cstring(evssh_buf *b, const char *s);
/** The bytes appended so far; valid until the next put or the free. */
EVSSH_API const void *evssh_buf_data(const evssh_buf *b);
/** How many bytes evssh_buf_data() holds. */
EVSSH_API size_t evssh_buf_len(const evssh_buf *b);

/** @} */

/* ---------------------------------------------------------------- sessions */

/** @defgroup sessions Sessions
 * Connecting, authenticating, closing; options are OpenSSH ssh_config
 * keywords. See docs/getting-started.md.
 * @{ */

/** One SSH connection to one host: options, the connect phases, the
 * channels, the loop state. Created by evssh_session_new() or evssh_start(),
 * freed by evssh_session_free(). */
typedef struct evssh_session evssh_session;

/** Net::SSH.start: resolve the options, connect, exchange keys, verify the
 * host key, authenticate. **Blocking** (bounded by `ConnectTimeout`, 60 s
 * per phase when unset).
 *
 * `host` is a host name, an address or an ssh_config alias; `user` NULL
 * means the default user, as ssh picks it (ssh_config `User`, else the
 * local user). `options` is a NULL-terminated list of "Keyword=value"
 * strings (may be NULL): every ssh_config keyword evssh_session_option()
 * takes, plus `ConfigFile=PATH` or `ConfigFile=none` (ssh's -F: read PATH,
 * or no file, instead of ~/.ssh/config). Explicit options beat the config
 * file, which beats defaults; an option given twice keeps its first value,
 * as `ssh -o` does.
 *
 * Returns the connected session, owned by the caller (evssh_session_close(),
 * then evssh_session_free()), or NULL with `err` filled (code and whole
 * message; `err` may be NULL). Runs no callback of the program's: the
 * prompt and host-key callbacks can only be set on a session from
 * evssh_session_new(). Called from a callback of another session, it
 * drives only the new one, so that session's loop waits meanwhile. */
EVSSH_API evssh_session *evssh_start(const char *host, const char *user,
                                     const char *const *options, evssh_error *err);

/** A new session for `host` (a name, an address or an ssh_config alias),
 * not connected: set options, a password or callbacks, then
 * evssh_session_connect() or evssh_session_connect_async(). Returns NULL
 * for an empty host or when out of memory. Never blocks, reads no file. The
 * caller owns it: evssh_session_free(). `EVSSH_DEBUG=1..4` in the
 * environment sets the log level (see evssh_session_set_log()). */
EVSSH_API evssh_session *evssh_session_new(const char *host); /* host or ssh_config alias */
/** evssh_session_new() plus the options evssh_start() takes (`user` may
 * be NULL; `options` a NULL-terminated "Keyword=value" list), not
 * connected: the way to give evssh_session_connect_async() the same list.
 * Returns NULL with `err` filled when an option is bad or memory ran out.
 * Never blocks; reads no file. The caller owns the session. */
EVSSH_API evssh_session *evssh_session_new_with(const char *host, const char *user,
                                                const char *const *options, evssh_error *err);
/** Set one option, an OpenSSH ssh_config keyword (case-insensitive) with
 * ssh's meaning: at least `User`, `Port`, `HostName`, `IdentityFile`
 * (repeatable), `IdentitiesOnly`, `IdentityAgent`, `UserKnownHostsFile`,
 * `GlobalKnownHostsFile`, `StrictHostKeyChecking` (`yes`, `accept-new`,
 * `no`), `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax`,
 * `Ciphers`, `MACs`, `KexAlgorithms`, `HostKeyAlgorithms`,
 * `PubkeyAcceptedAlgorithms`, `PreferredAuthentications`,
 * `PasswordAuthentication`, `BatchMode`, `ProxyCommand`, `ProxyJump`,
 * `RekeyLimit`, `CertificateFile` (repeatable), `HostKeyAlias`,
 * `RevokedHostKeys`, and `ConfigFile` as for evssh_start(). A keyword
 * given twice keeps its first value, as with `ssh -o` (`IdentityFile`,
 * `CertificateFile` and `SendEnv` accumulate); options set here beat the
 * config file.
 *
 * By default a host key must already be in known_hosts (as
 * `ssh -o BatchMode=yes`): an unknown key is `EVSSH_EHOSTKEY` unless
 * `StrictHostKeyChecking` is `accept-new` or `no`; a changed or revoked key
 * is always `EVSSH_EHOSTKEY_CHANGED`, even with `no`.
 *
 * Certificates (docs/trust.md): a `@cert-authority` line for the host
 * makes the `*-cert-v01@openssh.com` host key algorithms go first, and a
 * host certificate is accepted only if its CA is on such a line, it is a
 * host certificate, now is within its validity, the host name (or
 * `HostKeyAlias`) is among its principals and it has no critical options.
 * A certificate that fails a check or comes from an unknown CA is dropped
 * and its key checked as a plain known_hosts key, as ssh does, so the
 * error is `EVSSH_EHOSTKEY` with a message naming the failed check
 * ("expired at ...", "... is not among the principals", "no
 * @cert-authority line ..."); a revoked key or CA (`@revoked`,
 * `RevokedHostKeys`, a plain key list) or a forged certificate is
 * `EVSSH_EHOSTKEY_CHANGED`. `HostKeyAlias` replaces the host name (and
 * port) for known_hosts and principals. User certificates:
 * `IDENTITY-cert.pub` beside each `IdentityFile` (unless `CertificateFile`
 * is set), every `CertificateFile` whose key is an identity file or in the
 * agent, and certificates held by the agent are offered with their
 * certificate algorithm; an expired or not yet valid one is not sent and
 * the failure message says so.
 *
 * Returns `EVSSH_OK`, or `EVSSH_EINVAL` for an unknown keyword or a bad
 * value (an algorithm list naming nothing evssh supports included) — at
 * the time it is set, not at connect — with evssh_session_error() naming
 * it. Call before connecting; copies what it needs, never blocks. */
EVSSH_API int evssh_session_option(evssh_session *s, const char *keyword, const char *value);
/** Read an ssh_config file now (Host and Match blocks, Include, tokens):
 * `path`, or NULL for ~/.ssh/config, or "none" to read no file at all
 * (without this call ~/.ssh/config is read at connect). Options set with
 * evssh_session_option() still win. Returns `EVSSH_OK`, or `EVSSH_EINVAL`
 * with the file and line of an unknown keyword or bad value (a missing
 * ~/.ssh/config is not an error). Reads the file (blocking file I/O only);
 * call before connecting. */
EVSSH_API int evssh_session_read_config(evssh_session *s, const char *path);
/** The password for `password` and keyboard-interactive authentication
 * (a lone echo-off prompt is answered with it). Copied; the copy is wiped
 * when replaced, on free, and never logged. NULL clears it. Returns
 * `EVSSH_OK` or `EVSSH_ENOMEM`. */
EVSSH_API int evssh_session_set_password(evssh_session *s, const char *password);
/** Asked for a keyboard-interactive answer or a key file's passphrase:
 * `prompt` is the server's (or "Enter passphrase for key PATH: "), `echo`
 * whether the answer may be shown. Write a NUL-terminated answer of at most
 * `answer_size` bytes (evssh wipes it after use) and return 0; any other
 * value means no answer (that method or key is given up). Runs during
 * authentication, from inside the connect. */
typedef int (*evssh_prompt_cb)(evssh_session *s, const char *prompt, bool echo,
                               char *answer, size_t answer_size, void *ud);
/** Set (or, with NULL, clear) the prompt callback; never blocks. With
 * `BatchMode=yes` it is never called. */
EVSSH_API void evssh_session_set_prompt(evssh_session *s, evssh_prompt_cb cb, void *ud);
/** An extra host key check, asked after the known_hosts policy accepted
 * the key: `keytype` ("ssh-ed25519") and `sha256_fingerprint`
 * ("SHA256:…", as ssh-keygen -l prints it). For an accepted host
 * certificate `keytype` is the certificate's type
 * ("ssh-ed25519-cert-v01@openssh.com") and the fingerprint that of the
 * key it certifies. Return 0 to accept; anything else fails the connect
 * with `EVSSH_EHOSTKEY`. Runs inside the connect. */
typedef int (*evssh_hostkey_cb)(evssh_session *s, const char *keytype,
                                const char *sha256_fingerprint, void *ud);
/** Set (or, with NULL, clear) the host key check; never blocks. It cannot
 * make evssh accept a key the policy refused. */
EVSSH_API void evssh_session_set_hostkey_check(evssh_session *s, evssh_hostkey_cb cb, void *ud);

/** Connect, exchange keys, verify the host key and authenticate: the whole
 * of evssh_session_connect_async() driven to its end. **Blocking** (bounded
 * by `ConnectTimeout`). Returns `EVSSH_OK` when the session is ready, or the
 * failure's code with evssh_session_error() saying what and where; a
 * session that failed stays allocated (free it). May run the prompt and
 * host-key callbacks. Calling it on a session that is connecting or
 * connected is `EVSSH_EBUSY`, on a closed one `EVSSH_ECLOSED`. */
EVSSH_API int evssh_session_connect(evssh_session *s); /* blocking */
/** A session event: on_ready gets `EVSSH_OK` once connected, or the code of
 * the failure; on_closed of evssh_session_close_async() gets the code the
 * close ended with. */
typedef void (*evssh_session_cb)(evssh_session *s, int status, void *ud);
/** Start connecting without blocking: name resolution, TCP connect (or
 * ProxyCommand / ProxyJump), version and key exchange, host key check and
 * authentication then run inside the loop calls (evssh_session_process(),
 * an evssh_multi, or evssh_session_handle_events() from another loop).
 * `on_ready` (may be NULL) runs exactly once: with `EVSSH_OK` when the
 * session is ready for channels, or with the failure's code, after which
 * the session is closed. A failure found at once (a bad option) runs
 * on_ready before this call returns, and the call returns that code.
 * Returns `EVSSH_OK` when the connect is under way; `EVSSH_EBUSY` when
 * already connecting or connected, `EVSSH_ECLOSED` when closed (on_ready is
 * not run for these). Never blocks. */
EVSSH_API int evssh_session_connect_async(evssh_session *s, evssh_session_cb on_ready, void *ud);
/** Close gracefully: close every channel (each gets its on_close), wait
 * for the server's answers, send DISCONNECT and close the socket.
 * **Blocking**, a few seconds at most, never hangs on a silent peer. A
 * program inside another event loop uses the non-blocking
 * evssh_session_close_async() instead (docs/foreign-loop.md).
 * Returns `EVSSH_OK` (also when already closed). From inside one of the
 * session's callbacks the close runs as a nested loop, as the other
 * blocking calls do. The session stays allocated: evssh_session_free()
 * afterwards. */
EVSSH_API int evssh_session_close(evssh_session *s);
/** Start a graceful close and return at once (for foreign loops): CLOSE
 * goes to every channel; the loop (evssh_session_handle_events() or
 * evssh_session_process()) finishes it once every channel is closed or
 * after the same few-seconds deadline. Then `on_closed` (may be NULL) runs
 * once with `EVSSH_OK`, `EVSSH_ETIMEOUT` when the deadline ended it, or the
 * session's error if it failed meanwhile. A session not yet ready, or one
 * with no channel left open, ends at once (DISCONNECT written, on_closed run
 * before this call returns). Returns `EVSSH_OK`, or `EVSSH_EBUSY` while a
 * close is already under way. Never blocks. */
EVSSH_API int evssh_session_close_async(evssh_session *s, evssh_session_cb on_closed, void *ud);
/** Free the session and everything it owns, after a hard shutdown if it is
 * still connected (every open channel gets its on_close first, then the
 * socket is closed without waiting); every channel handle, held or not, is
 * freed with it. A session still in an evssh_multi leaves it first. NULL is
 * ignored. Never blocks. Refused from inside one of the session's own
 * callbacks (the object is in use up the stack: logged, nothing happens);
 * close there, free after the loop returns. Detach any loop adapter
 * before freeing. */
EVSSH_API void evssh_session_free(evssh_session *s);
/** The last detailed message for this session ("host key for
 * [127.0.0.1]:2222 does not match known_hosts line 3: expected SHA256:…,
 * got SHA256:…"), or "" when nothing failed; "no session" for NULL. Owned
 * by the session, valid until its next failure or its free. */
EVSSH_API const char *evssh_session_error(const evssh_session *s);
/** True once the session is over (closed, failed, disconnected; also for
 * NULL); a new session is not closed. */
EVSSH_API bool evssh_session_closed(const evssh_session *s);
/** The host the session was created for (as given to evssh_session_new(),
 * before ssh_config's HostName); owned by the session. */
EVSSH_API const char *evssh_session_host(const evssh_session *s);
/** True while the connect is under way (resolve, TCP, key exchange,
 * authentication). */
EVSSH_API bool evssh_session_connecting(const evssh_session *s);
/** Negotiated algorithm names: `what` is "kex", "hostkey", "cipher_c2s",
 * "cipher_s2c", "mac_c2s" or "mac_s2c". NULL before the first key exchange
 * or for another `what`. The string lives as long as the session. */
EVSSH_API const char *evssh_session_algorithm(const evssh_session *s, const char *what);
/** True once the first key exchange is done and its method was a
 * post-quantum hybrid (mlkem768x25519-sha256, sntrup761x25519-sha512 or its
 * @@openssh.com name). A connection that is not post-quantum logs an INFO
 * line saying so, as OpenSSH 10.1 warns. */
EVSSH_API bool evssh_session_post_quantum(const evssh_session *s);
/** The server's host key for this connection: key type ("ssh-ed25519") and
 * public key blob, both owned by the session. `EVSSH_EINVAL` before the key
 * exchange. Any out pointer may be NULL. */
EVSSH_API int evssh_session_host_key(const evssh_session *s, const char **type,
                                     const unsigned char **blob, size_t *blob_len);
/** The server's identification string from the version exchange, without
 * the line end ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"), as Net::SSH's
 * `transport.server_version`. NULL before the server's line arrived (or for
 * NULL). Owned by the session; lives as long as it. Never blocks. */
EVSSH_API const char *evssh_session_server_version(const evssh_session *s);
/** The system error behind the session's `EVSSH_ECONNECT` failure: the
 * errno of the connect, bind, socket or fork call that failed
 * (ECONNREFUSED, EHOSTUNREACH, EADDRNOTAVAIL for a BindAddress that is not
 * ours, ...), so a binding can raise its platform's error (Ruby's
 * Errno::ECONNREFUSED) without reading the message. With several addresses
 * it is the last one's. 0 when the session did not fail that way, or its
 * failure was no system call's (name resolution, a ProxyCommand that
 * exited). Never blocks. */
EVSSH_API int evssh_session_sys_errno(const evssh_session *s);
/** Connect over `fd`, a connection the program made (a socket through an
 * HTTP or SOCKS proxy, a socketpair to another process, a TCP socket bound
 * as it likes): evssh_session_connect() then skips name resolution, TCP
 * connect, ProxyCommand and ProxyJump (a configured ProxyCommand or
 * ProxyJump is not used, and an INFO line says so) and starts with the
 * version exchange; `HostName` and `Port` still name the host for
 * known_hosts. Call before connecting. Anything that reads and writes the
 * SSH stream does (socket, pipe pair made into a socketpair).
 *
 * Ownership: on `EVSSH_OK` the fd belongs to the session, which makes it
 * non-blocking and close-on-exec and closes it when the session closes or
 * is freed, connected or not (as it closes its own sockets; dup() first to
 * keep a copy). A second call before connecting replaces the first fd
 * (closing it). On an error the fd stays the caller's. Returns `EVSSH_OK`,
 * `EVSSH_EINVAL` (not an open fd, or NULL session), `EVSSH_EBUSY` once
 * connecting or connected, `EVSSH_ECLOSED` on a closed session. Never
 * blocks. */
EVSSH_API int evssh_session_set_fd(evssh_session *s, int fd);
/** Start a key re-exchange now (Net::SSH's `rekey!`; ssh's `~R`), in
 * addition to the ones `RekeyLimit` and the cipher's volume limit start.
 * Channels keep running meanwhile; their data waits in order for the new
 * keys. **Never blocks**: the exchange runs in the session's loop, and
 * evssh_session_rekeying() is true until it is done (a binding that blocks,
 * as Net::SSH does, loops until then). Returns `EVSSH_OK` (also while an
 * exchange already runs: no second one is started), `EVSSH_EINVAL` before
 * the session is ready, `EVSSH_ECLOSED` when closed. */
EVSSH_API int evssh_session_rekey(evssh_session *s);
/** True while a key re-exchange runs (started by evssh_session_rekey(), by
 * the rekey limits, or by the server); false before the first exchange is
 * done and after the session closed. Never blocks. */
EVSSH_API bool evssh_session_rekeying(const evssh_session *s);
/** The algorithm names evssh implements for `what`, a static
 * comma-separated list in no particular preference: "kex", "hostkey",
 * "cipher", "mac", "pubkey" (signature algorithms for user keys, as
 * `PubkeyAcceptedAlgorithms` takes them) or "compression". NULL for another
 * `what`. These are the names the algorithm options accept. Thread-safe,
 * needs no session. */
EVSSH_API const char *evssh_supported_algorithms(const char *what);
/** What evssh proposes for `what` when the option is not set, in its
 * preference order (the same kinds as evssh_supported_algorithms()); a
 * static string, NULL for another `what`. With known host keys for the
 * host, the host key list is reordered at connect to prefer their types, as
 * ssh does. Thread-safe. */
EVSSH_API const char *evssh_default_algorithms(const char *what);
/** evssh_session_exec_wait() keeps at most `bytes` of output (stdout and
 * stderr together; default 64 MiB); past it the command is ended and
 * exec_wait returns `EVSSH_ELIMIT` with the reason in
 * evssh_session_error(). Returns `EVSSH_OK` or `EVSSH_EINVAL` (0 bytes). */
EVSSH_API int evssh_session_set_exec_limit(evssh_session *s, size_t bytes);
/** The current exec_wait output limit. */
EVSSH_API size_t evssh_session_exec_limit(const evssh_session *s);
/** Accept at most `max` channels opened by the server at once (sshd's
 * MaxSessions, the other way round; default 1024); beyond it an open gets
 * OPEN_FAILURE (4, "too many channels open"). Returns `EVSSH_OK` or
 * `EVSSH_EINVAL`. */
EVSSH_API int evssh_session_set_max_peer_channels(evssh_session *s, size_t max);
/** Net::SSH's `ssh[:key] = value`: attach a pointer of the program's to
 * the session under `key` (copied). evssh never looks at or frees `value`;
 * NULL removes the key. Returns `EVSSH_OK`, or `EVSSH_ENOMEM` when it
 * cannot be stored. */
EVSSH_API int evssh_session_set_property(evssh_session *s, const char *key, void *value);
/** The value set for `key` with evssh_session_set_property(), or NULL. */
EVSSH_API void *evssh_session_property(const evssh_session *s, const char *key);

/** @} */

/* -------------------------------------------------------------- user keys */

/** @defgroup keys User keys
 * Loading a private key as evssh's authentication does (every format
 * OpenSSH writes: openssh-key-v1, encrypted with bcrypt-pbkdf or not, PEM
 * PKCS#1 / SEC1 / PKCS#8, encrypted or not), for programs that show,
 * check or use keys themselves (Net::SSH's KeyFactory). Keys that
 * authenticate a session are named with `IdentityFile`; these calls are
 * not needed for that.
 * @{ */

/** A loaded key: its public half (type, blob, comment) and, loaded from a
 * private key file, the private half, which never leaves it. Freed with
 * evssh_key_free(). */
typedef struct evssh_key evssh_key;
/** Load the private key file at `path`, decrypting it with `passphrase`
 * (NULL: none; an encrypted file then fails). **Blocking** file I/O only;
 * the bcrypt-pbkdf of an encrypted openssh-key-v1 file takes its rounds'
 * CPU time (16 rounds: a fraction of a second). One attempt: prompting and
 * retrying are the caller's. Returns `EVSSH_OK` with `*out` the caller's,
 * or with `*out` NULL and `err` (may be NULL) filled: `EVSSH_EINVAL` (no
 * such file, not a key, an unsupported type, RSA below 1024 bits),
 * `EVSSH_EAUTH` (encrypted and no passphrase, or a wrong one),
 * `EVSSH_ENOMEM`. Thread-safe, needs no session. */
EVSSH_API int evssh_key_load(const char *path, const char *passphrase, evssh_key **out, evssh_error *err);
/** evssh_key_load() for a key held in memory (`len` bytes at `data`, the
 * text of a key file): nothing is written to disk. `name` (NULL: "key
 * data") stands for the key in messages. Same returns. */
EVSSH_API int evssh_key_load_data(const void *data, size_t len, const char *name, const char *passphrase,
                                  evssh_key **out, evssh_error *err);
/** The key's type name ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"),
 * static; NULL for NULL. */
EVSSH_API const char *evssh_key_type(const evssh_key *k);
/** The public key blob (RFC 4253 §6.6: string type, then the key's
 * fields), as known_hosts and authorized_keys encode it in base64; `*blob`
 * points into the key and lives as long as it. `EVSSH_OK`, or `EVSSH_EINVAL`
 * for a NULL argument. */
EVSSH_API int evssh_key_public_blob(const evssh_key *k, const unsigned char **blob, size_t *len);
/** The comment stored with the key (openssh-key-v1 files carry one), "" if
 * none; owned by the key. */
EVSSH_API const char *evssh_key_comment(const evssh_key *k);
/** The SHA256 fingerprint as ssh-keygen -l prints it ("SHA256:" and
 * unpadded base64, 50 characters with its NUL) into `out`. `EVSSH_OK`, or
 * `EVSSH_EINVAL` for a NULL argument or `outlen` too small. */
EVSSH_API int evssh_key_fingerprint(const evssh_key *k, char *out, size_t outlen);
/** Sign `len` bytes at `data` with the private key and signature algorithm
 * `alg` ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512",
 * "rsa-sha2-256", "ssh-rsa"; it must fit the key), appending the SSH
 * signature blob (string alg, string signature) to `sig_blob`. `EVSSH_OK`,
 * or `EVSSH_EINVAL` (wrong algorithm for the key, no private half),
 * `EVSSH_ENOMEM`. Never blocks. */
EVSSH_API int evssh_key_sign(const evssh_key *k, const char *alg, const unsigned char *data, size_t len,
                             evssh_buf *sig_blob);
/** Free the key, wiping its private half; NULL is ignored. */
EVSSH_API void evssh_key_free(evssh_key *k);
/** bcrypt-pbkdf, the key derivation of passphrase-protected openssh-key-v1
 * files (PROTOCOL.key: the kdfname "bcrypt"), for a binding that reads
 * those files itself: derives `keylen` bytes (at most 1024) into `key` from
 * the passphrase (`passlen` bytes), the file's salt and its rounds.
 * **Blocking** CPU work (each round hashes 64 times). `EVSSH_OK`,
 * `EVSSH_EINVAL` (empty salt, zero rounds, keylen 0 or above 1024),
 * `EVSSH_ENOMEM`. Thread-safe. */
EVSSH_API int evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint8_t *key,
                                 size_t keylen, unsigned int rounds);

/** @} */

/* ---------------------------------------------------------- the event loop */

/** @defgroup loop The event loop
 * Net::SSH's process / loop / busy? / listen_to for one session. See
 * docs/event-loop.md.
 * @{ */

/** A loop condition, Net::SSH's `loop { cond }`: return true to go on,
 * false to stop. Asked before and after each iteration. */
typedef bool (*evssh_cond_cb)(evssh_session *s, void *ud);

/** One iteration of the session's loop: dispatch every packet already
 * received, run each open channel's on_process once, poll the session's
 * socket and its listen_to fds for at most `wait_ms` (-1: until something
 * happens; 0: not at all), read and write what is ready, send keepalives
 * and rekey as needed. `cond` (NULL: none) is asked before and after.
 *
 * Returns 1 to go on, 0 when cond said stop, or a negative code when the
 * session failed or closed (every channel has had its on_close by then).
 * **Blocks** for up to `wait_ms`. Runs any callback of the session's
 * channels, its global-request and listen_to handlers, on_ready. Called
 * from inside one of those callbacks it runs a nested iteration. */
EVSSH_API int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
/** Call evssh_session_process() until it returns 0 or less; `cond` NULL
 * means "while evssh_session_busy(s, false)", so it returns when the last
 * visible channel closed. Returns 0, or the negative code that stopped it.
 * **Blocking**; callbacks as for evssh_session_process(); nests. */
EVSSH_API int evssh_session_loop(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
/** Net::SSH's `busy?`: true while any channel is open or opening, not
 * counting channels whose "invisible" property is set (Net::SSH's
 * `ch[:invisible] = true`) unless `include_invisible`. False for NULL.
 * Never blocks. */
EVSSH_API bool evssh_session_busy(const evssh_session *s, bool include_invisible);

/** Interest and readiness bits for fds: evssh_session_listen_to(),
 * evssh_session_events(), evssh_session_handle_events(). */
enum { EVSSH_READ = 1, EVSSH_WRITE = 2 };
/** A listen_to fd is ready: `events` is EVSSH_READ and/or EVSSH_WRITE (a
 * hang-up or error reads as EVSSH_READ, an error also as EVSSH_WRITE). */
typedef void (*evssh_io_cb)(evssh_session *s, int fd, int events, void *ud);
/** Net::SSH's listen_to: let the session's loop watch a program fd for
 * `events` (EVSSH_READ | EVSSH_WRITE) and call `cb` when it is ready. The
 * fd stays the program's (never read, written or closed by evssh); calling
 * again for the same fd replaces events and callback. The fds are watched
 * by evssh_session_process() / _loop() and by an evssh_multi, not by
 * evssh_session_handle_events() (another loop watches its own fds).
 * Returns `EVSSH_OK`, `EVSSH_EINVAL` (bad fd, events or NULL cb) or
 * `EVSSH_ENOMEM`. Never blocks; allowed from callbacks. */
EVSSH_API int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud);
/** Stop watching `fd`; its callback is not called again (also when called
 * from that callback). Returns `EVSSH_OK`, or `EVSSH_EINVAL` when `fd` was
 * not watched. Close the fd after this call, not before. */
EVSSH_API int evssh_session_stop_listening_to(evssh_session *s, int fd);
/** For drivers (evssh_multi, loop adapters): the session's listen_to set.
 * Fills up to `max` fds and their EVSSH_READ / EVSSH_WRITE interest and
 * returns how many there are (may be more than `max`: call again with
 * room). Never blocks. */
EVSSH_API size_t evssh_session_listeners(const evssh_session *s, int *fds, int *events, size_t max);
/** For drivers: listen_to fd `fd` is ready with `revents` (EVSSH_READ /
 * EVSSH_WRITE); runs its callback now. Call it before
 * evssh_session_handle_events() of the same iteration, so that what the
 * callback queued is written in that iteration. Returns `EVSSH_OK`, or
 * `EVSSH_EINVAL` when `fd` is not listened to. */
EVSSH_API int evssh_session_handle_listener(evssh_session *s, int fd, int revents);
/** True while an open channel has an on_process callback: a driver then
 * runs evssh_session_handle_events() in every iteration of its loop
 * (on_process runs once per iteration), not only when the session's fd is
 * ready. */
EVSSH_API bool evssh_session_has_on_process(const evssh_session *s);

/** @} */

/* ---------------------------------------------------------------- channels */

/** @defgroup channels Channels
 * Channels (RFC 4254 §5) with Net::SSH's callbacks, requests and data. See
 * docs/event-loop.md for when handles are freed.
 * @{ */

/** One channel of a session. Owned by the session: valid until its
 * on_close has returned and the loop is next entered from the outermost
 * level, or until evssh_channel_release() when held. */
typedef struct evssh_channel evssh_channel;
/** A channel event (open, eof, close, process). */
typedef void (*evssh_channel_cb)(evssh_channel *ch, void *ud);
/** Channel data: `len` bytes at `data`, valid only during the call (copy
 * what you keep). Not NUL-terminated. */
typedef void (*evssh_data_cb)(evssh_channel *ch, const char *data, size_t len, void *ud);
/** Extended data, as evssh_data_cb; `type` 1 is stderr
 * (SSH_EXTENDED_DATA_STDERR). */
typedef void (*evssh_ext_data_cb)(evssh_channel *ch, uint32_t type,
                                  const char *data, size_t len, void *ud);
/** The answer to a channel request sent with want-reply: `success` is
 * false for CHANNEL_FAILURE, and also when the channel or session ended
 * before the answer came. Runs once per request, in request order. */
typedef void (*evssh_reply_cb)(evssh_channel *ch, bool success, void *ud);
/** The server refused to open the channel: RFC 4254 `reason` (1
 * administratively prohibited, 2 connect failed, 3 unknown channel type, 4
 * resource shortage) and its `description` (printable, valid during the
 * call). Also run with reason 2, "session closed", for a channel still
 * opening when the session ends. */
typedef void (*evssh_open_failed_cb)(evssh_channel *ch, uint32_t reason,
                                     const char *description, void *ud);
/** What a request handler (evssh_request_cb, evssh_global_request_cb)
 * returns: EVSSH_REPLY_SUCCESS or EVSSH_REPLY_FAILURE (sent only if the
 * peer wants a reply), or EVSSH_REPLY_SENT after answering itself with
 * evssh_session_send_global_reply(). Replies leave in the order the
 * requests came. */
enum { EVSSH_REPLY_SUCCESS = 1, EVSSH_REPLY_FAILURE = 0, EVSSH_REPLY_SENT = 2 };
/** An incoming channel request of a type registered with
 * evssh_channel_on_request(): `data` reads the request-specific payload
 * (valid during the call); return EVSSH_REPLY_SUCCESS or
 * EVSSH_REPLY_FAILURE. `exit-status` and `exit-signal` are recorded by
 * evssh whether or not a handler is registered, and reach it after the
 * data and EOF that came before them. */
typedef int (*evssh_request_cb)(evssh_channel *ch, const char *type,
                                evssh_reader *data, bool want_reply, void *ud);

/** Open a "session" channel (for exec, shell, subsystem). Returns the
 * handle at once (the open is queued; requests and data may be issued on
 * it right away and go out after the confirmation), or NULL when the
 * session is not connected or out of memory. `on_open` (may be NULL) runs
 * once the server confirmed; a refusal runs on_open_failed instead (set it
 * with evssh_channel_on_open_failed()) and not on_close. Never blocks. */
EVSSH_API evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud);
/** Open a channel of any `type` ("direct-tcpip", ...) with `extra_len`
 * bytes of type-specific data appended to CHANNEL_OPEN (built with
 * evssh_buf, copied). Otherwise as evssh_session_open_channel(). */
EVSSH_API evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type,
                                                         const void *extra, size_t extra_len,
                                                         evssh_channel_cb on_open, void *ud);

/** Set the data callback (NULL: data is dropped). Replaces the previous
 * one; the same holds for every evssh_channel_on_*(). Never blocks. */
EVSSH_API void evssh_channel_on_data(evssh_channel *ch, evssh_data_cb cb, void *ud);
/** Set the extended data (stderr) callback (NULL: dropped). */
EVSSH_API void evssh_channel_on_extended_data(evssh_channel *ch, evssh_ext_data_cb cb, void *ud);
/** Handle incoming channel requests of `type` ("exit-status", "xon-xoff",
 * ...) with `cb`; NULL removes the handler. Unregistered types are
 * answered with CHANNEL_FAILURE when a reply is wanted. Returns `EVSSH_OK`,
 * or `EVSSH_ENOMEM` when the handler cannot be stored. */
EVSSH_API int evssh_channel_on_request(evssh_channel *ch, const char *type, evssh_request_cb cb, void *ud);
/** Called once when the peer sent EOF (no more data will come). Order on a
 * channel: data, eof, exit-status / exit-signal requests, close. */
EVSSH_API void evssh_channel_on_eof(evssh_channel *ch, evssh_channel_cb cb, void *ud);
/** Called once when the channel is closed, by either side or because the
 * session ended; it is the last callback of the channel. The handle stays
 * readable afterwards (see evssh_channel_hold()). */
EVSSH_API void evssh_channel_on_close(evssh_channel *ch, evssh_channel_cb cb, void *ud);
/** Net::SSH's on_process: called once in every loop iteration while the
 * channel is open, before the loop waits — the place to produce data as
 * the window allows. Data it queues is written in that same iteration. */
EVSSH_API void evssh_channel_on_process(evssh_channel *ch, evssh_channel_cb cb, void *ud);
/** Called when the server refuses the open (see evssh_open_failed_cb); the
 * channel is over after it, without on_close. */
EVSSH_API void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud);

/** Request that the server run `command` on this session channel. `cb`
 * gets the answer; NULL sends want-reply false. Queued (sent after the
 * open confirmation when the channel is still opening). Returns `EVSSH_OK`,
 * `EVSSH_EINVAL`, `EVSSH_ENOMEM` or `EVSSH_ECLOSED`. Never blocks; the
 * same holds for the other channel requests below. */
EVSSH_API int evssh_channel_exec(evssh_channel *ch, const char *command, evssh_reply_cb cb, void *ud);
/** Request the subsystem `name` ("sftp"). */
EVSSH_API int evssh_channel_subsystem(evssh_channel *ch, const char *name, evssh_reply_cb cb, void *ud);
/** Request the user's login shell. */
EVSSH_API int evssh_channel_shell(evssh_channel *ch, evssh_reply_cb cb, void *ud);
/** Request a pseudo-terminal: `term` (NULL: "xterm"), `cols` x `rows`
 * characters, no terminal modes. */
EVSSH_API int evssh_channel_request_pty(evssh_channel *ch, const char *term, uint32_t cols,
                                        uint32_t rows, evssh_reply_cb cb, void *ud);
/** Request that `name`=`value` be set in the command's environment (the
 * server's AcceptEnv decides). */
EVSSH_API int evssh_channel_env(evssh_channel *ch, const char *name, const char *value,
                                evssh_reply_cb cb, void *ud);
/** Send a signal to the remote command: `signame` without "SIG" ("TERM",
 * "INT"); no reply is asked for. */
EVSSH_API int evssh_channel_signal(evssh_channel *ch, const char *signame);
/** Send any channel request: `type` and `extra_len` bytes of payload
 * (copied); `cb` NULL sends want-reply false. Replies are matched to
 * requests in order. */
EVSSH_API int evssh_channel_send_request(evssh_channel *ch, const char *type,
                                         const void *extra, size_t extra_len,
                                         evssh_reply_cb cb, void *ud);

/** Send `len` bytes (copied when they cannot go out at once): queued and
 * sent as the peer's window and maximum packet allow, never dropped.
 * Returns `EVSSH_OK`, `EVSSH_ENOMEM`, `EVSSH_ECLOSED` after EOF or close,
 * or `EVSSH_EAGAIN` when the send queue is at its cap
 * (evssh_channel_set_send_limit()): nothing was queued, send again after
 * evssh_channel_on_drain(). Never blocks; evssh_channel_pending() tells
 * how much is still queued. */
EVSSH_API int evssh_channel_send_data(evssh_channel *ch, const void *data, size_t len);
/** Send extended data of `type` (1: stderr), as evssh_channel_send_data(). */
EVSSH_API int evssh_channel_send_extended_data(evssh_channel *ch, uint32_t type,
                                               const void *data, size_t len);
/** Net::SSH's eof!: send EOF after the queued data (once; again is a
 * no-op). The peer can still send. Returns `EVSSH_OK` or `EVSSH_ECLOSED`. */
EVSSH_API int evssh_channel_eof(evssh_channel *ch);
/** Close the channel after its queued data: CHANNEL_CLOSE goes out, and
 * on_close runs when the peer's CLOSE arrives (or the session ends).
 * Returns `EVSSH_OK` (also when already closing) or `EVSSH_ECLOSED`. Never
 * blocks. */
EVSSH_API int evssh_channel_close(evssh_channel *ch);
/** Net::SSH's channel.wait: run the session's loop until this channel is
 * over (closed, or its open refused). **Blocking**; runs every callback of
 * the session meanwhile; from inside a callback it runs a nested loop
 * (SSHKit waits inside an open_channel block). Returns `EVSSH_OK` once the
 * channel is over (the handle is still readable: exit status, signal), or
 * the session's code when the session ended first. */
EVSSH_API int evssh_channel_wait(evssh_channel *ch); /* blocking */

/** The channel's local number (what the server calls the recipient
 * channel). 0 for NULL. */
EVSSH_API uint32_t evssh_channel_id(const evssh_channel *ch);
/** The session that owns the channel. */
EVSSH_API evssh_session *evssh_channel_session(const evssh_channel *ch);
/** Net::SSH's active?: true from the open until the channel is closed
 * (also while opening). */
EVSSH_API bool evssh_channel_active(const evssh_channel *ch);
/** True once the peer sent EOF. */
EVSSH_API bool evssh_channel_eof_received(const evssh_channel *ch);
/** The command's exit status, once the server sent `exit-status`:
 * `EVSSH_OK` with `*status` set, or `EVSSH_EINVAL` before that (or never,
 * for a command killed by a signal). Valid after close while the handle is
 * readable. */
EVSSH_API int evssh_channel_exit_status(const evssh_channel *ch, int *status);
/** The signal that killed the command, once the server sent
 * `exit-signal`: `EVSSH_OK` with `*signame` ("TERM", without "SIG"; owned by
 * the channel), or `EVSSH_EINVAL` before that. */
EVSSH_API int evssh_channel_exit_signal(const evssh_channel *ch, const char **signame);
/** Net::SSH's `ch[:key] = value`: a pointer of the program's under `key`
 * (copied); NULL removes it. The "invisible" key is special: set, the
 * channel does not count for evssh_session_busy(s, false). Returns
 * `EVSSH_OK`, or `EVSSH_ENOMEM` when it cannot be stored. */
EVSSH_API int evssh_channel_set_property(evssh_channel *ch, const char *key, void *value);
/** The value set for `key`, or NULL. */
EVSSH_API void *evssh_channel_property(const evssh_channel *ch, const char *key);
/** True once the open was confirmed (stays true after close). */
EVSSH_API bool evssh_channel_opened(const evssh_channel *ch);
/** Runs once, when the library frees the handle (after on_close, by the
 * lifetime rule of evssh_channel_hold()): release what hangs off it; call
 * nothing on `ch` but the property getters. */
typedef void (*evssh_channel_free_cb)(evssh_channel *ch, void *ud);
/** Set (NULL: clear) the callback run when the handle is freed. */
EVSSH_API void evssh_channel_on_free(evssh_channel *ch, evssh_channel_free_cb cb, void *ud);

/* ------------------------------------------------------------ backpressure */

/** Bytes given to evssh_channel_send_data() / _send_extended_data() not
 * yet handed to the transport (which holds at most about 1 MiB more for
 * the socket). 0 for NULL. */
EVSSH_API size_t evssh_channel_pending(const evssh_channel *ch);
/** `cb` runs once evssh_channel_pending() falls to `low_water` or below
 * (0: all handed down), from the loop's flush step, while the channel is
 * open; it is armed again each time pending rises above `low_water`.
 * Registering arms it (it runs at the next flush when pending is already
 * low). `cb` NULL removes it. Never blocks. */
EVSSH_API void evssh_channel_on_drain(evssh_channel *ch, size_t low_water, evssh_channel_cb cb, void *ud);
/** Pause (or resume) receiving: while paused our window is not topped up,
 * so the peer stops once it has used what it was granted; data that still
 * arrives is delivered. Resuming grants the window back. Returns
 * `EVSSH_OK`, or `EVSSH_ECLOSED` on a closed channel. Never blocks. */
EVSSH_API int evssh_channel_pause(evssh_channel *ch, bool paused);
/** True while evssh_channel_pause() holds the channel paused. */
EVSSH_API bool evssh_channel_paused(const evssh_channel *ch);
/** Keep the handle readable after close. The lifetime rule: a channel
 * handle stays readable (state, exit status, exit signal, properties)
 * after it closes until the session's loop is next entered from the
 * outermost level (no callback of the session on the stack), or longer
 * while held: holds are counted, and the handle is freed at the first
 * such entry after as many evssh_channel_release() calls as holds. A
 * session frees all its channels, held or not. */
EVSSH_API void evssh_channel_hold(evssh_channel *ch);
/** Undo one evssh_channel_hold(). */
EVSSH_API void evssh_channel_release(evssh_channel *ch);
/** Our receive window for this channel (default 4 MiB): how much the peer
 * may send before we grant more. Set before confirmation, it takes effect
 * once the peer confirms; growing it later sends WINDOW_ADJUST at once;
 * shrinking it grants less from then on. Size it to the bandwidth-delay
 * product of the link. Returns `EVSSH_OK`, `EVSSH_EINVAL` or
 * `EVSSH_ECLOSED`. */
EVSSH_API int evssh_channel_set_receive_window(evssh_channel *ch, uint32_t bytes);
/** The send queue's cap (default 64 MiB): an evssh_channel_send_data()
 * call that finds pending at or above it queues nothing and returns
 * `EVSSH_EAGAIN`; one below it is taken whole. Returns `EVSSH_OK` or
 * `EVSSH_EINVAL`. */
EVSSH_API int evssh_channel_set_send_limit(evssh_channel *ch, size_t bytes);
/** Bytes the peer may still send us before we grant more. */
EVSSH_API uint32_t evssh_channel_receive_window(const evssh_channel *ch);
/** Bytes we may still send the peer before it grants more. */
EVSSH_API uint32_t evssh_channel_send_window(const evssh_channel *ch);
/** The peer's number for the channel (Net::SSH's remote_id): `EVSSH_OK`
 * with `*id` set once the open is confirmed, `EVSSH_EINVAL` before. */
EVSSH_API int evssh_channel_remote_id(const evssh_channel *ch, uint32_t *id);
/** @var evssh_channel_windows::local_window
 * Bytes the peer may still send us. */
/** @var evssh_channel_windows::local_max_window
 * The window we grant back up to (evssh_channel_set_receive_window()). */
/** @var evssh_channel_windows::local_max_packet
 * The largest data packet we accept. */
/** @var evssh_channel_windows::remote_window
 * Bytes we may still send. */
/** @var evssh_channel_windows::remote_max_window
 * The window the peer opened the channel with. */
/** @var evssh_channel_windows::remote_max_packet
 * The largest data packet the peer accepts. */
/** Both directions' flow-control figures at once (Net::SSH's
 * local_window_size, local_maximum_window_size, …). */
typedef struct evssh_channel_windows {
  uint32_t local_window, local_max_window, local_max_packet;
  uint32_t remote_window, remote_max_window, remote_max_packet;
} evssh_channel_windows;
/** Fill `*w` for `ch`; the remote figures are 0 before confirmation.
 * Returns `EVSSH_OK` or `EVSSH_EINVAL` (NULL argument). */
EVSSH_API int evssh_channel_windows_get(const evssh_channel *ch, evssh_channel_windows *w);

/** @} */

/* ------------------------------ global requests and server-opened channels */

/** @defgroup global Global requests and server-opened channels
 * Both directions of SSH_MSG_GLOBAL_REQUEST and the channels a server
 * opens (forwarded-tcpip, auth-agent, x11, or any type).
 * @{ */

/** The answer to a global request: `success`, and for success the reply's
 * payload in `response` (valid during the call; empty on failure). Also run
 * with false when the session ends first. */
typedef void (*evssh_global_reply_cb)(evssh_session *s, bool success,
                                      evssh_reader *response, void *ud);
/** Send a global request of `type` with `extra_len` bytes of payload
 * (copied); `cb` NULL sends want-reply false, otherwise `cb` gets the
 * answer (replies are matched to requests in order). Returns `EVSSH_OK`,
 * `EVSSH_EINVAL`, `EVSSH_ENOMEM` or `EVSSH_ECLOSED`. Never blocks. */
EVSSH_API int evssh_session_send_global_request(evssh_session *s, const char *type,
                                                const void *extra, size_t extra_len,
                                                evssh_global_reply_cb cb, void *ud);
/** An incoming global request of a registered type: return
 * EVSSH_REPLY_SUCCESS or EVSSH_REPLY_FAILURE (sent if the peer wants a
 * reply), or EVSSH_REPLY_SENT after evssh_session_send_global_reply(),
 * which may also come later, from outside the callback. */
typedef int (*evssh_global_request_cb)(evssh_session *s, const char *type,
                                       evssh_reader *data, bool want_reply, void *ud);
/** Handle the server's global requests of `type`; NULL removes the
 * handler. May be set before connecting (OpenSSH sends
 * hostkeys-00@openssh.com right after authentication). Unknown types get
 * REQUEST_FAILURE when a reply is wanted. Returns `EVSSH_OK`, or
 * `EVSSH_ENOMEM` when the handler cannot be stored. Never blocks. */
EVSSH_API int evssh_session_on_global_request(evssh_session *s, const char *type,
                                              evssh_global_request_cb cb, void *ud);
/** Answer the oldest global request still owed an answer (one whose
 * handler returned EVSSH_REPLY_SENT): `success`, and for success `len`
 * bytes of reply payload (copied). Answers go out in request order.
 * Returns `EVSSH_OK`, `EVSSH_EINVAL` when no answer is owed, or
 * `EVSSH_ECLOSED`. */
EVSSH_API int evssh_session_send_global_reply(evssh_session *s, bool success,
                                              const void *extra, size_t len);

/** The peer opens a channel of a registered type: `ch` is the new channel
 * (set its callbacks here), `data` the type-specific part of CHANNEL_OPEN.
 * Return 0 to accept (the channel is confirmed; requests and data issued
 * in here go out after the confirmation), or an RFC 4254 reason code
 * (> 0) to refuse. */
typedef int (*evssh_open_channel_cb)(evssh_session *s, evssh_channel *ch,
                                     evssh_reader *data, void *ud);
/** Accept channels of `type` the server opens ("forwarded-tcpip", ...)
 * through `cb`; NULL removes the handler. An unregistered type is refused
 * with reason 3, "unknown channel type". May be set before connecting.
 * Returns `EVSSH_OK`, or `EVSSH_ENOMEM` when the handler cannot be stored.
 * Never blocks. */
EVSSH_API int evssh_session_on_open_channel(evssh_session *s, const char *type,
                                            evssh_open_channel_cb cb, void *ud);

/** @} */

/* -------------------------------------------------------------- forwarding */

/** @defgroup forwarding Port and agent forwarding
 * Net::SSH's session.forward and ssh's -L, -R, -D and -A, over channels and
 * listen_to: everything runs in the session's loop, in an evssh_multi and
 * in a foreign loop (the listening and connected sockets are listen_to
 * fds). None of these calls blocks, except that a host name given as a
 * bind address or as a local target is resolved when the call is made.
 * See docs/forwarding.md.
 *
 * Memory per forwarded connection is bounded: the local socket is read
 * only while its channel has less than 512 KiB queued
 * (evssh_channel_pending()), and what the local socket has not taken yet
 * (at most the channel's receive window, 4 MiB) pauses the channel, so the
 * server stops sending until the socket drains. Half-close is passed on
 * both ways: EOF from the local socket becomes channel EOF, channel EOF
 * becomes shutdown(SHUT_WR). A connection ends when both directions are
 * done, when either side fails or resets, or when the session ends; every
 * socket of a session is closed when it ends (closed, failed, freed).
 * Failures of one connection are logged (a refused open or a closed target
 * port at `EVSSH_LOG_ERROR`, a reset at `EVSSH_LOG_INFO`) and end that
 * connection only. Errors of the calls: `EVSSH_EINVAL` (bad argument; the
 * message in evssh_session_error() names it), `EVSSH_ECONNECT` (cannot
 * listen: "cannot listen on 127.0.0.1 port 8080: Address already in use"),
 * `EVSSH_ECLOSED` (session over), `EVSSH_ENOMEM`.
 *
 * Addresses. A bind_address of NULL is 127.0.0.1 (every interface when the
 * session has `GatewayPorts=yes`), "" or "*" is every interface (0.0.0.0
 * and ::), "localhost" is 127.0.0.1 and ::1, anything else that address
 * (or name). A bind_address or local path starting with '/' is a unix
 * socket (the port is then ignored; the file must not exist; it is removed
 * when the forward ends). A target host starting with '/' is a unix socket
 * on the far side (direct-streamlocal@openssh.com for local forwards) or
 * here (remote forwards).
 * @{ */

/** ssh -L [bind_address:]port:host:hostport: listen here; each connection
 * goes to host:hostport (as the server resolves it) over a direct-tcpip
 * channel. `port` 0 picks a free port; `*bound_port` (may be NULL) gets the
 * port listened on. Returns at once (errors as for the group); connections
 * are served by the loop. */
EVSSH_API int evssh_forward_local(evssh_session *s, const char *bind_address, int port,
                                  const char *host, int hostport, int *bound_port);
/** ssh -L local_path:remote_path: a unix socket here, each connection to
 * the server's unix socket `remote_path` (direct-streamlocal@openssh.com).
 * Returns at once, errors as for evssh_forward_local(). */
EVSSH_API int evssh_forward_local_socket(evssh_session *s, const char *local_path, const char *remote_path);
/** Stop listening (`port`: as requested or as bound; `bind_address` a path
 * for unix ones); connections already open go on until they end. This also
 * cancels a dynamic forward. Returns `EVSSH_OK`, or `EVSSH_EINVAL` when
 * there is no such forward. */
EVSSH_API int evssh_forward_cancel_local(evssh_session *s, const char *bind_address, int port);

/** The server's answer to evssh_forward_remote() or
 * evssh_forward_remote_socket(): `status` `EVSSH_OK` with the port it
 * listens on in `bound_port` (0 for a path), `EVSSH_ECHANNEL` when it
 * refused, `EVSSH_ECLOSED` when the session ended first. */
typedef void (*evssh_forward_cb)(evssh_session *s, int status, int bound_port, void *ud);
/** ssh -R: ask the server to listen (tcpip-forward) on bind_address:port
 * (NULL: "localhost" as ssh sends it, "" or "*": every interface; `port` 0:
 * the server picks). Returns at once; `cb` (may be NULL) runs once the
 * server answered (a refusal is also logged: "remote port forwarding
 * failed for listen port 9000"). Each connection the server gets arrives
 * as a forwarded-tcpip channel and is joined to a new connection to
 * host:hostport here (`host` starting with '/': a unix socket). A
 * connection that cannot be made closes that channel (and is logged). */
EVSSH_API int evssh_forward_remote(evssh_session *s, const char *bind_address, int port,
                                   const char *host, int hostport, evssh_forward_cb cb, void *ud);
/** ssh -R remote_path:host:hostport: the server listens on its unix socket
 * `remote_path` (streamlocal-forward@openssh.com); `cb` as for
 * evssh_forward_remote(), with `bound_port` 0. */
EVSSH_API int evssh_forward_remote_socket(evssh_session *s, const char *remote_path,
                                          const char *host, int hostport, evssh_forward_cb cb, void *ud);
/** cancel-tcpip-forward (or cancel-streamlocal-forward@openssh.com for a
 * `bind_address` starting with '/'); `port` as requested or as bound. The
 * forward is gone at once: connections the server still opens for it are
 * refused. Returns `EVSSH_OK`, or `EVSSH_EINVAL` when there is no such
 * forward. */
EVSSH_API int evssh_forward_cancel_remote(evssh_session *s, const char *bind_address, int port);

/** ssh -D: a SOCKS proxy here (SOCKS4, SOCKS4a, SOCKS5 without
 * authentication; CONNECT to an IPv4 or IPv6 address or a domain name,
 * which the server resolves). Each CONNECT opens a direct-tcpip channel;
 * the SOCKS reply says whether the server could connect (a refused open
 * maps to the closest SOCKS error: connection refused, host or network
 * unreachable, not allowed). BIND, UDP ASSOCIATE and other auth methods
 * get their SOCKS refusal; garbage closes the connection. `*bound_port`
 * (may be NULL) gets the port listened on. Cancel with
 * evssh_forward_cancel_local(). Returns at once, errors as for the group. */
EVSSH_API int evssh_forward_dynamic(evssh_session *s, const char *bind_address, int port, int *bound_port);

/** Agent forwarding on a session channel (auth-agent-req@openssh.com, and
 * the IETF name agent-req when a server refuses that one), before or after
 * the channel is confirmed. Afterwards the server's auth-agent@openssh.com
 * (also auth-agent and agent-connect) channels are joined to the local
 * agent: `ForwardAgent=PATH` or `$NAME` when set, else `IdentityAgent`,
 * else `$SSH_AUTH_SOCK`. `cb` (may be NULL) gets the server's answer.
 * Returns `EVSSH_OK`; `EVSSH_EINVAL` at once when there is no agent to
 * forward ("agent forwarding: no ssh-agent: SSH_AUTH_SOCK is not set"),
 * `EVSSH_ECONNECT` when its socket cannot be reached; an agent that goes
 * away later refuses the server's channel (the remote ssh-add says it
 * cannot connect; nothing hangs). Agent channels are invisible (they keep
 * no loop busy). `ForwardAgent=yes` (or a path) in the options requests it
 * once, after authentication, on a session channel of its own, which
 * OpenSSH's sshd honours for every later session. */
EVSSH_API int evssh_channel_request_agent(evssh_channel *ch, evssh_reply_cb cb, void *ud);

/** The kind of an evssh_forward_info entry. */
typedef enum {
  EVSSH_FORWARD_LOCAL = 1,   /**< evssh_forward_local(), evssh_forward_local_socket() */
  EVSSH_FORWARD_REMOTE = 2,  /**< evssh_forward_remote(), evssh_forward_remote_socket() */
  EVSSH_FORWARD_DYNAMIC = 3  /**< evssh_forward_dynamic() */
} evssh_forward_kind;
/** One forward of a session, as evssh_forward_list() reports it. */
typedef struct evssh_forward_info {
  int kind;                 /**< an evssh_forward_kind */
  const char *bind_address; /**< as given (NULL: the default), or the socket path */
  int port;                 /**< as requested (0 for a path) */
  int bound_port;           /**< listened on; remote: 0 until the server answered */
  const char *host;         /**< target host or path; NULL for dynamic */
  int hostport;             /**< target port */
  bool active;              /**< listening (remote: the server said yes) */
  size_t connections;       /**< connections open through it now */
} evssh_forward_info;
/** The session's forwards (Net::SSH's active_locals / active_remotes), in
 * the order they were made. Fills up to `max` entries of `out` and returns
 * how many there are (0 for NULL `s`). The strings belong to the forwards:
 * they live until that forward is cancelled (and its last connection
 * ended), the server refuses it, or the session is freed. Never blocks. */
EVSSH_API size_t evssh_forward_list(evssh_session *s, evssh_forward_info *out, size_t max);

/** @} */

/* --------------------------------------------------------- exec helpers */

/** @defgroup exec Exec conveniences
 * Net::SSH's exec and exec! over session channels.
 * @{ */

/** Which stream an evssh_exec_cb chunk came from. */
typedef enum { EVSSH_STDOUT = 0, EVSSH_STDERR = 1 } evssh_stream;
/** Output of a command started with evssh_session_exec(): `len` bytes of
 * `stream`, valid only during the call, not NUL-terminated. */
typedef void (*evssh_exec_cb)(evssh_channel *ch, evssh_stream stream,
                              const char *data, size_t len, void *ud);
/** Net::SSH's exec: open a session channel and run `command` on it.
 * Returns the channel at once (set on_close on it to learn the exit status
 * with evssh_channel_exit_status()), or NULL when the session is not
 * connected or out of memory. The session's loop runs the command; `cb`
 * gets stdout and stderr chunks as they arrive; NULL copies them to this
 * process's stdout and stderr. A command the server refuses to run closes
 * the channel (logged at EVSSH_LOG_ERROR). Nothing is written to the
 * command's stdin and no EOF is sent: use evssh_channel_send_data() and
 * evssh_channel_eof() on the returned channel. Never blocks. */
EVSSH_API evssh_channel *evssh_session_exec(evssh_session *s, const char *command,
                                            evssh_exec_cb cb, void *ud);

/** @var evssh_result::out
 * Everything the command wrote to stdout, NUL-terminated too (it may
 * contain NUL bytes itself: use out_len). */
/** @var evssh_result::out_len
 * The number of bytes in out, without the terminating NUL. */
/** @var evssh_result::err
 * Everything the command wrote to stderr, NUL-terminated too. */
/** @var evssh_result::err_len
 * The number of bytes in err, without the terminating NUL. */
/** @var evssh_result::exit_status
 * The command's exit status, or -1 when the server sent none (killed by a
 * signal, or the channel closed without one). */
/** @var evssh_result::exit_signal
 * The signal that killed the command, without "SIG" ("TERM"), or NULL. */
/** What evssh_session_exec_wait() collected. The strings are the
 * caller's to free, with evssh_result_free(). */
typedef struct evssh_result {
  char *out;  size_t out_len;  /* stdout, NUL-terminated too */
  char *err;  size_t err_len;  /* stderr, NUL-terminated too */
  int exit_status;             /* -1 if none was sent */
  char *exit_signal;           /* "TERM", or NULL */
} evssh_result;
/** Net::SSH's exec!: run `command` to completion and collect stdout,
 * stderr, the exit status and the exit signal in `*result`. The command's
 * stdin gets EOF at once (as `ssh host cmd < /dev/null`). **Blocking**;
 * every other channel of the session keeps being served meanwhile, and from
 * inside a callback it runs a nested loop. Returns `EVSSH_OK` (whatever the
 * exit status), `EVSSH_ECHANNEL` when the server refused the channel or the
 * command, or the session's code when it ended first; on failure `*result`
 * holds nothing to free (evssh_result_free() is still harmless). */
EVSSH_API int evssh_session_exec_wait(evssh_session *s, const char *command, evssh_result *result);
/** Free what evssh_session_exec_wait() put in `*result` and reset it
 * (exit_status -1); NULL and an already freed result are fine. */
EVSSH_API void evssh_result_free(evssh_result *result);

/** @} */

/* -------------------------------------------------------------------- SFTP */

/** @defgroup sftp SFTP
 * SFTP protocol version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH's
 * sftp-server speaks it, with its extensions used when the server
 * advertises them. An evssh_sftp is one "sftp" subsystem channel on a
 * session; it runs on the session's loop (evssh_session_loop(), a multi,
 * or a foreign loop) and never blocks except in the functions marked
 * **Blocking**. Many evssh_sftp may share a session, and any number of
 * requests and transfers may run at once on one evssh_sftp. See
 * docs/sftp.md.
 *
 * Conventions for every call below:
 * - An asynchronous call returns `EVSSH_OK` when the request is on its
 *   way; its callback then runs exactly once, from the loop (never from
 *   inside the call). Any other return means no callback will run:
 *   `EVSSH_EINVAL` (bad argument), `EVSSH_ECLOSED` (the sftp is not ready
 *   or has failed), `EVSSH_ENOMEM`, `EVSSH_ESFTP` with evssh_sftp_status()
 *   == `EVSSH_SFTP_FX_OP_UNSUPPORTED` for an extension the server does not
 *   advertise, `EVSSH_EBUSY` past `EVSSH_SFTP_MAX_PENDING` requests.
 * - A callback's status is `EVSSH_OK`; `EVSSH_ESFTP` when the server
 *   answered with an error status (evssh_sftp_status() gives its SSH_FX
 *   code and evssh_sftp_error() "remote: No such file (/srv/x)": the
 *   server's message and the path); `EVSSH_EPROTO` when the server broke
 *   the protocol (malformed or oversized packet, a reply to no request: the
 *   sftp is then failed); `EVSSH_ECLOSED` when the channel or session
 *   ended first.
 * - Pointers a callback receives (data, names, attributes) are valid only
 *   during the callback; paths and buffers passed in are copied.
 * - evssh_sftp_error() / evssh_sftp_status() describe the most recent
 *   failure; inside a failing request's callback, that request's.
 * - Callbacks may call any evssh_sftp_* function, evssh_sftp_free()
 *   included (the free then happens when the callback returns). The
 *   blocking calls run a nested loop from inside any callback, except from
 *   one of the same sftp's own callbacks, where they return `EVSSH_EBUSY`
 *   (that sftp's replies are being dispatched further up the stack).
 * @{ */

/** One SFTP session: a subsystem channel, its request table and its
 * transfers. Opened by evssh_sftp_open(), freed by evssh_sftp_free(). */
typedef struct evssh_sftp evssh_sftp;
/** An open remote file or directory: valid from its open callback until
 * its close callback has returned, or until evssh_sftp_free(). */
typedef struct evssh_sftp_file evssh_sftp_file;
/** A request's or transfer's completion, or the sftp's readiness:
 * `status` as in the conventions above. */
typedef void (*evssh_sftp_cb)(evssh_sftp *sftp, int status, void *ud);

/** SSH_FX status codes, as evssh_sftp_status() reports them. */
enum {
  EVSSH_SFTP_FX_OK = 0,
  EVSSH_SFTP_FX_EOF = 1,
  EVSSH_SFTP_FX_NO_SUCH_FILE = 2,
  EVSSH_SFTP_FX_PERMISSION_DENIED = 3,
  EVSSH_SFTP_FX_FAILURE = 4,
  EVSSH_SFTP_FX_BAD_MESSAGE = 5,
  EVSSH_SFTP_FX_NO_CONNECTION = 6,
  EVSSH_SFTP_FX_CONNECTION_LOST = 7,
  EVSSH_SFTP_FX_OP_UNSUPPORTED = 8
};

/** The "sftp" subsystem on a new session channel. Returns at once (NULL
 * only for a bad argument, a session that is not connected, or no memory);
 * `on_ready` (may be NULL) runs from the loop once SSH_FXP_VERSION (and the
 * server's limits@openssh.com, when advertised) has arrived, with
 * `EVSSH_OK`, or with `EVSSH_ECHANNEL` (channel or subsystem refused: "is
 * 'Subsystem sftp' configured?"), `EVSSH_EPROTO` (the server's first bytes
 * are no SFTP VERSION), `EVSSH_ECLOSED`. A server that never answers keeps
 * it waiting (evssh_sftp_start() bounds that). The handle stays allocated
 * after a failure: free it with evssh_sftp_free(). Never blocks. */
EVSSH_API evssh_sftp *evssh_sftp_open(evssh_session *s, evssh_sftp_cb on_ready, void *ud);
/** As evssh_sftp_open() with another subsystem name; a name containing '/'
 * is run as a command (an exec request), as
 * `sftp -s /usr/lib/openssh/sftp-server`. Never blocks. */
EVSSH_API evssh_sftp *evssh_sftp_open_subsystem(evssh_session *s, const char *subsystem,
                                                evssh_sftp_cb on_ready, void *ud);
/** evssh_sftp_open() and run the session's loop until it is ready.
 * **Blocking**, for 60 s at most: a server that takes the subsystem and
 * never answers ends in `EVSSH_ETIMEOUT`. From inside a callback it runs a
 * nested loop. Returns the ready sftp, or NULL with `*err` filled (err may
 * be NULL). */
EVSSH_API evssh_sftp *evssh_sftp_start(evssh_session *s, evssh_error *err);
/** evssh_sftp_start() for another subsystem name or command, as
 * evssh_sftp_open_subsystem(). **Blocking**, as evssh_sftp_start(). */
EVSSH_API evssh_sftp *evssh_sftp_start_subsystem(evssh_session *s, const char *subsystem,
                                                 evssh_error *err);
/** Close the channel and free everything: pending requests and transfers
 * are dropped without their callbacks, open evssh_sftp_file handles become
 * invalid, local files of transfers are closed as they are. NULL is fine.
 * Also valid after the session has been freed, and from inside the sftp's
 * own callbacks (the free happens when the callback returns), but not
 * while a blocking call (_wait, start) on this sftp runs further up the
 * stack. Never blocks. */
EVSSH_API void evssh_sftp_free(evssh_sftp *sftp);
/** The most recent failure, "remote: No such file (/x/y)"; "" when nothing
 * failed yet. Valid until the next call on the sftp. */
EVSSH_API const char *evssh_sftp_error(const evssh_sftp *sftp);
/** The server's SSH_FX code for the failure evssh_sftp_error() describes
 * (0 when that failure was not a server status). */
EVSSH_API uint32_t evssh_sftp_status(const evssh_sftp *sftp);
/** The session the sftp runs on; NULL once its channel is gone. */
EVSSH_API evssh_session *evssh_sftp_session(const evssh_sftp *sftp);
/** True between on_ready(`EVSSH_OK`) and the end of the channel. */
EVSSH_API bool evssh_sftp_ready(const evssh_sftp *sftp);
/** The version string the server advertised for an extension
 * ("posix-rename@openssh.com" gives "1"), or NULL; valid while the sftp
 * lives. */
EVSSH_API const char *evssh_sftp_extension(const evssh_sftp *sftp, const char *name);
/** limits@openssh.com as the server sent them (all 0 when not advertised). */
typedef struct evssh_sftp_limits {
  uint64_t max_packet_length, max_read_length, max_write_length, max_open_handles;
} evssh_sftp_limits;
/** @var evssh_sftp_limits::max_packet_length
 * The largest SFTP packet the server accepts, length field included. */
/** @var evssh_sftp_limits::max_read_length
 * The largest READ the server answers in full. */
/** @var evssh_sftp_limits::max_write_length
 * The largest WRITE the server accepts. */
/** @var evssh_sftp_limits::max_open_handles
 * Handles the server lets one session hold open (0: no limit). */
/** Fill `*out` with the server's limits. Returns `EVSSH_OK` or
 * `EVSSH_EINVAL` (NULL argument). */
EVSSH_API int evssh_sftp_server_limits(const evssh_sftp *sftp, evssh_sftp_limits *out);
/** Requests sent and not answered yet (transfers' included, on the extra
 * upload channels too). */
EVSSH_API size_t evssh_sftp_pending(const evssh_sftp *sftp);
/** Requests one sftp may have unanswered; past it calls return `EVSSH_EBUSY`. */
#define EVSSH_SFTP_MAX_PENDING 65536

/** Pipelining of whole-file transfers, for transfers started afterwards (0
 * keeps a value's default): `max_requests` in flight per transfer (default
 * 64, at most 1024; each transfer ramps up to it), `block_size` per
 * READ/WRITE (default: from limits@openssh.com, else 32768; never more
 * than the server's limits), `max_inflight_bytes`: the cap on bytes
 * requested or written and not yet answered and written out, for all
 * transfers of this sftp together (default 16 MiB), which bounds the
 * memory transfers hold. Returns `EVSSH_OK` or `EVSSH_EINVAL`. */
EVSSH_API int evssh_sftp_set_pipeline(evssh_sftp *sftp, uint32_t max_requests, uint32_t block_size,
                                      size_t max_inflight_bytes);
/** The receive window of the sftp's channel (default 16 MiB, where other
 * channels get 4 MiB): it should be at least the bandwidth-delay product
 * (50 ms at 1 Gbit/s: 6 MiB). Applied at once through
 * evssh_channel_set_receive_window(). Returns `EVSSH_OK` or `EVSSH_EINVAL`. */
EVSSH_API int evssh_sftp_set_receive_window(evssh_sftp *sftp, uint32_t bytes);
/** The most channels evssh_sftp_set_upload_channels() takes. */
#define EVSSH_SFTP_MAX_UPLOAD_CHANNELS 8
/** Spread uploads over `n` "sftp" subsystem channels of the sftp's session
 * (1, the default: only the sftp's own; at most
 * `EVSSH_SFTP_MAX_UPLOAD_CHANNELS`). A server grants each channel a fixed
 * window (OpenSSH: 2 MiB) that a client cannot enlarge, so one channel
 * carries at most that much per round trip (about 40 MB/s at 50 ms); n
 * channels carry n windows. The default stays 1 because each extra channel
 * holds one of the server's MaxSessions slots (sshd: 10 per connection,
 * shared with the program's own channels) and a server process while the
 * sftp lives.
 *
 * The n-1 extra channels are opened lazily, without blocking: when an
 * upload starts with more than 8 blocks to send (about 2 MiB with
 * OpenSSH's 255 KiB writes), and they are kept for later uploads until the
 * sftp is freed (or n is lowered: idle ones are closed then). Each joins a
 * running upload once ready, while a quarter of that threshold is left:
 * the upload opens the remote file on it for writing (after the sftp's own
 * OPEN, with CREAT and TRUNC unless resuming, succeeded) and sends each
 * WRITE on the channel with the most send window left over what it has
 * queued. The ramp, evssh_sftp_set_pipeline()'s max_requests and
 * max_inflight_bytes apply to the whole upload, not per channel. Every
 * extra handle is closed (after fsync@openssh.com with `EVSSH_SFTP_FSYNC`)
 * before the upload's own handle is synced, stamped and closed, and before
 * done runs. Downloads use only the sftp's own channel (its receive window
 * is ours to size: evssh_sftp_set_receive_window()).
 *
 * Progress and evssh_sftp_transferred() still count the prefix in place at
 * the destination. A failure on any channel (closed, a status error, the
 * server gone) stops the whole upload with the same error as on one
 * channel; the remote file is then cut back to that prefix while the
 * sftp's own channel works, so `EVSSH_SFTP_RESUME` resumes safely. When
 * the whole connection was lost, the remote file may hold bytes past the
 * prefix with gaps between them: resume from evssh_sftp_transferred()'s
 * offset, not from its size.
 *
 * A channel the server refuses (sshd's MaxSessions, the subsystem refused)
 * is logged at `EVSSH_LOG_INFO` and the upload goes on with fewer; the
 * lower count stays for this sftp until this function is called again.
 * With n > 1, each upload that ran logs at `EVSSH_LOG_INFO` how many
 * channels carried its WRITEs. Returns `EVSSH_OK` or `EVSSH_EINVAL` (NULL,
 * n == 0, n too large). Never blocks; runs no callback. */
EVSSH_API int evssh_sftp_set_upload_channels(evssh_sftp *sftp, unsigned n);
/** Channels uploads may use right now: 1 (the sftp's own) plus the extra
 * channels that are open and ready. 0 for NULL. */
EVSSH_API unsigned evssh_sftp_upload_channels(const evssh_sftp *sftp);

/** Attribute flag: evssh_sftp_attrs::size is set. */
#define EVSSH_SFTP_ATTR_SIZE 0x1u
/** Attribute flag: evssh_sftp_attrs::uid and gid are set. */
#define EVSSH_SFTP_ATTR_UIDGID 0x2u
/** Attribute flag: evssh_sftp_attrs::permissions is set. */
#define EVSSH_SFTP_ATTR_PERMISSIONS 0x4u
/** Attribute flag: evssh_sftp_attrs::atime and mtime are set. */
#define EVSSH_SFTP_ATTR_ACMODTIME 0x8u
/** Attribute flag: evssh_sftp_attrs::extended holds extended pairs. */
#define EVSSH_SFTP_ATTR_EXTENDED 0x80000000u
/** File attributes (ATTRS): a field is meaningful when its flag is set in
 * `flags`. */
typedef struct evssh_sftp_attrs {
  uint32_t flags;
  uint64_t size;
  uint32_t uid, gid;
  uint32_t permissions;        /* st_mode: type and permission bits */
  uint32_t atime, mtime;       /* seconds since the epoch */
  uint32_t extended_count;
  const unsigned char *extended;
  size_t extended_len;
} evssh_sftp_attrs;
/** @var evssh_sftp_attrs::flags
 * `EVSSH_SFTP_ATTR_*` bits: which fields below are set. */
/** @var evssh_sftp_attrs::size
 * The file's size in bytes. */
/** @var evssh_sftp_attrs::uid
 * The owner's numeric id. */
/** @var evssh_sftp_attrs::gid
 * The group's numeric id. */
/** @var evssh_sftp_attrs::permissions
 * st_mode: the type and permission bits. */
/** @var evssh_sftp_attrs::atime
 * Access time, seconds since the epoch. */
/** @var evssh_sftp_attrs::mtime
 * Modification time, seconds since the epoch. */
/** @var evssh_sftp_attrs::extended_count
 * The number of (string type, string data) pairs in `extended`. */
/** @var evssh_sftp_attrs::extended
 * The extended pairs, raw, to read with evssh_read_string(); on input the
 * caller's bytes, sent as they are. */
/** @var evssh_sftp_attrs::extended_len
 * Bytes at `extended`. */

/** A directory entry or one name of a NAME reply. */
typedef struct evssh_sftp_name {
  const char *filename;
  size_t filename_len;
  const char *longname;
  evssh_sftp_attrs attrs;
} evssh_sftp_name;
/** @var evssh_sftp_name::filename
 * The name, NUL-terminated. */
/** @var evssh_sftp_name::filename_len
 * Bytes in `filename`. */
/** @var evssh_sftp_name::longname
 * The server's `ls -l` line, NUL-terminated; "" if none. */
/** @var evssh_sftp_name::attrs
 * The entry's attributes as the server sent them. */

/** statvfs@openssh.com's answer, the fields of statvfs(3) (`flag` holds
 * ST_RDONLY 0x1 and ST_NOSUID 0x2). */
typedef struct evssh_sftp_fsstat {
  uint64_t bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax;
} evssh_sftp_fsstat;
/** @var evssh_sftp_fsstat::bsize
 * The filesystem block size. */
/** @var evssh_sftp_fsstat::frsize
 * The fragment size: the unit of `blocks`. */
/** @var evssh_sftp_fsstat::blocks
 * The filesystem's size in `frsize` units. */
/** @var evssh_sftp_fsstat::bfree
 * Free blocks. */
/** @var evssh_sftp_fsstat::bavail
 * Free blocks available to unprivileged users. */
/** @var evssh_sftp_fsstat::files
 * Inodes in all. */
/** @var evssh_sftp_fsstat::ffree
 * Free inodes. */
/** @var evssh_sftp_fsstat::favail
 * Free inodes available to unprivileged users. */
/** @var evssh_sftp_fsstat::fsid
 * The filesystem id. */
/** @var evssh_sftp_fsstat::flag
 * Mount flags: ST_RDONLY 0x1, ST_NOSUID 0x2. */
/** @var evssh_sftp_fsstat::namemax
 * The longest file name. */

/** An open or opendir completion: `file` is the new handle on `EVSSH_OK`,
 * NULL otherwise. */
typedef void (*evssh_sftp_file_cb)(evssh_sftp *sftp, int status, evssh_sftp_file *file, void *ud);
/** A READ's answer: `len` bytes at `data`; `EVSSH_OK` with `len` 0 is the
 * end of the file. */
typedef void (*evssh_sftp_data_cb)(evssh_sftp *sftp, int status, const char *data, size_t len, void *ud);
/** A stat-like answer: `attrs` on `EVSSH_OK`, NULL otherwise. */
typedef void (*evssh_sftp_attrs_cb)(evssh_sftp *sftp, int status, const evssh_sftp_attrs *attrs, void *ud);
/** A READDIR batch of `count` entries; `EVSSH_OK` with `count` 0 is the
 * end of the directory. */
typedef void (*evssh_sftp_names_cb)(evssh_sftp *sftp, int status, const evssh_sftp_name *names,
                                    size_t count, void *ud);
/** One entry of evssh_sftp_list(). */
typedef void (*evssh_sftp_entry_cb)(evssh_sftp *sftp, const evssh_sftp_name *entry, void *ud);
/** A path answer (realpath, readlink, expand-path, home-directory): `path`
 * NUL-terminated on `EVSSH_OK`, NULL otherwise. */
typedef void (*evssh_sftp_path_cb)(evssh_sftp *sftp, int status, const char *path, void *ud);
/** A statvfs answer: `st` on `EVSSH_OK`, NULL otherwise. */
typedef void (*evssh_sftp_statvfs_cb)(evssh_sftp *sftp, int status, const evssh_sftp_fsstat *st, void *ud);
/** users-groups-by-id@openssh.com's answer: names in request order, ""
 * where the server knows none. */
typedef void (*evssh_sftp_ids_cb)(evssh_sftp *sftp, int status, const char *const *users, size_t nusers,
                                  const char *const *groups, size_t ngroups, void *ud);
/** An extended request's raw reply: the EXTENDED_REPLY body (empty for an
 * OK status). */
typedef void (*evssh_sftp_reply_cb)(evssh_sftp *sftp, int status, evssh_reader *reply, void *ud);

/** SSH_FXF open flags for evssh_sftp_open_file(). */
enum {
  EVSSH_SFTP_READ = 0x1, EVSSH_SFTP_WRITE = 0x2, EVSSH_SFTP_APPEND = 0x4,
  EVSSH_SFTP_CREAT = 0x8, EVSSH_SFTP_TRUNC = 0x10, EVSSH_SFTP_EXCL = 0x20
};

/** OPEN `path` with `pflags` (`EVSSH_SFTP_READ` …) and `attrs` (NULL: none)
 * for a new file. Never blocks; `cb` as in the conventions. */
EVSSH_API int evssh_sftp_open_file(evssh_sftp *sftp, const char *path, uint32_t pflags,
                                   const evssh_sftp_attrs *attrs, evssh_sftp_file_cb cb, void *ud);
/** OPENDIR `path`, for evssh_sftp_readdir(). Never blocks. */
EVSSH_API int evssh_sftp_opendir(evssh_sftp *sftp, const char *path, evssh_sftp_file_cb cb, void *ud);
/** CLOSE: the handle is freed after `cb` returns, whatever the status (also
 * when the channel is gone). Never blocks. */
EVSSH_API int evssh_sftp_close(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud);
/** The path the file was opened with; valid while the handle is. */
EVSSH_API const char *evssh_sftp_file_path(const evssh_sftp_file *file);
/** READ of up to `len` bytes at `offset` (a shorter answer is not the end
 * of the file). Never blocks. */
EVSSH_API int evssh_sftp_read(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset, uint32_t len,
                              evssh_sftp_data_cb cb, void *ud);
/** WRITE `len` bytes at `offset`; `data` is copied. `len` above the
 * server's max-write-length (limits@openssh.com; 261120 when not
 * advertised) is `EVSSH_EINVAL`. Never blocks. */
EVSSH_API int evssh_sftp_write(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset,
                               const void *data, size_t len, evssh_sftp_cb cb, void *ud);
/** STAT (symlinks followed). Never blocks. */
EVSSH_API int evssh_sftp_stat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud);
/** LSTAT (symlinks not followed). Never blocks. */
EVSSH_API int evssh_sftp_lstat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud);
/** FSTAT of an open file. Never blocks. */
EVSSH_API int evssh_sftp_fstat(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_attrs_cb cb, void *ud);
/** SETSTAT: the attributes whose flags are set. Never blocks. */
EVSSH_API int evssh_sftp_setstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                                 evssh_sftp_cb cb, void *ud);
/** FSETSTAT of an open file. Never blocks. */
EVSSH_API int evssh_sftp_fsetstat(evssh_sftp *sftp, evssh_sftp_file *file, const evssh_sftp_attrs *attrs,
                                  evssh_sftp_cb cb, void *ud);
/** One READDIR: a batch of entries (count 0: the end). Never blocks. */
EVSSH_API int evssh_sftp_readdir(evssh_sftp *sftp, evssh_sftp_file *dir, evssh_sftp_names_cb cb, void *ud);
/** A whole directory, streamed: OPENDIR, READDIR until the end (`on_entry`
 * for each entry, "." and ".." included, as they come), CLOSE, then
 * `done`. Never blocks. */
EVSSH_API int evssh_sftp_list(evssh_sftp *sftp, const char *path, evssh_sftp_entry_cb on_entry,
                              evssh_sftp_cb done, void *ud);
/** MKDIR with `attrs` (NULL: the server's default mode). Never blocks. */
EVSSH_API int evssh_sftp_mkdir(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                               evssh_sftp_cb cb, void *ud);
/** RMDIR of an empty directory. Never blocks. */
EVSSH_API int evssh_sftp_rmdir(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud);
/** REMOVE a file. Never blocks. */
EVSSH_API int evssh_sftp_remove(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud);
/** RENAME: fails when `newpath` exists (the draft's semantics; see
 * evssh_sftp_posix_rename()). Never blocks. */
EVSSH_API int evssh_sftp_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                evssh_sftp_cb cb, void *ud);
/** REALPATH: `path` canonicalised by the server. Never blocks. */
EVSSH_API int evssh_sftp_realpath(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
/** READLINK: a symlink's target. Never blocks. */
EVSSH_API int evssh_sftp_readlink(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
/** SYMLINK: `linkpath` pointing at `target` (sent in OpenSSH's argument
 * order, PROTOCOL 4.1). Never blocks. */
EVSSH_API int evssh_sftp_symlink(evssh_sftp *sftp, const char *target, const char *linkpath,
                                 evssh_sftp_cb cb, void *ud);
/** posix-rename@openssh.com: rename replacing `newpath`. This and the
 * extension calls below return `EVSSH_ESFTP` (OP_UNSUPPORTED) at once when
 * the server does not advertise the extension. Never blocks. */
EVSSH_API int evssh_sftp_posix_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                      evssh_sftp_cb cb, void *ud);
/** statvfs@openssh.com of the filesystem holding `path`. Never blocks. */
EVSSH_API int evssh_sftp_statvfs(evssh_sftp *sftp, const char *path, evssh_sftp_statvfs_cb cb, void *ud);
/** fstatvfs@openssh.com of an open file's filesystem. Never blocks. */
EVSSH_API int evssh_sftp_fstatvfs(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_statvfs_cb cb, void *ud);
/** fsync@openssh.com of an open file. Never blocks. */
EVSSH_API int evssh_sftp_fsync(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud);
/** hardlink@openssh.com: `newpath` as a new name of `oldpath`. Never blocks. */
EVSSH_API int evssh_sftp_hardlink(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                  evssh_sftp_cb cb, void *ud);
/** lsetstat@openssh.com: SETSTAT not following a symlink. Never blocks. */
EVSSH_API int evssh_sftp_lsetstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                                  evssh_sftp_cb cb, void *ud);
/** copy-data: a server-side copy of `length` bytes (0: to the end of
 * `from`) from `from` at `from_offset` to `to` at `to_offset`. Never
 * blocks. */
EVSSH_API int evssh_sftp_copy_data(evssh_sftp *sftp, evssh_sftp_file *from, uint64_t from_offset,
                                   uint64_t length, evssh_sftp_file *to, uint64_t to_offset,
                                   evssh_sftp_cb cb, void *ud);
/** expand-path@openssh.com: "~", "~/x", "~user/x" and relative paths,
 * canonicalised. Never blocks. */
EVSSH_API int evssh_sftp_expand_path(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
/** home-directory: a user's home directory. "" means the logged-in user by
 * PROTOCOL, but OpenSSH 9.2's sftp-server answers Failure to "" (realpath
 * of "." gives the login directory there). Never blocks. */
EVSSH_API int evssh_sftp_home_directory(evssh_sftp *sftp, const char *user, evssh_sftp_path_cb cb, void *ud);
/** users-groups-by-id@openssh.com: the names of `nuids` user ids and
 * `ngids` group ids. Never blocks. */
EVSSH_API int evssh_sftp_users_groups_by_id(evssh_sftp *sftp, const uint32_t *uids, size_t nuids,
                                            const uint32_t *gids, size_t ngids,
                                            evssh_sftp_ids_cb cb, void *ud);
/** Any other SSH_FXP_EXTENDED request: `data` is the request-specific part
 * (after the name), sent as it is; no advertisement check. Never blocks. */
EVSSH_API int evssh_sftp_extended(evssh_sftp *sftp, const char *request, const void *data, size_t len,
                                  evssh_sftp_reply_cb cb, void *ud);

/** Progress of a whole-file transfer: `done` bytes in place at the
 * destination (a prefix, resume offset included) of `total` (0 when
 * unknown). */
typedef void (*evssh_sftp_progress_cb)(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud);
/** As a transfer's offset: resume from the destination's current size. */
#define EVSSH_SFTP_RESUME UINT64_MAX
/** Upload the local file `local` to `remote`. Pipelined: up to
 * max_requests WRITEs in flight after a ramp, block size from
 * limits@openssh.com, bounded by max_inflight_bytes
 * (evssh_sftp_set_pipeline()). `offset` > 0 resumes: the transfer starts
 * there and the remote file is opened without TRUNC;
 * `EVSSH_SFTP_RESUME` takes the offset from the remote file's size.
 * `progress` may be NULL; `done` runs once. Returns `EVSSH_EINVAL`, with
 * evssh_sftp_error() set ("local: /x: No such file or directory"), when
 * the local file cannot be opened; `done` is then not called. On failure
 * done's status is the cause (`EVSSH_ESFTP`, `EVSSH_ECLOSED`,
 * `EVSSH_EPROTO`, or `EVSSH_EINVAL` for a local I/O error) and
 * evssh_sftp_error() says what and how far it got; evssh_sftp_transferred()
 * gives that byte count (the offset to resume from). Never blocks. */
EVSSH_API int evssh_sftp_upload(evssh_sftp *sftp, const char *local, const char *remote, uint64_t offset,
                                evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud);
/** Download `remote` to the local file `local`, as evssh_sftp_upload() the
 * other way. The local file is written strictly in offset order, so after
 * any failure it is an exact prefix of the remote one ("download of /srv/x
 * to /tmp/x stopped after 5242880 of 10485760 bytes: ..."); the transfer
 * stops cleanly at the end of the file (a short read is asked again for
 * the rest). With `offset` > 0 the local file is opened without truncating
 * and cut to the final size at the end. Never blocks. */
EVSSH_API int evssh_sftp_download(evssh_sftp *sftp, const char *remote, const char *local, uint64_t offset,
                                  evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud);
/** evssh_sftp_upload() from offset 0, run to its end. **Blocking**; from
 * inside a callback a nested loop (`EVSSH_EBUSY` from the same sftp's
 * callbacks). Returns done's status. */
EVSSH_API int evssh_sftp_upload_wait(evssh_sftp *sftp, const char *local, const char *remote);
/** evssh_sftp_download() from offset 0, run to its end. **Blocking**, as
 * evssh_sftp_upload_wait(). Returns done's status. */
EVSSH_API int evssh_sftp_download_wait(evssh_sftp *sftp, const char *remote, const char *local);

/** Transfer flags for evssh_sftp_upload_flags() and
 * evssh_sftp_download_flags():
 * - `EVSSH_SFTP_PRESERVE`: permissions and access/modification times
 *   copied to the destination (directories too, in a tree);
 * - `EVSSH_SFTP_RECURSIVE`: local/remote may be directories: the whole
 *   tree is copied (regular files and directories; other entries, symlinks
 *   included, are skipped); destination directories are created as
 *   needed; offset must be 0 or `EVSSH_SFTP_RESUME` (then per file);
 *   progress counts the whole tree;
 * - `EVSSH_SFTP_FSYNC`: upload: fsync@openssh.com before the close, when
 *   advertised. */
enum {
  EVSSH_SFTP_PRESERVE = 0x1,
  EVSSH_SFTP_RECURSIVE = 0x2,
  EVSSH_SFTP_FSYNC = 0x4
};
/** evssh_sftp_upload() with `flags` (`EVSSH_SFTP_PRESERVE` …). Never
 * blocks. */
EVSSH_API int evssh_sftp_upload_flags(evssh_sftp *sftp, const char *local, const char *remote,
                                      uint64_t offset, unsigned flags, evssh_sftp_progress_cb progress,
                                      evssh_sftp_cb done, void *ud);
/** evssh_sftp_download() with `flags`. Never blocks. */
EVSSH_API int evssh_sftp_download_flags(evssh_sftp *sftp, const char *remote, const char *local,
                                        uint64_t offset, unsigned flags, evssh_sftp_progress_cb progress,
                                        evssh_sftp_cb done, void *ud);
/** evssh_sftp_upload_flags() run to its end. **Blocking**, as
 * evssh_sftp_upload_wait(). Returns done's status. */
EVSSH_API int evssh_sftp_upload_flags_wait(evssh_sftp *sftp, const char *local, const char *remote,
                                           uint64_t offset, unsigned flags);
/** evssh_sftp_download_flags() run to its end. **Blocking**, as
 * evssh_sftp_upload_wait(). Returns done's status. */
EVSSH_API int evssh_sftp_download_flags_wait(evssh_sftp *sftp, const char *remote, const char *local,
                                             uint64_t offset, unsigned flags);
/** Bytes in place at the destination for the transfer whose done (or
 * progress) callback is running, or that the last _wait call ran. */
EVSSH_API uint64_t evssh_sftp_transferred(const evssh_sftp *sftp);

/** @} */

/* ------------------------------------------------- many sessions, one loop */

/** @defgroup multi Many sessions, one loop
 * evssh_multi drives any number of sessions from one thread, and as one fd
 * from another loop. See docs/multi.md.
 * @{ */

/** A set of sessions driven together by one epoll set. */
typedef struct evssh_multi evssh_multi;
/** A new, empty multi, or NULL when out of memory (or out of fds). */
EVSSH_API evssh_multi *evssh_multi_new(void);
/** Free the multi; its sessions are not freed nor closed (they simply
 * leave). NULL is ignored. Not from inside evssh_multi_process(). */
EVSSH_API void evssh_multi_free(evssh_multi *m);
/** Add a session that is connecting (after evssh_session_connect_async())
 * or connected; from then on evssh_multi_process() drives it, its
 * listen_to fds included. Returns `EVSSH_OK`, `EVSSH_EINVAL` when it is
 * already a member, the session's code when it is closed, or
 * `EVSSH_ENOMEM`. Allowed from callbacks (the new member's turn comes in
 * the next iteration). Never blocks. */
EVSSH_API int evssh_multi_add(evssh_multi *m, evssh_session *s);
/** Take a session out (it is left as it is; close or free it yourself).
 * A session that failed or closed leaves by itself, and removing it then
 * is `EVSSH_EINVAL`, like any session that is not a member. */
EVSSH_API int evssh_multi_remove(evssh_multi *m, evssh_session *s);
/** A multi loop condition: return true to go on. */
typedef bool (*evssh_multi_cond_cb)(evssh_multi *m, void *ud);
/** One iteration over every member: each connecting session advances,
 * each ready one dispatches its packets, runs its channels' on_process,
 * does its I/O and timers; listen_to callbacks run; then at most one wait
 * of `wait_ms` (-1: until something happens) for all of them. Same return
 * convention as evssh_session_process(). A session that fails (connect,
 * auth, disconnect) reports through its own on_ready status or its
 * channels' on_close and is dropped from the multi without disturbing the
 * others. **Blocks** for up to `wait_ms`; runs every member's callbacks. */
EVSSH_API int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
/** Call evssh_multi_process() until it returns 0 or less; `cond` NULL
 * means "while any member is connecting or busy". **Blocking**. */
EVSSH_API int evssh_multi_loop(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
/** A whole multi inside another event loop: one fd (an epoll fd), readable
 * when any member's fd or listen_to fd is ready. Watch it for reading only;
 * when it is readable or evssh_multi_timeout() expires, call
 * evssh_multi_process(m, 0, NULL, NULL). The fd stays the same for the
 * multi's life and belongs to it (do not close it). -1 for NULL. */
EVSSH_API int evssh_multi_fd(const evssh_multi *m);
/** Bring the multi's epoll interest up to date and return how long the
 * caller may wait on evssh_multi_fd() before calling
 * evssh_multi_process(m, 0, ...): ms, -1 for no timer, 0 for work to do
 * now. Call it right before every wait (the adapters do it in a prepare
 * hook). Never blocks, runs no callback. */
EVSSH_API int evssh_multi_timeout(evssh_multi *m);

/** @} */

/* ------------------------------------------------------- the shared cache */

/** @defgroup cache Work shared by the sessions of one process
 * An evssh_cache keeps what every session would otherwise read and parse
 * again: key files (the public half of a `.pub`, the decrypted private
 * key), known_hosts files (parsed per host, port and file list) and
 * ssh_config files. An entry stays good while its files' device, inode,
 * size and modification time are what they were when it was read; each
 * use stat()s them and reads the file again on any change (so a key
 * rewritten in place or a known_hosts line added by accept-new is seen by
 * the next session). Entries are bounded in number, least recently used
 * first out.
 *
 * It also keeps the local user's password-database entry (for a default
 * User, `~` and the %u/%d/%i tokens; read only when a value needs it) while
 * /etc/passwd is unchanged, the %C hash of each distinct (local host,
 * host, port, user, ProxyJump host), which depends on nothing else, and the identity
 * list of each ssh-agent, which no file describes, so it has a lifetime of
 * its own: a list is kept by the agent's socket path (SSH_AUTH_SOCK or
 * IdentityAgent) for EVSSH_CACHE_AGENT_TTL_MS (2 s, about one
 * evssh_multi connect round of a few hundred sessions) from when the agent
 * was asked, and dropped sooner when the socket is another file (the agent
 * restarted) or by evssh_cache_clear(). Within that time a key removed
 * with `ssh-add -d` may still be offered, and a key added may not be seen
 * at first, so a session whose list came from the cache asks the agent
 * again (once) when the agent refuses to sign with a listed key or when
 * every key has been tried, replaces the kept list with the answer, and
 * goes on with the keys it has not tried: the cache never fails a login
 * that would have succeeded without it. Each session still opens its own
 * connection to the agent, for its signature; only the list request is
 * saved.
 *
 * Every evssh_multi has one (evssh_multi_cache()), given to each session
 * added that has none; a program without a multi creates one and gives
 * it to its sessions with evssh_session_set_cache(). A cache may be shared
 * by sessions in different threads (it has its own lock); the library has
 * no global cache. A decrypted private key stays in the cache until the
 * cache (or the entry) is dropped: a second session does not ask for the
 * passphrase again. See docs/performance.md.
 * @{ */

/** How long an ssh-agent's identity list is kept, in ms (see above). */
#define EVSSH_CACHE_AGENT_TTL_MS 2000

/** A cache of parsed key and known_hosts files, opaque. */
typedef struct evssh_cache evssh_cache;

/** What a cache did so far (evssh_cache_stats_get()). */
typedef struct evssh_cache_stats {
  unsigned long key_loads;          /**< key files read and parsed (misses) */
  unsigned long key_hits;           /**< keys handed out without reading their file */
  unsigned long known_hosts_loads;  /**< known_hosts sets read and parsed (misses) */
  unsigned long known_hosts_hits;   /**< lookups answered from a parsed set */
  unsigned long invalidations;      /**< entries dropped because a file changed */
  unsigned long entries_freed;      /**< entries freed (changed, evicted, cleared) */
  size_t entries;                   /**< entries held now */
  unsigned long conn_hashes;        /**< %C hashes computed (misses) */
  unsigned long conn_hash_hits;     /**< %C hashes answered from the cache */
  unsigned long agent_lists;        /**< identity lists asked of an agent through the cache */
  unsigned long agent_hits;         /**< identity lists handed out without asking the agent */
  unsigned long agent_drops;        /**< lists dropped before their time (a signature refused, a session found keys missing) */
} evssh_cache_stats;

/** A new, empty cache, or NULL when out of memory. The caller holds it
 * until evssh_cache_free(). Never blocks. */
EVSSH_API evssh_cache *evssh_cache_new(void);
/** Let go of the creator's hold: the cache is freed, and every entry with
 * it (private keys cleared by OpenSSL as their last holder frees them),
 * once no session holds it either. NULL is ignored; a second call is. */
EVSSH_API void evssh_cache_free(evssh_cache *c);
/** Drop every entry now (for instance after the program changed its key
 * files by other means than rewriting them, or its agent's keys with
 * ssh-add). Sessions keep what they hold already. NULL is ignored. Never
 * blocks. */
EVSSH_API void evssh_cache_clear(evssh_cache *c);
/** Keep agent identity lists for `ms` milliseconds from now on (0: ask
 * the agent in every session; default EVSSH_CACHE_AGENT_TTL_MS). Lists
 * kept already keep the time they were asked at. `EVSSH_OK`, or
 * `EVSSH_EINVAL` for a NULL cache or a negative time. Never blocks. */
EVSSH_API int evssh_cache_set_agent_ttl(evssh_cache *c, int ms);
/** Copy the cache's counters into `*out`. `EVSSH_OK`, or `EVSSH_EINVAL`
 * for a NULL argument. Never blocks. */
EVSSH_API int evssh_cache_stats_get(evssh_cache *c, evssh_cache_stats *out);
/** Have the session read key files and known_hosts through `c` (NULL: no
 * cache). The session holds `c` until it is freed or given another one,
 * so the cache outlives it. Best before evssh_session_connect() or
 * _connect_async(): what the session read before is not redone. Returns
 * `EVSSH_OK`, or `EVSSH_EINVAL` for a NULL session. Never blocks. */
EVSSH_API int evssh_session_set_cache(evssh_session *s, evssh_cache *c);
/** The multi's own cache, which evssh_multi_add() gives to each session
 * that has none; valid until evssh_multi_free() (take it with
 * evssh_session_set_cache() to share it beyond). NULL for a NULL multi. */
EVSSH_API evssh_cache *evssh_multi_cache(evssh_multi *m);

/** @} */

/* ----------------------------------- running inside another event loop */

/** @defgroup foreign Running inside another event loop
 * The four calls a foreign loop (libuv, libevent, libev, a poll() loop of
 * your own) drives a session with; ready-made adapters are in
 * evssh/adapters/. See docs/foreign-loop.md.
 * @{ */

/** The fd to watch now, or -1 (not connecting yet, between addresses, or
 * closed). It **changes while connecting** (the resolver's wake-up fd,
 * then one socket per address, possibly under the same number), so read
 * it again after every evssh_session_handle_events() and follow it.
 * Belongs to the session: never close it. */
EVSSH_API int evssh_session_fd(const evssh_session *s);
/** What to watch evssh_session_fd() for now: EVSSH_READ and/or
 * EVSSH_WRITE (0: nothing, a timer only). Changes after any call into the
 * session, including the program's own (queuing data wants EVSSH_WRITE). */
EVSSH_API int evssh_session_events(const evssh_session *s);
/** Milliseconds until the session must be called again without I/O (the
 * connect deadline, keepalive, rekey), -1 for no timer, and 0 while it has
 * work it can do without new I/O (packets read but not dispatched, queued
 * data the window now allows) — so a foreign loop never stalls on buffered
 * data. */
EVSSH_API int evssh_session_timeout(const evssh_session *s);
/** Let the session act on readiness: `revents` is what the fd was found
 * ready for (EVSSH_READ / EVSSH_WRITE; map POLLIN, POLLHUP, POLLERR to
 * EVSSH_READ and POLLOUT, POLLERR to EVSSH_WRITE), or 0 when the timer
 * expired, which runs timers and buffered work. **Never blocks.** Runs
 * callbacks as evssh_session_process() does, except the listen_to ones.
 * Returns `EVSSH_OK`, or the negative code the session ended with (it is
 * closed then). Afterwards read evssh_session_fd(), _events() and
 * _timeout() again. */
EVSSH_API int evssh_session_handle_events(evssh_session *s, int revents);

/** @} */

/* ----------------------------------------------------------------- logging */

/** @defgroup logging Logging
 * Per-session log messages. See docs/errors-and-logging.md.
 * @{ */

/** Log levels: errors, then connection milestones, then protocol detail
 * (requests, channels, keepalives), then one line per connection-layer
 * message. */
enum { EVSSH_LOG_ERROR = 1, EVSSH_LOG_INFO = 2, EVSSH_LOG_DEBUG = 3, EVSSH_LOG_PACKET = 4 };
/** A log message of `level`, one line without the newline, valid during
 * the call. Runs from inside whatever evssh call produced it. */
typedef void (*evssh_log_cb)(evssh_session *s, int level, const char *message, void *ud);
/** Log messages up to `level` (0: none) to `cb`, or to stderr as
 * "evssh[host] level: message" when `cb` is NULL. Without this call the
 * level comes from the environment variable `EVSSH_DEBUG` (1..4) when the
 * session is created, else 0. Secrets (passwords, keys, session keys) are
 * never logged at any level. Never blocks. */
EVSSH_API void evssh_session_set_log(evssh_session *s, int level, evssh_log_cb cb, void *ud);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* EVSSH_H */
