require_relative "helper"
require "socket"

class TestMulti < Minitest::Test
  def test_many_sessions_one_loop_and_a_failure_does_not_disturb
    dead_port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    ready = []
    failed = []
    multi = EvSSH::Multi.new(**SSHD.opts)
    3.times { multi.use("127.0.0.1", SSHD.user) { |s, err| err ? failed << err : ready << s } }
    multi.use("127.0.0.1", SSHD.user, port: dead_port) { |_s, err| failed << err }
    multi.connect!
    assert_equal 3, ready.size
    assert_equal 1, failed.size
    # as Net::SSH raises a refused connect; still an EvSSH::ConnectionError to rescue
    assert_kind_of Errno::ECONNREFUSED, failed[0]
    assert_operator EvSSH::ConnectionError, :===, failed[0]
    assert_equal 3, multi.sessions.size

    results = multi.exec!("sleep 0.3; echo $$")
    assert_equal 3, results.size
    assert_equal 3, results.values.uniq.size
    results.each_value { |r| assert_equal 0, r.exitstatus }

    out = []
    multi.exec("sleep 0.5; echo done") { |_c, _s, d| out << d }
    multi.loop
    assert_equal ["done\n"] * 3, out
  ensure
    multi&.close
  end

  def test_start_block_form
    out = []
    EvSSH::Multi.start(**SSHD.opts) do |m|
      2.times { m.use("127.0.0.1", SSHD.user) }
      m.exec("echo hi") { |_c, _s, d| out << d }
    end
    assert_equal ["hi\n", "hi\n"], out
  end

  def test_without_c_multi
    EvSSH::Multi.use_c_multi = false
    test_many_sessions_one_loop_and_a_failure_does_not_disturb
  ensure
    EvSSH::Multi.use_c_multi = true
  end
end
