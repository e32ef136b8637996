# Shared by the gem's tests: builds the extension, starts one OpenSSH sshd
# on 127.0.0.1 through the project's test harness (stopped at exit), and
# gives the options every test connects with.
require_relative "build"
require "tmpdir"
require "socket"
require "minitest/autorun"

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__), EvSSHBuild.build!)
require "evssh"

module SSHD
  HARNESS = File.expand_path("../../../test/sshd-harness.sh", __dir__)

  # What the gem's tests need of sshd beyond the harness's defaults, through
  # its extra-config file: env requests for send_env/set_env, and the sftp
  # subsystem (internal-sftp) for net-sftp when the harness does not already
  # declare it (sshd refuses a second Subsystem line).
  def self.extra_config(dir)
    # a user CA sshd trusts, for keycerts (user_ca signs test certificates)
    ca = File.join(dir, "user_ca")
    system("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "evssh test user CA", "-f", ca, out: File::NULL)
    File.chmod(0o644, "#{ca}.pub")
    @user_ca = ca
    # the harness's PubkeyAcceptedAlgorithms with the certificate ones first
    # (sshd keeps the first value it reads: the extra lines come first)
    pubkey = %w[ssh-ed25519-cert-v01@openssh.com ecdsa-sha2-nistp256-cert-v01@openssh.com
                rsa-sha2-512-cert-v01@openssh.com rsa-sha2-256-cert-v01@openssh.com ssh-ed25519
                ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521 rsa-sha2-512 rsa-sha2-256 ssh-rsa]
    lines = ["AcceptEnv EVSSH_TEST_*", "TrustedUserCAKeys #{ca}.pub", "PubkeyAcceptedAlgorithms #{pubkey.join(',')}"]
    lines << "Subsystem sftp internal-sftp" unless File.read(HARNESS).include?("Subsystem sftp")
    path = File.join(dir, "extra_config")
    File.write(path, lines.join("\n") + "\n")
    path
  end

  def self.env
    @env ||= begin
      dir = Dir.mktmpdir("evssh-ruby-")
      File.chmod(0o755, dir) # sshd reads authorized_keys as the (non-root) test account
      ok = system({ "HARNESS_OWNER_PID" => Process.pid.to_s }, "bash", HARNESS, "start", File.join(dir, "sshd"),
                  extra_config(dir), out: File::NULL)
      raise "sshd harness failed to start" unless ok
      vars = File.read(File.join(dir, "sshd", "env")).scan(/^(\w+)='([^']*)'/).to_h
      at_exit { system("bash", HARNESS, "stop", File.join(dir, "sshd"), "--remove", out: File::NULL, err: File::NULL) }
      vars
    end
  end

  # root's login shell may run slow profile scripts; the harness account runs /bin/sh
  def self.user
    env["HARNESS_HAVE_PASSWORD_USER"] == "1" ? env["HARNESS_PASSWORD_USER"] : env["HARNESS_USER"]
  end

  def self.port = env["HARNESS_PORT"].to_i

  # the private key of the user CA sshd trusts (TrustedUserCAKeys)
  def self.user_ca
    env
    @user_ca
  end
  def self.key = env["HARNESS_KEY_ED25519"]
  def self.known_hosts = env["HARNESS_KNOWN_HOSTS"]

  def self.opts(**extra)
    { port: port, keys: [key], keys_only: true, user_known_hosts_file: known_hosts,
      verify_host_key: :always, config: false, non_interactive: true }.merge(extra)
  end

  def self.start(**extra, &blk)
    EvSSH.start("127.0.0.1", user, **opts(**extra), &blk)
  end

  # a known_hosts file that gives the fixture another ed25519 key (a
  # changed host key), for the block
  def self.with_changed_host_key
    Dir.mktmpdir do |d|
      system("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", File.join(d, "other"), out: File::NULL)
      kh = File.join(d, "known_hosts")
      File.write(kh, "[127.0.0.1]:#{port} #{File.read(File.join(d, 'other.pub')).split[0, 2].join(' ')}\n")
      yield kh
    end
  end

  # true once something accepts connections on the unix socket at path
  # (ssh-agent -D creates the file at bind(), before its listen(), so the
  # file alone is not enough); false when pid exits first or after max_s
  def self.wait_for_unix_listener(path, pid, max_s = 60)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + max_s
    loop do
      UNIXSocket.new(path).close
      return true
    rescue Errno::ENOENT, Errno::ECONNREFUSED
      return false if Process.waitpid(pid, Process::WNOHANG)
      return false if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end

  def self.password_user?
    env["HARNESS_HAVE_PASSWORD_USER"] == "1"
  end

  def self.netssh?
    return @netssh unless @netssh.nil?

    @netssh = begin
      require "net/ssh"
      true
    rescue LoadError
      false
    end
  end
end

# @ssh: a session to the fixture for each test
module OneSession
  def setup
    super
    @ssh = SSHD.start
  end

  def teardown
    @ssh&.close
    super
  end
end

# A scratch directory the remote side (the harness account) may write to:
# @dir, removed after each test.
module WorkDir
  def make_work_dir(prefix)
    @dir = Dir.mktmpdir(prefix)
    File.chmod(0o777, @dir)
  end

  def teardown
    FileUtils.remove_entry(@dir) if @dir
    super
  end
end

# Side by side: the same code once with Net::SSH, once with EvSSH.
module SideBySide
  LIBS = { "net-ssh" => -> { Net::SSH }, "evssh" => -> { EvSSH } }.freeze

  def need_netssh
    skip "net-ssh not installed (Debian: ruby-net-ssh)" unless SSHD.netssh?
  end

  # { "net-ssh" => result, "evssh" => result }; an exception is a result too:
  # [:raised, its class], the library's own classes named without their
  # namespace ("HostKeyUnknown"), so error paths compare the same way
  def both
    need_netssh
    LIBS.to_h do |name, lib|
      r = begin
        yield lib.call, name
      rescue StandardError, ScriptError => e
        warn "#{name}: #{e.class}: #{e.message}\n  #{e.backtrace.first(12).join("\n  ")}" if ENV["EVSSH_TEST_TRACE"]
        [:raised, SideBySide.error_name(e)]
      end
      [name, r]
    end
  end

  def self.error_name(e)
    n = e.class.name.to_s
    n =~ /\A(Net::SSH|EvSSH)::(.*)/ ? Regexp.last_match(2) : e.class
  end

  # assert that both libraries gave the same result, and return it
  def assert_same_result(msg = nil, &block)
    r = both(&block)
    assert_equal r["net-ssh"], r["evssh"], msg || "net-ssh and evssh differ"
    r["evssh"]
  end

  # a known_hosts file holding content, for the block
  def with_known_hosts(content = "")
    Dir.mktmpdir do |d|
      kh = File.join(d, "known_hosts")
      File.write(kh, content)
      yield kh
    end
  end

  # a library's start with the fixture's options
  def start_with(lib, **extra, &blk)
    lib.start("127.0.0.1", SSHD.user, SSHD.opts(**extra), &blk)
  end
end
