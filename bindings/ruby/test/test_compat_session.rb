require_relative "helper"
require "socket"

# Net::SSH::Connection::Session's surface, side by side with net-ssh.
class TestCompatSession < Minitest::Test
  include SideBySide

  def test_session_accessors
    assert_same_result do |lib|
      start_with(lib, properties: { tier: 1 }) do |s|
        t = s.transport
        [s.host, s.closed?, s[:tier], (s[:x] = 2), s[:x], s.logger.class, s.logger.equal?(s.options[:logger]),
         s.options[:user], s.options[:port], s.options.key?(:password_prompt), t.host, t.port,
         t.host_as_string, t.peer[:ip], t.peer[:port], t.socket.peer_ip, t.socket.closed?,
         t.host_keys.to_a.size, t.host_keys.host, t.options.equal?(s.options), t.closed?,
         t.algorithms[:encryption].is_a?(Array)]
      end
    end
  end

  def test_exec_forms
    assert_same_result do |lib|
      start_with(lib) do |s|
        r = s.exec!("printf out; printf err >&2; exit 3")
        st = {}
        s.exec!("exit 4", status: st)
        out = []
        chans = 2.times.map { |i| s.exec("echo #{i}") { |_c, stream, d| out << [stream, d] } }
        busy = s.busy?
        s.loop
        [r, r.class.name.split("::").last, r.exitstatus, r.encoding, st, out.sort, busy, s.busy?,
         chans.map(&:active?), s.exec!("true") { |*| nil }]
      end
    end
  end

  def test_channels_and_busy
    assert_same_result do |lib|
      start_with(lib) do |s|
        started = false
        ch = s.open_channel { |c| c.exec("sleep 5") { started = true } }
        s.loop { !started }
        ids = s.channels.keys == [ch.local_id]
        ch[:invisible] = true
        r = [s.channels.class, ids, s.channels[ch.local_id].equal?(ch), s.busy?, s.busy?(true)]
        ch.close
        s.loop { ch.active? }
        r + [s.channels.size, s.busy?(true)]
      end
    end
  end

  def test_process_and_loop_conditions
    assert_same_result do |lib|
      start_with(lib) do |s|
        seen = []
        r1 = s.process(0) { |x| seen << x.equal?(s); false }
        r2 = s.process(0)
        done = false
        s.exec("sleep 0.3") { |*| nil }.on_close { done = true }
        n = 0
        s.loop(0.05) { n += 1; !done }
        [r1, r2, seen, done, n > 1]
      end
    end
  end

  def test_shutdown_and_close
    assert_same_result do |lib|
      s = start_with(lib)
      s.shutdown!
      after = begin
        s.exec!("true")
        :ran
      rescue IOError
        :io_error
      end
      c = start_with(lib)
      c.close
      [s.closed?, after, c.closed?]
    end
  end

  def test_listeners_and_listen_to
    assert_same_result do |lib|
      start_with(lib) do |s|
        a, b = UNIXSocket.pair
        got = []
        s.listen_to(a) { |io| got << io.readpartial(10) }
        keys = s.listeners.keys
        r = [keys.size, keys.include?(a), keys.include?(s.transport.socket)]
        b.write("ping")
        s.loop(0.05) { got.empty? }
        s.stop_listening_to(a)
        [r, got, s.listeners.keys.include?(a)]
      ensure
        a&.close
        b&.close
      end
    end
  end

  # net-ssh-multi and Net::SSH's own event loops drive a session through
  # preprocess / listeners / postprocess
  def test_preprocess_postprocess_loop
    assert_same_result do |lib|
      start_with(lib) do |s|
        out = +""
        ch = s.exec("echo driven") { |_c, _st, d| out << d }
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
        while ch.active? && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
          s.preprocess
          readers = s.listeners.keys.reject(&:closed?)
          writers = readers.select { |io| io.respond_to?(:pending_write?) && io.pending_write? }
          r, w, = IO.select(readers, writers, nil, 0.5)
          s.postprocess(r || [], w || [])
        end
        [out, ch.active?]
      end
    end
  end

  def test_global_requests
    assert_same_result do |lib|
      start_with(lib) do |s|
        replies = []
        s.send_global_request("keepalive@openssh.com") { |ok, _resp| replies << ok }
        s.send_global_request("tcpip-forward", :string, "127.0.0.1", :long, 0) { |ok, resp| replies << [ok, resp.read_long.positive?] }
        s.loop { replies.size < 2 }
        old = s.on_global_request("x@example.com") { true }
        [replies, old, s.on_global_request("x@example.com") { false }.class]
      end
    end
  end

  def test_open_channel_failure
    assert_same_result do |lib|
      start_with(lib) do |s|
        s.open_channel("no-such-type@example.com")
        e = begin
          s.loop
          nil
        rescue StandardError => x
          [SideBySide.error_name(x), x.code.class, x.reason.class]
        end
        got = nil
        s.open_channel("no-such-type@example.com").on_open_failed { |_c, code, desc| got = [code.class, desc.class] }
        s.loop
        [e, got, s.exec!("echo after")]
      end
    end
  end

  # every name in ALGORITHMS works with libevssh: each one the fixture's
  # sshd offers connects alone, each other one finds no match (NoAlgorithm)
  def test_supported_algorithms_are_libevssh_s
    algs = EvSSH::Transport::Algorithms
    config = File.read(File.join(SSHD.env["HARNESS_DIR"], "sshd_config"))
    server = { kex: "KexAlgorithms", encryption: "Ciphers", hmac: "MACs", host_key: "HostKeyAlgorithms" }
             .transform_values { |kw| config[/^#{kw} (\S+)/, 1].to_s.split(",") }
    offered = 0
    algs::KEYWORDS.each_key do |name|
      algs::ALGORITHMS[name].each do |alg|
        r = begin
          SSHD.start(name => alg) { |s| s.exec!("echo ok") }
        rescue EvSSH::NoAlgorithm
          :no_match
        end
        expected = server[name].include?(alg) ? "ok\n" : :no_match
        offered += 1 if expected == "ok\n"
        assert_equal expected, r, "#{name}: #{alg}"
      end
      assert_empty algs::DEFAULT_ALGORITHMS[name] - algs::ALGORITHMS[name]
    end
    assert_operator offered, :>=, 20
  end

  # scp / sftp accessors appear once net-scp / net-sftp are loaded
  def test_scp_and_sftp_accessors
    ssh = SSHD.start
    had_scp = defined?(Net::SCP)
    refute ssh.respond_to?(:scp) unless had_scp
    require "net/scp"
    require "net/sftp"
    assert_respond_to ssh, :scp
    assert_kind_of Net::SCP, ssh.scp
    assert_same ssh.scp, ssh.scp
    assert_same ssh, ssh.scp.session
    # session.sftp is the native client (API.md), net-sftp loaded or not;
    # Net::SFTP::Session.new(ssh) is net-sftp's own (test_netsftp.rb)
    sftp = ssh.sftp
    assert_kind_of EvSSH::SFTP::Session, sftp
    assert sftp.open?
    assert_same sftp, ssh.sftp
    assert_raises(NoMethodError) { ssh.no_such_accessor }
  ensure
    ssh&.close
  end
end
