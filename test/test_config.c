/* ssh_config tests: a config file with Host / Match / Include / tokens /
 * negation is resolved by evssh for several hosts and compared keyword by
 * keyword with what the system's OpenSSH client prints for the same file
 * (`ssh -G -F file host`), which is the independent reference. Algorithm
 * lists are resolved against OpenSSH's own default and supported lists
 * (`ssh -G -F /dev/null`, `ssh -Q ...`) and compared the same way. Also:
 * bad options and values, explicit options beating the file, first value
 * wins, unknown keywords with file:line. */
#include <check.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <pwd.h>
#include <sys/stat.h>

#include "../src/config.h"   /* not autoconf's top-level config.h */

static char tmpdir[256];
static char cfgpath[512];

/* ------------------------------------------------------------ ssh -G */

typedef struct kv {
  char *key, *val;
} kv;

typedef struct sshout {
  kv *items;
  size_t n;
  int status;
} sshout;

static void sshout_free(sshout *o) {
  for (size_t i = 0; i < o->n; i++) {
    free(o->items[i].key);
    free(o->items[i].val);
  }
  free(o->items);
  memset(o, 0, sizeof(*o));
}

/* Runs ssh -G; opts is a NULL-terminated list of "Key=value" for -o. */
static void ssh_g(const char *cfg, const char *host, const char *const *opts, sshout *o) {
  char cmd[4096];
  int off = snprintf(cmd, sizeof(cmd), "ssh -G -F '%s'", cfg);
  for (size_t i = 0; opts && opts[i]; i++)
    off += snprintf(cmd + off, sizeof(cmd) - (size_t)off, " -o '%s'", opts[i]);
  snprintf(cmd + off, sizeof(cmd) - (size_t)off, " '%s' </dev/null 2>/dev/null", host);
  memset(o, 0, sizeof(*o));
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char line[8192];
  while (fgets(line, sizeof(line), p)) {
    line[strcspn(line, "\n")] = '\0';
    char *sp = strchr(line, ' ');
    if (!sp)
      continue;
    *sp = '\0';
    o->items = realloc(o->items, (o->n + 1) * sizeof(kv));
    o->items[o->n].key = strdup(line);
    o->items[o->n].val = strdup(sp + 1);
    o->n++;
  }
  o->status = pclose(p);
}

static const char *ssh_get(const sshout *o, const char *key) {
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->items[i].key, key) == 0)
      return o->items[i].val;
  return NULL;
}

/* all values of a repeated key, joined by one space */
static void ssh_get_all(const sshout *o, const char *key, char *out, size_t outlen) {
  out[0] = '\0';
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->items[i].key, key) == 0) {
      if (out[0])
        strncat(out, " ", outlen - strlen(out) - 1);
      strncat(out, o->items[i].val, outlen - strlen(out) - 1);
    }
}

static char *run_capture(const char *cmd) {
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char buf[16384];
  size_t n = fread(buf, 1, sizeof(buf) - 1, p);
  buf[n] = '\0';
  pclose(p);
  /* one item per line → comma list */
  for (size_t i = 0; i < n; i++)
    if (buf[i] == '\n')
      buf[i] = ',';
  while (n > 0 && buf[n - 1] == ',')
    buf[--n] = '\0';
  return strdup(buf);
}

