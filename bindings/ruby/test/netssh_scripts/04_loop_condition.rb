require "net/ssh"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  done = []
  3.times { |i| ssh.exec("sleep 0.#{2 * i + 1}; echo #{i}") { |_ch, _stream, d| done << d.chomp } }
  ssh.loop(0.05) { done.size < 2 }
  puts "condition released the loop with #{done.size} of 3 done"
  ssh.loop
  puts "all: #{done.sort.join(',')} busy=#{ssh.busy?}"

  ticks = 0
  ch = ssh.open_channel { |c| c.exec("sleep 0.4") }
  ch.on_process { ticks += 1 }
  ssh.loop(0.05) { ch.active? }
  puts "on_process ran several times: #{ticks > 3}"

  flag = false
  ssh.exec("echo x") { flag = true }
  ssh.process(0.1) until flag
  puts "process until flag: #{flag}"
  puts "process with a false block: #{ssh.process(0) { false }}"
  ssh.loop
  ssh[:counter] = 3
  puts "session property: #{ssh[:counter]}"
end
