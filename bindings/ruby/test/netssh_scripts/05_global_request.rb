require "net/ssh"
require "socket"

OPTS = { port: Integer(ENV.fetch("SSH_PORT")), keys: [ENV.fetch("SSH_KEY")], keys_only: true,
         user_known_hosts_file: ENV.fetch("SSH_KNOWN_HOSTS"), verify_host_key: :always,
         config: false, non_interactive: true }

Net::SSH.start("127.0.0.1", ENV.fetch("SSH_USER"), **OPTS) do |ssh|
  replies = []
  ssh.send_global_request("keepalive@openssh.com") { |ok, _response| replies << "keepalive: #{ok}" }
  port = nil
  ssh.send_global_request("tcpip-forward", :string, "127.0.0.1", :long, 0) do |ok, response|
    replies << "tcpip-forward: #{ok}"
    port = response.read_long
  end
  ssh.loop { replies.size < 2 }
  puts replies, "bound a port: #{port.positive?}"

  received = +""
  ssh.on_open_channel("forwarded-tcpip") do |session, channel, packet|
    puts "server opened forwarded-tcpip to #{packet.read_string} (session given: #{session.equal?(ssh)})"
    channel.on_data do |ch, data|
      received << data
      ch.send_data(data.upcase)
      ch.eof!
      ch.close
    end
  end
  client = TCPSocket.new("127.0.0.1", port)
  client.write("through the tunnel")
  client.close_write
  ssh.loop(0.05) { received.empty? || ssh.busy? }
  puts "channel got: #{received.inspect}", "client got: #{client.read.inspect}"
  client.close
end