/* ssh prints some flags with its own words */
static const char *norm_flag(const char *v) {
  if (v == NULL)
    return NULL;
  if (!strcmp(v, "true") || !strcmp(v, "ask"))
    return "yes";
  if (!strcmp(v, "false"))
    return "no";
  return v;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static const char *local_user(void) {
  struct passwd *pw = getpwuid(getuid());
  return pw ? pw->pw_name : "root";
}

static void make_config(void) {
  char incdir[600], incfile[700], text[8192];
  snprintf(incdir, sizeof(incdir), "%s/inc", tmpdir);
  mkdir(incdir, 0700);
  snprintf(incfile, sizeof(incfile), "%s/a.conf", incdir);
  write_file(incfile,
             "# included\n"
             "Host secret.corp\n"
             "  HostName Final.Example\n"
             "  StrictHostKeyChecking no\n"
             "  GlobalKnownHostsFile /etc/kh_a /etc/kh_b\n"
             "  PreferredAuthentications password,publickey\n");
  snprintf(incfile, sizeof(incfile), "%s/b.inc", tmpdir);
  write_file(incfile, "User fromb\nHost *\n  User fromb2\n");
  snprintf(incfile, sizeof(incfile), "%s/c.inc", tmpdir);
  write_file(incfile, "HostKeyAlgorithms ssh-ed25519\nHost nothing\n  User nope\n");
  snprintf(cfgpath, sizeof(cfgpath), "%s/config", tmpdir);
  snprintf(text, sizeof(text),
           "# test config for evssh\n"
           "IgnoreUnknown UseKeychain,FooBar*\n"
           "Host never.match\n"
           "  Include %s/b.inc\n"
           "Host alias1 !blocked\n"
           "  HostName real.%%h.example\n"
           "  User bob\n"
           "  Port 2200\n"
           "  IdentityFile ~/.ssh/id_%%h_%%r_%%C\n"
           "  IdentityFile \"%%d/k %%n_%%p_%%l_%%L_%%i_%%u_%%%%\"\n"
           "  UserKnownHostsFile ~/kh_%%h %%d/kh2_%%n /x/%%C_%%l_%%L_%%i_%%u_%%p_%%r_%%k "
           "~/.ssh/id_%%h_%%r_%%C \"%%d/k %%n_%%p_%%l_%%L_%%i_%%u_%%%%\"\n"
           "  IdentityAgent ~/agent_%%r_%%C\n"
           "  ProxyCommand nc %%h %%p %%r %%n %%%%\n"
           "  HostKeyAlgorithms +ssh-rsa\n"
           "  Ciphers -aes128*\n"
           "  KexAlgorithms ^curve25519-sha256\n"
           "  RekeyLimit 1G 1h\n"
           "  UseKeychain yes\n"
           "  ForwardX11 no\n"
           "  FooBarBaz 1\n"
           "Host alias2\n"
           "  Include %s/c.inc\n"
           "  HostName=10.1.2.3\n"
           "  Port = 2222\n"
           "  ProxyJump jumpuser@jump.example:2200,other\n"
           "  ProxyCommand should-not-win %%h\n"
           "  StrictHostKeyChecking accept-new\n"
           "  ConnectTimeout 1m30s\n"
           "  ServerAliveInterval 15\n"
           "  ServerAliveCountMax 5\n"
           "  MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512\n"
           "  Compression yes\n"
           "  SendEnv LANG LC_*\n"
           "  SetEnv FOO=bar \"BAZ=qu ux\"\n"
           "  LogLevel debug\n"
           "  AddressFamily inet\n"
           "  BindAddress 127.0.0.1\n"
           "Host *.corp !secret.corp\n"
           "  User corpuser\n"
           "  IdentitiesOnly yes\n"
           "  PubkeyAcceptedKeyTypes ssh-ed25519,ecdsa*\n"
           "Match host real.alias1.example user bob\n"
           "  ServerAliveInterval 42\n"
           "  ConnectTimeout 7\n"
           "Match originalhost ALIAS2 !user nobody\n"
           "  PasswordAuthentication no\n"
           "  User carol\n"
           "Match localuser %s\n"
           "  NumberOfPasswordPrompts 1\n"
           "Match exec \"test %%h = real.alias1.example\"\n"
           "  BatchMode yes\n"
           "Match exec \"exit 1\"\n"
           "  HashKnownHosts yes\n"
           "Match !localuser %s\n"
           "  ServerAliveCountMax 99\n"
           "Include %s/*.conf\n"
           "Match final host final.example\n"
           "  Port 4444\n"
           "  PubkeyAuthentication no\n"
           "Match all\n"
           "  Port 2022\n"
           "  User defaultuser\n"
           "  KbdInteractiveAuthentication no\n"
           "  IdentityFile ~/.ssh/common_%%n\n"
           "  ForwardAgent yes\n"
           "  Ciphers aes256-gcm@openssh.com\n"
           "  RekeyLimit 512M\n",
           tmpdir, tmpdir, local_user(), local_user(), incdir);
  write_file(cfgpath, text);
}

static void setup(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/evssh_cfgtest.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  make_config();
}

static void teardown(void) { if (getenv("KEEP")) return;
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

/* evssh resolution of the same file, with explicit options applied first */
static evssh_config *resolve(const char *host, const char *const *opts) {
  evssh_config *c = NULL;
  char err[512] = "";
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  for (size_t i = 0; opts && opts[i]; i++) {
    char kw[128];
    const char *eq = strchr(opts[i], '=');
    snprintf(kw, sizeof(kw), "%.*s", (int)(eq - opts[i]), opts[i]);
    ck_assert_msg(evssh_config_set(c, kw, eq + 1, err, sizeof(err)) == EVSSH_OK, "%s", err);
  }
  ck_assert_msg(evssh_config_read_file(c, cfgpath, host, err, sizeof(err)) == EVSSH_OK, "%s", err);
  ck_assert_msg(evssh_config_finalize(c, host, err, sizeof(err)) == EVSSH_OK, "%s", err);
  return c;
}

static void check_algos(const evssh_config *c, const sshout *o, const char *kw, const char *sshkey,
                        const char *defaults, const char *supported) {
  char *mine = NULL, err[256] = "";
  ck_assert_msg(evssh_config_algorithms(evssh_config_get(c, kw), defaults, supported, &mine, err,
                                        sizeof(err)) == EVSSH_OK, "%s: %s", kw, err);
  ck_assert_str_eq(mine, ssh_get(o, sshkey));
  free(mine);
}

static char *ssh_defaults(const char *key) {
  sshout o;
  ssh_g("/dev/null", "defaults.example", NULL, &o);
  char *v = strdup(ssh_get(&o, key));
  sshout_free(&o);
  return v;
}

/* Compare every supported keyword; returns the number of keywords compared. */
static int compare_host(const char *host, const char *const *opts) {
  sshout o;
  ssh_g(cfgpath, host, opts, &o);
  ck_assert_msg(o.status == 0, "ssh -G failed for %s", host);
  evssh_config *c = resolve(host, opts);
  int compared = 0;

  static const char *const scalars[][2] = {
    {"User", "user"}, {"HostName", "hostname"}, {"Port", "port"},
    {"IdentitiesOnly", "identitiesonly"}, {"IdentityAgent", "identityagent"},
    {"StrictHostKeyChecking", "stricthostkeychecking"}, {"HashKnownHosts", "hashknownhosts"},
    {"ConnectTimeout", "connecttimeout"}, {"ServerAliveInterval", "serveraliveinterval"},
    {"ServerAliveCountMax", "serveralivecountmax"}, {"PreferredAuthentications", "preferredauthentications"},
    {"PasswordAuthentication", "passwordauthentication"},
    {"KbdInteractiveAuthentication", "kbdinteractiveauthentication"},
    {"PubkeyAuthentication", "pubkeyauthentication"}, {"BatchMode", "batchmode"},
    {"ProxyJump", "proxyjump"}, {"RekeyLimit", "rekeylimit"}, {"LogLevel", "loglevel"},
    {"AddressFamily", "addressfamily"}, {"BindAddress", "bindaddress"},
    {"NumberOfPasswordPrompts", "numberofpasswordprompts"}, {"Compression", "compression"},
    {"ForwardAgent", "forwardagent"},
  };
  for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
    const char *mine = evssh_config_get(c, scalars[i][0]);
    const char *theirs = norm_flag(ssh_get(&o, scalars[i][1]));
    if (theirs && !strcmp(scalars[i][1], "connecttimeout") && !strcmp(theirs, "0"))
      theirs = "none";
    /* defaults that evssh chooses differently on purpose */
    if (!evssh_config_is_set(c, scalars[i][0]) &&
        (!strcmp(scalars[i][0], "PreferredAuthentications")))
      continue;
    if (theirs == NULL) {
      ck_assert_msg(mine == NULL, "%s %s: evssh has %s, ssh none", host, scalars[i][0], mine);
    } else {
      ck_assert_msg(mine != NULL && strcmp(mine, theirs) == 0, "%s %s: evssh \"%s\", ssh \"%s\"",
                    host, scalars[i][0], mine ? mine : "(null)", theirs);
    }
    compared++;
  }

  /* lists: ssh prints UserKnownHostsFile expanded, IdentityFile raw */
  char theirs[8192];
  const char *const *vals;
  size_t n;
  ssh_get_all(&o, "userknownhostsfile", theirs, sizeof(theirs));
  ck_assert_str_eq(evssh_config_get(c, "UserKnownHostsFile"), theirs);
  ssh_get_all(&o, "globalknownhostsfile", theirs, sizeof(theirs));
  ck_assert_str_eq(evssh_config_get(c, "globalknownhostsfile"), theirs);
  ssh_get_all(&o, "sendenv", theirs, sizeof(theirs));
  ck_assert_str_eq(evssh_config_get(c, "SendEnv") ? evssh_config_get(c, "SendEnv") : "", theirs);
  n = evssh_config_get_list(c, "SetEnv", &vals);
  ssh_get_all(&o, "setenv", theirs, sizeof(theirs));
  ck_assert_str_eq(evssh_config_get(c, "SetEnv") ? evssh_config_get(c, "SetEnv") : "", theirs);
  if (evssh_config_is_set(c, "IdentityFile")) {
    ssh_get_all(&o, "identityfile", theirs, sizeof(theirs));
    n = evssh_config_get_list_raw(c, "IdentityFile", &vals);
    char mine[8192] = "";
    for (size_t i = 0; i < n; i++) {
      if (i)
        strcat(mine, " ");
      strcat(mine, vals[i]);
    }
    ck_assert_str_eq(mine, theirs);
  }
  const char *pc = ssh_get(&o, "proxycommand");
  if (pc)
    ck_assert_str_eq(evssh_config_get_raw(c, "ProxyCommand"), pc);
  else
    ck_assert_ptr_null(evssh_config_get(c, "ProxyCommand"));
  compared += 6;

  /* algorithm lists against OpenSSH's own defaults and supported names */
  static const char *const algos[][3] = {
    {"Ciphers", "ciphers", "ssh -Q cipher"}, {"MACs", "macs", "ssh -Q mac"},
    {"KexAlgorithms", "kexalgorithms", "ssh -Q kex"},
    {"HostKeyAlgorithms", "hostkeyalgorithms", "ssh -Q HostKeyAlgorithms"},
    {"PubkeyAcceptedAlgorithms", "pubkeyacceptedalgorithms", "ssh -Q PubkeyAcceptedAlgorithms"},
  };
  for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
    char *def = ssh_defaults(algos[i][1]);
    char *sup = run_capture(algos[i][2]);
    check_algos(c, &o, algos[i][0], algos[i][1], def, sup);
    free(def);
    free(sup);
    compared++;
  }
  evssh_config_free(c);
  sshout_free(&o);
  return compared;
}

