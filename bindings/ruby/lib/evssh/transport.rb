# Net::SSH's transport layer as a program sees it (session.transport): the
# host, port, options, the socket, the peer, the known host keys of the host
# and the negotiated algorithms. The transport itself is libevssh's; this is
# a view of it. Transport::Algorithms::ALGORITHMS lists what libevssh
# implements, DEFAULT_ALGORITHMS what it proposes by default, in its order.
require "socket"

module EvSSH
  module Transport
    class Algorithms
      DEFAULT_ALGORITHMS = {
        host_key: %w[ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521
                     rsa-sha2-512 rsa-sha2-256],
        kex: %w[curve25519-sha256 curve25519-sha256@libssh.org ecdh-sha2-nistp256 ecdh-sha2-nistp384
                ecdh-sha2-nistp521 diffie-hellman-group-exchange-sha256 diffie-hellman-group16-sha512
                diffie-hellman-group18-sha512 diffie-hellman-group14-sha256],
        encryption: %w[chacha20-poly1305@openssh.com aes128-ctr aes192-ctr aes256-ctr
                       aes128-gcm@openssh.com aes256-gcm@openssh.com],
        hmac: %w[hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com hmac-sha1-etm@openssh.com
                 hmac-sha2-256 hmac-sha2-512 hmac-sha1]
      }.freeze

      ALGORITHMS = {
        host_key: DEFAULT_ALGORITHMS[:host_key] + %w[ssh-rsa],
        kex: DEFAULT_ALGORITHMS[:kex],
        encryption: DEFAULT_ALGORITHMS[:encryption],
        hmac: DEFAULT_ALGORITHMS[:hmac],
        compression: %w[none],
        language: %w[]
      }.freeze

      # option name => ssh_config keyword
      KEYWORDS = { kex: "KexAlgorithms", host_key: "HostKeyAlgorithms", encryption: "Ciphers",
                   hmac: "MACs" }.freeze

      # libevssh's names of the negotiated algorithms
      NEGOTIATED = { kex: "kex", host_key: "hostkey", encryption_client: "cipher_c2s",
                     encryption_server: "cipher_s2c", hmac_client: "mac_c2s", hmac_server: "mac_s2c" }.freeze

      attr_reader :session, :options, :algorithms

      # Net::SSH's compose_algorithm_list: a list keeps its order (unknown
      # names dropped with a warning), "+x"/"-x" edit the supported list,
      # append_all_supported_algorithms adds the rest after the given ones.
      def self.compose(supported, option, append_all = false, logger = nil)
        return nil if option.nil?

        option = Array(option).flat_map { |o| o.to_s.split(",") }.map(&:strip).reject(&:empty?).uniq
        if option.first&.start_with?("+", "-")
          list = supported.dup
          list.concat(option.select { |o| o.start_with?("+") }.map { |o| o[1..] })
          option.select { |o| o.start_with?("-") }.map { |o| o[1..] }.each do |o|
            if o.include?("*")
              re = /\A#{Regexp.escape(o).gsub('\*', '[A-Za-z\d\-@\.]*')}\z/
              list.delete_if { |x| re.match?(x) }
            else
              list.delete(o)
            end
          end
          list.uniq!
        else
          list = option
          supported.each { |n| list << n unless list.include?(n) } if append_all
        end
        unsupported = list - supported
        logger&.warn("unsupported algorithm: `#{unsupported}'") unless unsupported.empty?
        list & supported
      end

      def initialize(session, options)
        @session = session
        @options = options
        @algorithms = {}
        ALGORITHMS.each do |name, supported|
          @algorithms[name] = Algorithms.compose(supported, options[name], options[:append_all_supported_algorithms]) ||
                              (DEFAULT_ALGORITHMS[name] || supported).dup
        end
        %i[encryption hmac compression language].each do |n|
          @algorithms[:"#{n}_client"] = @algorithms[:"#{n}_server"] = @algorithms[n]
        end
      end

      # our proposal for one kind (Net::SSH's algorithms[:kex] ...)
      def [](key)
        @algorithms[key]
      end

      NEGOTIATED.each do |name, c_name|
        define_method(name) { negotiated(c_name) }
      end

      def compression_client
        "none"
      end
      alias compression_server compression_client

      def language_client
        ""
      end
      alias language_server language_client

      def initialized?
        session.connection.connected?
      end

      def pending?
        false
      end

      private

      def negotiated(c_name)
        conn = session.connection
        unless conn.respond_to?(:_algorithm, true)
          raise NotImplementedError, "negotiated algorithms need libevssh's evssh_session_algorithm"
        end

        conn.send(:_algorithm, c_name)
      end
    end

    # the fd-backed socket libevssh runs the session on
    module SocketInfo
      PROXY_COMMAND_HOST_IP = "<no hostip for proxy command>"

      attr_accessor :__evssh_session

      def peer_ip
        addr = remote_address
        addr.ip? ? addr.ip_address : PROXY_COMMAND_HOST_IP
      rescue SystemCallError, SocketError, IOError
        PROXY_COMMAND_HOST_IP
      end

      # the event loop wants to write (Net::SSH's BufferedIo#pending_write?)
      def pending_write?
        (__evssh_session.send(:_events) & 2) != 0
      end
    end

    class Session
      DEFAULT_PORT = 22

      attr_reader :host, :port, :options, :algorithms, :host_key_verifier, :connection

      def initialize(connection, host, options, verifier)
        @connection = connection
        @host = host
        @port = (options[:port] || DEFAULT_PORT).to_i
        @options = options
        @host_key_verifier = verifier
        @algorithms = Algorithms.new(self, options)
        @socket = nil
      end

      def logger
        options[:logger]
      end

      # The session's socket (a Socket over libevssh's descriptor, never
      # closed by Ruby): peer address, IO.select. Closing it breaks the session.
      def socket
        fd = connection.fileno
        return nil if fd.negative?
        return @socket if @socket && !@socket.closed? && @socket.fileno == fd

        s = Socket.for_fd(fd)
        s.autoclose = false
        s.extend(SocketInfo)
        s.__evssh_session = connection
        @socket = s
      end

      def host_keys
        @host_keys ||= begin
          known_hosts = options.fetch(:known_hosts, KnownHosts)
          known_hosts.search_for(options[:host_key_alias] || host_as_string, options)
        end
      end

      def host_as_string
        @host_as_string ||= begin
          string = host.to_s
          string = "[#{string}]:#{port}" if port != DEFAULT_PORT
          ip = socket&.peer_ip
          if ip && ip != SocketInfo::PROXY_COMMAND_HOST_IP && ip != host
            string2 = port == DEFAULT_PORT ? ip : "[#{ip}]:#{port}"
            string += ",#{string2}"
          end
          string
        end
      end

      def peer
        @peer ||= { ip: socket&.peer_ip, port: port, host: host, canonized: host_as_string }
      end

      def closed?
        connection.closed?
      end

      def close
        connection.shutdown!
      end

      def shutdown!
        connection.shutdown!
      end

      def server_version
        raise NotImplementedError, "the server's version string needs a libevssh call (evssh_session_server_version)"
      end

      def rekey!
        raise NotImplementedError, "a rekey on demand needs a libevssh call (evssh_session_rekey)"
      end
    end
  end
end
