# EvSSH.start's options: every option of Net::SSH::VALID_OPTIONS with
# Net::SSH 7's meaning and defaults, turned into what libevssh takes
# (ssh_config keywords, a password, a passphrase, prompt / host key / log
# callbacks, a connection made in Ruby for proxy objects). What cannot be honoured raises ArgumentError
# naming the option; nothing is silently done another way. Plan#apply
# configures an unconnected EvSSH::Session.
require "logger"
require "etc"
require "tmpdir"
require "fileutils"
require "ipaddr"

module EvSSH
  VALID_OPTIONS = %i[
    auth_methods bind_address compression compression_level config
    encryption forward_agent hmac host_key remote_user
    keepalive keepalive_interval keepalive_maxcount kex keys key_data
    keycerts languages logger paranoid password port proxy
    rekey_blocks_limit rekey_limit rekey_packet_limit timeout verbose
    known_hosts global_known_hosts_file user_known_hosts_file host_key_alias
    host_name user properties passphrase keys_only max_pkt_size
    max_win_size send_env set_env use_agent number_of_password_prompts
    append_all_supported_algorithms non_interactive password_prompt
    agent_socket_factory minimum_dh_bits verify_host_key
    fingerprint_hash check_host_ip
  ].freeze
  # ours: raw ssh_config keywords, and this gem's earlier proxy options
  EXTRA_OPTIONS = %i[options proxy_command proxy_jump].freeze

  LOG_LEVELS = { debug: Logger::DEBUG, info: Logger::INFO, warn: Logger::WARN, error: Logger::ERROR,
                 fatal: Logger::FATAL }.freeze
  # cipher blocks of rekey_blocks_limit, in bytes (AES's block)
  REKEY_BLOCK_BYTES = 16
  # libevssh asks the server for DH group-exchange moduli of at least this
  GEX_MIN_BITS = 2048
  AUTH_METHODS = %w[publickey password keyboard-interactive].freeze

  class Options
    # The options as Net::SSH.start leaves them (defaults assigned), the
    # ssh_config keywords and the callbacks for one session.
    attr_reader :options, :host, :user, :keywords, :verifier, :ruby_verification, :pipe, :key_dir

    def initialize(host, user, options)
      options = options.dup
      invalid = options.keys - VALID_OPTIONS - EXTRA_OPTIONS
      raise ArgumentError, "invalid option(s): #{invalid.join(', ')}" if invalid.any?

      %i[password passphrase].each { |k| options.delete(k) if options.key?(k) && options[k].nil? }
      options[:user] = user if user
      options[:logger] ||= Logger.new($stderr).tap { |l| l.level = Logger::FATAL }
      options[:password_prompt] ||= Prompt.default(options)
      options[:check_host_ip] = true unless options.key?(:check_host_ip)
      options[:number_of_password_prompts] = 0 if options[:non_interactive]
      paranoid(options)
      verbose(options)
      @host = options.fetch(:host_name, host).to_s
      @alias_host = host.to_s
      @user = options[:user]
      @options = options
      @keywords = []
      @verifier = Verifiers.select(options[:verify_host_key])
      @ruby_verification = false
      @pipe = nil
      @key_dir = nil
      refuse_unsupported
    end

    def logger
      options[:logger]
    end

    # Configure session (unconnected) with everything here.
    def apply(session)
      o = options
      case (config = o.fetch(:config, true))
      when false, nil then session._read_config("none")
      when true then nil # ~/.ssh/config, read when connecting
      else Array(config).each { |path| session._read_config(File.expand_path(path.to_s)) }
      end
      kw("User", o[:user]) if o[:user] && !o[:user].to_s.empty?
      kw("HostName", o[:host_name]) if o[:host_name]
      kw("Port", o[:port].to_i) if o[:port]
      kw("ConnectTimeout", o[:timeout].to_f.ceil) if o[:timeout]
      identities
      kw("IdentitiesOnly", "yes") if o[:keys_only]
      kw("IdentityAgent", "none") if o[:use_agent] == false
      # as Net::SSH, the agent forwarded is $SSH_AUTH_SOCK's (use_agent is
      # about authentication only); libevssh asks once, after authentication
      kw("ForwardAgent", "$SSH_AUTH_SOCK") if o[:forward_agent]
      authentication
      algorithms
      known_hosts(session)
      keepalive
      rekey
      environment
      proxy
      Array(o[:proxy_command]).each { |c| kw("ProxyCommand", c) }
      Array(o[:proxy_jump]).each { |j| kw("ProxyJump", j) }
      raw = (o[:options] || {}).map { |k, v| [k.to_s, v] }
      raw_names = raw.map { |k, _| k.downcase }
      # a raw keyword wins over the same keyword from a Net::SSH option
      @keywords.reject! { |k, _| raw_names.include?(k.downcase) }
      (@keywords + raw).each { |k, v| session._option(k, v.to_s) }
      session._set_fd(@pipe.fd) if @pipe
      session._password = o[:password].to_s if o[:password]
      session._passphrase = o[:passphrase].to_s if o[:passphrase]
      session._prompt = prompt_proc
      session._set_logger(logger, c_log_level)
      session
    end

    # after the connect, succeeded or not
    def cleanup
      FileUtils.remove_entry(@key_dir) if @key_dir && File.exist?(@key_dir)
      @key_dir = nil
    end

    private

    def kw(keyword, value)
      @keywords << [keyword, value.to_s]
    end

    def paranoid(options)
      return unless options.key?(:paranoid)

      Kernel.warn(":paranoid is deprecated, please use :verify_host_key. Supported values are exactly the same, " \
                  "only the name of the option has changed.")
      if options.key?(:verify_host_key)
        Kernel.warn("Both :paranoid and :verify_host_key were specified. :verify_host_key takes precedence, " \
                    ":paranoid will be ignored.")
      else
        options[:verify_host_key] = options.delete(:paranoid)
      end
    end

    def verbose(options)
      return unless (v = options[:verbose])

      options[:logger].level = case v
                               when Integer then v
                               when Symbol then LOG_LEVELS.fetch(v) { bad_verbose(v) }
                               else bad_verbose(v)
                               end
    end

    def bad_verbose(value)
      raise ArgumentError, "can't convert #{value.inspect} to any of the Logger level constants"
    end

    def cannot(option, why)
      raise ArgumentError, "#{option}: #{why}"
    end

    def refuse_unsupported
      o = options
      cannot(:agent_socket_factory, "libevssh reaches the agent by its socket path (use IdentityAgent)") if o[:agent_socket_factory]
      cannot(:max_pkt_size, "libevssh does not let the packet size be set") if o[:max_pkt_size]
      cannot(:max_win_size, "libevssh does not let the window size be set") if o[:max_win_size]
      cannot(:rekey_packet_limit, "libevssh rekeys by volume and time, not by packet count") if o[:rekey_packet_limit]
      cannot(:languages, "no languages are negotiated") if o[:languages] && !Array(o[:languages]).reject(&:empty?).empty?
      if o[:minimum_dh_bits] && o[:minimum_dh_bits].to_i > GEX_MIN_BITS
        cannot(:minimum_dh_bits, "libevssh asks for at least #{GEX_MIN_BITS} bits, not more")
      end
      fp = o[:fingerprint_hash]
      cannot(:fingerprint_hash, "#{fp.inspect} is not MD5 or SHA256") if fp && !%w[MD5 SHA256].include?(fp.to_s.upcase)
      compression
    end

    # zlib is not implemented: true (offer it, take what the server agrees
    # to) is honoured by negotiating none; a list without none is refused.
    def compression
      c = options[:compression]
      return if c.nil? || c == false || c == true
      return if Array(c).map(&:to_s).include?("none")

      cannot(:compression, "#{c.inspect}: only none is supported (zlib is not implemented yet)")
    end

    def identities
      o = options
      Array(o[:keys]).each { |k| kw("IdentityFile", File.expand_path(k.to_s)) }
      # Net::SSH's keycerts: certificates offered with the identity whose
      # key they certify (libevssh's CertificateFile)
      Array(o[:keycerts]).each { |c| kw("CertificateFile", File.expand_path(c.to_s)) }
      data = Array(o[:key_data]).compact
      return if data.empty?

      # libevssh reads identities from files: a private directory, removed
      # once the connect is over
      @key_dir = Dir.mktmpdir("evssh-keys-")
      File.chmod(0o700, @key_dir)
      data.each_with_index do |pem, i|
        path = File.join(@key_dir, "key#{i}")
        File.open(path, File::WRONLY | File::CREAT | File::EXCL, 0o600) { |f| f.write(pem) }
        kw("IdentityFile", path)
      end
    end

    def authentication
      o = options
      return unless o[:auth_methods]

      methods = Array(o[:auth_methods]).map(&:to_s)
      known = methods & AUTH_METHODS
      dropped = methods - known - %w[none]
      logger.warn("auth_methods: #{dropped.join(', ')} not supported") unless dropped.empty?
      cannot(:auth_methods, "none of #{methods.inspect} is supported") if known.empty?
      kw("PreferredAuthentications", known.join(","))
    end

    def algorithms
      Transport::Algorithms::KEYWORDS.each do |name, keyword|
        next unless options.key?(name) && !options[name].nil?

        list = Transport::Algorithms.compose(Transport::Algorithms::ALGORITHMS[name], options[name],
                                             options[:append_all_supported_algorithms], logger)
        cannot(name, "none of #{Array(options[name]).inspect} is supported") if list.empty?
        kw(keyword, list.join(","))
      end
    end

    def known_hosts(session)
      o = options
      %i[user_known_hosts_file global_known_hosts_file].each do |k|
        next unless o[k]

        files = Array(o[k]).map { |f| File.expand_path(f.to_s) }
        kw(k == :user_known_hosts_file ? "UserKnownHostsFile" : "GlobalKnownHostsFile", files.join(" "))
      end
      if o.key?(:known_hosts) || o[:host_key_alias] || !builtin?(@verifier) || o[:fingerprint_hash].to_s.upcase == "MD5"
        ruby_host_key_check(session)
      else
        kw("StrictHostKeyChecking", c_policy)
        no_known_hosts if c_policy == "no"
      end
    end

    def builtin?(verifier)
      [Verifiers::Always, Verifiers::AcceptNew, Verifiers::AcceptNewOrLocalTunnel,
       Verifiers::Never].include?(verifier.class)
    end

    # libevssh's StrictHostKeyChecking for a built-in verifier
    def c_policy
      @c_policy ||= case @verifier
                    when Verifiers::Never then "no"
                    when Verifiers::AcceptNewOrLocalTunnel then local_tunnel? ? "no" : "accept-new"
                    when Verifiers::AcceptNew then "accept-new"
                    else "yes"
                    end
    end

    # Net::SSH's "local tunnel": a port other than 22 on a loopback address
    # (decided here from the name, before connecting; no proxy)
    def local_tunnel?
      o = options
      return false if (o[:port] || 22).to_i == Transport::Session::DEFAULT_PORT
      return false if o[:proxy] || o[:proxy_command] || o[:proxy_jump]

      addrs = Addrinfo.getaddrinfo(host, nil, nil, :STREAM)
      !addrs.empty? && addrs.all? { |a| a.ipv4_loopback? || a.ipv6_loopback? }
    rescue SocketError
      false
    end

    # every key accepted by C, none written: the Ruby verifier decides
    def no_known_hosts
      @keywords.reject! { |k, _| %w[UserKnownHostsFile GlobalKnownHostsFile].include?(k) }
      kw("UserKnownHostsFile", File::NULL)
      kw("GlobalKnownHostsFile", File::NULL)
    end

    def ruby_host_key_check(session)
      @ruby_verification = true
      kw("StrictHostKeyChecking", "no")
      no_known_hosts
      verifier = @verifier
      fingerprint_hash = options[:fingerprint_hash].to_s.upcase
      session._host_key_check = lambda do |type, sha256|
        key, blob = session.__server_host_key(type, sha256)
        fp = fingerprint_hash == "MD5" ? key.fingerprint("MD5") : sha256
        args = { key: key, key_blob: blob, fingerprint: fp, session: session.transport }
        verifier.verify(args) or raise EvSSH.net_ssh_class(EvSSH::Exception), "host key verification failed"
        true
      end
    end

    # send_env names and set_env pairs are libevssh's SendEnv / SetEnv (sent
    # on every session channel before its command); send_env Regexps are
    # matched here (EvSSH::Session#env_requests)
    def environment
      o = options
      names = Array(o[:send_env]).reject { |p| p.is_a?(Regexp) }.map(&:to_s)
      bad = names.grep(/[*?\s]/)
      cannot(:send_env, "#{bad.first.inspect} is not a variable name (use a Regexp for patterns)") unless bad.empty?
      kw("SendEnv", names.join(" ")) unless names.empty?
      pairs = (o[:set_env] || {}).map { |k, v| "#{k}=#{v}" }
      bad = pairs.grep(/\A=|\A[^=]*\s/)
      cannot(:set_env, "#{bad.first.inspect}: not NAME=VALUE") unless bad.empty?
      kw("SetEnv", pairs.map { |pv| quote(pv) }.join(" ")) unless pairs.empty?
    end

    # one argument for libevssh's ssh_config lexer
    def quote(arg)
      "\"#{arg.gsub(/[\\"]/) { |c| "\\#{c}" }}\""
    end

    def keepalive
      o = options
      return unless o[:keepalive]

      kw("ServerAliveInterval", (o[:keepalive_interval] || 300).to_i)
      kw("ServerAliveCountMax", (o[:keepalive_maxcount] || 3).to_i)
    end

    def rekey
      o = options
      limits = []
      limits << o[:rekey_limit].to_i if o[:rekey_limit]
      limits << o[:rekey_blocks_limit].to_i * REKEY_BLOCK_BYTES if o[:rekey_blocks_limit]
      kw("RekeyLimit", limits.min) unless limits.empty?
    end

    # Proxy::Command / Jump become libevssh's ProxyCommand / ProxyJump; any
    # other proxy object's socket is the session's connection; bind_address
    # (without a proxy, as Net::SSH) is libevssh's BindAddress.
    def proxy
      o = options
      if (p = o[:proxy])
        case proxy_kind(p)
        when :command
          # expanded as Net::SSH does; libevssh must not expand it again
          kw("ProxyCommand", Proxy::Command.expand(p.command_line_template, host, o[:port] || 22, o).gsub("%", "%%"))
        when :jump
          kw("ProxyJump", Array(p.jump_proxies).join(","))
        else
          socket = p.open(host, (o[:port] || 22).to_i, o)
          raise ArgumentError, "proxy: #{p.class}#open returned #{socket.class}, not a socket" unless socket.respond_to?(:read)

          @pipe = Proxy::Pipe.new(socket)
        end
      elsif o[:bind_address]
        kw("BindAddress", bind_address(o[:bind_address].to_s))
      end
    end

    # a numeric address for libevssh (which resolves no bind names, to stay
    # non-blocking), of the family of the server's first address
    def bind_address(name)
      return name if (IPAddr.new(name) rescue nil) # rubocop:disable Style/RescueModifier

      family = (Addrinfo.getaddrinfo(host, nil, nil, :STREAM).first&.afamily rescue nil) # rubocop:disable Style/RescueModifier
      addrs = Addrinfo.getaddrinfo(name, nil, nil, :STREAM)
      (addrs.find { |a| a.afamily == family } || addrs.first).ip_address
    rescue SocketError => e
      raise ArgumentError, "bind_address: #{name}: #{e.message}"
    end

    def proxy_kind(p)
      name = p.class.name.to_s
      return :command if p.is_a?(Proxy::Command) || name == "Net::SSH::Proxy::Command"
      return :jump if p.is_a?(Proxy::Jump) || name == "Net::SSH::Proxy::Jump"

      raise ArgumentError, "proxy: #{p.inspect} does not respond to open(host, port, options)" unless p.respond_to?(:open)

      :open
    end

    # libevssh log level for the logger's level (0: none)
    def c_log_level
      case logger.level
      when ..Logger::DEBUG then 3
      when Logger::INFO then 2
      when Logger::WARN, Logger::ERROR then 1
      else 0
      end
    end

    # Net::SSH's prompting: passwords up to number_of_password_prompts
    # times, keyboard-interactive and key passphrases unless
    # non_interactive, through password_prompt.
    def prompt_proc
      o = options
      prompter = o[:password_prompt]
      left = (o[:number_of_password_prompts] || 3).to_i
      interactive = !o[:non_interactive]
      user = o[:user] || Etc.getpwuid.name
      host = self.host
      # one prompter per kind, as Net::SSH starts one per method and asks it
      # for each try
      prompters = {}
      lambda do |text, echo|
        if text.include?("passphrase")
          next nil unless interactive

          file = text[/for (?:key )?'?([^':]+)/, 1].to_s
          prompters[[:key, file]] ||= prompter.start(type: "private_key", filename: file, sha256: nil)
          prompters[[:key, file]].ask(text, false)
        elsif text =~ /password:\s*\z/i
          next nil if left <= 0

          left -= 1
          (prompters[:password] ||= prompter.start(type: "password", user: user, host: host)).ask(text, false)
        else
          next nil unless interactive

          prompters[:kbd] ||= prompter.start(type: "keyboard-interactive", name: "", instruction: "")
          prompters[:kbd].ask(text, echo)
        end
      end
    end
  end
end