START_TEST(test_matches_ssh_G) {
  const char *hosts[] = {"alias1", "alias2", "web.corp", "secret.corp", "blocked", "Other.Host",
                         "ALIAS2"};
  for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
    ck_assert_int_ge(compare_host(hosts[i], NULL), 30);
  /* explicit options beat the file and are what Match sees */
  const char *opts1[] = {"User=nobody", "Port=9", NULL};
  compare_host("alias2", opts1);
  const char *opts2[] = {"HostName=real.alias1.example", "Ciphers=aes128-ctr", NULL};
  compare_host("web.corp", opts2);
  /* an option given twice keeps its first value, as with ssh -o */
  const char *opts3[] = {"Port=9", "Port=10", "User=first", "User=second", "Ciphers=aes128-ctr",
                         "Ciphers=aes256-ctr", "ServerAliveInterval=7", "ServerAliveInterval=8",
                         "UserKnownHostsFile=/k1", "UserKnownHostsFile=/k2", "ProxyJump=j1", "ProxyJump=j2", NULL};
  compare_host("alias2", opts3);
  evssh_config *c = resolve("alias2", opts3);
  ck_assert_str_eq(evssh_config_get(c, "Port"), "9");
  ck_assert_str_eq(evssh_config_get(c, "User"), "first");
  ck_assert_str_eq(evssh_config_get(c, "ProxyJump"), "j1");
  evssh_config_free(c);
}
END_TEST

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* Host patterns with many * cost at most length x pattern length: the
   recursive matcher took seconds for 8 stars and 40 characters, and grows
   exponentially with each star. */
