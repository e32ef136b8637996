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

#include "example_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 1, 1, " command", &c)) return 2;
  evssh_session *s = example_connect(&c);
  if (!s) return 255;
  evssh_result result;
  int rc = evssh_session_exec_wait(s, c.args[0], &result);
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
