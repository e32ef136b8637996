# Net::SSH's proxies: Proxy::Command and Proxy::Jump become libevssh's own
# ProxyCommand and ProxyJump (C does the work); HTTP, HTTPS, SOCKS4, SOCKS5
# and any object with Net::SSH's `open(host, port, options)` run their
# handshake here and hand libevssh the connected socket itself
# (evssh_session_set_fd): no relay process, no copy. A socket that is not an
# OS file descriptor (TLS to an HTTPS proxy), or whose Ruby read buffer
# already holds the start of the SSH stream (a proxy object that read its
# reply with gets), is bridged to one by a thread. The handshakes here read
# exactly their replies, so the server's first bytes stay in the kernel.
require "socket"

module EvSSH
  module Proxy
    class Command
      attr_reader :command_line_template, :command_line
      attr_accessor :timeout

      def initialize(command_line_template)
        @command_line_template = command_line_template
        @command_line = nil
        @timeout = nil
      end

      # Net::SSH's open: run the command, return its stdin/stdout. EvSSH.start
      # does not call this; libevssh runs the command itself.
      def open(host, port, connection_options = nil)
        @command_line = Command.expand(command_line_template, host, port, connection_options || {})
        IO.popen(@command_line, "r+")
      end

      # %h, %p, %r (the remote_user option) as Net::SSH substitutes them
      def self.expand(template, host, port, options)
        template.gsub(/%(.)/) do
          case Regexp.last_match(1)
          when "h" then host.to_s
          when "p" then port.to_s
          when "r" then options[:remote_user] or raise ArgumentError, "remote user name not available"
          when "%" then "%"
          else raise ArgumentError, "unknown key: #{Regexp.last_match(1)}"
          end
        end
      end
    end

    class Jump
      attr_reader :jump_proxies

      def initialize(jump_proxies)
        @jump_proxies = jump_proxies
      end

      def open(_host, _port, _connection_options = nil)
        raise NotImplementedError, "EvSSH::Proxy::Jump is used through proxy: (libevssh's ProxyJump), not opened directly"
      end
    end

    # what HTTP, SOCKS4 and SOCKS5 share: the proxy server's address
    class Server
      attr_reader :proxy_host, :proxy_port, :options

      def initialize(proxy_host, proxy_port, options = {})
        @proxy_host = proxy_host
        @proxy_port = proxy_port
        @options = options
      end

      protected

      def establish_connection(connect_timeout)
        Socket.tcp(proxy_host, proxy_port, nil, nil, connect_timeout: connect_timeout)
      end
    end

    class HTTP < Server
      def initialize(proxy_host, proxy_port = 80, options = {})
        super
      end

      def open(host, port, connection_options)
        socket = establish_connection(connection_options[:timeout])
        request = +"CONNECT #{host}:#{port} HTTP/1.1\r\nHost: #{host}:#{port}\r\n"
        if options[:user]
          credentials = ["#{options[:user]}:#{options[:password]}"].pack("m0")
          request << "Proxy-Authorization: Basic #{credentials}\r\n"
        end
        socket.write(request << "\r\n")
        resp = parse_response(socket)
        return socket if resp[:code] == 200

        socket.close
        raise ConnectError, resp.inspect
      end

      protected

      def parse_response(socket)
        version, code, reason = Proxy.read_line(socket).chomp.split(/ /, 3)
        headers = {}
        while !(line = Proxy.read_line(socket).chomp).empty?
          name, value = line.split(/:\s*/, 2)
          headers[name.downcase] = value
        end
        body = headers["content-length"] ? Proxy.read_exact(socket, headers["content-length"].to_i) : nil
        { version: version, code: code.to_i, reason: reason, headers: headers, body: body }
      end
    end

    class HTTPS < HTTP
      def initialize(proxy_host, proxy_port = 80, options = {})
        super
        @ssl_context = options.delete(:ssl_context) || OpenSSL::SSL::SSLContext.new
      end

      protected

      def establish_connection(connect_timeout)
        plain = super
        ssl = OpenSSL::SSL::SSLSocket.new(plain, @ssl_context)
        ssl.sync_close = true
        ssl.hostname = proxy_host if ssl.respond_to?(:hostname=)
        ssl.connect
        ssl
      end
    end

    class SOCKS4 < Server
      VERSION = 4
      CONNECT = 1
      GRANTED = 90

      def initialize(proxy_host, proxy_port = 1080, options = {})
        super
      end

      def open(host, port, connection_options)
        socket = establish_connection(connection_options[:timeout])
        ip = Addrinfo.getaddrinfo(host, nil, :INET, :STREAM).first&.ip_address or raise ConnectError, "#{host}: no IPv4 address"
        packet = [VERSION, CONNECT, port.to_i, *ip.split(".").map(&:to_i)].pack("CCnC4") << options[:user].to_s << "\0"
        socket.write(packet)
        reply = Proxy.read_exact(socket, 8)
        version, status = reply.unpack("CC")
        if reply.bytesize != 8 || version != 0 || status != GRANTED
          socket.close
          raise ConnectError, "error connecting to proxy (#{status.inspect})"
        end
        socket
      end
    end

    class SOCKS5 < Server
      VERSION = 5
      METHOD_NO_AUTH = 0
      METHOD_PASSWD = 2
      METHOD_NONE = 0xFF
      CMD_CONNECT = 1
      ATYP_IPV4 = 1
      ATYP_DOMAIN = 3
      ATYP_IPV6 = 4
      SUCCESS = 0

      def initialize(proxy_host, proxy_port = 1080, options = {})
        super
      end

      def open(host, port, connection_options)
        socket = establish_connection(connection_options[:timeout])
        methods = [METHOD_NO_AUTH]
        methods << METHOD_PASSWD if options[:user]
        socket.write([VERSION, methods.size, *methods].pack("C*"))
        version, method = Proxy.read_exact(socket, 2).unpack("CC")
        fail_with(socket, Error, "invalid SOCKS version (#{version})") if version != VERSION
        fail_with(socket, Error, "no supported authorization methods") if method == METHOD_NONE
        negotiate_password(socket) if method == METHOD_PASSWD
        packet = [VERSION, CMD_CONNECT, 0].pack("C*")
        packet << if host =~ /\A(\d+)\.(\d+)\.(\d+)\.(\d+)\z/
                    [ATYP_IPV4, *Regexp.last_match.captures.map(&:to_i)].pack("C*")
                  else
                    [ATYP_DOMAIN, host.bytesize].pack("CC") + host
                  end
        packet << [port.to_i].pack("n")
        socket.write(packet)
        _version, reply, _rsv, atyp = Proxy.read_exact(socket, 4).unpack("C*")
        case atyp
        when ATYP_IPV4 then Proxy.read_exact(socket, 4)
        when ATYP_DOMAIN then Proxy.read_exact(socket, Proxy.read_exact(socket, 1).getbyte(0).to_i)
        when ATYP_IPV6 then Proxy.read_exact(socket, 16)
        else fail_with(socket, ConnectError, "Illegal response type")
        end
        Proxy.read_exact(socket, 2)
        fail_with(socket, ConnectError, reply.to_s) unless reply == SUCCESS
        socket
      end

      private

      def fail_with(socket, klass, message)
        socket.close
        raise klass, message
      end

      def negotiate_password(socket)
        user = options[:user].to_s
        pass = options[:password].to_s
        socket.write([1, user.bytesize].pack("CC") + user + [pass.bytesize].pack("C") + pass)
        _version, status = Proxy.read_exact(socket, 2).unpack("CC")
        fail_with(socket, UnauthorizedError, "could not authorize user") unless status == SUCCESS
      end
    end

    # n bytes, or fewer at end of file; never more (readpartial does not
    # fill Ruby's read buffer past what it returns)
    def self.read_exact(socket, n)
      out = +""
      out << socket.readpartial(n - out.bytesize) while out.bytesize < n
      out
    rescue EOFError
      out
    end

    # one line, up to and with its "\n" ("" at end of file)
    def self.read_line(socket)
      line = +""
      until line.end_with?("\n")
        b = read_exact(socket, 1)
        break if b.empty?

        line << b
      end
      line
    end

    # A connected socket handed to libevssh, which owns its descriptor from
    # then on (closing it with the session).
    class Pipe
      attr_reader :fd

      def initialize(io)
        leftover = Pipe.buffered(io)
        if io.is_a?(::IO) && leftover.empty?
          io.autoclose = false # libevssh closes it
          @io = io
          @fd = io.fileno
        else
          ours, theirs = UNIXSocket.pair
          theirs.autoclose = false
          @io = theirs
          @fd = theirs.fileno
          @bridge = Thread.new { Pipe.bridge(io, ours, leftover) }
        end
      end

      # bytes Ruby has read from io but nobody consumed yet (they belong to
      # the SSH stream)
      def self.buffered(io)
        return "".b unless io.is_a?(::IO)

        n = EvSSH.__io_buffered(io)
        n.positive? ? io.read_nonblock(n) : "".b
      end

      def self.bridge(a, b, leftover = "")
        b.write(leftover) unless leftover.empty?
        t = Thread.new do
          loop { b.write(a.readpartial(65_536)) }
        rescue StandardError
          b.close_write rescue nil # rubocop:disable Style/RescueModifier
        end
        begin
          loop { a.write(b.readpartial(65_536)) }
        rescue StandardError
          nil
        end
        t.join(5)
      ensure
        a.close rescue nil # rubocop:disable Style/RescueModifier
        b.close rescue nil # rubocop:disable Style/RescueModifier
      end
    end
  end
end