START_TEST(test_pattern_matching_is_not_exponential) {
  char host[81];
  memset(host, 'a', 80);
  host[80] = 0;
  double t0 = cpu_seconds();
  ck_assert(!evssh_config_match_pattern(host, "*a*a*a*a*a*a*a*a*a*a*a*a*b"));
  ck_assert(evssh_config_match_pattern(host, "*a*a*a*a*a*a*a*a*a*a*a*a*"));
  ck_assert_int_eq(evssh_config_match_list(host, "x*,*a*a*a*a*a*a*a*a*a*a*a*a*b", true), 0);
  /* generous: the old matcher needs far more than this for the first call */
  ck_assert_msg(cpu_seconds() - t0 < 2.0, "pattern matching took %.2f s of CPU", cpu_seconds() - t0);
  ck_assert(evssh_config_match_pattern("abcabd", "*ab?"));
  ck_assert(evssh_config_match_pattern("xaxbxc", "*a*b*c"));
  ck_assert(!evssh_config_match_pattern("xaxbx", "*a*b*c"));
  ck_assert(evssh_config_match_pattern("", "*"));
  ck_assert(!evssh_config_match_pattern("", "?"));
}
END_TEST

/* Session options: bad values fail when set, ConfigFile is an option, and
   evssh_session_new_with takes evssh_start's list. */
