require_relative "helper"
require "socket"

# The event loop's shape: one on_process per iteration, no sleeping while
# there is work (a relay from a listened IO, a producer in on_process), and
# blocking calls from inside callbacks (nested loops, as Net::SSH allows).
class TestLoop < Minitest::Test
  include OneSession
  include SideBySide


  def open_exec(cmd)
    opened = false
    ch = @ssh.open_channel { |c| c.exec(cmd) { |c2, _| opened = true; yield c2 if block_given? } }
    @ssh.loop { !opened }
    ch
  end

  # issue 10: exactly one on_process per loop iteration (libevssh ran it twice)
  def test_on_process_once_per_iteration
    counts = assert_same_result do |lib|
      s = start_with(lib)
      opened = false
      ch = s.open_channel { |c| c.exec("sleep 30") { opened = true } }
      s.loop { !opened }
      n = 0
      ch.on_process { n += 1 }
      per_process = 10.times.map do
        before = n
        s.process(0.01)
        n - before
      end
      iterations = 0
      before = n
      # the condition is asked twice per iteration: 10 iterations, then
      # the loop's last non-blocking process
      s.loop(0.01) { (iterations += 1) <= 20 }
      in_loop = n - before
      ch.close
      s.close
      [per_process, in_loop]
    end
    assert_equal [[1] * 10, 11], counts
  end

  # issue 10: a relay that forwards what a listened IO delivered, from
  # on_process (Net::SSH's own forwarding has this shape), must not wait for
  # the peer or a timeout between the read and the send. Each round trip
  # would stall for the loop's whole wait (120 s) if it did; the bound is
  # wall time, so it leaves a loaded machine most of that.
  def test_relay_from_listen_to_in_on_process
    a, b = UNIXSocket.pair
    a.extend(EvSSH::BufferedIo)
    echoed = +""
    ch = open_exec("cat") do |c|
      @ssh.listen_to(a)
      c.on_data { |_, d| echoed << d }
      c.on_process { c.send_data(a.read_available) if a.available.positive? }
    end
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    10.times do |i|
      b.write("message #{i}\n")
      @ssh.loop(120) { !echoed.end_with?("message #{i}\n") }
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_equal 10.times.map { |i| "message #{i}\n" }.join, echoed
    assert_operator elapsed, :<, 100, "10 relayed round trips took #{elapsed.round(2)} s"
    ch.close
    ch.wait
  ensure
    a&.close
    b&.close
  end

  # issue 10: data queued in on_process goes out in the same iteration: a
  # chunk-per-iteration producer (net-scp's upload) moves 8 MiB without
  # waiting for the peer after each chunk (each wait would be 120 s; the
  # bound is wall time, generous for a loaded machine)
  def test_producer_in_on_process
    chunk = "\0".b * 16_384
    left = 512
    got = +""
    ch = open_exec("wc -c") do |c|
      c.on_data { |_, d| got << d }
      c.on_process do
        if left.positive?
          c.send_data(chunk)
          left -= 1
          c.eof! if left.zero?
        end
      end
    end
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @ssh.loop(120) { ch.active? }
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_equal (512 * 16_384).to_s, got.strip
    assert_operator elapsed, :<, 100, "8 MiB from on_process took #{elapsed.round(2)} s"
  end

  # Net::SSH lets callbacks block: wait, loop, exec! from inside on_open,
  # on_data, on_close, on_process and a listen_to callback (SSHKit's
  # channel.wait inside open_channel). Needs libevssh's nested loops.
  def test_blocking_calls_inside_callbacks
    r = both do |lib|
      start_with(lib) do |s|
        log = []
        outer = s.open_channel do |c|
          log << [:open, s.exec!("echo in-open")]
          c.exec("echo data") do |c2, _|
            c2.on_data { |_, d| log << [:data, d, s.exec!("echo in-data")] }
            c2.on_close { log << [:close, s.exec!("echo in-close")] }
          end
          inner = s.open_channel { |i| i.exec("exit 5") { |i2, _| i2.on_request("exit-status") { |_, b| log << [:inner, b.read_long] } } }
          inner.wait # SSHKit's pattern
          log << [:waited, inner.active?]
        end
        outer.wait
        log
      end
    end
    # which of the two commands finishes first is the server's business, so
    # the two channels' events may interleave either way; what must hold is
    # the same events and the nesting (an entry is logged when its nested
    # exec! returns, so even one channel's entries may come out of order)
    assert_equal r["net-ssh"].sort_by(&:inspect), r["evssh"].sort_by(&:inspect), "net-ssh and evssh differ"
    r.each do |lib, log|
      assert_equal [:open, "in-open\n"], log.first, lib
      # inner.wait returns once the inner channel closed: after its exit
      # status, whenever the outer command's data arrives (before or after)
      waited = log.index([:waited, false])
      refute_nil waited, "#{lib}: #{log.inspect}"
      assert_operator log.index([:inner, 5]), :<, waited, lib
    end
  end

  # three levels: a callback's nested loop runs callbacks that nest again,
  # opening and closing channels at each level
  def test_three_levels_of_nesting
    out = []
    ch = @ssh.open_channel do |c1|
      c1.exec("echo 1") do |_, _|
        c1.on_data do |_, d1|
          out << d1
          l2 = @ssh.open_channel do |c2|
            c2.exec("echo 2") do |_, _|
              c2.on_data do |_, d2|
                out << d2
                out << @ssh.exec!("echo 3")
              end
            end
          end
          l2.wait
          out << :level2_done
        end
      end
    end
    ch.wait
    assert_equal ["1\n", "2\n", "3\n", :level2_done], out
    assert_equal "after\n", @ssh.exec!("echo after")
  end

  def test_wait_inside_listen_to_callback
    a, b = UNIXSocket.pair
    got = nil
    @ssh.listen_to(a) do |io|
      io.readpartial(10)
      got = @ssh.exec!("echo from-listener")
    end
    b.write("x")
    @ssh.loop(0.05) { got.nil? }
    assert_equal "from-listener\n", got
  ensure
    @ssh.stop_listening_to(a) if a
    a&.close
    b&.close
  end
end
