# Benchmark (not a test): net-scp up and down (5 MiB and 100 MiB) over a
# net-ssh session and over an EvSSH session, and 100 sequential exec!
# calls, side by side in one run against the same sshd with the same
# algorithms (aes128-ctr + hmac-sha2-256-etm@openssh.com: net-ssh 7.0 has
# no AES-GCM or chacha20). Each figure is the best of ROUNDS rounds; the
# libraries take turns within a round so both see the same load.
#
#   ruby bindings/ruby/bench/bench.rb [ROUNDS=3] [BIG_MIB=100]
#
# Starts its own sshd through test/sshd-harness.sh unless SSH_PORT, SSH_USER,
# SSH_KEY and SSH_KNOWN_HOSTS describe one already running.
require_relative "../test/build"
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__), EvSSHBuild.build!)
require "evssh"
require_relative "common"
require "tmpdir"
require "fileutils"
begin
  require "net/ssh"
  require "net/scp"
rescue LoadError
  abort "net-ssh and net-scp are needed (Debian: ruby-net-ssh ruby-net-scp)"
end

ROUNDS = Integer(ARGV[0] || 3)
BIG = Integer(ARGV[1] || 100)
EXECS = 100

env = BenchCommon.start_sshd
OPTS = BenchCommon.options(env)
USER = env["SSH_USER"]
WORK = BenchCommon.work_dir("evssh-bench-files-")

sizes = { "5 MiB" => 5, "#{BIG} MiB" => BIG }
sizes.each_value do |mib|
  path = File.join(WORK, "src-#{mib}")
  File.open(path, "wb") { |f| mib.times { f.write(Random.bytes(1024 * 1024)) } }
end

libs = { "net-ssh #{Net::SSH::Version::STRING}" => Net::SSH, "evssh" => EvSSH }
sessions = libs.transform_values do |lib|
  ssh = lib.start("127.0.0.1", USER, OPTS.dup)
  raise "exec! broken" unless ssh.exec!("echo ok") == "ok\n"

  ssh
end
best = Hash.new { |h, k| h[k] = Float::INFINITY }
ROUNDS.times do
  sessions.each do |name, ssh|
    scp = Net::SCP.new(ssh)
    sizes.each do |label, mib|
      src = File.join(WORK, "src-#{mib}")
      remote = File.join(WORK, "remote-#{mib}")
      back = File.join(WORK, "back-#{mib}")
      up = timed { scp.upload!(src, remote) }
      raise "short upload" unless File.size(remote) == mib * 1024 * 1024

      down = timed { scp.download!(remote, back) }
      raise "short download" unless File.size(back) == mib * 1024 * 1024

      best[[name, "scp up #{label}"]] = [best[[name, "scp up #{label}"]], up].min
      best[[name, "scp down #{label}"]] = [best[[name, "scp down #{label}"]], down].min
      File.delete(remote, back)
    end
    best[[name, "#{EXECS} exec!"]] = [best[[name, "#{EXECS} exec!"]], timed { EXECS.times { ssh.exec!("true") } }].min
  end
end
sessions.each_value(&:close)

rows = best.keys.map(&:last).uniq
names = libs.keys
puts "ruby #{RUBY_VERSION}; best of #{ROUNDS} rounds; aes128-ctr + hmac-sha2-256-etm; seconds (MB/s)"
printf("%-18s %22s %22s %10s\n", "", *names, "speed-up")
rows.each do |row|
  a, b = names.map { |n| best[[n, row]] }
  mib = row[/(\d+) MiB/, 1]&.to_i
  fmt = ->(t) { mib ? format("%.3f s (%.0f MB/s)", t, mib * 1.048576 / t) : format("%.3f s", t) }
  printf("%-18s %22s %22s %9.1fx\n", row, fmt.call(a), fmt.call(b), a / b)
end