START_TEST(test_session_options) {
  evssh_session *s = evssh_session_new("example.invalid");
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(evssh_session_option(s, "Ciphers", "nope"), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(evssh_session_error(s), "nope"));
  ck_assert_int_eq(evssh_session_option(s, "KexAlgorithms", "+nothing-like-this"), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_session_option(s, "Ciphers", "aes128-ctr"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "ConfigFile", "/nonexistent/evssh-config"), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_session_option(s, "ConfigFile", "none"), EVSSH_OK);
  evssh_session_free(s);

  evssh_error err;
  const char *bad[] = {"Port=9", "MACs=hmac-nothing", NULL};
  ck_assert_ptr_null(evssh_session_new_with("example.invalid", "u", bad, &err));
  ck_assert_int_eq(err.code, EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "hmac-nothing"));
  const char *good[] = {"Port=9", "Port=10", "ConfigFile=none", NULL};
  s = evssh_session_new_with("example.invalid", "u", good, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(err.code, EVSSH_OK);
  ck_assert(!evssh_session_connecting(s));
  evssh_session_free(s);
}
END_TEST

START_TEST(test_expansion) {
  /* the same token strings are in UserKnownHostsFile, which ssh -G prints
     expanded: IdentityFile must expand to the same text */
  sshout o;
  ssh_g(cfgpath, "alias1", NULL, &o);
  evssh_config *c = resolve("alias1", NULL);
  char theirs[8192];
  ssh_get_all(&o, "userknownhostsfile", theirs, sizeof(theirs));
  const char *const *ids, *const *ukh;
  size_t nid = evssh_config_get_list(c, "IdentityFile", &ids);
  size_t nukh = evssh_config_get_list(c, "UserKnownHostsFile", &ukh);
  ck_assert_uint_eq(nid, 3);
  ck_assert_uint_eq(nukh, 5);
  ck_assert_str_eq(ids[0], ukh[3]);
  ck_assert_str_eq(ids[1], ukh[4]);
  ck_assert_ptr_nonnull(strstr(ids[1], " alias1_2200_"));
  ck_assert(ids[1][strlen(ids[1]) - 1] == '%');
  ck_assert_ptr_null(strchr(ids[0], '~'));
  /* ProxyCommand: %h %p %r %n %% from the resolved values */
  char want[512];
  snprintf(want, sizeof(want), "nc %s %s %s alias1 %%", ssh_get(&o, "hostname"),
           ssh_get(&o, "port"), ssh_get(&o, "user"));
  ck_assert_str_eq(evssh_config_get(c, "ProxyCommand"), want);
  ck_assert_str_eq(evssh_config_get_raw(c, "ProxyCommand"), "nc %h %p %r %n %%");
  evssh_config_free(c);
  sshout_free(&o);
}
END_TEST

