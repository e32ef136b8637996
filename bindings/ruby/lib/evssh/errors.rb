# Net::SSH's exception tree, on the classes the extension defines (one per
# C code): EvSSH::Exception < RuntimeError; AuthenticationFailed,
# ConnectionTimeout, Disconnect (Timeout < Disconnect), ChannelOpenFailed
# (code, reason), ChannelRequestFailed, HostKeyError (HostKeyMismatch,
# HostKeyUnknown) with fingerprint and remember_host!, Proxy::Error and
# Proxy::ConnectError. A connect that fails at the socket raises the Errno
# class Net::SSH's Socket.tcp would (Errno::ECONNREFUSED, SocketError for a
# name that does not resolve). EvSSH.__exception_for is where the extension
# asks which exception a C error becomes.
module EvSSH
  # `code` on every exception we raise, whatever its class
  module ErrorCode
    attr_reader :code
  end

  # `rescue EvSSH::AuthenticationFailed` also catches the Net::SSH class the
  # evssh/net_ssh shim raises in its place (and a refused connect's Errno is
  # an EvSSH::ConnectionError to `rescue`).
  module ExceptionMatch
    def ===(other)
      return true if super
      k = other.instance_variable_get(:@__evssh_class) if other.is_a?(::Exception)
      k.is_a?(Class) && k <= self
    end
  end

  # Older names of this gem; Net::SSH's are the ones above.
  Disconnected = Disconnect
  TimeoutError = ConnectionTimeout

  class Closed
    include ErrorCode
  end

  class ChannelOpenFailed
    attr_reader :reason

    # ChannelOpenFailed.new(code, reason), as Net::SSH, or a plain message
    def initialize(*args)
      if args.length == 2 && args[0].is_a?(Integer)
        @code, @reason = args
        super("#{@reason} (#{@code})")
      else
        super(*args)
      end
    end
  end

  class HostKeyError
    attr_writer :callback, :data

    def [](key)
      @data && @data[key]
    end

    def fingerprint
      @data && @data[:fingerprint]
    end

    def host
      @data && @data[:peer] && @data[:peer][:host]
    end

    def port
      @data && @data[:peer] && @data[:peer][:port]
    end

    def ip
      @data && @data[:peer] && @data[:peer][:ip]
    end

    def key
      @data && @data[:key]
    end

    # Record the host and its key in the known hosts, so that the next
    # connect succeeds.
    def remember_host!
      raise NotImplementedError, "remember_host!: no host key was recorded for this error" unless @callback

      @callback.call
    end
  end

  module Proxy
    class Error < EvSSH::Exception; end
    class ConnectError < Error; end
    class UnauthorizedError < Error; end
  end

  [Exception, Closed, Proxy::Error].each { |k| k.extend(ExceptionMatch) }

  RESOLVE_FAILURE = /resolv|getaddrinfo|Name or service not known|No address associated|nodename nor servname/i

  # EvSSH class => Net::SSH class, for code under the evssh/net_ssh shim
  NET_SSH_COUNTERPARTS = {
    "Exception" => "Exception", "AuthenticationFailed" => "AuthenticationFailed",
    "ConnectionTimeout" => "ConnectionTimeout", "Disconnect" => "Disconnect", "Timeout" => "Timeout",
    "HostKeyError" => "HostKeyError", "HostKeyMismatch" => "HostKeyMismatch",
    "HostKeyUnknown" => "HostKeyUnknown", "ChannelOpenFailed" => "ChannelOpenFailed",
    "ChannelRequestFailed" => "ChannelRequestFailed", "Proxy::Error" => "Proxy::Error",
    "Proxy::ConnectError" => "Proxy::ConnectError"
  }.freeze

  class << self
    # The exception a C error (code, message) becomes; connecting: raised by
    # the connect (a timeout then is ConnectionTimeout, later a Timeout);
    # sys_errno: the errno behind a failed connect, 0 none.
    def __exception_for(code, message, connecting, sys_errno = 0)
      if code == ConnectionError::CODE && sys_errno.positive? && message !~ /ProxyCommand|ProxyJump/
        # Errno::ECONNREFUSED and its kin, as Net::SSH's Socket.tcp raises
        # them; the kernel's connect timeout is Net::SSH's ConnectionTimeout
        return __exception_for(ConnectionTimeout::CODE, message, true) if sys_errno == Errno::ETIMEDOUT::Errno

        return mark(SystemCallError.new(message, sys_errno), code, ConnectionError)
      end

      klass = evssh_class_for(code, message, connecting)
      ours = klass <= EvSSH::Exception
      raised = ours ? net_ssh_class(klass) : klass
      e = raised <= ChannelOpenFailed || (raised.name == "Net::SSH::ChannelOpenFailed") ? raised.new(code, message) : raised.new(message)
      mark(e, code, ours ? klass : ConnectionError)
      e.data = { fingerprint: fingerprint_in(message) } if e.is_a?(HostKeyError) || raised.name.to_s.start_with?("Net::SSH::HostKey")
      e
    end

    # A channel the peer refused to open (Net::SSH's ChannelOpenFailed).
    def __channel_open_failed(code, reason)
      # its code is the peer's reason code, as in Net::SSH
      mark(net_ssh_class(ChannelOpenFailed).new(code, reason), nil, ChannelOpenFailed)
    end

    # code on any exception, and the EvSSH class it stands for (ExceptionMatch)
    def mark(e, code, klass)
      e.extend(ErrorCode) unless e.respond_to?(:code)
      e.instance_variable_set(:@code, code) if code
      e.instance_variable_set(:@__evssh_class, klass)
      e
    end

    # the server's key in libevssh's host key messages ("... got SHA256:x")
    def fingerprint_in(message)
      message[/got (SHA256:[A-Za-z0-9+\/]+)/, 1] || message[/SHA256:[A-Za-z0-9+\/]+/]
    end

    # Classes are Net::SSH's when the evssh/net_ssh shim is on.
    def net_ssh_class(klass)
      return klass unless defined?(EvSSH::NetSSH) && EvSSH::NetSSH.active?

      name = NET_SSH_COUNTERPARTS[klass.name.sub(/\AEvSSH::/, "")]
      name ||= "Exception" # ProtocolError, NoAlgorithm, ...: Net::SSH::Exception
      ::Net::SSH.const_get(name)
    end

    private

    def evssh_class_for(code, message, connecting)
      case code
      when ConnectionError::CODE
        return Proxy::ConnectError if message =~ /ProxyCommand|ProxyJump/
        return ::SocketError if message =~ RESOLVE_FAILURE
        return ConnectionTimeout if message =~ /timed out/i

        ConnectionError
      when ConnectionTimeout::CODE
        connecting ? ConnectionTimeout : Timeout
      when HostKeyError::CODE
        if message =~ /does not match|another type|revoked|changed/
          HostKeyMismatch
        elsif message =~ /not known|unknown/
          HostKeyUnknown
        else
          HostKeyError
        end
      else
        EvSSH.__error_class(code)
      end
    end
  end
end
