require_relative "helper"
require "digest"
require "stringio"
require "fileutils"
require "rbconfig"

# session.sftp on an EvSSH session is the native client (EvSSH::SFTP over
# libevssh's evssh_sftp_*), side by side with net-sftp on net-ssh: the same
# code (`ssh.sftp...`) runs once on a Net::SSH session (net-sftp) and once
# on an EvSSH session (native), and must give equal results. The fixture's
# sshd runs internal-sftp.
class TestSFTPNative < Minitest::Test
  include SideBySide
  include WorkDir

  def setup
    skip "the evssh extension was built without SFTP (libevssh lacks evssh_sftp_open)" unless defined?(EvSSH::SFTP::Upload)
    begin
      require "net/sftp"
    rescue LoadError
      skip "net-sftp not installed (Debian: ruby-net-sftp)"
    end
    make_work_dir("evssh-nsftp-")
  end

  # the block with lib's session's sftp accessor: net-sftp's on net-ssh,
  # the native one on EvSSH
  def sftp_with(lib)
    start_with(lib) do |ssh|
      sftp = ssh.sftp
      if lib == EvSSH
        assert_kind_of EvSSH::SFTP::Session, sftp
      else
        assert_kind_of Net::SFTP::Session, sftp
      end
      r = yield sftp, ssh
      sftp.close_channel
      r
    end
  end

  def tree_digest(root)
    Dir.glob("**/*", base: root).sort.map do |rel|
      p = File.join(root, rel)
      File.directory?(p) ? [rel, :dir] : [rel, File.size(p), Digest::SHA256.file(p).hexdigest]
    end
  end

  def test_session_sftp_is_native_and_net_sftp_still_works
    SSHD.start do |ssh|
      sftp = ssh.sftp
      assert_kind_of EvSSH::SFTP::Session, sftp
      assert sftp.open?
      assert_same sftp, ssh.sftp
      assert_equal 3, sftp.protocol.version
      # net-sftp itself on the same EvSSH session
      theirs = Net::SFTP::Session.new(ssh).connect!
      theirs.mkdir!(File.join(@dir, "by-net-sftp"))
      assert sftp.stat!(File.join(@dir, "by-net-sftp")).directory?
      theirs.close_channel
      sftp.close_channel
      assert sftp.closed?
      assert_raises(EvSSH::Closed) { sftp.stat(@dir) }
    end
    # Net::SFTP.start's shape
    made = File.join(@dir, "by-start")
    assert_nil(EvSSH::SFTP.start("127.0.0.1", SSHD.user, SSHD.opts) { |s| s.mkdir(made) })
    assert File.directory?(made)
  end

  def test_requests_side_by_side
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        d = File.join(@dir, "d-#{name}")
        sftp.mkdir!(d, permissions: 0o750)
        st = sftp.stat!(d)
        sftp.file.open(File.join(d, "one.txt"), "w") { |f| f.write("1") }
        sftp.file.open(File.join(d, "two.log"), "w") { |f| f.write("22") }
        sftp.mkdir!(File.join(d, "sub"))
        sftp.file.open(File.join(d, "sub", "three.txt"), "w") { |f| f.write("333") }
        entries = sftp.dir.entries(d).map(&:name).sort
        kinds = sftp.dir.entries(d).map { |e| [e.name, e.directory?, e.file?, e.attributes.size.is_a?(Integer)] }.sort
        glob = sftp.dir.glob(d, "**/*.txt").map(&:name).sort
        bracket = sftp.dir[d, "*.log"].map(&:name)
        each = []
        sftp.dir.foreach(d) { |e| each << e.name }
        sftp.setstat!(File.join(d, "one.txt"), permissions: 0o600)
        mode = sftp.stat!(File.join(d, "one.txt")).permissions & 0o7777
        sftp.setstat!(File.join(d, "one.txt"), atime: 1_000_000_000, mtime: 1_200_000_000)
        times = sftp.stat!(File.join(d, "one.txt")).then { |a| [a.atime, a.mtime] }
        sftp.symlink!(File.join(d, "one.txt"), File.join(d, "link"))
        link = sftp.readlink!(File.join(d, "link")).name
        lst = sftp.lstat!(File.join(d, "link"))
        real = sftp.realpath!(File.join(d, "sub", "..", "one.txt")).name
        sftp.rename!(File.join(d, "one.txt"), File.join(d, "uno.txt"))
        after = sftp.dir.entries(d).map(&:name).sort
        sizes = %w[uno.txt two.log].map { |f| sftp.stat!(File.join(d, f)).size }
        %w[uno.txt two.log link sub/three.txt].each { |f| sftp.remove!(File.join(d, f)) }
        sftp.rmdir!(File.join(d, "sub"))
        sftp.rmdir!(d)
        gone = begin
          sftp.stat!(d)
        rescue Net::SFTP::StatusException => e
          [e.class, e.code, e.description]
        end
        [st.directory?, st.permissions & 0o777, entries, kinds, glob, bracket, each.sort, mode, times,
         link == File.join(d, "one.txt"), lst.symlink?, real == File.join(File.realpath(@dir), "d-#{name}", "one.txt"),
         after, sizes, gone]
      end
    end
  end

  def test_upload_download_5mib_with_progress
    data = Random.new(7).bytes(5 * 1024 * 1024 + 3)
    src = File.join(@dir, "src.bin")
    File.binwrite(src, data)
    r = assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        remote = File.join(@dir, "r-#{name}.bin")
        events = Hash.new(0)
        put = +"".b
        put_at = []
        sftp.upload!(src, remote) do |event, _up, *args|
          events[event] += 1 unless %i[put].include?(event)
          if event == :put
            put_at << args[1]
            put << args[2]
          end
        end
        back = File.join(@dir, "b-#{name}.bin")
        got = +"".b
        first = nil
        sftp.download!(remote, back) do |event, _dl, *args|
          first ||= event
          if event == :get
            assert_equal got.bytesize, args[1], "get events come in offset order"
            got << args[2]
          end
        end
        str = sftp.download!(remote)
        sftp.upload!(StringIO.new("from memory"), File.join(@dir, "m-#{name}.txt"))
        io = StringIO.new(+"".b)
        sftp.download!(remote, io)
        [Digest::SHA256.file(remote).hexdigest, Digest::SHA256.file(back).hexdigest, str.b == data,
         events.to_a.sort, put == data, put_at.first, put_at == put_at.sort, first, got == data,
         File.read(File.join(@dir, "m-#{name}.txt")), io.string.b == data, io.closed?]
      end
    end
    assert_equal Digest::SHA256.hexdigest(data), r[0]
    assert_equal [[:close, 1], [:finish, 1], [:open, 1]], r[3]
  end

  def test_trees_recursive
    src = File.join(@dir, "tree")
    FileUtils.mkdir_p(File.join(src, "a", "b", "c"))
    FileUtils.mkdir_p(File.join(src, "empty"))
    rng = Random.new(3)
    { "top.bin" => 300_000, "a/x.txt" => 10, "a/b/y.bin" => 1_100_000, "a/b/c/z" => 0, "a/b/c/w.bin" => 70_000 }
      .each { |rel, n| File.binwrite(File.join(src, rel), rng.bytes(n)) }
    want = tree_digest(src)
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        up = File.join(@dir, "up-#{name}")
        mkdirs = []
        opens = []
        sftp.upload!(src, up, mkdir: true) do |event, _u, *args|
          mkdirs << args[0].delete_prefix(up) if event == :mkdir
          opens << args[0].remote.delete_prefix(up) if event == :open
        end
        down = File.join(@dir, "down-#{name}")
        dmk = []
        got = Hash.new(0)
        sftp.download!(up, down, recursive: true) do |event, _d, *args|
          dmk << args[0].delete_prefix(down) if event == :mkdir
          got[args[0].remote.delete_prefix(up)] += args[2].bytesize if event == :get
        end
        # without :mkdir the remote directory must exist
        missing = begin
          sftp.upload!(src, File.join(@dir, "nope-#{name}", "x"))
          :no_error
        rescue Net::SFTP::StatusException => e
          [e.code, e.description]
        end
        [tree_digest(up) == want, tree_digest(down) == want, mkdirs.sort, opens.sort, dmk.sort,
         got.reject { |_, v| v.zero? }.sort, missing]
      end
    end
  end

  # a tree upload whose first answer fails raises once: the answers still
  # outstanding (several files and directories were started at once) are
  # ignored, so the session goes on and close_channel does not raise them
  def test_failed_tree_upload_leaves_the_session_usable
    src = File.join(@dir, "tree")
    FileUtils.mkdir_p(File.join(src, "d1", "d2"))
    %w[f1 f2 f3 d1/f4].each { |f| File.write(File.join(src, f), f) }
    SSHD.start do |ssh|
      sftp = ssh.sftp
      assert_raises(Net::SFTP::StatusException) { sftp.upload!(src, File.join(@dir, "nope", "x")) }
      assert sftp.stat!(@dir).directory?
      t = sftp.upload(src, File.join(@dir, "nope2", "x"))
      sftp.loop { !sftp.pending_requests.empty? && t.active? } rescue Net::SFTP::StatusException
      assert_nil sftp.close_channel
    end
  end

  def test_file_open_read_write_seek
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        path = File.join(@dir, "f-#{name}.txt")
        sftp.file.open(path, "w") do |f|
          f.puts "line 1", ["line 2"]
          f.print "line ", 3, "\n"
          f.write("tail")
        end
        lines = []
        sftp.file.open(path, "r") do |f|
          while (l = f.gets)
            lines << l
          end
        end
        read = sftp.file.open(path) { |f| [f.read(4), f.pos, f.gets, f.read, f.eof?, f.read(3)] }
        sought = sftp.file.open(path) do |f|
          f.pos = 7
          a = f.read(6)
          f.rewind
          [a, f.readline, f.pos]
        end
        # net-sftp sends one WRITE per write: past the server's 256 KiB
        # packets it loses the channel, so the side by side stays below
        big = Random.new(9).bytes(200_000)
        sftp.file.open(path, "w") { |f| f.write(big) }
        big_back = sftp.file.open(path) { |f| f.read }
        sftp.file.open(path, "a") { |f| f.write("!") }
        [lines, read, sought, sftp.file.open(path).stat.size, big_back == big, File.size(path),
         sftp.file.directory?(@dir)]
      end
    end
  end

  def test_seek_and_large_writes
    SSHD.start do |ssh|
      path = File.join(@dir, "seek.txt")
      ssh.sftp.file.open(path, "w") { |f| f.write("0123456789") }
      got = ssh.sftp.file.open(path) do |f|
        f.seek(-3, IO::SEEK_END)
        a = f.read
        f.seek(2)
        f.seek(3, IO::SEEK_CUR)
        [a, f.read(2), f.pos]
      end
      assert_equal ["789", "56", 7], got
      # one write larger than the server's packets goes as several WRITEs
      big = Random.new(9).bytes(700_000)
      ssh.sftp.file.open(path, "w") { |f| assert_equal big.bytesize, f.write(big) }
      assert_equal big, File.binread(path)
      assert_equal big, ssh.sftp.file.open(path, &:read)
    end
  end

  def test_status_exceptions
    assert_same_result do |lib|
      sftp_with(lib) do |sftp|
        missing = File.join(@dir, "missing")
        errs = %w[stat! lstat! remove! rmdir! opendir! open! readlink!].map do |op|
          sftp.send(op, missing)
          :no_error
        rescue Net::SFTP::StatusException => e
          [op, e.class, e.code, e.description]
        end
        errs << begin
          sftp.download!(missing, File.join(@dir, "dl"))
          :no_error
        rescue Net::SFTP::StatusException => e
          [e.code, e.description, File.exist?(File.join(@dir, "dl"))]
        end
        errs << begin
          sftp.mkdir!(@dir)
        rescue Net::SFTP::StatusException => e
          [e.code, e.description]
        end
        errs << begin
          sftp.upload!(StringIO.new("x"), File.join(missing, "f"))
        rescue Net::SFTP::StatusException => e
          e.code
        end
        errs
      end
    end
  end

  def test_async_requests
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp, ssh|
        paths = Array.new(5) { |i| File.join(@dir, "a-#{name}-#{i}") }
        reqs = paths.map { |p| sftp.mkdir(p) }
        pending = reqs.map(&:pending?)
        ssh.loop { reqs.any?(&:pending?) }
        statuses = reqs.map { |q| [q.response.code, q.response.ok?] }
        got = []
        paths.each { |p| sftp.stat(p) { |resp| got << [File.basename(p)[/\d+\z/], resp.ok?, resp[:attrs].directory?] } }
        sftp.loop
        miss = sftp.stat(File.join(@dir, "none")) { |resp| got << [:missing, resp.code, resp.ok?, resp.eof?] }
        assert_same miss, miss.wait
        opened = sftp.open(paths[0] + ".f", "w")
        opened[:mine] = 42
        opened.wait
        h = opened.response[:handle]
        w = sftp.write(h, 0, "abc")
        w.wait
        c = sftp.close(h)
        c.wait
        paths.each { |p| sftp.rmdir!(p) }
        [pending.all?, statuses, got.sort_by(&:to_s), opened[:mine], w.response.ok?, c.response.ok?,
         File.read(paths[0] + ".f")]
      end
    end
  end

  def test_two_transfers_at_once
    a = Random.new(1).bytes(2 * 1024 * 1024)
    b = Random.new(2).bytes(3 * 1024 * 1024 + 11)
    File.binwrite(File.join(@dir, "a.bin"), a)
    File.binwrite(File.join(@dir, "b.bin"), b)
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        up = sftp.upload(File.join(@dir, "a.bin"), File.join(@dir, "a-#{name}.up"))
        down = sftp.download(File.join(@dir, "b.bin"), File.join(@dir, "b-#{name}.down"))
        str = StringIO.new(+"".b)
        mem = sftp.download(File.join(@dir, "a.bin"), str)
        both_active = up.active? && down.active? && mem.active?
        [up, down, mem].each(&:wait)
        [both_active, [up, down, mem].map(&:active?),
         File.binread(File.join(@dir, "a-#{name}.up")) == a, File.binread(File.join(@dir, "b-#{name}.down")) == b,
         str.string == a]
      end
    end
  end

  # C holds the sftp wrapper (every answer is handed to it): compaction
  # while requests and a transfer are in flight must not move it
  def test_gc_compact_while_busy
    skip "GC.compact not available" unless GC.respond_to?(:compact)
    data = Random.new(4).bytes(1024 * 1024)
    src = File.join(@dir, "gc.bin")
    File.binwrite(src, data)
    SSHD.start do |ssh|
      sftp = ssh.sftp
      3.times do |i|
        reqs = Array.new(20) { sftp.stat(@dir) }
        t = sftp.upload(src, File.join(@dir, "gc-#{i}.bin")) { |ev, *| GC.compact if ev == :put }
        GC.compact
        t.wait
        reqs.each(&:wait)
        assert reqs.all? { |q| q.response.ok? }
        assert_equal data, File.binread(File.join(@dir, "gc-#{i}.bin"))
      end
    end
  end

  # without net-sftp, status failures are EvSSH::SFTP::StatusException
  def test_status_exception_without_net_sftp
    lib = File.expand_path("../lib", __dir__)
    script = <<~RUBY
      require "evssh"
      abort "net-sftp loaded" if defined?(Net::SFTP)
      EvSSH.start("127.0.0.1", #{SSHD.user.inspect}, #{SSHD.opts.inspect}) do |ssh|
        begin
          ssh.sftp.stat!(#{File.join(@dir, 'missing').inspect})
        rescue EvSSH::SFTP::StatusException => e
          puts [e.class, e.code, e.description, e.message].inspect
        end
      end
    RUBY
    out = IO.popen([RbConfig.ruby, "-I", lib, "-I", EvSSHBuild.build!, "-e", script], err: [:child, :out], &:read)
    assert_equal '[EvSSH::SFTP::StatusException, 2, "no such file", ' \
                 '"EvSSH::SFTP::StatusException (2, \"no such file\")"]', out.strip
  end

  # rescue EvSSH::SFTP::... catches the net-sftp classes raised while net-sftp is loaded
  def test_rescue_by_evssh_class
    SSHD.start do |ssh|
      e = assert_raises(EvSSH::SFTP::StatusException) { ssh.sftp.remove!(File.join(@dir, "none")) }
      assert_instance_of Net::SFTP::StatusException, e
      caught = begin
        ssh.sftp.rmdir!(File.join(@dir, "none"))
      rescue EvSSH::SFTP::Exception => x
        x.code
      end
      assert_equal 2, caught
    end
  end
end
