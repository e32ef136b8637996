# bench_sftp.rb: net-sftp (on net-ssh) for bench_sftp (one transfer, its
# defaults). Prints "wall_s cpu_s" of the transfer alone, connect excluded.
#   bench_sftp.rb host port user key known_hosts cipher down|up src dst
require "net/sftp"

host, port, user, key, known_hosts, cipher, direction, src, dst = ARGV
Net::SFTP.start(host, user, port: port.to_i, keys: [key], keys_only: true,
                user_known_hosts_file: known_hosts, global_known_hosts_file: "/dev/null",
                encryption: cipher, verify_host_key: :always, use_agent: false) do |sftp|
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  c0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  if direction == "down"
    sftp.download!(src, dst)
  else
    sftp.upload!(src, dst)
  end
  t1 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  c1 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  puts format("%.6f %.6f", t1 - t0, c1 - c0)
end
