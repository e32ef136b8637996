# Uploads and downloads of EvSSH's native SFTP client, with Net::SFTP's
# interface (net-sftp 4's Operations::Upload / Download): upload(local,
# remote, options) and download(remote, local, options) return an object
# with wait / active? / abort! / [] / []=, and report progress to a block
# or handler object (:open, :put / :get with offset and data, :close,
# :mkdir, :finish), the same events in the same places.
#
# A file named by a path is one libevssh transfer (evssh_sftp_upload /
# _download: pipelined in C, nothing in Ruby per block); the :put/:get data
# a progress handler sees is then read back from the local file for the
# span libevssh reports done, so it is exactly the bytes that went over.
# IO objects (StringIO, sockets, download! into a String) are moved by
# READ/WRITE requests made from Ruby, :requests of them in flight.
# Directory trees are walked here, as net-sftp walks them (uploads follow
# symlinks as File.directory? does; remote symlinks are what readdir says),
# and their files go through libevssh, several at once.
module EvSSH
  module SFTP
    class Transfer
      attr_reader :local, :remote, :options, :sftp, :properties

      # files of a tree moved at the same time (libevssh bounds the bytes in
      # flight for all of them together)
      FILES_AT_ONCE = 8
      IO_REQUESTS = 16
      IO_CHUNK = 65_536
      # the largest WRITE a server without limits@openssh.com is sent
      DEFAULT_MAX_WRITE = 261_120

      def initialize(sftp, local, remote, options, progress)
        @sftp = sftp
        @local = local
        @remote = remote
        @options = options
        @progress = progress || options[:progress]
        @properties = options[:properties] || {}
        @active = 0
        @queue = []
        @finished = false
      end

      def active?
        @active.positive? || @queue.any?
      end

      def abort!
        @aborted = true
        @active = 0
        @queue.clear
      end

      def wait
        sftp.loop { active? }
        self
      end

      def [](name)
        @properties[name.to_sym]
      end

      def []=(name, value)
        @properties[name.to_sym] = value
      end

      private

      attr_reader :progress

      def update_progress(event, *args)
        on = "on_#{event}"
        if progress.respond_to?(on)
          progress.send(on, self, *args)
        elsif progress.respond_to?(:call)
          progress.call(event, self, *args)
        end
      end

      def wants?(event)
        progress.respond_to?("on_#{event}") || progress.respond_to?(:call)
      end

      # start what the queue holds, as far as the limit allows
      def pump
        return if @aborted

        start(@queue.shift) while @queue.any? && @active < FILES_AT_ONCE
        return if active? || @finished

        @finished = true
        update_progress(:finish)
      end

      # a failed answer ends the whole transfer: it raises (out of wait or
      # the loop, as net-sftp's do) and the transfer is aborted, so the
      # answers still outstanding (or failed when the channel closes) are
      # ignored instead of raising again
      def check(response, what)
        return if response.ok?

        abort!
        raise response.error if response.error

        raise SFTP.status_error(response, what)
      end

      # One file by path through libevssh. file responds to local, remote,
      # size, offset (a LiveFile or an Entry).
      def native_file(file, upload)
        @active += 1
        file.offset = 0
        update_progress(:open, file)
        event = upload ? :put : :get
        watch = wants?(event)
        lpath = file.local.to_s
        rpath = file.remote.to_s
        req = sftp.request(:transfer, [rpath], proc { |r| native_done(file, upload, r) unless @aborted }) do |id|
          sftp.send(:_transfer, id, upload, lpath, rpath, watch)
        end
        req[:on_progress] = proc { |done, total| native_progress(file, event, done, total) } if watch
      end

      def native_progress(file, event, done, total)
        file.size ||= total if total.positive?
        return unless done > file.offset

        data = ::File.open(file.local.to_s, "rb") { |f| f.pread(done - file.offset, file.offset) }
        offset = file.offset
        file.offset = done
        update_progress(event, file, offset, data)
      end

      def native_done(file, upload, response)
        @active -= 1
        moved = response[:transferred].to_i
        unless response.ok?
          verb = moved.zero? ? "open" : (upload ? "write" : "read")
          check(response, "#{verb} #{file.remote}")
        end
        native_progress(file, upload ? :put : :get, moved, moved) if wants?(upload ? :put : :get)
        update_progress(:close, file)
        pump
      end

      # the end of an IO transfer: :close, the IO closed (as net-sftp does,
      # the caller's too), then the remote handle
      def close_remote(file, io)
        update_progress(:close, file)
        io.close if io.respond_to?(:close)
        close_handle(file)
      end

      # CLOSE of a file's or directory's handle; its answer ends that step
      def close_handle(meta)
        sftp.close(meta.handle) do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          @active -= 1
          check(r, "close #{meta.remote}")
          pump
        end
      end

      def io_chunk
        n = (options[:read_size] || IO_CHUNK).to_i
        max = sftp.limits&.fetch(:max_write_length).to_i
        max = DEFAULT_MAX_WRITE unless max.positive?
        n.clamp(1, max)
      end

      def io_requests
        (options[:requests] || IO_REQUESTS).to_i.clamp(1, 1024)
      end
    end

    class Upload < Transfer
      LiveFile = Struct.new(:local, :remote, :io, :size, :handle, :offset)

      def initialize(sftp, local, remote, options = {}, &progress)
        super(sftp, local, remote, options, progress)
        if local.respond_to?(:read)
          @recursive = false
          upload_io(local, remote)
        elsif ::File.directory?(local.to_s)
          @recursive = true
          if options[:mkdir]
            @active += 1
            sftp.mkdir(remote) do |r|
              next if @aborted # a failed or aborted transfer ignores later answers
              @active -= 1
              check(r, "mkdir `#{remote}'")
              enqueue_dir(local.to_s, remote)
              pump
            end
          else
            enqueue_dir(local.to_s, remote)
            pump
          end
        else
          raise ArgumentError, "expected a file to upload" unless ::File.exist?(local.to_s)

          @recursive = false
          @queue << [:file, local.to_s, remote]
          pump
        end
      end

      def recursive?
        @recursive
      end

      private

      def enqueue_dir(lpath, rpath)
        ::Dir.entries(lpath).each do |e|
          next if e == "." || e == ".."

          l = ::File.join(lpath, e)
          @queue << [::File.directory?(l) ? :dir : :file, l, ::File.join(rpath, e)]
        end
      end

      def start(item)
        kind, lpath, rpath = item
        if kind == :file
          native_file(LiveFile.new(lpath, rpath, nil, ::File.size(lpath), nil, 0), true)
          return
        end
        @active += 1
        update_progress(:mkdir, rpath)
        sftp.mkdir(rpath) do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          @active -= 1
          check(r, "mkdir #{rpath}")
          enqueue_dir(lpath, rpath)
          pump
        end
      end

      # an IO's contents: WRITE requests from Ruby, io_requests in flight
      def upload_io(io, remote)
        size = io.respond_to?(:stat) ? io.stat.size : io.size
        file = LiveFile.new(options[:name] || "<memory>", remote, io, size, nil, 0)
        @active += 1
        @inflight = 0
        @chunk = io_chunk
        update_progress(:open, file)
        sftp.open(remote, "w") do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          @active -= 1
          check(r, "open #{remote}")
          file.handle = r[:handle]
          @active += 1 # until the close is answered
          fill(file)
        end
      end

      def fill(file)
        while file.io && !@io_eof && @inflight < io_requests
          data = file.io.read(@chunk)
          if data.nil? || data.empty?
            @io_eof = true
            break
          end
          offset = file.offset
          file.offset += data.bytesize
          update_progress(:put, file, offset, data)
          @inflight += 1
          sftp.write(file.handle, offset, data) do |r|
            next if @aborted # a failed or aborted transfer ignores later answers
            @inflight -= 1
            check(r, "write #{file.remote}")
            fill(file)
          end
        end
        finish_io(file) if @io_eof && @inflight.zero? && file.io
      end

      def finish_io(file)
        io = file.io
        file.io = nil
        close_remote(file, io)
      end
    end

    class Download < Transfer
      Entry = Struct.new(:remote, :local, :directory, :size, :handle, :offset, :sink)

      def initialize(sftp, local, remote, options = {}, &progress)
        super(sftp, local, remote, options, progress)
        raise ArgumentError, "cannot download a directory tree in-memory" if recursive? && local.respond_to?(:write)

        @queue << Entry.new(remote, local, recursive?)
        pump
      end

      def recursive?
        options[:recursive]
      end

      private

      def start(entry)
        if entry.directory
          @active += 1
          update_progress(:mkdir, entry.local)
          ::Dir.mkdir(entry.local) unless ::File.directory?(entry.local)
          sftp.opendir(entry.remote) do |r|
            next if @aborted # a failed or aborted transfer ignores later answers
            check(r, "opendir #{entry.remote}")
            entry.handle = r[:handle]
            read_dir(entry)
          end
        elsif entry.local.respond_to?(:write)
          download_io(entry)
        else
          native_file(entry, false)
        end
      end

      def read_dir(entry)
        sftp.readdir(entry.handle) do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          if r.eof?
            close_handle(entry)
          else
            check(r, "readdir #{entry.remote}")
            r[:names].each do |item|
              next if item.name == "." || item.name == ".."

              @queue << Entry.new(::File.join(entry.remote, item.name), ::File.join(entry.local, item.name),
                                  item.directory?, item.attributes.size)
            end
            pump
            read_dir(entry)
          end
        end
      end

      # into an IO: READ requests from Ruby, io_requests in flight, written
      # to the sink strictly in offset order
      def download_io(entry)
        @active += 1
        update_progress(:open, entry)
        sftp.open(entry.remote) do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          check(r, "open #{entry.remote}")
          entry.handle = r[:handle]
          entry.sink = entry.local
          entry.offset = 0
          @next = 0
          @inflight = 0
          @arrived = {}
          @chunk = io_chunk
          @eof = false
          fetch(entry)
        end
      end

      def fetch(entry)
        while !@eof && @inflight < io_requests
          read_at(entry, @next, @chunk)
          @next += @chunk
        end
      end

      def read_at(entry, offset, length)
        @inflight += 1
        sftp.read(entry.handle, offset, length) do |r|
          next if @aborted # a failed or aborted transfer ignores later answers
          @inflight -= 1
          if r.eof?
            @eof = true
          else
            check(r, "read #{entry.remote}")
            data = r[:data]
            @arrived[offset] = data
            # a short answer is not the end: ask for the rest of the block
            read_at(entry, offset + data.bytesize, length - data.bytesize) if data.bytesize < length
            flush(entry)
          end
          fetch(entry)
          finish_download(entry) if @eof && @inflight.zero? && entry.sink
        end
      end

      def flush(entry)
        while (data = @arrived.delete(entry.offset))
          offset = entry.offset
          entry.offset += data.bytesize
          update_progress(:get, entry, offset, data)
          entry.sink.write(data)
        end
      end

      def finish_download(entry)
        flush(entry)
        sink = entry.sink
        entry.sink = nil
        close_remote(entry, sink)
      end
    end
  end
end
