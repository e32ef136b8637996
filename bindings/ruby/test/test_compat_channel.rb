require_relative "helper"

# Net::SSH::Connection::Channel's semantics, side by side with net-ssh.
class TestCompatChannel < Minitest::Test
  include SideBySide

  def attempt
    yield
    :ok
  rescue StandardError => e
    SideBySide.error_name(e)
  end

  def test_eof_and_send_data_semantics
    assert_same_result do |lib|
      start_with(lib) do |s|
        r = {}
        out = +""
        ch = s.open_channel do |c|
          c.exec("cat") do |c2, ok|
            r[:ok] = ok
            c2.on_data { |_, d| out << d }
            c2.send_data(lib::Buffer.from(:string, "buf"))  # anything with to_s
            c2.send_data(42)
            r[:eof_before] = c2.eof?
            c2.eof!
            r[:eof_after] = c2.eof?
            r[:eof_twice] = attempt { c2.eof! }
            r[:send_after_eof] = attempt { c2.send_data("x") }
          end
        end
        ch.wait
        r[:out] = out
        r[:closed] = [ch.active?, ch.local_closed?, ch.remote_closed?, ch.closing?]
        r[:eof_after_close] = attempt { ch.eof! }
        r
      end
    end
  end

  # data sent after the peer closed is dropped quietly, as Net::SSH queues it
  # on a channel nobody flushes (net-scp's on_close path relies on it)
  def test_send_data_after_peer_closed
    assert_same_result do |lib|
      start_with(lib) do |s|
        ch = s.open_channel { |c| c.exec("exit 0") }
        after = nil
        ch.on_close { |c| after = attempt { c.send_data("late"); c.eof! } }
        ch.wait
        [after, attempt { ch.send_data("later") }, attempt { ch.close }, attempt { ch.wait }]
      end
    end
  end

  def test_request_before_confirmation
    assert_same_result do |lib|
      start_with(lib) do |s|
        ch = s.open_channel
        r = [attempt { ch.exec("true") }, attempt { ch.send_channel_request("env", :string, "A", :string, "b") }]
        s.loop { !ch[:opened] && (ch[:opened] = true) && false }
        ch.close
        s.loop
        r
      end
    end
  end

  def test_callbacks_return_the_old_block
    assert_same_result do |lib|
      start_with(lib) do |s|
        ch = s.open_channel { |c| c.close }
        a = proc {}
        r = [ch.on_data(&a), ch.on_data {}.equal?(a), ch.on_extended_data {}, ch.on_eof {}, ch.on_close {},
             ch.on_process {}, ch.on_open_failed {}, ch.on_request("x") {}, ch.on_request("x") {}.class]
        s.loop
        r.map { |x| x.is_a?(Proc) ? Proc : x }
      end
    end
  end

  def test_properties_ids_and_state
    assert_same_result do |lib|
      start_with(lib) do |s|
        states = []
        ch = s.open_channel do |c|
          states << [:open, c.active?, c.local_closed?, c.remote_closed?]
          c.exec("sleep 0.2") { |c2, _| states << [:exec, c2.closing?] }
        end
        ch[:name] = "w"
        states << [:new, ch.active?, ch.local_closed?, ch.remote_closed?, ch.type, ch.local_id.is_a?(Integer),
                   ch[:name], ch.properties[:name], ch.connection.equal?(s)]
        ch.wait
        states << [:done, ch.active?, ch.local_closed?, ch.remote_closed?]
        states
      end
    end
  end

  # the peer's channel number and the windows (evssh_channel_remote_id,
  # evssh_channel_windows_get)
  def test_remote_id_and_windows
    assert_same_result do |lib|
      start_with(lib) do |s|
        r = nil
        ch = s.open_channel do |c|
          r = [c.remote_id.is_a?(Integer), c.remote_maximum_packet_size.positive?, c.remote_window_size.positive?,
               c.remote_maximum_window_size.positive?, c.local_window_size.positive?,
               c.local_maximum_window_size.positive?, c.local_maximum_packet_size.positive?]
          c.close
        end
        ch.wait
        r
      end
    end
  end

  def test_request_pty_with_modes_env_and_requests
    assert_same_result do |lib|
      start_with(lib) do |s|
        r = {}
        out = +""
        ch = s.open_channel do |c|
          c.request_pty(term: "vt100", chars_wide: 91, chars_high: 33, modes: { 53 => 0 }) { |_c, ok| r[:pty] = ok }
          c.env("EVSSH_TEST_ENV", "env-value") { |_c, ok| r[:env] = ok }
          c.send_channel_request("no-such-request@example.com", :string, "x") { |_c, ok| r[:bogus] = ok }
          c.exec("echo $TERM $EVSSH_TEST_ENV; stty size") { |c2, ok| r[:exec] = ok; c2.on_data { |_, d| out << d } }
          c.on_request("exit-status") { |_c, buf| r[:status] = buf.read_long }
        end
        ch.wait
        r[:out] = out
        r[:invalid] = attempt { ch.request_pty(colour: true) }
        r
      end
    end
  end

  def test_subsystem_and_shell
    assert_same_result do |lib|
      start_with(lib) do |s|
        r = []
        ch = s.open_channel { |c| c.subsystem("sftp") { |_c, ok| r << ok; c.close } }
        ch.wait
        out = +""
        ch = s.open_channel do |c|
          c.send_channel_request("shell") { |c2, ok| r << ok; c2.send_data("echo from-shell; exit 2\n") }
          c.on_data { |_, d| out << d }
          c.on_request("exit-status") { |_c, b| r << b.read_long }
        end
        ch.wait
        r << out
      end
    end
  end

  def test_exit_status_after_wait
    assert_same_result do |lib|
      start_with(lib) do |s|
        status = nil
        ch = s.open_channel { |c| c.exec("exit 9") { |c2, _| c2.on_request("exit-status") { |_, b| status = b.read_long } } }
        ch.wait
        status
      end
    end
  end
end
