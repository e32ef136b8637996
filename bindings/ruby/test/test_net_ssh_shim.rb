require_relative "helper"
require "open3"
require "rbconfig"

# require "evssh/net_ssh": libraries that call Net::SSH.start themselves
# (net-scp, net-sftp, SSHKit, net-ssh-multi, specinfra) get EvSSH sessions.
# Each program runs in its own ruby (the shim is process-wide); it prints
# what it saw, once with the shim and once without (plain net-ssh), and the
# two outputs must agree.
class TestNetSSHShim < Minitest::Test
  include SideBySide
  include WorkDir

  PRELUDE = <<~RUBY
    OPTS = { port: Integer(ENV["SSH_PORT"]), keys: [ENV["SSH_KEY"]], keys_only: true,
             user_known_hosts_file: ENV["SSH_KNOWN_HOSTS"], verify_host_key: :always,
             config: false, non_interactive: true }
    USER = ENV["SSH_USER"]
    DIR = ENV["WORK_DIR"]
  RUBY

  def setup
    need_netssh
    make_work_dir("evssh-shim-")
  end

  def run_ruby(code, shim:, env: {})
    head = shim ? %(require "evssh/net_ssh"\n) : %(require "net/ssh"\n)
    vars = { "SSH_PORT" => SSHD.port.to_s, "SSH_USER" => SSHD.user, "SSH_KEY" => SSHD.key,
             "SSH_KNOWN_HOSTS" => SSHD.known_hosts, "WORK_DIR" => @dir }.merge(env)
    incs = ["-I", File.expand_path("../lib", __dir__), "-I", EvSSHBuild.build!]
    Open3.capture3(vars, RbConfig.ruby, *incs, "-e", head + PRELUDE + code)
  end

  # the program's output with the shim, equal to its output on plain net-ssh
  def assert_same_output(code)
    out, err, st = run_ruby(code, shim: true)
    assert st.success?, "with evssh/net_ssh: #{err}"
    ref, ref_err, ref_st = run_ruby(code, shim: false)
    assert ref_st.success?, "on net-ssh: #{ref_err}"
    assert_equal ref, out
    out
  end

  def test_net_ssh_start_gives_evssh_sessions
    out, err, st = run_ruby(<<~'RUBY', shim: true)
      s = Net::SSH.start("127.0.0.1", USER, OPTS)
      puts s.class, s.exec!("echo shim")
      s.close
      begin
        Net::SSH.start("127.0.0.1", USER, OPTS.merge(keys: ["/nonexistent"], auth_methods: ["publickey"]))
      rescue Net::SSH::AuthenticationFailed => e
        puts "rescued #{e.class} as Net::SSH (EvSSH too: #{EvSSH::AuthenticationFailed === e})"
      end
      EvSSH::NetSSH.disable!
      puts Net::SSH.start("127.0.0.1", USER, OPTS) { |x| x.class }
      EvSSH::NetSSH.enable!
      puts Net::SSH.start("127.0.0.1", USER, OPTS) { |x| x.class }
    RUBY
    assert st.success?, err
    assert_equal ["EvSSH::Session", "shim",
                  "rescued Net::SSH::AuthenticationFailed as Net::SSH (EvSSH too: true)",
                  "Net::SSH::Connection::Session", "EvSSH::Session"], out.lines.map(&:chomp)
    off, err, st = run_ruby(%(puts Net::SSH.start("127.0.0.1", USER, OPTS) { |x| x.class }), shim: true,
                                                                                          env: { "EVSSH_NET_SSH" => "0" })
    assert st.success?, err
    assert_equal "Net::SSH::Connection::Session\n", off
  end

  def test_net_scp_start
    assert_same_output(<<~'RUBY')
      require "net/scp"
      File.write(File.join(DIR, "local.txt"), "scp via Net::SCP.start\n")
      Net::SCP.start("127.0.0.1", USER, OPTS) do |scp|
        scp.upload!(File.join(DIR, "local.txt"), File.join(DIR, "remote.txt"))
        puts scp.download!(File.join(DIR, "remote.txt"))
      end
      Net::SCP.upload!("127.0.0.1", USER, File.join(DIR, "local.txt"), File.join(DIR, "r2.txt"), ssh: OPTS)
      puts Net::SCP.download!("127.0.0.1", USER, File.join(DIR, "r2.txt"), nil, ssh: OPTS)
      begin
        Net::SCP.download!("127.0.0.1", USER, File.join(DIR, "missing"), nil, ssh: OPTS)
      rescue Net::SCP::Error => e
        puts e.class
      end
    RUBY
  end

  def test_net_sftp_start
    assert_same_output(<<~'RUBY')
      require "net/sftp"
      sftp = Net::SFTP.start("127.0.0.1", USER, OPTS)
      sftp.file.open(File.join(DIR, "s.txt"), "w") { |f| f.puts "sftp via Net::SFTP.start" }
      puts sftp.file.open(File.join(DIR, "s.txt")) { |f| f.read }
      sftp.session.close
    RUBY
  end

  # Net::SFTP.start with a block runs it from inside the event loop (the
  # sftp session's on_ready): nested loops in libevssh
  def test_net_sftp_start_with_block
    assert_same_output(<<~'RUBY')
      require "net/sftp"
      require "stringio"
      Net::SFTP.start("127.0.0.1", USER, OPTS) do |sftp|
        sftp.upload!(StringIO.new("block form\n"), File.join(DIR, "b.txt"))
        puts sftp.download!(File.join(DIR, "b.txt"))
        puts sftp.dir.entries(DIR).map(&:name).sort.join(" ")
      end
    RUBY
  end

  def test_net_ssh_multi
    assert_same_output(<<~'RUBY')
      require "net/ssh/multi"
      out = []
      Net::SSH::Multi.start do |session|
        session.use("#{USER}@127.0.0.1", OPTS)
        session.use("#{USER}@127.0.0.1", OPTS.merge(properties: { n: 2 }))
        session.exec("echo from-multi") { |_ch, stream, data| out << [stream, data] }
        session.loop
        out << session.exec!("printf bang") rescue out << :no_exec_bang
      end
      p out
    RUBY
  end

  # SSHKit calls channel.wait inside its open_channel block: nested loops
  def test_sshkit
    assert_same_output(<<~'RUBY')
      require "sshkit"
      require "sshkit/dsl"
      require "stringio"
      include SSHKit::DSL
      SSHKit.config.output = SSHKit::Formatter::BlackHole.new($stdout)
      host = SSHKit::Host.new("#{USER}@127.0.0.1:#{OPTS[:port]}")
      # SSHKit's defaults (forward_agent: true among them)
      host.ssh_options = OPTS
      on(host) do
        puts capture(:echo, "from", "sshkit")
        upload! StringIO.new("sshkit upload\n"), File.join(DIR, "k.txt")
        puts capture(:cat, File.join(DIR, "k.txt"))
        puts test("[ -f #{File.join(DIR, 'k.txt')} ]")
        within(DIR) { puts capture(:ls) }
      end
    RUBY
  end

  def test_specinfra
    skip "specinfra not installed" unless system(RbConfig.ruby, "-e", "require 'specinfra'", out: File::NULL, err: File::NULL)
    assert_same_output(<<~'RUBY')
      require "specinfra"
      Specinfra.configuration.backend = :ssh
      Specinfra.configuration.host = "127.0.0.1"
      Specinfra.configuration.ssh_options = OPTS.merge(user: USER)
      r = Specinfra.backend.run_command("echo specinfra; echo err >&2; exit 3")
      p [r.stdout, r.stderr, r.exit_status]
      Specinfra.configuration.request_pty = true
      p Specinfra.backend.run_command("tty >/dev/null && echo pty").stdout.strip
    RUBY
  end
end
