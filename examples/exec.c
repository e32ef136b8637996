/* exec.c: run one command and collect its result, like Net::SSH's exec!:
 * evssh_start connects and authenticates, evssh_session_exec_wait runs the
 * command to completion and hands back stdout, stderr, the exit status and
 * the signal that killed it, if any. The program prints the two streams to
 * its own and exits with the remote status.
 *
 *   exec [-o Keyword=value]... [user@]host command
 *
 * -o takes any ssh_config keyword (Port=2222, IdentityFile=...,
 * UserKnownHostsFile=..., StrictHostKeyChecking=accept-new, ...). */
#include <evssh.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *options[64];
  size_t n_options = 0;
  int i = 1;
  for (; i + 1 < argc && strcmp(argv[i], "-o") == 0 && n_options < 63; i += 2) options[n_options++] = argv[i + 1];
  options[n_options] = NULL;
  if (argc - i != 2) {
    fprintf(stderr, "usage: %s [-o Keyword=value]... [user@]host command\n", argv[0]);
    return 2;
  }
  char *dest = argv[i];
  const char *command = argv[i + 1];
  char *at = strchr(dest, '@');
  const char *user = NULL;
  if (at) {
    *at = 0;
    user = dest;
    dest = at + 1;
  }

  evssh_error err;
  evssh_session *s = evssh_start(dest, user, options, &err);
  if (!s) {
    fprintf(stderr, "%s: %s (%s)\n", dest, err.message, evssh_strerror(err.code));
    return 255;
  }
  evssh_result result;
  int rc = evssh_session_exec_wait(s, command, &result);
  if (rc != EVSSH_OK) {
    fprintf(stderr, "exec failed: %s: %s\n", evssh_strerror(rc), evssh_session_error(s));
    evssh_session_free(s);
    return 255;
  }
  fwrite(result.out, 1, result.out_len, stdout);
  fwrite(result.err, 1, result.err_len, stderr);
  int status = result.exit_status;
  if (result.exit_signal) {
    fprintf(stderr, "remote command killed by SIG%s\n", result.exit_signal);
    status = 128;
  }
  evssh_result_free(&result);
  evssh_session_close(s);
  evssh_session_free(s);
  return status < 0 ? 255 : status;
}
