# Benchmark (not a test): a big file up and down over SFTP with
# session.sftp on an EvSSH session (the native client: libevssh's
# pipelined transfers) against net-sftp on a net-ssh session, side by side
# in one run against the same sshd (internal-sftp) with the same algorithms
# (aes128-ctr + hmac-sha2-256-etm@openssh.com: net-ssh 7.0 has no AES-GCM
# or chacha20). The two take turns; each figure is the best of ROUNDS.
# Printed: seconds, MiB/s and the ratio native / net-sftp.
#
#   ruby bindings/ruby/bench/bench_sftp.rb [MIB=1024] [ROUNDS=1]
#
# Starts its own sshd through test/sshd-harness.sh unless SSH_PORT, SSH_USER,
# SSH_KEY and SSH_KNOWN_HOSTS describe one already running. The files live
# in a scratch directory under TMPDIR (2 x MIB on disk for each library).
require_relative "../test/build"
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__), EvSSHBuild.build!)
require "evssh"
require_relative "common"
require "tmpdir"
require "fileutils"
require "digest"
begin
  require "net/ssh"
  require "net/sftp"
rescue LoadError
  abort "net-ssh and net-sftp are needed (Debian: ruby-net-ssh ruby-net-sftp)"
end
abort "this evssh extension has no SFTP (libevssh without evssh_sftp_open)" unless defined?(EvSSH::SFTP::Upload)

MIB = Integer(ARGV[0] || 1024)
ROUNDS = Integer(ARGV[1] || 1)

env = BenchCommon.start_sshd
OPTS = BenchCommon.options(env)
USER = env["SSH_USER"]
WORK = BenchCommon.work_dir("evssh-bench-sftp-")

src = File.join(WORK, "src")
File.open(src, "wb") { |f| MIB.times { f.write(Random.bytes(1024 * 1024)) } }
want = Digest::SHA256.file(src).hexdigest

libs = { "net-sftp on net-ssh #{Net::SSH::Version::STRING}" => Net::SSH, "evssh session.sftp (native)" => EvSSH }
sessions = libs.transform_values { |lib| lib.start("127.0.0.1", USER, OPTS.dup) }
best = Hash.new { |h, k| h[k] = Float::INFINITY }
ROUNDS.times do
  sessions.each do |name, ssh|
    sftp = ssh.sftp
    remote = File.join(WORK, "remote")
    back = File.join(WORK, "back")
    up = timed { sftp.upload!(src, remote) }
    down = timed { sftp.download!(remote, back) }
    raise "#{name}: the copy differs" unless Digest::SHA256.file(back).hexdigest == want && File.size(remote) == File.size(src)

    best[[name, :up]] = [best[[name, :up]], up].min
    best[[name, :down]] = [best[[name, :down]], down].min
    FileUtils.rm_f([remote, back])
  end
end
sessions.each_value(&:close)

ours, theirs = libs.keys.reverse
puts "SFTP #{MIB} MiB, best of #{ROUNDS} (aes128-ctr, hmac-sha2-256-etm), #{RUBY_DESCRIPTION}"
%i[up down].each do |dir|
  libs.each_key do |name|
    t = best[[name, dir]]
    printf("  %-4s %-40s %8.2f s %8.1f MiB/s\n", dir, name, t, MIB / t)
  end
  printf("  %-4s ratio native / net-sftp: %.1fx\n", dir, best[[theirs, dir]] / best[[ours, dir]])
end
