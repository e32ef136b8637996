require_relative "helper"
require "socket"

# KeyFactory, KnownHosts and Authentication::Agent against net-ssh's.
class TestKeys < Minitest::Test
  include SideBySide

  def setup
    @dir = Dir.mktmpdir("evssh-keys-test-")
    {
      "ed" => %w[-t ed25519 -N], "ed_enc" => %w[-t ed25519 -N pass-phrase], "ec" => %w[-t ecdsa -b 384 -N],
      "rsa_pem" => %w[-t rsa -b 2048 -m PEM -N pass-phrase], "rsa" => %w[-t rsa -b 2048 -N]
    }.each do |name, args|
      pass = args.last == "-N" ? [""] : []
      system("ssh-keygen", "-q", *args, *pass, "-C", "c-#{name}", "-f", File.join(@dir, name), out: File::NULL) or skip "ssh-keygen"
    end
  end

  def teardown
    FileUtils.remove_entry(@dir) if @dir
  end

  def blob_of(key)
    key.respond_to?(:to_blob) ? key.to_blob : key.public_key.to_blob
  end

  def test_key_factory
    assert_same_result do |lib|
      %w[ed ed_enc ec rsa_pem].map do |name|
        path = File.join(@dir, name)
        priv = lib::KeyFactory.load_private_key(path, name.end_with?("enc", "pem") ? "pass-phrase" : nil, false)
        pub = lib::KeyFactory.load_public_key("#{path}.pub")
        data = lib::KeyFactory.load_data_public_key(File.read("#{path}.pub"))
        [name, priv.ssh_type, blob_of(priv) == pub.to_blob, pub.to_blob == data.to_blob, pub.fingerprint,
         pub.fingerprint("SHA256")]
      end
    end
  end

  # OpenSSH-format RSA keys, which net-ssh 7.0.1 cannot load on OpenSSL 3
  def test_key_factory_openssh_rsa
    path = File.join(@dir, "rsa")
    priv = EvSSH::KeyFactory.load_private_key(path)
    pub = EvSSH::KeyFactory.load_public_key("#{path}.pub")
    assert_kind_of OpenSSL::PKey::RSA, priv
    assert priv.private?
    assert_equal pub.to_blob, priv.to_blob
    assert_equal `ssh-keygen -l -E sha256 -f #{path}.pub`.split[1], pub.fingerprint("SHA256")
  end

  def test_wrong_passphrase_and_prompt
    path = File.join(@dir, "ed_enc")
    assert_raises(ArgumentError) { EvSSH::KeyFactory.load_private_key(path, "wrong", false) }
    asked = []
    prompt = Object.new
    prompt.define_singleton_method(:start) do |info|
      asked << info[:type]
      Object.new.tap { |q| q.define_singleton_method(:ask) { |_t, _e| "pass-phrase" } }
    end
    key = EvSSH::KeyFactory.load_private_key(path, nil, true, prompt)
    assert_equal "ssh-ed25519", key.ssh_type
    assert_equal ["private_key"], asked
  end

  def test_known_hosts
    kh = File.join(@dir, "known_hosts")
    ed = File.read(File.join(@dir, "ed.pub")).split[0, 2].join(" ")
    ec = File.read(File.join(@dir, "ec.pub")).split[0, 2].join(" ")
    File.write(kh, "# comment\n[127.0.0.1]:2222 #{ed}\n*.example.com,10.0.0.? #{ec}\n@cert-authority *.ca.test #{ed}\n")
    system("ssh-keygen", "-q", "-H", "-f", kh, out: File::NULL, err: File::NULL) # hashes the plain names
    File.open(kh, "a") { |f| f.puts "plain.test #{ec}" }
    r = assert_same_result do |lib|
      %w[[127.0.0.1]:2222 host.example.com 10.0.0.7 nope.test plain.test a.ca.test].map do |host|
        keys = lib::KnownHosts.search_for(host, user_known_hosts_file: kh, global_known_hosts_file: [])
        [host, keys.to_a.map { |k| [k.class.name.split("::").last, k.ssh_types, k.respond_to?(:ssh_type) && k.to_blob.bytesize] },
         keys.host]
      end
    end
    assert_equal 1, r[0][1].size
    added = File.join(@dir, "added")
    key = EvSSH::KeyFactory.load_public_key(File.join(@dir, "ed.pub"))
    EvSSH::KnownHosts.add("[h.test]:22,1.2.3.4", key, user_known_hosts_file: added)
    assert_equal "[h.test]:22,1.2.3.4 #{ed}\n", File.read(added)
  end

  def with_agent
    sock = File.join(@dir, "agent.sock")
    pid = Process.spawn("ssh-agent", "-D", "-a", sock, out: File::NULL, err: File::NULL)
    unless SSHD.wait_for_unix_listener(sock, pid)
      pid = nil # exited already, reaped by the wait
      skip "ssh-agent did not start"
    end
    yield sock
  ensure
    if pid
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end

  def test_agent
    with_agent do |sock|
      ed = EvSSH::KeyFactory.load_private_key(File.join(@dir, "ed"))
      ec = EvSSH::KeyFactory.load_private_key(File.join(@dir, "ec"))
      rsa = EvSSH::KeyFactory.load_private_key(File.join(@dir, "rsa"))
      agent = EvSSH::Authentication::Agent.connect(nil, nil, sock)
      agent.add_identity(ed, "ed-comment")
      agent.add_identity(ec, "ec-comment")
      agent.add_identity(rsa, "rsa-comment", confirm: false)
      assert_equal [ed.to_blob, ec.to_blob, rsa.to_blob], agent.identities.map(&:to_blob)
      r = assert_same_result do |lib|
        a = lib::Authentication::Agent.connect(nil, nil, sock)
        ids = a.identities
        out = ids.map { |k| [k.ssh_type, k.comment, k.to_blob == [ed, ec, rsa][ids.index(k)].to_blob] }
        # Ed25519 and RSA (PKCS#1 v1.5) signatures are deterministic
        sigs = [ids[0], ids[2]].map { |k| a.sign(k, "data to sign") }
        a.close
        [out, sigs]
      end
      assert_equal 3, r[0].size
      agent.remove_identity(ec)
      assert_equal 2, agent.identities.size
      agent.remove_all_identities
      assert_empty agent.identities
      agent.close
    end
    assert_raises(EvSSH::Authentication::AgentNotAvailable) do
      EvSSH::Authentication::Agent.connect(nil, nil, File.join(@dir, "no-agent"))
    end
  end

  # libevssh logs in with agent keys (IdentityAgent), use_agent: false stops it
  def test_login_through_agent
    with_agent do |sock|
      agent = EvSSH::Authentication::Agent.connect(nil, nil, sock)
      agent.add_identity(EvSSH::KeyFactory.load_private_key(SSHD.key), "harness key")
      assert_same_result do |lib|
        o = SSHD.opts(keys: [], keys_only: false, options: nil).tap { |h| h.delete(:options) }
        old = ENV["SSH_AUTH_SOCK"]
        ENV["SSH_AUTH_SOCK"] = sock
        begin
          via_agent = lib.start("127.0.0.1", SSHD.user, o) { |s| s.exec!("echo agent") }
          without = begin
            lib.start("127.0.0.1", SSHD.user, o.merge(use_agent: false, auth_methods: ["publickey"]))
            :connected
          rescue StandardError => e
            SideBySide.error_name(e)
          end
          [via_agent, without]
        ensure
          ENV["SSH_AUTH_SOCK"] = old
        end
      end
      agent.close
    end
  end
end
