require_relative "helper"
require "digest"

# Backpressure (issue 11): channel.pending, on_drain(low_water), pause /
# resume / paused?. Net::SSH has none of these (its queue grows to the size
# of the transfer), so these run on EvSSH alone.
class TestBackpressure < Minitest::Test
  include OneSession

  MIB = 1024 * 1024

  # the remote sha256sum of what the block sends on ch, and ch
  def remote_digest
    out = +""
    ch = @ssh.open_channel do |c|
      c.exec("sha256sum") do |c2, ok|
        raise "exec failed" unless ok

        yield c2
      end
      c.on_data { |_c, d| out << d }
    end
    # a generous bound instead of ch.wait, so a stalled producer fails
    deadline = Time.now + 180
    @ssh.loop(0.1) { ch.active? && Time.now < deadline }
    refute ch.active?, "the transfer stalled"
    [out.split.first, ch]
  end

  # a producer driven by on_drain keeps pending under low water + one chunk
  # and every byte arrives, in order
  def test_on_drain_paces_a_producer
    chunk = 256 * 1024
    low = 512 * 1024
    total = 24 * MIB
    local = Digest::SHA256.new
    sent = 0
    max_pending = 0
    calls = 0
    remote, ch = remote_digest do |c|
      c.on_drain(low) do |cc|
        calls += 1
        assert_operator cc.pending, :<=, low
        if sent < total
          data = format("%08d", sent) * (chunk / 8)
          cc.send_data(data)
          local << data
          sent += chunk
          max_pending = [max_pending, cc.pending].max
        else
          cc.eof!
          cc.on_drain # done: the block goes
        end
      end
    end
    assert_equal local.hexdigest, remote
    assert_equal total, sent
    # how much stays queued after a send depends on how fast the peer reads
    # (an idle machine may take each chunk into the window at once, so it can
    # be 0); what pacing guarantees is the upper bound
    assert_operator max_pending, :<=, low + chunk, "the producer ran ahead of the drain"
    assert_operator calls, :>=, total / chunk
    assert_equal 0, ch.pending
  end

  # the block runs once per drain, not at every turn of the loop while the
  # queue stays empty
  def test_on_drain_runs_once_per_drain
    calls = 0
    ch = @ssh.exec("sleep 1")
    ch.on_drain { calls += 1 }
    turns = 0
    @ssh.loop(0.01) do
      turns += 1
      ch.active?
    end
    assert_equal 1, calls, "on_drain ran #{calls} times in #{turns} turns of the loop"
  end

  # on_drain returns the block it replaces; a negative low water is refused
  def test_on_drain_returns_old_block_and_checks_low_water
    ch = @ssh.exec("sleep 0.2")
    a = proc {}
    assert_nil ch.on_drain(&a)
    assert_same a, ch.on_drain(1024) {}
    assert_raises(ArgumentError) { ch.on_drain(-1) {} }
    ch.wait
  end

  # send_data past libevssh's send queue cap (64 MiB; 80 MiB sent) keeps the rest in
  # order, counts it in pending, and the EOF waits for it
  def test_send_data_past_the_cap
    local = Digest::SHA256.new
    pending_after = nil
    remote, = remote_digest do |c|
      20.times do |i|
        data = format("%02d", i) * (2 * MIB)
        c.send_data(data)
        local << data
      end
      pending_after = c.pending
      c.eof!
      assert c.eof?
    end
    # libevssh's queue takes a send below its cap whole, so it holds at
    # most cap + one chunk; more pending is the backlog
    assert_operator pending_after, :>, (64 + 4) * MIB, "nothing was held past the cap"
    assert_equal local.hexdigest, remote
  end

  # paused, the peer stops once it used the window it was granted; resumed,
  # everything arrives
  def test_pause_stops_the_peer_until_resume
    total = 16 * MIB
    received = 0
    window = nil
    ch = @ssh.open_channel do |c|
      window = c.local_maximum_window_size
      c.pause
      c.exec("head -c #{total} /dev/zero") { |_c, ok| raise "exec failed" unless ok }
      c.on_data { |_c, d| received += d.bytesize }
    end
    @ssh.loop(0.1) { window.nil? || received.zero? }
    assert ch.paused?
    # what arrives while paused is bounded by what was granted, however long we wait
    deadline = Time.now + 2
    @ssh.loop(0.1) { Time.now < deadline }
    assert_operator window, :<, total / 2
    assert_operator received, :<=, window, "paused, yet #{received} bytes arrived of a #{window} byte window"
    ch.resume
    refute ch.paused?
    ch.wait
    assert_equal total, received
    assert_equal 0, ch.exit_status
    ch.pause # closed: nothing to pause, no error
    refute ch.paused?
  end
end