START_TEST(test_first_value_wins_and_explicit) {
  char err[512];
  evssh_config *c = NULL;
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, "port", "9", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, "PORT", "10", err, sizeof(err)), EVSSH_OK);   /* ssh -o: first wins */
  ck_assert_int_eq(evssh_config_set(c, "IdentityFile", "/k1", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_read_file(c, cfgpath, "alias1", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_finalize(c, "alias1", err, sizeof(err)), EVSSH_OK);
  ck_assert_str_eq(evssh_config_get(c, "Port"), "9");
  ck_assert_str_eq(evssh_config_get(c, "User"), "bob");   /* not the later Match all value */
  ck_assert_str_eq(evssh_config_get(c, "RekeyLimit"), "1073741824 3600");
  const char *const *ids;
  ck_assert_uint_eq(evssh_config_get_list(c, "IdentityFile", &ids), 4);
  ck_assert_str_eq(ids[0], "/k1");
  ck_assert(evssh_config_is_set(c, "IdentityFile"));
  evssh_config_free(c);

  /* defaults when nothing is configured */
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_finalize(c, "Plain", err, sizeof(err)), EVSSH_OK);
  ck_assert_str_eq(evssh_config_get(c, "hostname"), "plain");
  ck_assert_str_eq(evssh_config_get(c, "StrictHostKeyChecking"), "yes");
  ck_assert_str_eq(evssh_config_get(c, "Port"), "22");
  ck_assert_str_eq(evssh_config_get(c, "User"), local_user());
  ck_assert(!evssh_config_is_set(c, "IdentityFile"));
  ck_assert_uint_eq(evssh_config_get_list(c, "IdentityFile", &ids), 3);
  ck_assert_ptr_nonnull(strstr(ids[0], "/.ssh/id_ed25519"));
  ck_assert_ptr_null(evssh_config_get(c, "Ciphers"));
  ck_assert_ptr_null(evssh_config_get(c, "ProxyCommand"));
  ck_assert_ptr_null(evssh_config_get(c, "IdentityAgent"));
  evssh_config_free(c);

  /* IdentityAgent forms that name the environment (a fresh object each:
     a second set of the same keyword keeps the first, as ssh -o does) */
  setenv("EVSSH_TEST_SOCK", "/run/test/agent.sock", 1);
  static const char *const forms[][2] = {
    {"SSH_AUTH_SOCK", NULL}, {"$EVSSH_TEST_SOCK", "/run/test/agent.sock"},
    {"${EVSSH_TEST_SOCK}.2", "/run/test/agent.sock.2"},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
    ck_assert_int_eq(evssh_config_set(c, "IdentityAgent", forms[i][0], err, sizeof(err)), EVSSH_OK);
    ck_assert_int_eq(evssh_config_finalize(c, "h", err, sizeof(err)), EVSSH_OK);
    if (forms[i][1]) ck_assert_str_eq(evssh_config_get(c, "IdentityAgent"), forms[i][1]);
    else ck_assert_ptr_null(evssh_config_get(c, "IdentityAgent"));
    evssh_config_free(c);
  }
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, "IdentityAgent", "${EVSSH_UNSET_VAR_X}", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_finalize(c, "h", err, sizeof(err)), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "EVSSH_UNSET_VAR_X"));
  evssh_config_free(c);
  /* an unknown token is an error, as in ssh */
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, "IdentityAgent", "none", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, "IdentityFile", "~/k_%z", err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_config_finalize(c, "h", err, sizeof(err)), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "%z"));
  evssh_config_free(c);
}
END_TEST

