require_relative "helper"
require "socket"

class TestErrors < Minitest::Test
  def test_error_classes_follow_c_codes
    assert_operator EvSSH::AuthenticationFailed, :<, EvSSH::Error
    assert_operator EvSSH::HostKeyMismatch, :<, EvSSH::HostKeyError
    assert_operator EvSSH::HostKeyUnknown, :<, EvSSH::HostKeyError
    assert_equal(-7, EvSSH::AuthenticationFailed::CODE)
    assert_equal(-6, EvSSH::HostKeyError::CODE)
    assert_equal(-12, EvSSH::ChannelOpenFailed::CODE)
    assert_equal EvSSH.strerror(-7).class, String
  end

  def test_wrong_key_is_authentication_failed
    e = assert_raises(EvSSH::AuthenticationFailed) do
      SSHD.start(keys: [SSHD.env["HARNESS_KEY_RSA"] + ".nonexistent"], auth_methods: "publickey")
    end
    assert_equal(-7, e.code)
    refute_empty e.message
  end

  def test_password_authentication
    skip "no password account" unless SSHD.env["HARNESS_HAVE_PASSWORD_USER"] == "1"
    out = EvSSH.start("127.0.0.1", SSHD.env["HARNESS_PASSWORD_USER"],
                      **SSHD.opts(keys: [], password: SSHD.env["HARNESS_PASSWORD"], auth_methods: "password")) do |ssh|
      ssh.exec!("echo pw")
    end
    assert_equal "pw\n", out
    assert_raises(EvSSH::AuthenticationFailed) do
      EvSSH.start("127.0.0.1", SSHD.env["HARNESS_PASSWORD_USER"],
                  **SSHD.opts(keys: [], password: "wrong", auth_methods: "password"))
    end
  end

  def test_unknown_host_key_and_policies
    Dir.mktmpdir do |d|
      empty = File.join(d, "known_hosts")
      File.write(empty, "")
      e = assert_raises(EvSSH::HostKeyUnknown) { SSHD.start(user_known_hosts_file: empty) }
      assert_match(/not known/, e.message)
      assert_equal "ok\n", SSHD.start(user_known_hosts_file: empty, verify_host_key: :never) { |s| s.exec!("echo ok") }
      assert_equal "ok\n", SSHD.start(user_known_hosts_file: empty, verify_host_key: :accept_new) { |s| s.exec!("echo ok") }
      refute_empty File.read(empty)
      # now known: :always accepts it
      assert_equal "ok\n", SSHD.start(user_known_hosts_file: empty) { |s| s.exec!("echo ok") }
    end
  end

  def test_changed_host_key_is_mismatch_and_never_takes_it
    SSHD.with_changed_host_key do |kh|
      e = assert_raises(EvSSH::HostKeyMismatch) { SSHD.start(user_known_hosts_file: kh, host_key: "ssh-ed25519") }
      assert_match(/\ASHA256:/, e.fingerprint)
      # Net::SSH's :never takes any key, a changed one too, and writes nothing
      out = SSHD.start(user_known_hosts_file: kh, host_key: "ssh-ed25519", verify_host_key: :never) { |s| s.exec!("echo ok") }
      assert_equal "ok\n", out
      assert_equal 1, File.readlines(kh).size
    end
  end

  def test_connection_refused
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    assert_raises(EvSSH::ConnectionError) { SSHD.start(port: port) }
  end

  def test_silent_server_times_out
    server = TCPServer.new("127.0.0.1", 0)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_raises(EvSSH::TimeoutError) { SSHD.start(port: server.addr[1], timeout: 1) }
    # wall time: generous for a loaded machine, well under the 60 s default
    # an ignored timeout: would wait
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0, :<, 20
  ensure
    server&.close
  end

  def test_bad_options
    assert_raises(EvSSH::InvalidArgument) { SSHD.start(options: { "NoSuchKeyword" => "x" }) }
    assert_raises(ArgumentError) { SSHD.start(no_such_option: 1) }
    assert_raises(ArgumentError) { SSHD.start(verify_host_key: :sometimes) }
    assert_raises(ArgumentError) { SSHD.start(verbose: :chatty) }
  end

  def test_options_reach_ssh_config
    out = SSHD.start(options: { "Ciphers" => "aes128-ctr", "MACs" => "hmac-sha2-256-etm@openssh.com" }) { |s| s.exec!("echo $SSH_CONNECTION | wc -w") }
    assert_equal "4\n", out
    assert_raises(EvSSH::Error) { SSHD.start(options: { "Ciphers" => "3des-cbc" }) }
  end

  def test_channel_open_failure_raises_without_handler
    SSHD.start do |ssh|
      ssh.open_channel("no-such-type@example.com")
      e = assert_raises(EvSSH::ChannelOpenFailed) { ssh.loop }
      assert_kind_of Integer, e.code
      got = nil
      ch = ssh.open_channel("no-such-type@example.com")
      ch.on_open_failed { |c, code, desc| got = [c, code, desc] }
      ssh.loop
      assert_same ch, got[0]
      assert_kind_of Integer, got[1]
      assert_kind_of String, got[2]
      assert ch.closed?
      assert_equal "ok\n", ssh.exec!("echo ok")
    end
  end

  def test_peer_disconnect_raises_and_closes_channels
    ssh = SSHD.start
    closed = []
    ch = ssh.open_channel { |c| c.exec("sleep 0.2; kill -9 $PPID") }
    ch.on_close { closed << :closed }
    ssh.loop { !ch.active? }
    ssh.open_channel # still opening when the connection dies: not a ChannelOpenFailed
    e = assert_raises(EvSSH::Error) { ssh.loop }
    assert_kind_of EvSSH::Disconnected, e
    assert_equal [:closed], closed
    assert ch.closed?
    assert ssh.closed?
    assert_raises(EvSSH::Error) { ssh.exec!("true") }
    ssh.close
  end

  def test_close_inside_a_callback_is_refused
    SSHD.start do |ssh|
      err = nil
      ssh.exec("echo x") { |*| begin; ssh.close; rescue EvSSH::Busy => e; err = e; end }
      ssh.loop
      assert_kind_of EvSSH::Busy, err
      refute ssh.closed?
    end
  end

  def test_encrypted_key_with_passphrase
    Dir.mktmpdir do |d|
      key = File.join(d, "enc")
      system("ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret words", "-f", key, out: File::NULL) or skip "ssh-keygen"
      File.open(File.join(SSHD.env["HARNESS_DIR"], "authorized_keys"), "a") { |f| f.puts File.read("#{key}.pub") }
      assert_equal "ok\n", SSHD.start(keys: [key], passphrase: "s3cret words") { |s| s.exec!("echo ok") }
      assert_raises(EvSSH::AuthenticationFailed) { SSHD.start(keys: [key], passphrase: "wrong") }
      assert_raises(EvSSH::AuthenticationFailed) { SSHD.start(keys: [key]) }
    end
  end
end

