# Benchmark (not a test): exec! per second and one channel's MB/s, evssh
# beside net-ssh 7, in one run against the same sshd, same algorithms
# (aes128-ctr + hmac-sha2-256-etm@openssh.com: net-ssh 7.0 has no AES-GCM).
#
#   ruby bindings/ruby/bench/bench.rb [EXECS=300] [MBYTES=512]
#
# Starts its own sshd through test/sshd-harness.sh unless SSH_PORT, SSH_USER,
# SSH_KEY and SSH_KNOWN_HOSTS describe one already running.
require_relative "../test/build"
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__), EvSSHBuild.build!)
require "evssh"
require "tmpdir"
begin
  require "net/ssh"
rescue LoadError
  warn "net-ssh not installed: evssh figures only"
end

EXECS = Integer(ARGV[0] || 300)
MBYTES = Integer(ARGV[1] || 512)

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

env = start_sshd
OPTS = { port: Integer(env["SSH_PORT"]), keys: [env["SSH_KEY"]], keys_only: true,
         user_known_hosts_file: env["SSH_KNOWN_HOSTS"], verify_host_key: :always, config: false,
         non_interactive: true, encryption: "aes128-ctr", hmac: "hmac-sha2-256-etm@openssh.com" }
USER = env["SSH_USER"]

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def exec_rate(ssh, n)
  t = now
  n.times { ssh.exec!("true") }
  n / (now - t)
end

def download(ssh, mbytes)
  bytes = mbytes * 1024 * 1024
  got = 0
  t = now
  ch = ssh.open_channel do |c|
    c.exec("head -c #{bytes} /dev/zero") { |c2, _| c2.on_data { |_c, d| got += d.bytesize } }
  end
  ch.wait
  raise "short transfer #{got}" unless got == bytes
  mbytes / (now - t)
end

def upload(ssh, mbytes)
  up = mbytes * 1024 * 1024
  chunk = "\0".b * 65_536
  out = +""
  t = now
  ch = ssh.open_channel do |c|
    c.exec("wc -c") do |c2, _|
      c2.on_data { |_c, d| out << d }
      (up / chunk.bytesize).times { c2.send_data(chunk) }
      c2.eof!
    end
  end
  ch.wait
  raise "short upload #{out}" unless out.to_i == up
  mbytes / (now - t)
end

# The machine may be shared: each figure is the best of ROUNDS runs, and the
# libraries take turns within each round so both see the same load.
ROUNDS = 3
libs = { "evssh" => EvSSH }
libs["net-ssh #{Net::SSH::Version::STRING}"] = Net::SSH if defined?(Net::SSH)
sessions = libs.transform_values do |lib|
  ssh = lib.start("127.0.0.1", USER, **OPTS.dup)
  raise "exec! broken" unless ssh.exec!("echo ok") == "ok\n"
  5.times { ssh.exec!("true") }
  ssh
end
results = libs.keys.to_h { |k| [k, { exec_per_s: 0, down_mb_s: 0, up_mb_s: 0 }] }
ROUNDS.times do
  sessions.each do |name, ssh|
    r = results[name]
    r[:exec_per_s] = [r[:exec_per_s], exec_rate(ssh, EXECS / ROUNDS)].max
    r[:down_mb_s] = [r[:down_mb_s], download(ssh, MBYTES / ROUNDS)].max
    r[:up_mb_s] = [r[:up_mb_s], upload(ssh, MBYTES / ROUNDS / 4)].max
  end
end
sessions.each_value(&:close)
results.each_value { |r| r[:ms_per_exec] = 1000.0 / r[:exec_per_s] }
puts "ruby #{RUBY_VERSION}; best of #{ROUNDS} rounds of #{EXECS / ROUNDS} sequential exec!(\"true\"), " \
     "#{MBYTES / ROUNDS} MiB down, #{MBYTES / ROUNDS / 4} MiB up on one channel; aes128-ctr + hmac-sha2-256-etm"
printf("%-16s %12s %10s %14s %12s\n", "", "exec!/s", "ms/exec!", "down MB/s", "up MB/s")
results.each do |name, r|
  printf("%-16s %12.1f %10.2f %14.1f %12.1f\n", name, r[:exec_per_s], r[:ms_per_exec], r[:down_mb_s], r[:up_mb_s])
end
if results.size == 2
  e, n = results.values
  printf("%-16s %11.1fx %10s %13.1fx %11.1fx\n", "evssh/net-ssh", e[:exec_per_s] / n[:exec_per_s], "",
         e[:down_mb_s] / n[:down_mb_s], e[:up_mb_s] / n[:up_mb_s])
end
