require_relative "helper"
require "socket"

class TestIo < Minitest::Test
  include OneSession

  def test_buffer_codec
    b = EvSSH::Buffer.from(:byte, 7, :long, 0xdeadbeef, :string, "hi", :bool, true, :int64, 2**40, :string, %w[a b])
    assert_equal 1 + 4 + 6 + 1 + 8 + 10, b.length
    assert_equal 7, b.read_byte
    assert_equal 0xdeadbeef, b.read_long
    assert_equal "hi", b.read_string
    assert_equal true, b.read_bool
    assert_equal 2**40, b.read_int64
    assert_equal "a", b.read_string
    assert_equal 5, b.available
    assert_equal "b", b.read_string
    assert b.eof?
    assert_nil b.read_long
    short = EvSSH::Buffer.new("\x00\x00\x00\x09abc")
    assert_nil short.read_string
    assert_equal 0, short.position # a short read leaves the buffer as it was
    w = EvSSH::Buffer.new
    w.write_long(1).write_string("x").write_byte(2)
    assert_equal "\x00\x00\x00\x01\x00\x00\x00\x01x\x02".b, w.to_s
    w.read_long
    w.consume!
    assert_equal 6, w.length
    assert_raises(ArgumentError) { EvSSH::Buffer.from(:long) }
  end

  def test_buffered_io
    a, b = UNIXSocket.pair
    a.extend(EvSSH::BufferedIo)
    b.write("hello")
    assert_equal 5, a.fill
    assert_equal 5, a.available
    assert_equal "hel", a.read_available(3)
    assert_equal "lo", a.read_available
    a.enqueue("pong")
    assert a.pending_write?
    a.send_pending
    refute a.pending_write?
    assert_equal "pong", b.readpartial(10)
    b.close
    assert_equal 0, a.fill
  ensure
    a&.close
    b&.close
  end

  def test_listen_to_with_block_and_stop
    r, w = UNIXSocket.pair
    got = +""
    @ssh.listen_to(r) { |io| got << io.readpartial(100) }
    w.write("ping")
    @ssh.loop(0.05) { got.empty? }
    assert_equal "ping", got
    @ssh.stop_listening_to(r)
    w.write("more")
    @ssh.process(0.1)
    assert_equal "ping", got
  ensure
    r&.close
    w&.close
  end

  def test_listen_to_default_fills_and_feeds_a_channel
    r, w = UNIXSocket.pair
    r.extend(EvSSH::BufferedIo)
    out = +""
    ch = @ssh.open_channel { |c| c.exec("tr a-z A-Z") { |c2, _| c2.on_data { |_c, d| out << d } } }
    @ssh.listen_to(r)
    w.write("from a local socket\n")
    w.close
    eof_sent = false
    @ssh.loop(0.05) do
      ch.send_data(r.read_available) if r.available.positive?
      if r.closed? && !eof_sent && r.available.zero?
        ch.eof!
        eof_sent = true
      end
      !ch.closed?
    end
    assert_equal "FROM A LOCAL SOCKET\n", out
    assert r.closed?
  end

  def test_listen_to_writes_pending_output
    a, b = UNIXSocket.pair
    a.extend(EvSSH::BufferedIo)
    @ssh.listen_to(a) { |io| io.fill }
    a.enqueue("queued bytes")
    @ssh.process(0.1)
    assert_equal "queued bytes", b.read_nonblock(100)
  ensure
    a&.close
    b&.close
  end

  def test_global_request_and_server_opened_channel
    replies = []
    @ssh.send_global_request("keepalive@openssh.com") { |ok, _resp| replies << ok }
    port = nil
    @ssh.send_global_request("tcpip-forward", :string, "127.0.0.1", :long, 0) do |ok, resp|
      replies << ok
      port = resp.read_long
    end
    @ssh.loop { replies.size < 2 }
    assert_equal [false, true], replies
    assert_operator port, :>, 0

    got = +""
    opened = nil
    @ssh.on_open_channel("forwarded-tcpip") do |session, channel, data|
      opened = [session, data.read_string, data.read_long]
      channel.on_data { |c, d| got << d; c.send_data(d.upcase); c.eof! }
      channel.on_eof { |c| c.close }
    end
    client = TCPSocket.new("127.0.0.1", port)
    client.write("via forward")
    client.close_write
    @ssh.loop(0.05) { got.empty? || @ssh.busy? }
    assert_equal "via forward", got
    assert_same @ssh, opened[0]
    assert_equal "127.0.0.1", opened[1]
    assert_equal "VIA FORWARD", client.read
    client.close

    # refusing with ChannelOpenFailed
    @ssh.on_open_channel("forwarded-tcpip") { raise EvSSH::ChannelOpenFailed.new(1, "no") }
    client = TCPSocket.new("127.0.0.1", port)
    @ssh.loop(0.05) { client.wait_readable(0) .nil? }
    assert_equal "", client.read.to_s
    client.close
    assert_equal "still\n", @ssh.exec!("echo still")
  end

  def test_on_global_request_from_the_server
    s = EvSSH.prepare("127.0.0.1", SSHD.user, **SSHD.opts)
    got = []
    s.on_global_request("hostkeys-00@openssh.com") do |data, want_reply|
      keys = []
      while (k = data.read_string)
        keys << k
      end
      got << [keys.size, want_reply]
      true
    end
    s.connect
    s.loop(0.05) { got.empty? }
    # OpenSSH announces every host key it has (5 in the harness), no reply wanted
    assert_equal [[5, false]], got
    assert_equal "ok\n", s.exec!("echo ok")
  ensure
    s&.close
  end

  def test_on_global_request_registration
    called = []
    assert_nil(@ssh.on_global_request("x@example.com") { |_d, _w| called << 1; true })
    old = @ssh.on_global_request("x@example.com") { false }
    assert_kind_of Proc, old
  end
end
