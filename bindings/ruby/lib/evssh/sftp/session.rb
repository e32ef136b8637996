# EvSSH::SFTP::Session: Net::SFTP::Session's public API (net-sftp 4) on
# libevssh's SFTP client (ext/evssh/ext_sftp.c). Every request is one C
# request: the C half answers it from the session's loop through
# __evssh_reply, which builds the Response and runs the request's callback.
# Whole files given by path go through libevssh's pipelined transfer
# (upload!/download!, see transfer.rb); everything else (IO objects,
# file.open, dir) is requests made from Ruby.
#
# The protocol is SFTP v3 as OpenSSH speaks it; `version` is accepted for
# Net::SFTP's signature and must be nil or 3. Differences from net-sftp:
# `channel` is nil (the channel is libevssh's); the :requests and
# :read_size options apply to IO transfers only (files use libevssh's own
# pipelining). As in net-sftp on a v3 server, a Response's #message is nil
# (a StatusException's description is the code's name, "no such file");
# response[:server_text] has the server's own words ("No such file").
module EvSSH
  module SFTP
    class Session
      include Constants::StatusCodes

      attr_reader :session, :pending_requests

      # the protocol object Net::SFTP code asks for its version
      Protocol = Struct.new(:version)
      PROTOCOL = Protocol.new(3).freeze

      def initialize(session, version = nil, &block)
        raise ArgumentError, "EvSSH's SFTP speaks version 3 only, not #{version}" unless version.nil? || version.to_i == 3

        @session = session
        @pending_requests = {}
        @next_id = 0
        @state = :closed
        @on_ready = []
        connect(&block)
      end

      def logger
        session.logger
      end

      def channel
        nil
      end

      def protocol
        open? ? PROTOCOL : nil
      end

      attr_reader :state

      def open?
        @state == :open
      end

      def closed?
        @state == :closed
      end

      def opening?
        @state == :opening
      end

      def connect(&block)
        case @state
        when :open
          block&.call(self)
        when :closed
          _open(session)
          @state = :opening
          @on_ready = Array(block)
        else
          @on_ready << block if block
        end
        self
      end

      def connect!(&block)
        connect(&block)
        loop { opening? }
        raise SFTP.error(@open_error || "could not start SFTP subsystem") unless open?

        self
      end

      def loop(&block)
        block ||= proc { pending_requests.any? }
        session.loop(&block)
      end
      alias loop_forever loop

      # Closes the channel; requests still pending are answered as lost.
      def close_channel
        return if closed?

        _free
        @state = :closed
        fail_pending(EvSSH::Closed.new("the sftp channel was closed"))
        nil
      end

      # the server's extension version ("1"), or nil: extension(name) (C)

      # limits@openssh.com: { max_packet_length:, max_read_length:, ... }
      def limits
        l = _limits
        l && %i[max_packet_length max_read_length max_write_length max_open_handles].zip(l).to_h
      end

      # -------------------------------------------------- high-level operations

      def upload(local, remote = ::File.basename(local.to_s), options = {}, &block)
        Upload.new(self, local, remote, options, &block)
      end

      def upload!(local, remote = ::File.basename(local.to_s), options = {}, &block)
        upload(local, remote, options, &block).wait
      end

      def download(remote, local, options = {}, &block)
        Download.new(self, local, remote, options, &block)
      end

      def download!(remote, local = nil, options = {}, &block)
        destination = local || StringIO.new(+"".b)
        result = download(remote, destination, options, &block).wait
        local ? result : destination.string
      end

      def file
        @file ||= FileFactory.new(self)
      end

      def dir
        @dir ||= Dir.new(self)
      end

      # --------------------------------------------------- low-level requests

      OPEN_MODES = {
        "r" => Constants::OpenFlags::READ,
        "r+" => Constants::OpenFlags::READ | Constants::OpenFlags::WRITE,
        "w" => Constants::OpenFlags::WRITE | Constants::OpenFlags::CREAT | Constants::OpenFlags::TRUNC,
        "w+" => Constants::OpenFlags::READ | Constants::OpenFlags::WRITE | Constants::OpenFlags::CREAT |
                Constants::OpenFlags::TRUNC,
        "a" => Constants::OpenFlags::WRITE | Constants::OpenFlags::APPEND | Constants::OpenFlags::CREAT,
        "a+" => Constants::OpenFlags::READ | Constants::OpenFlags::WRITE | Constants::OpenFlags::APPEND |
                Constants::OpenFlags::CREAT
      }.freeze

      def open(path, flags = "r", options = {}, &callback)
        pflags = open_flags(flags)
        attrs = Attributes.native(options.reject { |_, v| v.nil? })
        request(:open, [path], callback) { |id| _open_file(id, path, pflags, attrs&.empty? ? nil : attrs) }
      end

      def close(handle, &callback)
        request(:close, [handle.path], callback) { |id| _close(id, handle) }
      end

      def read(handle, offset, length, &callback)
        request(:read, [handle.path], callback) { |id| _read(id, handle, offset, length) }
      end

      def write(handle, offset, data, &callback)
        request(:write, [handle.path], callback) { |id| _write(id, handle, offset, data.to_s) }
      end

      def stat(path, _flags = nil, &callback)
        request(:stat, [path], callback) { |id| _stat(id, path, true) }
      end

      def lstat(path, _flags = nil, &callback)
        request(:lstat, [path], callback) { |id| _stat(id, path, false) }
      end

      def fstat(handle, _flags = nil, &callback)
        request(:fstat, [handle.path], callback) { |id| _fstat(id, handle) }
      end

      def setstat(path, attrs, &callback)
        request(:setstat, [path], callback) { |id| _setstat(id, path, Attributes.native(attrs)) }
      end

      def fsetstat(handle, attrs, &callback)
        request(:fsetstat, [handle.path], callback) { |id| _setstat(id, handle, Attributes.native(attrs)) }
      end

      def opendir(path, &callback)
        request(:opendir, [path], callback) { |id| _opendir(id, path) }
      end

      def readdir(handle, &callback)
        request(:readdir, [handle.path], callback) { |id| _readdir(id, handle) }
      end

      def remove(filename, &callback)
        request(:remove, [filename], callback) { |id| _remove(id, filename) }
      end

      def mkdir(path, attrs = {}, &callback)
        a = Attributes.native(attrs)
        request(:mkdir, [path], callback) { |id| _mkdir(id, path, a&.empty? ? nil : a) }
      end

      def rmdir(path, &callback)
        request(:rmdir, [path], callback) { |id| _rmdir(id, path) }
      end

      def realpath(path, &callback)
        request(:realpath, [path], callback) { |id| _realpath(id, path) }
      end

      # flags: Constants::RenameFlags::OVERWRITE replaces an existing
      # new_name through posix-rename@openssh.com when the server offers it
      def rename(name, new_name, flags = nil, &callback)
        posix = flags.to_i & Constants::RenameFlags::OVERWRITE != 0 && !extension("posix-rename@openssh.com").nil?
        request(:rename, [name, new_name], callback) { |id| _rename(id, name, new_name, posix) }
      end

      def readlink(path, &callback)
        request(:readlink, [path], callback) { |id| _readlink(id, path) }
      end

      # a symlink at target pointing to path (Net::SFTP's argument order)
      def symlink(path, target, &callback)
        request(:symlink, [path, target], callback) { |id| _symlink(id, path, target) }
      end

      # Net::SFTP's link: a symlink, or with symlink false a hard link
      # (hardlink@openssh.com)
      def link(new_link_path, existing_path, symlink = true, &callback)
        if symlink
          request(:link, [existing_path, new_link_path], callback) { |id| _symlink(id, existing_path, new_link_path) }
        else
          request(:link, [existing_path, new_link_path], callback) { |id| _hardlink(id, existing_path, new_link_path) }
        end
      end

      # fsync@openssh.com
      def fsync(handle, &callback)
        request(:fsync, [handle.path], callback) { |id| _fsync(id, handle) }
      end

      %i[close write setstat fsetstat remove mkdir rmdir rename symlink link fsync].each do |op|
        define_method("#{op}!") { |*args, &cb| wait_for(send(op, *args, &cb)) }
      end
      { open: :handle, read: :data, stat: :attrs, lstat: :attrs, fstat: :attrs, opendir: :handle,
        readdir: :names }.each do |op, prop|
        define_method("#{op}!") { |*args, &cb| wait_for(send(op, *args, &cb), prop) }
      end

      def realpath!(path, &callback)
        wait_for(realpath(path, &callback), :names).first
      end

      def readlink!(path, &callback)
        wait_for(readlink(path, &callback), :names).first
      end

      def inspect
        "#<EvSSH::SFTP::Session #{session.host} #{@state}>"
      end

      # ------------------------------------------------ internal (transfers)

      # A request whose C call is given by the block (token -> rc).
      def request(type, paths, callback, &call)
        raise EvSSH::Closed, "the sftp session is #{@state}" unless open?

        id = (@next_id += 1)
        req = Request.new(self, type, id, paths, &callback)
        rc = call.call(id)
        if rc != 0
          # nothing was sent and no answer will come
          raise SFTP.status_error(Response.new(req, code: _status, server_text: server_text(_error, paths)), type.to_s) if rc == -15

          raise EvSSH.__exception_for(rc, _error.to_s.empty? ? EvSSH.strerror(rc) : _error, false)
        end
        @pending_requests[id] = req
      end

      # wait, then the property of a good answer; nil at end of file
      def wait_for(request, property = nil)
        request.wait
        r = request.response
        raise r.error if r.error
        return nil if r.eof?
        raise SFTP.status_error(r) unless r.ok?

        property ? r[property] : r
      end

      # the server's own words in a libevssh message "...remote: TEXT (path)"
      def server_text(message, paths)
        m = message.to_s
        at = m.rindex("remote: ")
        return nil unless at

        t = m[(at + 8)..]
        suffixes = [" (#{paths.join(' -> ')})", *paths.map { |p| " (#{p})" }]
        s = suffixes.find { |x| t.end_with?(x) }
        s ? t[0, t.length - s.length] : t.sub(/ \([^()]*\)\z/, "")
      end

      private

      def open_flags(flags)
        return flags.to_i unless flags.is_a?(String)

        OPEN_MODES.fetch(flags.tr("b", "")) { raise ArgumentError, "unsupported flags: #{flags.inspect}" }
      end

      def fail_pending(error)
        reqs = @pending_requests
        @pending_requests = {}
        reqs.each_value do |req|
          req.respond(Response.new(req, { code: FX_CONNECTION_LOST, message: error.message }, error))
        end
      end

      # C: the subsystem is ready (status 0) or failed
      def __evssh_ready(status, message)
        if status.zero?
          @state = :open
          cbs = @on_ready
          @on_ready = []
          cbs.each { |cb| cb.call(self) }
        else
          @state = :closed
          @open_error = message
          _free
          raise SFTP.error(message) unless @on_ready.empty?
        end
      end

      # C: the answer to request id
      def __evssh_reply(id, status, fx, message, payload)
        req = @pending_requests.delete(id) or return
        req.respond(response_for(req, status, fx, message, payload))
      end

      # C: a transfer made progress
      def __evssh_progress(id, done, total)
        @pending_requests[id]&.[](:on_progress)&.call(done, total)
      end

      FAILURE_CODES = { -8 => FX_CONNECTION_LOST, -5 => FX_BAD_MESSAGE }.freeze

      def response_for(req, status, fx, message, payload)
        if status == -15
          # no message: net-sftp reads none from a v3 STATUS, so its
          # description is the code's name; the server's words are kept
          return Response.new(req, code: fx, server_text: server_text(message, req.paths))
        elsif status != 0
          err = EvSSH.__exception_for(status, message, false)
          return Response.new(req, { code: FAILURE_CODES.fetch(status, FX_FAILURE), message: message }, err)
        elsif fx == FX_EOF
          return Response.new(req, code: FX_EOF)
        end

        Response.new(req, payload_data(req.type, payload))
      end

      def payload_data(type, payload)
        case type
        when :open, :opendir then { handle: payload }
        when :read then { data: payload }
        when :stat, :lstat, :fstat then { attrs: Attributes.new(payload) }
        when :readdir
          { names: payload.map { |name, long, attrs| Name.new(name, long, Attributes.new(attrs)) } }
        when :realpath, :readlink then { names: [Name.new(payload, payload, Attributes.new({}))] }
        when :transfer then { transferred: payload }
        else {}
        end
      end
    end
  end
end
