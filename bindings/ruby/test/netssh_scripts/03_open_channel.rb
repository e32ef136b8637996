require "net/ssh"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  log = []
  data = +""
  ext = +""
  channel = ssh.open_channel do |ch|
    log << "opened"
    ch.exec("cat; echo warning >&2; exit 5") do |ch2, success|
      log << "exec success=#{success}"
      ch2.on_data { |_c, d| data << d }
      ch2.on_extended_data { |_c, type, d| ext << "#{type}:#{d}" }
      ch2.on_request("exit-status") { |_c, buf| log << "exit-status #{buf.read_long}" }
      ch2.on_eof { |_c| log << "eof" }
      ch2.on_close { |_c| log << "closed" }
      ch2[:note] = "set in callback"
      ch2.send_data("line one\n")
      ch2.send_data("line two\n")
      ch2.eof!
    end
  end
  channel.wait
  # exit-status and EOF may come in either order from sshd: print them sorted
  head = log.take_while { |l| l.start_with?("opened", "exec") }
  puts head, (log - head - ["closed"]).sort, log.last
  puts "data=#{data.inspect} ext=#{ext.inspect} note=#{channel[:note].inspect}"

  failed = ssh.open_channel("nonexistent@example.com")
  failed.on_open_failed { |_ch, code, desc| puts "open failed: #{code.class} #{desc.class}" }
  ssh.loop

  pty = ssh.open_channel do |ch|
    ch.request_pty(term: "vt100", chars_wide: 90, chars_high: 20) { |_c, ok| puts "pty: #{ok}" }
    ch.exec("stty size; echo $TERM") { |c, _ok| c.on_data { |_c2, d| print d.delete("\r") } }
  end
  pty.wait
end
