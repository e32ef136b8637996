require_relative "helper"
require "digest"
require "stringio"

# net-sftp (Debian ruby-net-sftp), unmodified, over an EvSSH session
# (Net::SFTP::Session.new(ssh)), side by side with net-ssh. The fixture's
# sshd runs internal-sftp.
class TestNetSFTP < Minitest::Test
  include SideBySide
  include WorkDir

  def setup
    begin
      require "net/sftp"
    rescue LoadError
      skip "net-sftp not installed (Debian: ruby-net-sftp)"
    end
    make_work_dir("evssh-sftp-")
  end

  def sftp_with(lib)
    start_with(lib) do |ssh|
      sftp = Net::SFTP::Session.new(ssh).connect!
      r = yield sftp, ssh
      sftp.close_channel
      ssh.loop
      r
    end
  end

  def test_directories_stat_rename_remove
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        d = File.join(@dir, "d-#{name}")
        sftp.mkdir!(d)
        st = sftp.stat!(d)
        sftp.file.open(File.join(d, "one.txt"), "w") { |f| f.write("1") }
        sftp.file.open(File.join(d, "two.log"), "w") { |f| f.write("22") }
        entries = sftp.dir.entries(d).map(&:name).sort
        glob = sftp.dir.glob(d, "*.txt").map(&:name)
        each = []
        sftp.dir.foreach(d) { |e| each << e.name }
        sftp.rename!(File.join(d, "one.txt"), File.join(d, "uno.txt"))
        after = sftp.dir.entries(d).map(&:name).sort
        sftp.remove!(File.join(d, "uno.txt"))
        sftp.remove!(File.join(d, "two.log"))
        sftp.rmdir!(d)
        gone = begin
          sftp.stat!(d)
        rescue Net::SFTP::StatusException => e
          [e.class, e.code, e.description]
        end
        [st.directory?, entries, glob, each.sort, after, gone]
      end
    end
  end

  def test_upload_and_download
    data = Random.new(5).bytes(3 * 1024 * 1024 + 17)
    src = File.join(@dir, "src.bin")
    File.binwrite(src, data)
    r = assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        remote = File.join(@dir, "r-#{name}.bin")
        progress = []
        sftp.upload!(src, remote) { |event, *_| progress << event }
        back = File.join(@dir, "b-#{name}.bin")
        sftp.download!(remote, back)
        str = sftp.download!(remote)
        sftp.upload!(StringIO.new("from memory"), File.join(@dir, "m-#{name}.txt"))
        [Digest::SHA256.file(remote).hexdigest, Digest::SHA256.file(back).hexdigest, str.b == data,
         progress.first, progress.last, File.read(File.join(@dir, "m-#{name}.txt"))]
      end
    end
    assert_equal Digest::SHA256.hexdigest(data), r[0]
  end

  def test_file_open_read_write
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp|
        path = File.join(@dir, "f-#{name}.txt")
        sftp.file.open(path, "w") do |f|
          f.puts "line 1"
          f.print "line ", 2, "\n"
          f.write("tail")
        end
        lines = []
        sftp.file.open(path, "r") do |f|
          while (l = f.gets)
            lines << l
          end
        end
        read = sftp.file.open(path) { |f| [f.read(4), f.pos, f.read, f.eof?] }
        [lines, read, sftp.file.open(path).stat.size]
      end
    end
  end

  def test_status_exceptions
    assert_same_result do |lib|
      sftp_with(lib) do |sftp|
        %w[stat! remove! rmdir! opendir!].map do |op|
          sftp.send(op, File.join(@dir, "missing"))
          :no_error
        rescue Net::SFTP::StatusException => e
          [op, e.code, e.description]
        end
      end
    end
  end

  def test_async_requests
    assert_same_result do |lib, name|
      sftp_with(lib) do |sftp, ssh|
        paths = 5.times.map { |i| File.join(@dir, "a-#{name}-#{i}") }
        reqs = paths.map { |p| sftp.mkdir(p) }
        ssh.loop { reqs.any?(&:pending?) }
        statuses = reqs.map { |q| q.response.code }
        got = []
        paths.each { |p| sftp.stat(p) { |resp| got << [File.basename(p)[/\d+\z/], resp.ok?] } }
        sftp.loop
        paths.each { |p| sftp.rmdir!(p) }
        [statuses, got.sort]
      end
    end
  end
end
