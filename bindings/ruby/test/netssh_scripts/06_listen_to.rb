require "net/ssh"
require "socket"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  # a local socket feeds a remote command through the default BufferedIo listener
  reader, writer = UNIXSocket.pair
  reader.extend(Net::SSH::BufferedIo)
  output = +""
  channel = ssh.open_channel do |ch|
    ch.exec("tr a-z A-Z") { |c, _ok| c.on_data { |_c, d| output << d } }
  end
  ssh.listen_to(reader)
  writer.write("shouted from a local socket\n")
  writer.close
  eof_sent = false
  ssh.loop(0.05) do
    channel.send_data(reader.read_available) if reader.available.positive?
    if reader.closed? && reader.available.zero? && !eof_sent
      channel.eof!
      eof_sent = true
    end
    channel.active?
  end
  puts output, "reader closed by the loop: #{reader.closed?}"

  # a listener with its own block
  a, b = UNIXSocket.pair
  seen = []
  ssh.listen_to(a) { |io| seen << io.readpartial(64) }
  b.write("ping")
  ssh.loop(0.05) { seen.empty? }
  ssh.stop_listening_to(a)
  b.write("ignored")
  ssh.process(0.1)
  puts "block listener saw: #{seen.inspect}"
end
