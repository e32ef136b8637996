# Net::SSH's host key verifiers. With a symbol (or one of these classes) and
# no known_hosts object, EvSSH.start hands the policy to libevssh, which
# checks known_hosts in C; these classes run when a program brings its own
# known_hosts object, a host_key_alias or its own verifier. They get
# Net::SSH's arguments { key:, key_blob:, fingerprint:, session: }. Until
# libevssh reports the server's key blob (evssh_session_host_key), :key is a
# HostKeyStub that knows only its type and fingerprint, and keys are compared
# by SHA256 fingerprint.
module EvSSH
  # The server's host key when libevssh gave only its type and fingerprint.
  class HostKeyStub
    attr_reader :ssh_type

    def initialize(ssh_type, sha256_fingerprint)
      @ssh_type = ssh_type
      @sha256 = sha256_fingerprint
    end

    def fingerprint(algorithm = "MD5")
      return @sha256 if algorithm.to_s.upcase == "SHA256"

      raise NotImplementedError, "the #{algorithm} fingerprint needs the key blob (libevssh's evssh_session_host_key)"
    end

    def to_blob
      raise NotImplementedError, "the server's key blob needs libevssh's evssh_session_host_key"
    end
  end

  module Verifiers
    # Does a known_hosts entry stand for the server's key?
    def self.key_matches?(entry, arguments)
      key = arguments[:key]
      if arguments[:key_blob]
        return entry.matches_key?(key) if entry.respond_to?(:matches_key?)

        return entry.ssh_type == key.ssh_type && entry.to_blob == key.to_blob
      end
      return false unless entry.respond_to?(:to_blob) && arguments[:fingerprint].to_s.start_with?("SHA256:")
      return false if entry.is_a?(HostKeyEntries::CertAuthority)

      KeyBlob.fingerprint(entry.to_blob, "SHA256") == arguments[:fingerprint]
    rescue NotImplementedError
      false
    end

    class Always
      def verify(arguments)
        host_keys = arguments[:session].host_keys
        process_cache_miss(host_keys, arguments, HostKeyUnknown, "is unknown") if host_keys.empty?
        found = host_keys.any? { |entry| Verifiers.key_matches?(entry, arguments) }
        process_cache_miss(host_keys, arguments, HostKeyMismatch, "does not match") unless found
        found
      end

      def verify_signature
        yield
      end

      private

      def process_cache_miss(host_keys, args, exc_class, message)
        exception = EvSSH.net_ssh_class(exc_class).new("fingerprint #{args[:fingerprint]} #{message} for #{host_keys.host.inspect}")
        EvSSH.mark(exception, HostKeyError::CODE, exc_class)
        exception.data = args
        exception.callback = proc { host_keys.add_host_key(args[:key]) }
        raise exception
      end
    end

    class AcceptNew < Always
      def verify(arguments)
        super
      rescue HostKeyUnknown => e
        e.remember_host!
        true
      end

      def verify_signature
        yield
      rescue HostKeyUnknown => e
        e.remember_host!
        true
      end
    end

    class AcceptNewOrLocalTunnel < AcceptNew
      def verify(arguments)
        return true if tunnelled?(arguments)

        super
      end

      private

      def tunnelled?(args)
        return false if args[:session].port == Transport::Session::DEFAULT_PORT

        ip = args[:session].peer[:ip]
        ["127.0.0.1", "::1"].include?(ip)
      end
    end

    class Never
      def verify(_arguments)
        true
      end

      def verify_signature
        true
      end
    end

    # Net::SSH's select_host_key_verifier: a symbol, true/false (deprecated)
    # or an object that responds to verify.
    def self.select(verifier)
      case verifier
      when false
        Kernel.warn("verify_host_key: false is deprecated, use :never")
        Never.new
      when :never then Never.new
      when true
        Kernel.warn("verify_host_key: true is deprecated, use :accept_new_or_local_tunnel")
        AcceptNewOrLocalTunnel.new
      when :accept_new_or_local_tunnel, nil then AcceptNewOrLocalTunnel.new
      when :very
        Kernel.warn("verify_host_key: :very is deprecated, use :accept_new")
        AcceptNew.new
      when :accept_new then AcceptNew.new
      when :secure
        Kernel.warn("verify_host_key: :secure is deprecated, use :always")
        Always.new
      when :always then Always.new
      else
        unless verifier.respond_to?(:verify)
          raise ArgumentError, "Invalid argument to :verify_host_key (or deprecated :paranoid): #{verifier.inspect}"
        end

        builtin(verifier) || verifier
      end
    end

    # Net::SSH's own verifier objects stand for the same policies as ours
    def self.builtin(verifier)
      name = verifier.class.name.to_s
      return nil unless name.start_with?("Net::SSH::Verifiers::")

      { "Always" => Always, "AcceptNew" => AcceptNew, "AcceptNewOrLocalTunnel" => AcceptNewOrLocalTunnel,
        "Never" => Never }[name.split("::").last]&.new
    end
  end
end
