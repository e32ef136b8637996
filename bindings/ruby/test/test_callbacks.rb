require_relative "helper"
require "socket"

class TestCallbacks < Minitest::Test
  include OneSession
  class Boom < StandardError; end


  def test_exception_in_callback_leaves_loop_with_state_intact
    data = +""
    ch = @ssh.open_channel do |c|
      c.exec("printf first; sleep 0.3; printf second") do |c2, _|
        c2.on_data do |_c, d|
          data << d
          raise Boom, "from on_data" if d.include?("first")
        end
      end
    end
    e = assert_raises(Boom) { @ssh.loop }
    assert_equal "from on_data", e.message
    # the channel and the session carry on where they were
    assert ch.active? || !ch.closed?
    ch.wait
    assert_equal "firstsecond", data
    assert_equal "ok\n", @ssh.exec!("echo ok")
  end

  def test_exception_in_exec_block_reaches_exec_bang_caller
    assert_raises(Boom) { @ssh.exec!("echo x") { raise Boom } }
    @ssh.loop
    assert_equal "y\n", @ssh.exec!("echo y")
  end

  def test_exception_in_open_and_close_callbacks
    ch = @ssh.open_channel { raise Boom, "open" }
    assert_raises(Boom) { @ssh.loop }
    ch.on_close { raise Boom, "close" }
    ch.close
    assert_raises(Boom) { @ssh.loop }
    assert ch.closed?
    refute @ssh.busy?
  end

  def test_throw_out_of_a_callback
    result = catch(:found) do
      @ssh.exec("echo needle") { |_c, _s, d| throw :found, d.chomp if d.include?("needle") }
      @ssh.loop
      :not_found
    end
    assert_equal "needle", result
    @ssh.loop
    assert_equal "z\n", @ssh.exec!("echo z")
  end

  def test_blocks_survive_gc_stress
    outputs = []
    GC.stress = true
    begin
      2.times do |i|
        ch = @ssh.open_channel do |c|
          c.exec("echo #{i}") do |c2, ok|
            c2.on_data { |_c, d| outputs << d.dup }
            c2.on_request("exit-status") { |_c, buf| outputs << buf.read_long }
            c2.on_close { outputs << :closed; GC.compact if GC.respond_to?(:compact) }
          end
        end
        ch = nil
      end
      @ssh.loop
    ensure
      GC.stress = false
    end
    assert_equal ["0\n", "1\n"], outputs.grep(String).sort
    assert_equal 2, outputs.count(:closed)
    assert_equal [0, 0], outputs.grep(Integer)
  end

  def test_blocks_released_after_close
    refs = ObjectSpace::WeakMap.new
    count = 0
    5.times do
      blk = proc { |_c, _s, d| count += d.size }
      refs[blk] = true
      @ssh.exec("echo hi", &blk)
    end
    @ssh.loop
    assert_equal 15, count
    assert_empty @ssh.channels
    GC.start(full_mark: true, immediate_sweep: true)
    GC.start
    alive = 0
    refs.each_key { alive += 1 }
    # conservative stack scanning may pin one; the session must not hold them
    assert_operator alive, :<=, 1
  end

  # another thread runs while exec! waits: the remote command starts (so
  # exec! is waiting), the thread sees that and answers, the command sees
  # the answer. With the GVL held through the wait the thread could not run
  # until exec! returned, after the command's own 60 s limit.
  def test_gvl_released_while_waiting
    Dir.mktmpdir("evssh-gvl-") do |d|
      File.chmod(0o777, d)
      started = File.join(d, "started")
      answer = File.join(d, "answer")
      t = Thread.new do
        sleep 0.01 until File.exist?(started)
        File.write(answer, "")
      end
      out = @ssh.exec!("touch #{started}; i=0; while [ ! -e #{answer} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; " \
                       "[ -e #{answer} ] && echo answered")
      assert_equal "answered\n", out, "the other thread did not run while exec! waited"
      assert t.join(30)
    ensure
      t&.kill
    end
  end

  def test_thread_raise_interrupts_a_waiting_loop
    @ssh.exec("sleep 30")
    entered = false
    waiter = Thread.new do
      entered = true
      @ssh.loop
      :finished
    rescue Boom
      :interrupted
    end
    # raise once the waiter is blocked inside the loop (a thread waiting
    # without the GVL reports "sleep"), not after a guessed time
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    sleep 0.01 until (entered && waiter.status == "sleep") || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    assert_equal "sleep", waiter.status, "the waiter never blocked in the loop"
    waiter.raise(Boom)
    assert_equal :interrupted, waiter.value
  end

  # every wrapper, block and buffer path once with a GC at every allocation
  def test_whole_api_under_gc_stress
    a, b = UNIXSocket.pair
    GC.stress = true
    r = @ssh.exec!("echo a; echo b >&2; exit 2")
    out = +""
    @ssh.exec("echo c") { |_c, _s, d| out << d }
    @ssh.loop
    st = nil
    ch = @ssh.open_channel do |c|
      c.exec("cat") do |c2, _ok|
        c2.on_data { |_, d| out << d }
        c2.on_request("exit-status") { |_, buf| st = buf.read_long }
        c2.send_data("x")
        c2.eof!
      end
    end
    ch.wait
    ok = nil
    @ssh.send_global_request("keepalive@openssh.com") { |o, _resp| ok = o }
    @ssh.loop { ok.nil? }
    got = nil
    @ssh.listen_to(a) { |io| got = io.readpartial(10) }
    b.write("p")
    @ssh.loop(0.01) { got.nil? }
    @ssh.stop_listening_to(a)
    failed = nil
    @ssh.open_channel("bogus@example.com").on_open_failed { |_c, code, _d| failed = code }
    @ssh.loop
    GC.stress = false
    assert_equal ["a\nb\n", 2], [r, r.exitstatus]
    assert_equal "c\nx", out
    assert_equal 0, st
    assert_equal false, ok
    assert_equal "p", got
    assert_kind_of Integer, failed
  ensure
    GC.stress = false
    a&.close
    b&.close
  end
end

