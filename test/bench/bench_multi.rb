# Net::SSH::Multi peer for test/bench/bench_multi: N sessions to one sshd,
# each runs `echo ok`, all driven by one Net::SSH::Multi session; prints the
# number of "ok" lines received. Args: host port user key known_hosts N [kex]
# (prints kex-unsupported when this Net::SSH lacks the kex method; without
# the x25519 gem it has no curve25519-sha256, and runs ecdh-sha2-nistp256,
# the nearest classical method, saying so with a kex-used line)
require 'net/ssh'
require 'net/ssh/multi'

host, port, user, key, known_hosts, n, kex = ARGV
n = n.to_i
if kex && !Net::SSH::Transport::Kex::MAP.key?(kex)
  unless kex == 'curve25519-sha256'
    puts 'kex-unsupported'
    exit 0
  end
  kex = 'ecdh-sha2-nistp256'
  puts "kex-used #{kex}"
end
kex_opt = kex ? { kex: [kex] } : {}
oks = 0
Net::SSH::Multi.start(concurrent_connections: n, on_error: :warn) do |multi|
  # Net::SSH::Multi keeps one server per host/user/port: give each session
  # its own name, the real address as host_name, and the known_hosts name
  n.times do |i|
    multi.use("s#{i}", host_name: host, host_key_alias: "[#{host}]:#{port}", user: user, port: port.to_i, keys: [key], keys_only: true,
                    user_known_hosts_file: known_hosts, global_known_hosts_file: '/dev/null',
                    verify_host_key: :always, non_interactive: true, timeout: 60, **kex_opt)
  end
  multi.exec('echo ok') { |_ch, stream, data| oks += data.scan(/^ok$/).size if stream == :stdout }
  multi.loop
end
puts "ok-lines #{oks}"
