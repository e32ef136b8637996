# Net::SSH's transport layer as a program sees it (session.transport): the
# host, port, options, the socket, the peer, the known host keys of the host
# and the negotiated algorithms. The transport itself is libevssh's; this is
# a view of it. Transport::Algorithms::ALGORITHMS lists what libevssh
# implements, DEFAULT_ALGORITHMS what it proposes by default, in its order,
# both read from libevssh (evssh_supported_algorithms).
require "socket"

module EvSSH
  module Transport
    class Algorithms
      # Net::SSH's names for libevssh's kinds of algorithm lists
      C_KINDS = { host_key: "hostkey", kex: "kex", encryption: "cipher", hmac: "mac", compression: "compression" }.freeze

      # what libevssh proposes when an option is not set, in its order
      DEFAULT_ALGORITHMS = C_KINDS.transform_values { |k| EvSSH.__algorithms(k, true).freeze }.freeze

      # everything libevssh implements
      ALGORITHMS = C_KINDS.transform_values { |k| EvSSH.__algorithms(k, false).freeze }
                          .merge(language: [].freeze).freeze

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
        session.connection.connected? && !pending?
      end

      # a key exchange is under way
      def pending?
        session.connection._rekeying?
      end

      private

      def negotiated(c_name)
        session.connection._algorithm(c_name)
      end
    end

    # Net::SSH::Transport::ServerVersion: `version` is the server's line
    # ("SSH-2.0-OpenSSH_9.2p1 ..."); libevssh keeps no lines sent before it
    class ServerVersion
      attr_reader :version, :header

      def initialize(version, header = "")
        @version = version
        @header = header
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

      # Net::SSH's ServerVersion: the server's identification line
      def server_version
        v = connection._server_version
        v && ServerVersion.new(v)
      end

      # Start a key re-exchange and wait until it is over, as Net::SSH does;
      # nothing new when one is already running.
      def rekey!
        return if algorithms.pending?

        connection._rekey
        connection.loop(0.1) { connection._rekeying? }
      end

      def rekey_as_needed
        nil # libevssh rekeys by volume and time itself
      end
    end
  end
end
