# The ProxyCommand behind EvSSH's byte pipes (proxy objects, bind_address):
# libevssh starts it with its stdin/stdout as the SSH stream; it copies
# between them and the connected socket it inherited as fd ARGV[0]. Run as
# `ruby --disable-gems pipe_relay.rb FD`; needs nothing but core Ruby.
require "socket"

sock = Socket.for_fd(Integer(ARGV.fetch(0)))
sock.autoclose = true
$stdin.binmode
$stdout.binmode
$stdout.sync = true
up = Thread.new do
  IO.copy_stream($stdin, sock)
rescue StandardError
  nil
ensure
  begin
    sock.close_write
  rescue StandardError
    nil
  end
end
begin
  IO.copy_stream(sock, $stdout)
rescue StandardError
  nil
end
up.kill
exit!(0)
