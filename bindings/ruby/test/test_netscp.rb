require_relative "helper"
require "stringio"
require "digest"

# net-scp (Debian ruby-net-scp), unmodified, over an EvSSH session: every
# case runs once over net-ssh and once over EvSSH and must give the same.
class TestNetSCP < Minitest::Test
  include SideBySide
  include WorkDir

  def setup
    begin
      require "net/scp"
    rescue LoadError
      skip "net-scp not installed (Debian: ruby-net-scp)"
    end
    make_work_dir("evssh-scp-")
    @remote = File.join(@dir, "remote")
    Dir.mkdir(@remote)
    File.chmod(0o777, @remote)
  end

  def scp_with(lib, &block)
    start_with(lib) { |ssh| block.call(Net::SCP.new(ssh), ssh) }
  end

  def test_big_file_up_and_down
    data = Random.new(11).bytes(5 * 1024 * 1024)
    src = File.join(@dir, "big.bin")
    File.binwrite(src, data)
    r = assert_same_result do |lib, name|
      scp_with(lib) do |scp|
        remote = File.join(@remote, "big-#{name}.bin")
        back = File.join(@dir, "back-#{name}.bin")
        scp.upload!(src, remote)
        scp.download!(remote, back)
        [File.size(remote), Digest::SHA256.file(remote).hexdigest, Digest::SHA256.file(back).hexdigest]
      end
    end
    assert_equal [data.bytesize, Digest::SHA256.hexdigest(data), Digest::SHA256.hexdigest(data)], r
  end

  def test_strings
    assert_same_result do |lib, name|
      scp_with(lib) do |scp, ssh|
        remote = File.join(@remote, "s-#{name}.txt")
        scp.upload!(StringIO.new("from a string\n"), remote)
        [scp.download!(remote), ssh.scp.download!(remote).encoding, File.read(remote)]
      end
    end
  end

  def test_recursive_tree_and_progress
    tree = File.join(@dir, "tree")
    FileUtils.mkdir_p(File.join(tree, "a", "b"))
    File.write(File.join(tree, "top.txt"), "top\n")
    File.write(File.join(tree, "a", "mid.txt"), "mid\n" * 1000)
    File.binwrite(File.join(tree, "a", "b", "deep.bin"), Random.new(3).bytes(100_000))
    r = assert_same_result do |lib, name|
      scp_with(lib) do |scp|
        dest = File.join(@remote, "up-#{name}")
        Dir.mkdir(dest)
        File.chmod(0o777, dest)
        progress = Hash.new { |h, k| h[k] = [] }
        scp.upload!(tree, dest, recursive: true) { |_ch, file, sent, total| progress[File.basename(file)] << [sent, total] }
        down = File.join(@dir, "down-#{name}")
        Dir.mkdir(down)
        scp.download!(File.join(dest, "tree"), down, recursive: true)
        files = Dir.glob("**/*", base: File.join(down, "tree")).sort
        [files, files.map { |f| File.file?(File.join(down, "tree", f)) ? File.size(File.join(down, "tree", f)) : :dir },
         progress.transform_values { |v| [v.first, v.last] }.sort]
      end
    end
    assert_includes r[0], "a/b/deep.bin"
  end

  def test_two_transfers_at_once
    a = File.join(@dir, "a.bin")
    b = File.join(@dir, "b.bin")
    File.binwrite(a, Random.new(1).bytes(1_000_000))
    File.binwrite(b, Random.new(2).bytes(700_000))
    assert_same_result do |lib, name|
      scp_with(lib) do |scp, ssh|
        c1 = scp.upload(a, File.join(@remote, "a-#{name}"))
        c2 = scp.upload(b, File.join(@remote, "b-#{name}"))
        ssh.loop
        d1 = scp.download(File.join(@remote, "a-#{name}"), File.join(@dir, "a-back-#{name}"))
        d2 = scp.download(File.join(@remote, "b-#{name}"), File.join(@dir, "b-back-#{name}"))
        [c1, c2, d1, d2].each(&:wait)
        [File.binread(File.join(@dir, "a-back-#{name}")) == File.binread(a),
         File.binread(File.join(@dir, "b-back-#{name}")) == File.binread(b)]
      end
    end
  end

  # net-scp's on_close raises Net::SCP::Error; it calls eof! on a channel
  # the peer may already have closed (no EvSSH::Closed may escape)
  def test_missing_remote_file
    20.times do
      r = assert_same_result do |lib|
        scp_with(lib) { |scp| scp.download!(File.join(@remote, "missing")) }
      end
      assert_equal [:raised, Net::SCP::Error], r
    end
  end

  def test_class_methods_with_a_session
    File.write(File.join(@dir, "c.txt"), "class\n")
    ssh = SSHD.start
    ssh.scp.upload!(File.join(@dir, "c.txt"), File.join(@remote, "c.txt"))
    assert_equal "class\n", ssh.scp.download!(File.join(@remote, "c.txt"))
  ensure
    ssh&.close
  end
end
