# EvSSH::Multi: many sessions driven by one loop, as the net-ssh-multi gem
# shapes it. Connecting, key exchange and authentication of every session
# proceed in parallel; one poll (GVL released) covers all of them. The
# iteration is libevssh's evssh_multi (EvSSH::Multi::Core: its process with
# wait 0 under the GVL, then a GVL-free poll over every member); on a library
# built without it, EvSSH::Multi._step drives the members through the
# external-loop interface (evssh_session_fd/events/timeout/handle_events).
# A session that fails is dropped and reported without disturbing the others.
module EvSSH
  class Multi
    attr_reader :sessions, :failed

    class << self
      # false: drive members through the external-loop interface even when
      # the library has evssh_multi (tests cover both paths)
      attr_accessor :use_c_multi
    end
    self.use_c_multi = true

    # Multi.start(**defaults) { |multi| ... }: loops until idle at the end of
    # the block, then closes every session.
    def self.start(**defaults)
      multi = new(**defaults)
      return multi unless block_given?
      begin
        result = yield multi
        multi.loop
        result
      ensure
        multi.close
      end
    end

    def initialize(**defaults)
      @defaults = defaults
      @sessions = []
      @on_ready = {}
      @failed = {}
      @core = EvSSH::HAVE_C_MULTI && Multi.use_c_multi ? Core.new : nil
    end

    # Start connecting to host (does not block); on_ready is called with
    # (session, nil) once it is ready or (session, error) if it failed.
    def use(host, user = nil, **opts, &on_ready)
      session = Session.build(host, user, @defaults.merge(opts))
      session.__start_connect
      @on_ready[session] = on_ready
      @sessions << session
      @core.add(session) if @core && session._connect_state != false
      settle(session)
      session
    end

    # Add an already connected session.
    def add(session)
      return session if @sessions.include?(session)
      @core&.add(session)
      @sessions << session
      session
    end

    def remove(session)
      @core&.remove(session)
      @on_ready.delete(session)
      @sessions.delete(session)
    end

    def connecting
      @sessions.select { |s| s._connect_state.nil? }
    end

    def ready
      @sessions.select { |s| s._connect_state }
    end

    def busy?(include_invisible = false)
      @sessions.any? { |s| s._connect_state.nil? || (!s.closed? && s.busy?(include_invisible)) }
    end

    # One iteration over every session; false when the block said stop.
    def process(wait = nil, &cond)
      return false if cond && !cond.call(self)
      failures = @core ? @core.work : Multi._step(@sessions.dup, wait, cond && proc { cond.call(self) })
      failures.each do |session, error|
        @failed[session] = error
        remove_failed(session, error)
      end
      @sessions.dup.each { |s| settle(s) }
      return false if cond && !cond.call(self)
      @core&.wait(wait)
      true
    end

    # Until the block says stop (default: while anything connects or is busy).
    def loop(wait = nil, &cond)
      cond ||= proc { busy? }
      while process(wait, &cond)
      end
      nil
    end

    # Wait until every session has connected or failed.
    def connect!
      loop { !connecting.empty? }
      self
    end

    # exec on every ready session (waits for connects first); returns the channels.
    def exec(command, &block)
      connect!
      ready.map { |s| s.exec(command, &block) }
    end

    # exec! on every session at once: { session => String with #exitstatus }.
    def exec!(command)
      connect!
      results = {}
      ready.each do |s|
        out = +""
        ch = s.exec(command) { |_c, _stream, data| out << data }
        results[s] = [out, ch]
      end
      loop
      results.transform_values do |(out, ch)|
        StringWithExitstatus.new(out.force_encoding("UTF-8"), ch.exit_status, ch.exit_signal)
      end
    end

    def close
      @sessions.each { |s| @core&.remove(s) }
      @sessions.each { |s| s.close unless s.closed? && !s.fileno.positive? }
      @sessions.clear
      nil
    end

    private

    def settle(session)
      state = session._connect_state
      return if state.nil? || !@on_ready.key?(session)
      cb = @on_ready.delete(session)
      session.__after_connect
      if state
        cb&.call(session, nil)
      else
        error = session._connect_error
        @failed[session] = error
        @core&.remove(session)
        @sessions.delete(session)
        cb&.call(session, error)
      end
    end

    def remove_failed(session, error)
      session.__after_connect
      @core&.remove(session)
      cb = @on_ready.delete(session)
      @sessions.delete(session)
      cb&.call(session, error)
    end
  end
end