static void expect_bad_set(const char *kw, const char *val, const char *needle) {
  evssh_config *c = NULL;
  char err[512] = "";
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_set(c, kw, val, err, sizeof(err)), EVSSH_EINVAL);
  ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err, needle);
  evssh_config_free(c);
}

START_TEST(test_bad_options) {
  expect_bad_set("Frobnicate", "1", "Frobnicate");
  expect_bad_set("ForwardX11", "yes", "not supported");
  expect_bad_set("Port", "abc", "Port");
  expect_bad_set("Port", "70000", "70000");
  expect_bad_set("StrictHostKeyChecking", "maybe", "StrictHostKeyChecking");
  expect_bad_set("RekeyLimit", "1X", "RekeyLimit");
  expect_bad_set("Ciphers", ",,", "Ciphers");
  expect_bad_set("ConnectTimeout", "soon", "ConnectTimeout");
  expect_bad_set("BatchMode", "perhaps", "BatchMode");
  expect_bad_set("LogLevel", "LOUD", "LogLevel");
  expect_bad_set("User", "a b", "User");
  expect_bad_set("Host", "x", "Host");
  expect_bad_set("ProxyCommand", "", "ProxyCommand");
  expect_bad_set("SetEnv", "NOEQUALS", "SetEnv");
}
END_TEST

/* a bad file line: evssh and ssh must both refuse it; evssh names file:line */
static void expect_bad_file(const char *text, int line, const char *needle) {
  char path[600], err[512] = "", want[700];
  snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
  write_file(path, text);
  sshout o;
  ssh_g(path, "h", NULL, &o);
  ck_assert_msg(o.status != 0, "ssh accepted: %s", text);
  sshout_free(&o);
  evssh_config *c = NULL;
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_read_file(c, path, "h", err, sizeof(err)), EVSSH_EINVAL);
  snprintf(want, sizeof(want), "%s:%d", path, line);
  ck_assert_msg(strstr(err, want) != NULL, "\"%s\" lacks %s", err, want);
  ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks %s", err, needle);
  evssh_config_free(c);
}

