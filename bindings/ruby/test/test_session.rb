require_relative "helper"

class TestSession < Minitest::Test
  include OneSession

  def test_exec_bang_interleaves_and_keeps_status
    r = @ssh.exec!("printf out1; printf err1 >&2; sleep 0.1; printf out2; exit 3")
    assert_kind_of String, r
    assert_equal "out1err1out2", r
    assert_equal 3, r.exitstatus
    assert_nil r.exitsignal
    assert_equal Encoding::UTF_8, r.encoding
    assert_equal 0, @ssh.exec!("true").exitstatus
  end

  def test_exec_bang_signal_and_status_hash
    status = {}
    r = @ssh.exec!("kill -TERM $$", status: status)
    assert_nil r.exitstatus
    assert_equal "TERM", r.exitsignal
    assert_equal "TERM", status[:exit_signal]
    status = {}
    @ssh.exec!("exit 4", status: status)
    assert_equal 4, status[:exit_code]
  end

  def test_exec_bang_with_block_returns_nil_and_streams
    seen = []
    r = @ssh.exec!("echo a; echo b >&2") { |_ch, stream, data| seen << [stream, data] }
    assert_nil r
    assert_includes seen, [:stdout, "a\n"]
    assert_includes seen, [:stderr, "b\n"]
  end

  def test_exec_with_block_and_loop
    out = Hash.new { |h, k| h[k] = +"" }
    chans = 3.times.map { |i| @ssh.exec("echo #{i}; echo e#{i} >&2") { |ch, stream, data| out[[ch.local_id, stream]] << data } }
    assert @ssh.busy?
    @ssh.loop
    refute @ssh.busy?
    chans.each_with_index do |ch, i|
      assert ch.closed?
      assert_equal "#{i}\n", out[[ch.local_id, :stdout]]
      assert_equal "e#{i}\n", out[[ch.local_id, :stderr]]
      assert_equal 0, ch.exit_status
    end
  end

  def test_open_channel_callbacks_in_order
    events = []
    data = +""
    ch = @ssh.open_channel do |c|
      events << :open
      c.exec("cat; echo oops >&2; exit 5") do |c2, ok|
        events << [:exec, ok]
        c2.send_data("hello ")
        c2.send_data("world\n")
        c2.eof!
      end
      c.on_data { |_c, d| data << d }
      c.on_extended_data { |_c, type, d| events << [:ext, type, d] }
      c.on_request("exit-status") { |_c, buf| events << [:status, buf.read_long] }
      c.on_eof { events << :eof }
      c.on_close { |c3| events << [:close, c3.equal?(ch)] }
    end
    ch[:name] = "worker"
    assert_equal "worker", ch[:name]
    ch.wait
    assert_equal "hello world\n", data
    # sshd may send exit-status before or after EOF
    assert_equal [:open, [:exec, true], [:ext, 1, "oops\n"]], events[0, 3]
    assert_equal [:eof, [:status, 5]].sort_by(&:to_s), events[3, 2].sort_by(&:to_s)
    assert_equal [:close, true], events[5]
    assert_equal 5, ch.exit_status
    refute ch.active?
    # Net::SSH: data after eof! is an EOFError, even once the channel closed
    assert_raises(EOFError) { ch.send_data("x") }
  end

  def test_on_process_runs_each_iteration
    count = 0
    ch = @ssh.open_channel { |c| c.exec("sleep 0.3") }
    ch.on_process { count += 1 }
    @ssh.loop(0.05)
    assert_operator count, :>=, 3
    assert ch.closed?
  end

  def test_process_and_loop_with_condition
    done = false
    @ssh.exec("sleep 0.2; echo x") { |_c, _s, _d| done = true }
    iterations = 0
    @ssh.loop(0.05) { iterations += 1; !done }
    assert done
    assert_operator iterations, :>, 1
    refute @ssh.process(0) { false }
    assert @ssh.process(0)
  end

  def test_invisible_channel_does_not_keep_loop_busy
    started = false
    ch = @ssh.open_channel { |c| c.exec("sleep 60") { started = true } }
    @ssh.loop { !started }
    ch[:invisible] = true
    refute @ssh.busy?
    assert @ssh.busy?(true)
    # a loop the channel kept busy would last the command's 60 s; the bound
    # is wall time, so far from the loop's 0.1 s on a loaded machine
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @ssh.loop(0.1)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - t, :<, 30
    ch.close
    @ssh.loop { ch.active? }
  end

  def test_request_pty_and_env
    ok = nil
    out = +""
    ch = @ssh.open_channel do |c|
      c.request_pty(term: "vt100", chars_wide: 100, chars_high: 30) { |_c, success| ok = success }
      c.exec("echo $TERM; stty size") { |c2, _| c2.on_data { |_c, d| out << d } }
    end
    ch.wait
    assert_equal true, ok
    assert_equal "vt100\r\n30 100\r\n", out
  end

  def test_send_channel_request_without_reply_and_signal
    opened = false
    ch = @ssh.open_channel { |c| opened = true; c.send_channel_request("exec", :string, "sleep 0.5") }
    @ssh.loop(0.05) { !opened }
    ch.close
    ch.wait
    assert ch.closed?
  end

  def test_session_properties_and_block_form
    @ssh[:role] = :web
    assert_equal :web, @ssh[:role]
    value = SSHD.start { |ssh| ssh.exec!("echo 42").to_i }
    assert_equal 42, value
    s = SSHD.start
    refute s.closed?
    s.close
    assert s.closed?
    assert_raises(EvSSH::Closed) { s.exec!("true") }
  end

  def test_close_with_open_channels_runs_on_close
    closed = []
    2.times { @ssh.open_channel { |c| c.exec("sleep 30") }.on_close { |c| closed << c.local_id } }
    @ssh.process(0.2)
    @ssh.close
    assert_equal 2, closed.size
    assert @ssh.closed?
  end

  def test_big_transfer_both_ways
    payload = Random.new(7).bytes(3 * 1024 * 1024)
    got = +"".b
    ch = @ssh.open_channel do |c|
      c.exec("cat") do |c2, _|
        c2.on_data { |_c, d| got << d }
        c2.send_data(payload)
        c2.eof!
      end
    end
    ch.wait
    assert_equal payload.bytesize, got.bytesize
    assert got == payload
  end
end
