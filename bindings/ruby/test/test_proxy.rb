require_relative "helper"
require "socket"

# Net::SSH's proxy objects, side by side: Command and Jump (libevssh's
# ProxyCommand / ProxyJump underneath), and HTTP, SOCKS4, SOCKS5 and a
# program's own object through small proxy servers started here.
class TestProxy < Minitest::Test
  include SideBySide

  def setup
    return unless SSHD.netssh?

    # net-ssh loads its proxies on demand
    %w[command jump http socks4 socks5].each { |n| require "net/ssh/proxy/#{n}" }
  end

  # A proxy server on 127.0.0.1 speaking one of HTTP CONNECT, SOCKS4,
  # SOCKS5; counts the connections it relayed.
  class ProxyServer
    attr_reader :port, :relayed

    def initialize(kind)
      @kind = kind
      @server = TCPServer.new("127.0.0.1", 0)
      @port = @server.addr[1]
      @relayed = 0
      @thread = Thread.new { loop { client = @server.accept; Thread.new(client) { |c| serve(c) } } }
    end

    def close
      @thread.kill
      @server.close
    end

    def serve(client)
      host, port = send("handshake_#{@kind}", client)
      target = TCPSocket.new(host, port)
      send("granted_#{@kind}", client)
      @relayed += 1
      pump = Thread.new { IO.copy_stream(client, target) rescue nil; target.close_write rescue nil } # rubocop:disable Style/RescueModifier
      IO.copy_stream(target, client) rescue nil # rubocop:disable Style/RescueModifier
      pump.join(5)
    rescue StandardError
      nil
    ensure
      client.close rescue nil # rubocop:disable Style/RescueModifier
      target&.close rescue nil # rubocop:disable Style/RescueModifier
    end

    def handshake_http(c)
      line = c.gets
      nil until c.gets.chomp.empty?
      line =~ /\ACONNECT ([^:]+):(\d+) HTTP/ or raise "bad request #{line.inspect}"
      [Regexp.last_match(1), Regexp.last_match(2).to_i]
    end

    def granted_http(c)
      c.write("HTTP/1.1 200 Connection established\r\n\r\n")
    end

    def handshake_socks5(c)
      _ver, n = c.read(2).unpack("CC")
      c.read(n)
      c.write([5, 0].pack("CC"))
      _v, _cmd, _rsv, atyp = c.read(4).unpack("C4")
      host = atyp == 1 ? c.read(4).unpack("C4").join(".") : c.read(c.read(1).ord)
      [host, c.read(2).unpack1("n")]
    end

    def granted_socks5(c)
      c.write([5, 0, 0, 1, 127, 0, 0, 1, 0].pack("C8n"))
    end

    def handshake_socks4(c)
      _v, _cmd, port, *ip = c.read(8).unpack("CCnC4")
      c.gets("\0")
      [ip.join("."), port]
    end

    def granted_socks4(c)
      c.write([0, 90, 0, 0, 0, 0, 0, 0].pack("C8"))
    end
  end

  def through(kind)
    server = ProxyServer.new(kind)
    yield server
  ensure
    server&.close
  end

  def test_http_socks4_socks5
    %i[http socks4 socks5].each do |kind|
      through(kind) do |proxy|
        r = assert_same_result(kind.to_s) do |lib|
          p = { http: lib::Proxy::HTTP, socks4: lib::Proxy::SOCKS4, socks5: lib::Proxy::SOCKS5 }[kind].new("127.0.0.1", proxy.port)
          start_with(lib, proxy: p) { |s| [s.exec!("echo via-#{kind}"), s.transport.socket.nil?] }
        end
        assert_equal "via-#{kind}\n", r[0]
        assert_equal 2, proxy.relayed
      end
    end
  end

  def test_a_programs_own_proxy_object
    opened = []
    factory = Object.new
    factory.define_singleton_method(:open) do |host, port, options|
      opened << [host, port, options[:timeout]]
      TCPSocket.new(host, port)
    end
    r = assert_same_result { |lib| start_with(lib, proxy: factory, timeout: 7) { |s| s.exec!("echo own") } }
    assert_equal "own\n", r
    assert_equal [["127.0.0.1", SSHD.port, 7]] * 2, opened
  end

  def test_proxy_that_refuses
    through(:http) do |proxy|
      proxy.define_singleton_method(:handshake_http) { |c| c.gets; nil until c.gets.chomp.empty?; c.write("HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"); raise "refused" }
      r = assert_same_result { |lib| start_with(lib, proxy: lib::Proxy::HTTP.new("127.0.0.1", proxy.port)) }
      assert_equal [:raised, "Proxy::ConnectError"], r
    end
  end

  def nc?
    system("sh", "-c", "command -v nc >/dev/null")
  end

  def test_command
    skip "nc not installed" unless nc?
    r = assert_same_result do |lib|
      start_with(lib, proxy: lib::Proxy::Command.new("nc %h %p")) { |s| [s.exec!("echo cmd"), s.transport.host_as_string] }
    end
    assert_equal "cmd\n", r[0]
    r = assert_same_result { |lib| start_with(lib, proxy: lib::Proxy::Command.new("exit 1")) }
    assert_equal :raised, r[0]
  end

  # ProxyJump through the fixture itself: the jump host's identity and
  # known hosts come from an ssh_config file (Net::SSH runs ssh -J with it)
  def test_jump
    Dir.mktmpdir do |d|
      cfg = File.join(d, "config")
      File.write(cfg, <<~CFG)
        Host 127.0.0.1
          User #{SSHD.user}
          Port #{SSHD.port}
          IdentityFile #{SSHD.key}
          IdentitiesOnly yes
          UserKnownHostsFile #{SSHD.known_hosts}
          StrictHostKeyChecking yes
          BatchMode yes
      CFG
      r = assert_same_result do |lib|
        start_with(lib, config: cfg, proxy: lib::Proxy::Jump.new("#{SSHD.user}@127.0.0.1:#{SSHD.port}")) do |s|
          s.exec!("echo $SSH_CLIENT | cut -d' ' -f1")
        end
      end
      assert_equal "127.0.0.1\n", r
    end
  end
end
