require_relative "helper"
require "socket"
require "tmpdir"

# session.forward (Net::SSH::Service::Forward) and forward_agent: the same
# script on Net::SSH and on EvSSH through the fixture's sshd, equal results.
class TestForward < Minitest::Test
  include SideBySide

  # a thread answering each line a client of server sends with prefix + line
  def serve_lines(server, prefix)
    Thread.new do
      loop do
        c = server.accept
        Thread.new(c) do |cc|
          while (line = cc.gets)
            cc.write("#{prefix}#{line}")
          end
          cc.close
        end
      end
    end
  end

  # a TCP echo server on 127.0.0.1 ("echo:" before each line), for the block
  def with_echo_server
    server = TCPServer.new("127.0.0.1", 0)
    thread = serve_lines(server, "echo:")
    yield server.addr[1]
  ensure
    thread&.kill
    server&.close
  end

  # run ssh's loop while the block talks to a socket in a thread; the block's value
  def in_thread(ssh)
    result = nil
    t = Thread.new do
      result = yield
    rescue StandardError => e
      result = [:raised, e.class]
    end
    deadline = Time.now + 120
    ssh.loop(0.05) { t.alive? && Time.now < deadline }
    t.join(5)
    result
  end

  def talk(port, lines)
    s = TCPSocket.new("127.0.0.1", port)
    out = lines.map do |l|
      s.write("#{l}\n")
      s.gets
    end
    s.close
    out
  end

  def refused?(port)
    TCPSocket.new("127.0.0.1", port).close
    false
  rescue Errno::ECONNREFUSED
    true
  end

  # -L to a TCP echo server: port 0 gives the bound port; data both ways;
  # several connections; active_locals; cancel_local closes the listener
  def test_local_forward_echo_and_cancel
    with_echo_server do |target|
      r = assert_same_result do |lib|
        start_with(lib) do |ssh|
          port = ssh.forward.local(0, "127.0.0.1", target)
          r = [port.is_a?(Integer) && port.positive?, ssh.forward.active_locals == [[port, "127.0.0.1"]]]
          r << in_thread(ssh) { 3.times.map { |i| talk(port, ["a#{i}", "b" * 100_000]) } }
          r << in_thread(ssh) { 5.times.map { |i| Thread.new { talk(port, ["p#{i}"]) } }.map(&:value) }
          ssh.forward.cancel_local(port)
          r << ssh.forward.active_locals
          ssh.loop(0.1) { false }
          r << refused?(port)
          r << ssh.exec!("echo alive")
          r
        end
      end
      big = "echo:#{'b' * 100_000}\n"
      assert_equal [true, true, 3.times.map { |i| ["echo:a#{i}\n", big] }, 5.times.map { |i| ["echo:p#{i}\n"] },
                    [], true, "alive\n"], r
    end
  end

  # local(bind, port, host, hostport); a port in use raises Errno::EADDRINUSE
  def test_local_forward_bind_and_port_in_use
    with_echo_server do |target|
      r = assert_same_result do |lib|
        start_with(lib) do |ssh|
          busy = TCPServer.new("127.0.0.1", 0)
          r = []
          begin
            ssh.forward.local("127.0.0.1", busy.addr[1], "127.0.0.1", target)
          rescue SystemCallError => e
            r << e.class
          ensure
            busy.close
          end
          port = ssh.forward.local("localhost", 0, "127.0.0.1", target)
          r << ssh.forward.active_locals.map(&:last)
          r << in_thread(ssh) { talk(port, ["via localhost"]) }
          r
        end
      end
      assert_equal [Errno::EADDRINUSE, ["localhost"], ["echo:via localhost\n"]], r
    end
  end

  # -R with port 0: the block gets the port the server bound; connections
  # to it reach the echo server here; cancel_remote ends it
  def test_remote_forward_port_zero_and_cancel
    with_echo_server do |target|
      r = assert_same_result do |lib|
        start_with(lib) do |ssh|
          got = nil
          ssh.forward.remote(target, "127.0.0.1", 0) { |port, host| got = [port, host] }
          ssh.loop(0.1) { got.nil? }
          port = got[0]
          r = [port.positive?, got[1], ssh.forward.active_remotes == [[port, "127.0.0.1"]]]
          r << (ssh.forward.active_remote_destinations == { [target, "127.0.0.1"] => [port, "127.0.0.1"] })
          r << in_thread(ssh) { talk(port, ["over -R", "x" * 50_000]) }
          ssh.forward.cancel_remote(port)
          ssh.loop(0.1) { ssh.forward.active_remotes.any? }
          r << ssh.forward.active_remotes
          r << ssh.exec!("echo alive")
          r
        end
      end
      assert_equal [true, "127.0.0.1", true, true, ["echo:over -R\n", "echo:#{'x' * 50_000}\n"], [], "alive\n"], r
    end
  end

  # a refused -R (sshd will not bind a privileged port for the test
  # account): the block gets :error; :no_exception keeps the loop going,
  # anything else raises from it
  def test_remote_forward_refused
    r = assert_same_result do |lib|
      start_with(lib) do |ssh|
        r = []
        ssh.forward.remote(9, "127.0.0.1", 1) { |*a| r << a; :no_exception }
        ssh.loop(0.1) { r.empty? }
        ssh.forward.remote(9, "127.0.0.1", 2) { |*a| r << a }
        begin
          ssh.loop(0.1) { r.size < 2 }
          r << :no_raise
        rescue lib::Exception => e
          r << SideBySide.error_name(e)
        end
        r << ssh.forward.active_remotes
        r
      end
    end
    assert_equal [[:error], [:error], "Exception", []], r
  end

  # forward_agent: true joins the server's agent channels to the local
  # ssh-agent: `ssh-add -l` on the remote lists the key added here
  def test_forward_agent_lists_local_key
    Dir.mktmpdir("evssh-agent-") do |d|
      sock = File.join(d, "agent.sock")
      pid = spawn("ssh-agent", "-D", "-a", sock, out: File::NULL, err: File::NULL)
      begin
        assert SSHD.wait_for_unix_listener(sock, pid), "ssh-agent did not listen on #{sock}"
        key = File.join(d, "id_ed25519")
        system("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f", key, out: File::NULL)
        assert system({ "SSH_AUTH_SOCK" => sock }, "ssh-add", "-q", key, out: File::NULL, err: File::NULL)
        fp = `ssh-keygen -lf #{key}.pub`.split[1]
        old = ENV["SSH_AUTH_SOCK"]
        ENV["SSH_AUTH_SOCK"] = sock
        r = assert_same_result do |lib|
          with = start_with(lib, forward_agent: true) { |ssh| ssh.exec!("ssh-add -l") }
          without = start_with(lib) { |ssh| ssh.exec!("ssh-add -l >/dev/null 2>&1; echo $?") }
          [with.to_s.split[1], with.to_s.include?("forwarded-key"), without]
        end
        assert_equal [fp, true, "2\n"], r
      ensure
        ENV["SSH_AUTH_SOCK"] = old
        Process.kill("TERM", pid)
        Process.wait(pid)
      end
    end
  end

  # local_socket: a unix socket here to the server's unix socket
  # (direct-streamlocal), cancelled by cancel_local_socket
  def test_local_socket_forward
    Dir.mktmpdir("evssh-fwsock-") do |d|
      File.chmod(0o777, d)
      remote_path = File.join(d, "remote.sock")
      server = UNIXServer.new(remote_path)
      File.chmod(0o777, remote_path)
      t = serve_lines(server, "unix:")
      begin
        r = assert_same_result do |lib|
          start_with(lib) do |ssh|
            local_path = File.join(d, "local-#{lib.name.downcase.tr(':', '')}.sock")
            r = [ssh.forward.local_socket(local_path, remote_path) == local_path]
            r << ssh.forward.active_local_sockets.size
            r << in_thread(ssh) do
              s = UNIXSocket.new(local_path)
              s.write("hello\n")
              l = s.gets
              s.close
              l
            end
            ssh.forward.cancel_local_socket(local_path)
            r << ssh.forward.active_local_sockets
            r
          end
        end
        assert_equal [true, 1, "unix:hello\n", []], r
      ensure
        t.kill
        server.close
      end
    end
  end
end
