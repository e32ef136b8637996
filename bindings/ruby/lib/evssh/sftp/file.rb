# sftp.file and sftp.dir of EvSSH's native SFTP client, with Net::SFTP's
# interface (net-sftp 4's Operations::FileFactory, File and Dir): file.open
# gives an IO-like object over an open remote handle (read, gets, readline,
# write, print, puts, pos/pos=, seek, rewind, eof?, stat, size, close), and
# dir lists (foreach, entries) and globs (glob, []) remote directories.
module EvSSH
  module SFTP
    class FileFactory
      attr_reader :sftp

      def initialize(sftp)
        @sftp = sftp
      end

      def open(name, flags = "r", mode = nil)
        handle = sftp.open!(name, flags, permissions: mode)
        file = File.new(sftp, handle)
        return file unless block_given?

        begin
          yield file
        ensure
          file.close
        end
      end

      def directory?(path)
        sftp.lstat!(path).directory?
      end
    end

    class File
      # bytes asked for per READ while reading ahead
      FILL_SIZE = 32_768

      attr_reader :sftp, :handle, :pos

      def initialize(sftp, handle)
        @sftp = sftp
        @handle = handle
        @pos = 0
        @real_pos = 0
        @real_eof = false
        @buffer = +"".b
      end

      def pos=(offset)
        @real_pos = @pos = offset
        @buffer = +"".b
        @real_eof = false
      end

      # IO#seek: whence IO::SEEK_SET, SEEK_CUR or SEEK_END; returns 0
      def seek(offset, whence = IO::SEEK_SET)
        base = case whence
               when IO::SEEK_SET, :SET then 0
               when IO::SEEK_CUR, :CUR then pos
               when IO::SEEK_END, :END then size
               else raise ArgumentError, "unknown whence #{whence.inspect}"
               end
        target = base + offset
        raise Errno::EINVAL, "seek to #{target}" if target.negative?

        self.pos = target
        0
      end

      def rewind
        self.pos = 0
      end

      def close
        sftp.close!(handle)
        @handle = nil
      end

      def eof?
        @real_eof && @buffer.empty?
      end

      def read(n = nil)
        while n.nil? || @buffer.bytesize < n
          break unless fill
        end
        if n
          result = @buffer.byteslice(0, n)
          @buffer = @buffer.byteslice(n..) || +"".b
        else
          result = @buffer
          @buffer = +"".b
        end
        @pos += result.bytesize
        result
      end

      def gets(sep_or_limit = $/, limit = Float::INFINITY)
        if sep_or_limit.is_a?(Integer)
          sep = $/
          lim = sep_or_limit
        else
          sep = sep_or_limit
          lim = limit
        end
        delim = sep && sep.empty? ? "#{$/}#{$/}" : sep
        loop do
          at = delim && @buffer.index(delim)
          if at
            return take([at + delim.bytesize, lim].min)
          elsif lim < @buffer.bytesize
            return take(lim)
          elsif !fill
            return nil if @buffer.empty?

            return take(@buffer.bytesize)
          end
        end
      end

      def readline(sep_or_limit = $/, limit = Float::INFINITY)
        line = gets(sep_or_limit, limit)
        raise EOFError if line.nil?

        line
      end

      def write(data)
        data = data.to_s
        n = data.bytesize
        write_at(@real_pos, data)
        @real_pos += n
        @pos = @real_pos
        n
      end

      def print(*items)
        items.each { |item| write(item) }
        write($\) if $\
        nil
      end

      def puts(*items)
        items.each do |item|
          if item.is_a?(Array)
            puts(*item)
          else
            write(item)
            write("\n") unless item.to_s.end_with?("\n")
          end
        end
        nil
      end

      def size
        stat.size
      end

      def stat
        sftp.fstat!(handle)
      end

      private

      def take(n)
        line = @buffer.byteslice(0, n)
        @buffer = @buffer.byteslice(n..) || +"".b
        @pos += line.bytesize
        line
      end

      # more data into the read-ahead buffer; false at the end of the file
      def fill
        data = sftp.read!(handle, @real_pos, FILL_SIZE)
        if data.nil?
          @real_eof = true
          return false
        end
        @real_pos += data.bytesize
        @buffer << data
        true
      end

      # one write of any size: split at the server's largest WRITE, all in
      # flight at once, every answer checked
      def write_at(offset, data)
        max = sftp.limits&.fetch(:max_write_length).to_i
        max = Transfer::DEFAULT_MAX_WRITE unless max.positive?
        reqs = []
        at = 0
        while at < data.bytesize || (at.zero? && data.empty?)
          piece = data.byteslice(at, max)
          reqs << sftp.write(handle, offset + at, piece)
          at += piece.bytesize
          break if piece.empty?
        end
        reqs.each { |r| sftp.wait_for(r) }
      end
    end

    class Dir
      attr_reader :sftp

      def initialize(sftp)
        @sftp = sftp
      end

      def foreach(path)
        handle = sftp.opendir!(path)
        while (entries = sftp.readdir!(handle))
          entries.each { |entry| yield entry }
        end
        nil
      ensure
        sftp.close!(handle) if handle
      end

      def entries(path)
        results = []
        foreach(path) { |entry| results << entry }
        results
      end

      # entries under path (recursively) whose path relative to it matches
      # pattern (File.fnmatch with FNM_PATHNAME added to flags)
      def glob(path, pattern, flags = 0)
        flags |= ::File::FNM_PATHNAME
        path = path.chop if path.end_with?("/") && path != "/"
        results = [] unless block_given?
        queue = entries(path).reject { |e| %w[. ..].include?(e.name) }
        until queue.empty?
          entry = queue.shift
          if entry.directory? && !%w[. ..].include?(::File.basename(entry.name))
            queue += entries("#{path}/#{entry.name}").map do |e|
              Name.new("#{entry.name}/#{e.name}", e.longname, e.attributes)
            end
          end
          next unless ::File.fnmatch(pattern, entry.name, flags)

          block_given? ? yield(entry) : results << entry
        end
        results unless block_given?
      end

      def [](path, pattern)
        glob(path, pattern, 0)
      end
    end
  end
end
