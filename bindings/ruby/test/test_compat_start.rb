require_relative "helper"
require "socket"
require "logger"
require "stringio"

# EvSSH.start against Net::SSH.start, side by side on the same sshd: the
# call forms, Net::SSH's options and the errors (class for class).
class TestCompatStart < Minitest::Test
  include SideBySide

  def echo(lib, **extra)
    start_with(lib, **extra) { |ssh| ssh.exec!("echo ok").to_s }
  end

  def test_call_forms
    assert_same_result do |lib|
      u = SSHD.user
      o = SSHD.opts
      [lib.start("127.0.0.1", u, o) { |s| s.exec!("echo a") },          # positional Hash
       lib.start("127.0.0.1", u, **o) { |s| s.exec!("echo b") },        # keywords
       lib.start("127.0.0.1", nil, o.merge(user: u)) { |s| s.exec!("whoami").chomp == u }, # :user
       lib.start("127.0.0.1", "nobody", o.merge(user: u)) { |s| s.exec!("whoami").chomp == u }]
    end
    ssh = start_with(EvSSH)
    assert_kind_of EvSSH::Session, ssh
    refute ssh.closed?
    ssh.close
    assert ssh.closed?
  end

  def test_invalid_options_are_argument_errors
    r = assert_same_result { |lib| start_with(lib, no_such_option: 1) }
    assert_equal [:raised, ArgumentError], r
    assert_same_result { |lib| start_with(lib, verbose: :chatty) }
    assert_same_result { |lib| start_with(lib, verify_host_key: :sometimes) }
    assert_equal Net::SSH::VALID_OPTIONS.sort, EvSSH::VALID_OPTIONS.sort if SSHD.netssh?
  end

  # options we cannot honour yet say so, naming the option
  def test_options_not_supported_yet_name_themselves
    { max_win_size: 1 << 20, max_pkt_size: 1 << 16,
      rekey_packet_limit: 1000, agent_socket_factory: -> {}, compression: "zlib" }.each do |opt, value|
      e = assert_raises(ArgumentError, opt.to_s) { SSHD.start(opt => value) }
      assert_match(/\A#{opt}:/, e.message)
    end
    assert_equal "ok\n", SSHD.start(forward_agent: false, compression: true, compression_level: 6) { |s| s.exec!("echo ok") }
  end

  def test_refused_connect_is_errno
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    r = assert_same_result { |lib| start_with(lib, port: port) }
    assert_equal [:raised, Errno::ECONNREFUSED], r
  end

  def test_unresolvable_host_is_socket_error
    r = assert_same_result { |lib| lib.start("no-such-host.invalid", SSHD.user, SSHD.opts) }
    assert_equal [:raised, SocketError], r
  end

  def test_silent_server_is_connection_timeout
    server = TCPServer.new("127.0.0.1", 0)
    r = assert_same_result { |lib| start_with(lib, port: server.addr[1], timeout: 1) }
    assert_equal [:raised, "ConnectionTimeout"], r
  ensure
    server&.close
  end

  def test_bad_password_is_authentication_failed
    skip "no password account" unless SSHD.password_user?
    r = assert_same_result do |lib|
      lib.start("127.0.0.1", SSHD.env["HARNESS_PASSWORD_USER"],
                SSHD.opts(keys: [], password: "wrong", auth_methods: ["password"], non_interactive: true))
    end
    assert_equal [:raised, "AuthenticationFailed"], r
  end

  def test_password_and_prompt
    skip "no password account" unless SSHD.password_user?
    user = SSHD.env["HARNESS_PASSWORD_USER"]
    pw = SSHD.env["HARNESS_PASSWORD"]
    assert_same_result do |lib|
      lib.start("127.0.0.1", user, SSHD.opts(keys: [], password: pw, auth_methods: ["password"])) { |s| s.exec!("echo pw") }
    end
    # no password given: the password_prompt object is asked, up to
    # number_of_password_prompts times
    asked = Hash.new { |h, k| h[k] = [] }
    prompt_for = lambda do |name, answers|
      Object.new.tap do |p|
        p.define_singleton_method(:start) do |info|
          asked[name] << info[:type]
          Object.new.tap do |q|
            q.define_singleton_method(:ask) { |_text, _echo| answers.shift || "" }
            q.define_singleton_method(:success) {}
          end
        end
      end
    end
    r = both do |lib, name|
      lib.start("127.0.0.1", user, SSHD.opts(keys: [], auth_methods: ["password"], non_interactive: false,
                                               number_of_password_prompts: 2,
                                               password_prompt: prompt_for.call(name, ["wrong", pw]))) do |s|
        s.exec!("echo prompted")
      end
    end
    assert_equal r["net-ssh"], r["evssh"]
    assert_equal "prompted\n", r["evssh"]
    assert_equal asked["net-ssh"], asked["evssh"]
    # non_interactive: never asked, authentication fails
    asked.clear
    r = both do |lib, name|
      lib.start("127.0.0.1", user, SSHD.opts(keys: [], auth_methods: ["password"], non_interactive: true,
                                               password_prompt: prompt_for.call(name, [pw])))
    end
    assert_equal [[:raised, "AuthenticationFailed"]] * 2, r.values
    assert_empty asked.values.flatten
  end

  def test_unknown_host_key
    with_known_hosts do |empty|
      r = assert_same_result { |lib| start_with(lib, user_known_hosts_file: empty) }
      assert_equal [:raised, "HostKeyUnknown"], r
      e = assert_raises(EvSSH::HostKeyUnknown) { SSHD.start(user_known_hosts_file: empty) }
      assert_match(/\ASHA256:[A-Za-z0-9+\/]{43}\z/, e.fingerprint)
    end
  end

  def test_mismatched_host_key
    SSHD.with_changed_host_key do |kh|
      r = assert_same_result { |lib| start_with(lib, user_known_hosts_file: kh, host_key: "ssh-ed25519") }
      assert_equal [:raised, "HostKeyMismatch"], r
    end
  end

  # HostKeyUnknown#remember_host! writes the key; the retry connects
  # (needs the server's key blob from libevssh: evssh_session_host_key)
  def test_remember_host
    assert_same_result do |lib|
      with_known_hosts do |kh|
        begin
          start_with(lib, user_known_hosts_file: kh)
          :connected_unexpectedly
        rescue lib::HostKeyUnknown => e
          e.remember_host!
          [File.readlines(kh).size, echo(lib, user_known_hosts_file: kh)]
        end
      end
    end
  end

  # Net::SSH 7's default verifier: a new key is written to known_hosts,
  # except on a local tunnel (a loopback address, a port other than 22),
  # where any key is taken and nothing written
  def test_default_verify_host_key
    assert_same_result do |lib|
      with_known_hosts do |kh|
        o = SSHD.opts(user_known_hosts_file: kh).tap { |h| h.delete(:verify_host_key) }
        out = lib.start("127.0.0.1", SSHD.user, o) { |s| s.exec!("echo tunnel") }
        [out, File.read(kh)]
      end
    end
    assert_same_result do |lib|
      with_known_hosts do |kh|
        out = start_with(lib, user_known_hosts_file: kh, verify_host_key: :accept_new) { |s| s.exec!("echo new") }
        [out, File.readlines(kh).size, File.read(kh).start_with?("[127.0.0.1]:#{SSHD.port} ")]
      end
    end
  end

  # a known_hosts object with search_for / add (SSHKit brings one)
  def test_known_hosts_object
    store = Class.new do
      attr_reader :searched, :added

      def initialize(lib, file)
        @lib = lib
        @file = file
        @searched = []
        @added = []
      end

      def search_for(host, options = {})
        @searched << host
        @lib::KnownHosts.search_for(host, options.merge(user_known_hosts_file: @file, global_known_hosts_file: []))
      end

      def add(host, key, options = {})
        @added << [host, key.ssh_type]
        @lib::KnownHosts.add(host, key, options.merge(user_known_hosts_file: @file))
      end
    end
    r = both do |lib|
      known = store.new(lib, SSHD.known_hosts)
      out = start_with(lib, known_hosts: known, user_known_hosts_file: "/nonexistent") { |s| s.exec!("echo obj") }
      [out, known.searched]
    end
    assert_equal r["net-ssh"], r["evssh"]
    assert_equal "obj\n", r["evssh"][0]
    with_known_hosts do |empty|
      r = assert_same_result { |lib| start_with(lib, known_hosts: store.new(lib, empty)) }
      assert_equal [:raised, "HostKeyUnknown"], r
    end
  end

  # accept_new with a known_hosts object calls its add with the server's key,
  # which the next :always connect then finds (writing the key needs its
  # blob: evssh_session_host_key)
  def test_known_hosts_object_add
    assert_same_result do |lib|
      with_known_hosts do |file|
        added = []
        known = Object.new
        known.define_singleton_method(:search_for) do |host, options = {}|
          lib::HostKeys.new(lib::KnownHosts.search_in([file], host, options), host, self, options)
        end
        known.define_singleton_method(:add) do |host, key, options = {}|
          added << [host.split(",").first, key.ssh_type]
          lib::KnownHosts.add(host, key, options.merge(user_known_hosts_file: file))
        end
        start_with(lib, known_hosts: known, verify_host_key: :accept_new, host_key: "ssh-ed25519") { |s| s.exec!("true") }
        again = start_with(lib, known_hosts: known, verify_host_key: :always, host_key: "ssh-ed25519") { |s| s.exec!("echo again") }
        [added, again]
      end
    end
  end

  def test_verifier_object
    r = both do |lib|
      seen = []
      v = Object.new
      v.define_singleton_method(:verify) { |args| seen << args[:fingerprint]; true }
      v.define_singleton_method(:verify_signature) { |&b| b.call }
      out = start_with(lib, verify_host_key: v, host_key: "ssh-ed25519") { |s| s.exec!("echo v") }
      no = Object.new
      no.define_singleton_method(:verify) { |_args| false }
      no.define_singleton_method(:verify_signature) { |&b| b.call }
      failed = begin
        start_with(lib, verify_host_key: no)
        :connected
      rescue StandardError => e
        e.class.name.sub(/\A(Net::SSH|EvSSH)::/, "")
      end
      [out, seen.size, seen.first.to_s[/\ASHA256:/], failed]
    end
    assert_equal r["net-ssh"], r["evssh"]
    assert_equal ["v\n", 1, "SHA256:", "Exception"], r["evssh"]
  end

  def test_logger_and_verbose
    r = both do |lib|
      io = StringIO.new
      logger = Logger.new(io)
      start_with(lib, logger: logger, verbose: :debug) { |s| s.exec!("true") }
      [logger.level, io.string.empty?]
    end
    assert_equal r["net-ssh"], r["evssh"]
    assert_equal [Logger::DEBUG, false], r["evssh"]
    io = StringIO.new
    ssh = SSHD.start(logger: Logger.new(io), verbose: :info)
    assert_same ssh.logger, ssh.options[:logger]
    ssh.close
    refute_empty io.string
    quiet = StringIO.new
    SSHD.start(logger: Logger.new(quiet).tap { |l| l.level = Logger::FATAL }) { |s| s.exec!("true") }
    assert_empty quiet.string
  end

  def test_key_data_and_keys_only
    pem = File.read(SSHD.key)
    assert_same_result { |lib| start_with(lib, keys: [], key_data: [pem]) { |s| s.exec!("echo kd") } }
    # the key went through a file that is gone afterwards
    before = Dir[File.join(Dir.tmpdir, "evssh-keys-*")]
    SSHD.start(keys: [], key_data: [pem]) { |s| s.exec!("true") }
    assert_equal before, Dir[File.join(Dir.tmpdir, "evssh-keys-*")]
    assert_same_result do |lib|
      start_with(lib, keys: [SSHD.key + ".nope"], auth_methods: ["publickey"])
    rescue StandardError => e
      e.class.name.split("::").last
    end
  end

  def test_send_env_and_set_env
    ENV["EVSSH_TEST_SENT"] = "from-env"
    ENV["EVSSH_TEST_OTHER"] = "other"
    r = assert_same_result do |lib|
      start_with(lib, send_env: [/\AEVSSH_TEST_S/, "EVSSH_TEST_OTHER"], set_env: { "EVSSH_TEST_SET" => "set" }) do |s|
        [s.exec!("echo $EVSSH_TEST_SENT $EVSSH_TEST_OTHER $EVSSH_TEST_SET"),
         s.exec!("exit 7").exitstatus]
      end
    end
    assert_equal ["from-env other set\n", 7], r
  ensure
    ENV.delete("EVSSH_TEST_SENT")
    ENV.delete("EVSSH_TEST_OTHER")
  end

  def test_algorithm_options
    assert_same_result do |lib|
      [start_with(lib, encryption: "aes128-ctr", hmac: ["hmac-sha2-256-etm@openssh.com"], kex: ["ecdh-sha2-nistp256"],
                       host_key: "ecdsa-sha2-nistp256") { |s| s.exec!("echo algs") },
       start_with(lib, encryption: %w[aes256-ctr no-such-cipher], append_all_supported_algorithms: true) { |s| s.exec!("echo more") },
       start_with(lib, hmac: ["-hmac-sha1*"]) { |s| s.exec!("echo minus") }]
    end
    r = both { |lib| start_with(lib, encryption: "no-such-cipher") }
    assert_equal :raised, r["evssh"][0]
    assert_equal :raised, r["net-ssh"][0]
  end

  # the negotiated algorithms (needs evssh_session_algorithm)
  def test_negotiated_algorithms
    assert_same_result do |lib|
      start_with(lib, encryption: "aes192-ctr", hmac: "hmac-sha2-512", kex: "ecdh-sha2-nistp384",
                      host_key: "ecdsa-sha2-nistp384") do |s|
        a = s.transport.algorithms
        [a.kex, a.host_key, a.encryption_client, a.encryption_server, a.hmac_client, a.hmac_server]
      end
    end
  end

  def test_keepalive_and_rekey_options
    assert_same_result do |lib|
      start_with(lib, keepalive: true, keepalive_interval: 1, keepalive_maxcount: 3, rekey_limit: 64 * 1024) do |s|
        out = +""
        s.exec("head -c 300000 /dev/zero; sleep 2.5; echo done") { |_c, _st, d| out << d }
        s.loop
        [out.bytesize, out.end_with?("done\n")]
      end
    end
  end

  def test_config_option
    Dir.mktmpdir do |d|
      cfg = File.join(d, "config")
      File.write(cfg, "Host cfg-alias\n  HostName 127.0.0.1\n  Port #{SSHD.port}\n  User #{SSHD.user}\n")
      assert_same_result do |lib|
        o = SSHD.opts(config: cfg).tap { |h| h.delete(:port) }
        lib.start("cfg-alias", nil, o.merge(host_key_alias: "[127.0.0.1]:#{SSHD.port}")) { |s| s.exec!("echo cfg") }
      end
    end
  end

  def test_host_name_port_bind_address
    assert_same_result do |lib|
      lib.start("some-alias", SSHD.user, SSHD.opts(host_name: "127.0.0.1", bind_address: "127.0.0.1")) do |s|
        [s.host, s.exec!("echo $SSH_CLIENT | cut -d' ' -f1")]
      end
    end
  end

  def test_properties_option
    assert_same_result { |lib| start_with(lib, properties: { role: :web }) { |s| [s[:role], s.properties[:role]] } }
  end
end
