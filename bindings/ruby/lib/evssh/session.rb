# The Ruby part of EvSSH::Session, Net::SSH::Connection::Session's surface:
# building a session from Net::SSH's options (EvSSH::Options), connecting,
# logger/options/transport, channels by id, exec/exec! and open_channel (with
# send_env/set_env), close/shutdown!, Net::SSH's event loop hooks
# (preprocess/postprocess/listeners, for loops such as net-ssh-multi's), and
# the scp/sftp accessors that net-scp and net-sftp add to Net::SSH sessions.
# The loop itself, channels and requests are in C (ext/evssh).
module EvSSH
  class StringWithExitstatus < String
    attr_reader :exitstatus, :exitsignal

    def initialize(str, exitstatus, exitsignal = nil)
      super(str)
      @exitstatus = exitstatus
      @exitsignal = exitsignal
    end
  end

  class Session
    # Default IO.select timeout threshold (Net::SSH's constant)
    DEFAULT_IO_SELECT_TIMEOUT = 300

    attr_reader :options, :transport

    # A configured, unconnected session (EvSSH.start, EvSSH.prepare and
    # Multi use it).
    def self.build(host, user = nil, options = {})
      plan = Options.new(host, user, options)
      # the name as given: ssh_config's Host blocks match it
      session = new(host.to_s)
      session.__setup(plan)
      session
    end

    def __setup(plan)
      @plan = plan
      @options = plan.options
      @transport = Transport::Session.new(self, plan.host, plan.options, plan.verifier)
      (options[:properties] || {}).each { |k, v| self[k] = v }
      @env_patterns = Array(options[:send_env]).grep(Regexp)
      plan.apply(self)
      self
    rescue StandardError
      plan.cleanup
      raise
    end

    def logger
      options && options[:logger]
    end

    def host
      transport ? transport.host : super
    end

    def connect
      __start_connect
      begin
        _connect_finish
      rescue HostKeyError => e # (also Net::SSH's, under the shim: ExceptionMatch)
        describe_host_key_error(e)
        raise
      ensure
        @plan&.cleanup
      end
      self
    end

    # start connecting, without blocking (Multi); connect finishes it
    def __start_connect
      _connect_async
      self
    end

    # Multi: the connect is over
    def __after_connect
      @plan&.cleanup
    end

    def connected?
      _connect_state == true && !closed?
    end

    # [key, blob] of the server's host key for the Ruby verifiers
    def __server_host_key(type, sha256)
      if (tb = _host_key)
        blob = tb[1]
        begin
          return [Buffer.new(blob).read_key, blob]
        rescue NotImplementedError, ArgumentError, OpenSSL::PKey::PKeyError
          return [HostKeyStub.new(type, sha256), blob]
        end
      end
      [HostKeyStub.new(type, sha256), nil]
    end

    # Net::SSH: { local_id => channel }
    def channels
      _channels.to_h { |c| [c.local_id, c] }
    end

    def open_channel(type = "session", *extra, &on_confirm)
      if @env_patterns.empty? || type.to_s != "session"
        return extra.empty? && type == "session" ? _open_channel(&on_confirm) : _open_channel(type, *extra, &on_confirm)
      end

      _open_channel do |ch|
        env_requests.each { |name, value| ch.env(name, value) }
        on_confirm&.call(ch)
      end
    end

    def exec(command, status: nil, &block)
      return _exec(command, status: status, &block) if @env_patterns.empty?

      open_channel do |channel|
        channel.exec(command) do |ch, success|
          raise "could not execute command: #{command.inspect}" unless success

          if status
            ch.on_request("exit-status") { |_c, data| status[:exit_code] = data.read_long }
            ch.on_request("exit-signal") { |_c, data| status[:exit_signal] = data.read_string }
          end
          ch.on_data { |c2, data| block ? block.call(c2, :stdout, data) : $stdout.print(data) }
          ch.on_extended_data { |c2, _type, data| block ? block.call(c2, :stderr, data) : $stderr.print(data) }
        end
      end
    end

    def exec!(command, status: nil, &block)
      return _exec_bang(command, status: status, &block) if @env_patterns.empty?

      block_or_concat = block || proc { |ch, _type, data| (ch[:result] ||= +"") << data }
      status ||= {}
      channel = exec(command, status: status, &block_or_concat)
      channel.wait
      channel[:result] ||= +"" unless block
      channel[:result] &&= channel[:result].force_encoding("UTF-8") unless block
      StringWithExitstatus.new(channel[:result], status[:exit_code], channel.exit_signal) if channel[:result]
    end

    # Close every channel, let them finish for up to 3 seconds, disconnect.
    def close
      return nil if closed? && !fileno.positive?

      begin
        _channels.each(&:close)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 3
        loop(0.1) { busy?(true) && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline }
      rescue EvSSH::Exception, IOError
        nil # the peer went away first: nothing left to close gracefully
      ensure
        _close_now
      end
      nil
    end

    # Net::SSH's hard shutdown: no goodbye; later calls raise.
    def shutdown!
      _shutdown
      nil
    end

    alias loop_forever loop

    # Net::SSH's event loop hooks, for loops of other libraries ----------------

    # { io => callback }: the session socket (nil) and every listen_to IO
    def listeners
      sock = transport&.socket
      h = sock && !closed? ? { sock => nil } : {}
      h.merge(_listened_ios)
    end

    def preprocess
      return false if block_given? && !yield(self)

      _step
      return false if block_given? && !yield(self)

      true
    end

    def ev_preprocess(&_block)
      _step
    end

    def postprocess(readers, writers)
      sock = transport&.socket
      _postprocess_ios(Array(readers) - [sock], Array(writers) - [sock])
    end
    alias ev_do_handle_events postprocess

    def ev_do_calculate_rw_wait(wait)
      r = listeners.keys
      w = r.select { |io| io.respond_to?(:pending_write?) && io.pending_write? }
      [r, w, [wait, max_select_wait_time].compact.min]
    end

    def ev_do_postprocess(_was_events)
      true
    end

    # how long a foreign loop may wait before calling preprocess again
    def max_select_wait_time
      t = _timeout
      t.negative? ? nil : t / 1000.0
    end

    def inspect
      "#<EvSSH::Session #{host}#{closed? ? ' closed' : ''}>"
    end

    # net-scp and net-sftp add scp and sftp to Net::SSH's session class;
    # the same accessors appear here once they are loaded.
    def method_missing(name, *args, &block)
      case name
      when :scp
        return(@scp ||= ::Net::SCP.new(self)) if defined?(::Net::SCP)
      when :sftp
        if defined?(::Net::SFTP::Session)
          @sftp ||= begin
            sftp = ::Net::SFTP::Session.new(self)
            sftp.connect! if args.empty? || args.first
            sftp
          end
          return @sftp
        end
      end
      super
    end

    def respond_to_missing?(name, include_private = false)
      (name == :scp && defined?(::Net::SCP)) || (name == :sftp && defined?(::Net::SFTP::Session)) || super
    end

    private

    # Net::SSH's send_env Regexps, matched against ENV as each session
    # channel opens (names and set_env are libevssh's SendEnv / SetEnv)
    def env_requests
      @env_patterns.flat_map { |pattern| ENV.select { |name, _| name =~ pattern }.to_a }
    end

    # the details Net::SSH's host key errors carry; remember_host! records
    # the key when libevssh could tell it
    def describe_host_key_error(error)
      data = error.instance_variable_get(:@data) || {}
      return if data[:session] # built by a Ruby verifier: complete already

      blob = error.instance_variable_get(:@__host_key_blob)
      key = begin
        blob && Buffer.new(blob).read_key
      rescue NotImplementedError, ArgumentError, OpenSSL::PKey::PKeyError
        nil
      end
      t = transport
      name = t.port == Transport::Session::DEFAULT_PORT ? t.host : "[#{t.host}]:#{t.port}"
      error.data = data.merge(key: key, key_blob: blob, session: t, peer: { host: t.host, port: t.port })
      return unless key

      opts = options
      error.callback = proc { (opts[:known_hosts] || KnownHosts).add(opts[:host_key_alias] || name, key, opts) }
    end

    # listen_to(io) without a block, as Net::SSH: fill the BufferedIo, and
    # close and forget the IO at end of file
    def __evssh_default_listener(io)
      return unless io.fill.zero?

      io.close unless io.closed?
      stop_listening_to(io)
    end
  end
end