START_TEST(test_bad_files) {
  expect_bad_file("Host h\n  User x\n  Frobnicate yes\n", 3, "Frobnicate");
  expect_bad_file("Host other\n  Port abc\n", 2, "Port");   /* inactive block still checked */
  expect_bad_file("# c\nMatch nosuch x\n", 2, "nosuch");
  expect_bad_file("Host h\n  IgnoreUnknown Foo\n  Ciphers aes128-ctr extra\n", 3, "Ciphers");
  expect_bad_file("Host h\n  User \"unterminated\n", 2, "quote");
  expect_bad_file("Match all host h\n  User a\n", 1, "all");
  expect_bad_file("Host h\nMatch\n  User a\n", 2, "Match");
  expect_bad_file("Match host\n  User a\n", 1, "host");
  expect_bad_file("Host\n  User a\n", 1, "Host");
  expect_bad_file("Include\n", 1, "Include");
  char err[512];
  evssh_config *c = NULL;
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  ck_assert_int_eq(evssh_config_read_file(c, "/nonexistent/evssh/config", "h", err, sizeof(err)),
                   EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/evssh/config"));
  evssh_config_free(c);
}
END_TEST

/* evssh_config_algorithms against ssh's own resolution of the same spec */
START_TEST(test_algorithms_vs_ssh) {
  static const char *const specs[][3] = {
    {"HostKeyAlgorithms", "hostkeyalgorithms", "ssh -Q HostKeyAlgorithms"},
    {"Ciphers", "ciphers", "ssh -Q cipher"},
    {"MACs", "macs", "ssh -Q mac"},
  };
  static const char *const values[] = {
    "ssh-ed25519*", "+ssh-rsa*", "^rsa*", "ecdsa*,ssh-ed25519", "-*cert*", "foo", "+foo", "-foo",
    "aes128-ctr,aes128-ctr", "^aes256-ctr", "+aes128-cbc", "-hmac-sha1*", "+hmac-sha1-96",
    "hmac-sha2-256,umac-64@openssh.com",
  };
  int agreed = 0;
  for (size_t s = 0; s < 3; s++) {
    char *def = ssh_defaults(specs[s][1]);
    char *sup = run_capture(specs[s][2]);
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
      char opt[256];
      snprintf(opt, sizeof(opt), "%s=%s", specs[s][0], values[v]);
      const char *opts[] = {opt, NULL};
      sshout o;
      ssh_g("/dev/null", "h", opts, &o);
      char *mine = NULL, err[256];
      int rc = evssh_config_algorithms(values[v], def, sup, &mine, err, sizeof(err));
      const char *theirs = o.status == 0 ? ssh_get(&o, specs[s][1]) : NULL;
      if (theirs && *theirs == '\0')
        theirs = NULL;   /* ssh prints an empty list; evssh refuses it */
      /* ssh refuses wildcards in Ciphers/MACs/Kex outside "-"; evssh allows them */
      if (theirs == NULL && rc == EVSSH_OK && strpbrk(values[v], "*?") && s != 0) {
        free(mine);
        sshout_free(&o);
        continue;
      }
      if (theirs == NULL) {
        ck_assert_msg(rc == EVSSH_EINVAL, "%s: evssh accepted, ssh refused", opt);
        ck_assert_ptr_nonnull(strstr(err, ""));
      } else {
        ck_assert_msg(rc == EVSSH_OK, "%s: %s", opt, err);
        ck_assert_msg(strcmp(mine, theirs) == 0, "%s: evssh %s / ssh %s", opt, mine, theirs);
      }
      agreed++;
      free(mine);
      sshout_free(&o);
    }
    free(def);
    free(sup);
  }
  ck_assert_int_ge(agreed, 30);
  char *out = NULL, err[256];
  ck_assert_int_eq(evssh_config_algorithms("!a", "a,b", "a,b", &out, err, sizeof(err)), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_config_algorithms("zz", "a,b", "a,b", &out, err, sizeof(err)), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "zz"));
  ck_assert_int_eq(evssh_config_algorithms(NULL, "a,b", "a,b", &out, err, sizeof(err)), EVSSH_OK);
  ck_assert_str_eq(out, "a,b");
  free(out);
}
END_TEST

START_TEST(test_patterns) {
  ck_assert(evssh_config_match_pattern("web.corp", "*.corp"));
  ck_assert(evssh_config_match_pattern("a1", "a?"));
  ck_assert(!evssh_config_match_pattern("a12", "a?"));
  ck_assert(!evssh_config_match_pattern("WEB.corp", "web.*"));
  ck_assert_int_eq(evssh_config_match_list("x.corp", "*.corp,!x.corp", false), -1);
  ck_assert_int_eq(evssh_config_match_list("y.corp", "*.corp,!x.corp", false), 1);
  ck_assert_int_eq(evssh_config_match_list("Y.CORP", "*.corp", true), 1);
  ck_assert_int_eq(evssh_config_match_list("z", "a,b", false), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_matches_ssh_G);
  tcase_add_test(tc, test_expansion);
  tcase_add_test(tc, test_first_value_wins_and_explicit);
  tcase_add_test(tc, test_bad_options);
  tcase_add_test(tc, test_bad_files);
  tcase_add_test(tc, test_algorithms_vs_ssh);
  tcase_add_test(tc, test_patterns);
  tcase_add_test(tc, test_pattern_matching_is_not_exponential);
  tcase_add_test(tc, test_session_options);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
