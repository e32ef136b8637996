# What the gem's benchmarks share: their own sshd through
# test/sshd-harness.sh (unless SSH_PORT, SSH_USER, SSH_KEY and
# SSH_KNOWN_HOSTS describe one already running), the session options both
# libraries use (aes128-ctr + hmac-sha2-256-etm@openssh.com: net-ssh 7.0
# has no AES-GCM or chacha20), a scratch directory the remote account can
# write, and a monotonic timer.
require "tmpdir"
require "fileutils"

module BenchCommon
  module_function

  def start_sshd
    return ENV.to_h if ENV["SSH_PORT"]

    dir = Dir.mktmpdir("evssh-bench-")
    File.chmod(0o755, dir)
    harness = File.expand_path("../../../test/sshd-harness.sh", __dir__)
    system({ "HARNESS_OWNER_PID" => Process.pid.to_s }, "bash", harness, "start", "#{dir}/sshd", out: File::NULL) or abort "sshd"
    at_exit { system("bash", harness, "stop", "#{dir}/sshd", "--remove", out: File::NULL, err: File::NULL) }
    v = File.read("#{dir}/sshd/env").scan(/^(\w+)='([^']*)'/).to_h
    user = v["HARNESS_HAVE_PASSWORD_USER"] == "1" ? v["HARNESS_PASSWORD_USER"] : v["HARNESS_USER"]
    { "SSH_PORT" => v["HARNESS_PORT"], "SSH_USER" => user, "SSH_KEY" => v["HARNESS_KEY_ED25519"],
      "SSH_KNOWN_HOSTS" => v["HARNESS_KNOWN_HOSTS"] }
  end

  def options(env)
    { port: Integer(env["SSH_PORT"]), keys: [env["SSH_KEY"]], keys_only: true,
      user_known_hosts_file: env["SSH_KNOWN_HOSTS"], verify_host_key: :always, config: false,
      non_interactive: true, encryption: "aes128-ctr", hmac: "hmac-sha2-256-etm@openssh.com" }.freeze
  end

  # removed at exit; world-writable because the remote side (the harness
  # account) writes here
  def work_dir(prefix)
    dir = Dir.mktmpdir(prefix)
    File.chmod(0o777, dir)
    at_exit { FileUtils.remove_entry(dir) }
    dir
  end
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def timed
  t = now
  yield
  now - t
end
