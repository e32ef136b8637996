/*
 * Authentication policy of the test server: which user name, password,
 * authorized key and keyboard-interactive answers are accepted, and the
 * failure count that disconnects a client after MAX_AUTH_FAILURES attempts
 * as sshd does. The rules live in one place so evssh's tests can drive each
 * method's success and failure paths against a server whose behaviour is
 * easy to read off.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define MAX_AUTH_FAILURES 6

/* ------------------------------------------------------------------ */
/* Authentication                                                      */

static bool user_ok(const char *user)
{
    return srv_cfg.user == NULL || (user != NULL && strcmp(srv_cfg.user, user) == 0);
}

void srv_auth_failed(struct conn *cn, const char *method, const char *user)
{
    cn->failures++;
    LOG_INFO("conn %d: auth %s for user '%s' FAILED (%d/%d)", cn->id, method,
             user ? user : "", cn->failures, MAX_AUTH_FAILURES);
    if (cn->failures >= MAX_AUTH_FAILURES) {
        LOG_INFO("conn %d: too many authentication failures, disconnecting", cn->id);
        cn->dead = true;
    }
}

static void auth_succeeded(struct conn *cn, const char *method, const char *user)
{
    cn->authed = true;
    free(cn->user);
    cn->user = srv_xstrdup(user);
    LOG_INFO("conn %d: auth %s for user '%s' accepted", cn->id, method, user ? user : "");
}

int srv_on_auth_password(ssh_session s, const char *user, const char *password, void *ud)
{
    (void)s;
    struct conn *cn = ud;
    if (srv_cfg.password != NULL && user_ok(user) && password != NULL &&
        strcmp(password, srv_cfg.password) == 0) {
        auth_succeeded(cn, "password", user);
        return SSH_AUTH_SUCCESS;
    }
    srv_auth_failed(cn, "password", user);
    return SSH_AUTH_DENIED;
}

static bool key_authorized(ssh_key key)
{
    if (srv_cfg.authorized_keys == NULL || key == NULL)
        return false;
    FILE *f = fopen(srv_cfg.authorized_keys, "r");
    if (f == NULL) {
        LOG_ERR("%s: %s", srv_cfg.authorized_keys, strerror(errno));
        return false;
    }
    bool found = false;
    char *line = NULL;
    size_t cap = 0;
    while (!found && getline(&line, &cap, f) > 0) {
        /* find "<type> <base64>" anywhere in the line, skipping options */
        char *save = NULL;
        char *prev = NULL;
        for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL;
             tok = strtok_r(NULL, " \t\r\n", &save)) {
            if (tok[0] == '#' && prev == NULL)
                break;
            if (prev != NULL) {
                enum ssh_keytypes_e t = ssh_key_type_from_name(prev);
                if (t != SSH_KEYTYPE_UNKNOWN) {
                    ssh_key k = NULL;
                    if (ssh_pki_import_pubkey_base64(tok, t, &k) == SSH_OK) {
                        found = ssh_key_cmp(k, key, SSH_KEY_CMP_PUBLIC) == 0;
                        ssh_key_free(k);
                    }
                    break;
                }
            }
            prev = tok;
        }
    }
    free(line);
    fclose(f);
    return found;
}

int srv_on_auth_pubkey(ssh_session s, const char *user, struct ssh_key_struct *pubkey,
                          char signature_state, void *ud)
{
    (void)s;
    struct conn *cn = ud;
    bool ok = user_ok(user) && key_authorized(pubkey);
    const char *ktype = pubkey ? ssh_key_type_to_char(ssh_key_type(pubkey)) : "?";
    if (signature_state == SSH_PUBLICKEY_STATE_NONE) {
        LOG_DEBUG("conn %d: publickey %s query for '%s': %s", cn->id, ktype, user,
                  ok ? "acceptable" : "not acceptable");
        if (!ok)
            srv_auth_failed(cn, "publickey", user);
        return ok ? SSH_AUTH_SUCCESS : SSH_AUTH_DENIED;
    }
    if (ok && signature_state == SSH_PUBLICKEY_STATE_VALID) {
        auth_succeeded(cn, "publickey", user);
        return SSH_AUTH_SUCCESS;
    }
    srv_auth_failed(cn, "publickey", user);
    return SSH_AUTH_DENIED;
}

int srv_on_auth_none(ssh_session s, const char *user, void *ud)
{
    (void)s;
    struct conn *cn = ud;
    LOG_DEBUG("conn %d: auth none for '%s' (listing methods)", cn->id, user ? user : "");
    return SSH_AUTH_DENIED;
}

void srv_handle_kbdint(struct conn *cn, ssh_message msg)
{
    const char *user = ssh_message_auth_user(msg);
    int n = srv_cfg.kbdint_prompts;
    if (n <= 0 || srv_cfg.password == NULL) {
        srv_auth_failed(cn, "keyboard-interactive", user);
        ssh_message_reply_default(msg);
        return;
    }
    if (!ssh_message_auth_kbdint_is_response(msg)) {
        const char **prompts = srv_xcalloc((size_t)n, sizeof *prompts);
        char **owned = srv_xcalloc((size_t)n, sizeof *owned);
        char *echo = srv_xcalloc((size_t)n, 1);
        for (int i = 0; i < n; i++) {
            if (i == 0) {
                owned[i] = srv_xstrdup("Password: ");
                echo[i] = 0;
            } else {
                char tmp[32];
                snprintf(tmp, sizeof tmp, "Question %d: ", i);
                owned[i] = srv_xstrdup(tmp);
                echo[i] = 1;
            }
            prompts[i] = owned[i];
        }
        LOG_DEBUG("conn %d: keyboard-interactive: sending %d prompts", cn->id, n);
        ssh_message_auth_interactive_request(msg, "evssh", "evssh test server",
                                             (unsigned)n, prompts, echo);
        for (int i = 0; i < n; i++)
            free(owned[i]);
        free(owned);
        free(prompts);
        free(echo);
        return;
    }
    bool ok = user_ok(user) && ssh_userauth_kbdint_getnanswers(cn->session) == n;
    for (int i = 0; ok && i < n; i++) {
        const char *a = ssh_userauth_kbdint_getanswer(cn->session, (unsigned)i);
        char want[32];
        if (i == 0)
            ok = a != NULL && strcmp(a, srv_cfg.password) == 0;
        else {
            snprintf(want, sizeof want, "answer %d", i);
            ok = a != NULL && strcmp(a, want) == 0;
        }
    }
    if (ok) {
        auth_succeeded(cn, "keyboard-interactive", user);
        ssh_message_auth_reply_success(msg, 0);
    } else {
        srv_auth_failed(cn, "keyboard-interactive", user);
        ssh_message_reply_default(msg);
    }
}
