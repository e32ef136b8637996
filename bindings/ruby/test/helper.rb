# Shared by the gem's tests: builds the extension, starts one OpenSSH sshd
# on 127.0.0.1 through the project's test harness (stopped at exit), and
# gives the options every test connects with.
require_relative "build"
require "tmpdir"
require "minitest/autorun"

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__), EvSSHBuild.build!)
require "evssh"

module SSHD
  HARNESS = File.expand_path("../../../test/sshd-harness.sh", __dir__)

  def self.env
    @env ||= begin
      dir = Dir.mktmpdir("evssh-ruby-")
      File.chmod(0o755, dir) # sshd reads authorized_keys as the (non-root) test account
      ok = system({ "HARNESS_OWNER_PID" => Process.pid.to_s }, "bash", HARNESS, "start", File.join(dir, "sshd"),
                  out: File::NULL)
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
  def self.key = env["HARNESS_KEY_ED25519"]
  def self.known_hosts = env["HARNESS_KNOWN_HOSTS"]

  def self.opts(**extra)
    { port: port, keys: [key], keys_only: true, user_known_hosts_file: known_hosts,
      verify_host_key: :always, config: false, non_interactive: true }.merge(extra)
  end

  def self.start(**extra, &blk)
    EvSSH.start("127.0.0.1", user, **opts(**extra), &blk)
  end
end
