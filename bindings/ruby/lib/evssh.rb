# EvSSH: Net::SSH's API over libevssh, the C SSH-2 client library. A
# Net::SSH script ports by changing its require and its constant. The
# protocol lives entirely in C (ext/evssh); this file only turns Net::SSH's
# keyword options into ssh_config keywords and adds the pieces of the
# Session API that are plain Ruby (block form of start, close).
require "evssh/version"
begin
  require "evssh/evssh_ext"
rescue LoadError
  require "evssh_ext"
end
require "evssh/buffered_io"
require "evssh/multi"

module EvSSH
  # Net::SSH's names, for code that rescues them
  ConnectionTimeout = TimeoutError
  Disconnect = Disconnected
  ConnectError = ConnectionError

  class ChannelOpenFailed
    attr_reader :reason
    def initialize(*args)
      # ChannelOpenFailed.new(code, reason), as Net::SSH, or a plain message
      if args.length == 2 && args[0].is_a?(Integer)
        @code, @reason = args
        super("#{@reason} (#{@code})")
      else
        super(*args)
      end
    end
  end

  class StringWithExitstatus < String
    attr_reader :exitstatus, :exitsignal
    def initialize(str, exitstatus, exitsignal = nil)
      super(str)
      @exitstatus = exitstatus
      @exitsignal = exitsignal
    end
  end

  HOST_KEY_POLICY = {
    always: "yes", very: "yes", true => "accept-new", accept_new: "accept-new",
    accept_new_or_local_tunnel: "accept-new", never: "no", false => "no"
  }.freeze

  # Net::SSH option => ssh_config keyword (value mapped by the lambda)
  list = ->(v) { Array(v).join(",") }
  OPTION_KEYWORDS = {
    port: ["Port", :to_s.to_proc],
    timeout: ["ConnectTimeout", ->(v) { v.to_f.ceil.to_s }],
    keys_only: ["IdentitiesOnly", ->(v) { v ? "yes" : "no" }],
    user_known_hosts_file: ["UserKnownHostsFile", ->(v) { Array(v).join(" ") }],
    global_known_hosts_file: ["GlobalKnownHostsFile", ->(v) { Array(v).join(" ") }],
    encryption: ["Ciphers", list],
    hmac: ["MACs", list],
    kex: ["KexAlgorithms", list],
    host_key: ["HostKeyAlgorithms", list],
    auth_methods: ["PreferredAuthentications", list],
    non_interactive: ["BatchMode", ->(v) { v ? "yes" : "no" }],
    keepalive_interval: ["ServerAliveInterval", :to_s.to_proc],
    keepalive_maxcount: ["ServerAliveCountMax", :to_s.to_proc],
    proxy_command: ["ProxyCommand", :to_s.to_proc],
    proxy_jump: ["ProxyJump", :to_s.to_proc],
    rekey_limit: ["RekeyLimit", :to_s.to_proc]
  }.freeze
  IGNORED_OPTIONS = %i[logger keepalive number_of_password_prompts compression].freeze
  # Net::SSH's verbose: levels => libevssh log levels (written to stderr)
  LOG_LEVELS = { debug: 3, info: 2, warn: 1, error: 1, fatal: 1 }.freeze

  class << self
    # EvSSH.start(host, user, port:, keys:, password:, verify_host_key:,
    # timeout:, config:, options: { "Keyword" => value }) { |ssh| ... }
    # With a block the session is closed when the block ends and the block's
    # value is returned; without one the session is returned.
    def start(host, user = nil, **opts)
      session = Session.build(host, user, **opts)
      session._connect
      return session unless block_given?
      begin
        yield session
      ensure
        session.close unless session.closed?
      end
    end
  end

  # EvSSH.prepare(host, user, **opts): a configured session not yet
  # connected, so handlers (on_global_request, on_open_channel) can be in
  # place for what the server sends right after authentication
  # (hostkeys-00@openssh.com); then session.connect.
  def self.prepare(host, user = nil, **opts)
    Session.build(host, user, **opts)
  end

  class Session
    def connect
      _connect
      self
    end

    # A configured but unconnected session (EvSSH.start and Multi use it).
    def self.build(host, user = nil, **opts)
      opts = opts.dup
      user ||= opts.delete(:user)
      session = new(host.to_s)
      config = opts.key?(:config) ? opts.delete(:config) : true
      case config
      when false, nil then session._read_config("none")
      when true then nil # ~/.ssh/config, read when connecting
      else Array(config).each { |path| session._read_config(File.expand_path(path.to_s)) }
      end
      session._option("User", user) if user && !user.to_s.empty?
      if (passphrase = opts.delete(:passphrase))
        session._passphrase = passphrase.to_s
        # the passphrase is answered from the option, never asked of a person:
        # BatchMode would refuse to even try it
        opts.delete(:non_interactive)
      end
      password = opts.delete(:password)
      session._password = password.to_s if password
      if opts.key?(:verify_host_key)
        v = opts.delete(:verify_host_key)
        policy = HOST_KEY_POLICY[v.is_a?(String) ? v.to_sym : v]
        raise ArgumentError, "verify_host_key: #{v.inspect} is not one of :always, :accept_new, :never" unless policy
        session._option("StrictHostKeyChecking", policy)
      end
      if opts.key?(:verbose)
        v = opts.delete(:verbose)
        session._log_level = v.is_a?(Integer) ? v : LOG_LEVELS.fetch(v) { raise ArgumentError, "verbose: #{v.inspect}" }
      end
      Array(opts.delete(:keys)).each { |k| session._option("IdentityFile", File.expand_path(k.to_s)) }
      if opts.key?(:keepalive) && opts[:keepalive] && !opts.key?(:keepalive_interval)
        opts[:keepalive_interval] = 300
      end
      (opts.delete(:options) || {}).each { |k, v| session._option(k.to_s, v.to_s) }
      opts.each do |key, value|
        next if IGNORED_OPTIONS.include?(key)
        keyword, conv = OPTION_KEYWORDS[key]
        raise ArgumentError, "unknown option: #{key.inspect}" unless keyword
        next if value.nil?
        session._option(keyword, conv.call(value))
      end
      session
    end

    # Close every channel, let them finish for up to 3 seconds, disconnect.
    def close
      return nil if closed? && !fileno.positive?
      begin
        channels.each(&:close)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 3
        loop(0.1) { busy?(true) && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline }
      rescue EvSSH::Error
        nil # the peer went away first: nothing left to close gracefully
      ensure
        _close_now
      end
      nil
    end

    def inspect
      "#<EvSSH::Session #{host}#{closed? ? ' closed' : ''}>"
    end

    private

    # listen_to(io) without a block, as Net::SSH: fill the BufferedIo, and
    # close and forget the IO at end of file
    def __evssh_default_listener(io)
      return unless io.fill.zero?
      io.close unless io.closed?
      stop_listening_to(io)
    end
  end

  class Channel
    def inspect
      "#<EvSSH::Channel #{local_id} #{type}#{closed? ? ' closed' : ''}>"
    end
  end
end
