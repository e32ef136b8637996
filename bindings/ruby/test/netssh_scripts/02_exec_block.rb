require "net/ssh"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  streams = Hash.new { |h, k| h[k] = +"" }
  channels = (1..3).map do |i|
    ssh.exec("echo out#{i}; echo err#{i} >&2; echo more#{i}") { |ch, stream, data| streams[[ch.local_id, stream]] << data }
  end
  puts "busy before loop: #{ssh.busy?}"
  ssh.loop
  puts "busy after loop: #{ssh.busy?}"
  channels.each do |ch|
    puts "channel: stdout=#{streams[[ch.local_id, :stdout]].inspect} stderr=#{streams[[ch.local_id, :stderr]].inspect}"
  end
  status = {}
  ch = ssh.exec("exit 9", status: status) { |*| }
  ch.wait
  puts "status: #{status[:exit_code]} active: #{ch.active?}"
  $stdout.sync = true
  ssh.exec("echo printed by exec without a block")
  ssh.loop
end
