# The value objects of EvSSH's native SFTP client, shaped as Net::SFTP's
# (net-sftp 4) so code written for it reads them unchanged: the SSH_FX
# status codes and open flags, Request (an answer to wait for), Response
# (code, message, data), Attributes and Name (SFTP v3 ATTRS and NAME
# entries) and the exceptions. When net-sftp is loaded, status failures are
# raised as its own Net::SFTP::StatusException (so `rescue
# Net::SFTP::StatusException` works), and `rescue EvSSH::SFTP::...` still
# catches them; without it they are EvSSH::SFTP::StatusException with the
# same readers (code, description, text, response).
module EvSSH
  module SFTP
    module Constants
      module StatusCodes
        FX_OK = 0
        FX_EOF = 1
        FX_NO_SUCH_FILE = 2
        FX_PERMISSION_DENIED = 3
        FX_FAILURE = 4
        FX_BAD_MESSAGE = 5
        FX_NO_CONNECTION = 6
        FX_CONNECTION_LOST = 7
        FX_OP_UNSUPPORTED = 8
      end

      # SSH_FXF_* (SFTP v3)
      module OpenFlags
        READ = 0x01
        WRITE = 0x02
        APPEND = 0x04
        CREAT = 0x08
        TRUNC = 0x10
        EXCL = 0x20
      end

      # Net::SFTP's rename flags; OVERWRITE is honoured through
      # posix-rename@openssh.com when the server has it
      module RenameFlags
        OVERWRITE = 0x01
        ATOMIC = 0x02
        NATIVE = 0x04
      end
    end

    # `rescue EvSSH::SFTP::...` also catches the net-sftp class raised in
    # its place (the raised object carries the EvSSH class it stands for)
    class Exception < RuntimeError
      extend EvSSH::ExceptionMatch
    end

    class StatusException < Exception
      attr_reader :response, :code, :description, :text

      def initialize(response, text = nil)
        @response = response
        @text = text
        @code = response.code
        @description = response.message
        @description = Response::MAP[@code] if @description.nil? || @description.empty?
        super()
      end

      def message
        m = super.dup
        m << " #{text}" if text
        m << " (#{code}, #{description.inspect})"
      end
    end

    class << self
      # the exception for a failed status: net-sftp's class when it is loaded
      def status_error(response, text = nil)
        if defined?(::Net::SFTP::StatusException)
          e = ::Net::SFTP::StatusException.new(response, text)
          e.instance_variable_set(:@__evssh_class, StatusException)
          e
        else
          StatusException.new(response, text)
        end
      end

      def error(message)
        if defined?(::Net::SFTP::Exception)
          e = ::Net::SFTP::Exception.new(message)
          e.instance_variable_set(:@__evssh_class, Exception)
          e
        else
          Exception.new(message)
        end
      end
    end

    # One answer from the server (or from the loss of the channel).
    class Response
      include Constants::StatusCodes

      attr_reader :request, :data, :code, :message
      # the EvSSH exception when the request failed for another reason than a
      # server status (the channel or session went away, a local I/O error)
      attr_reader :error

      MAP = Constants::StatusCodes.constants.each_with_object({}) do |name, map|
        map[Constants::StatusCodes.const_get(name)] = name.to_s.sub(/\AFX_/, "").downcase.tr("_", " ")
      end.freeze

      def initialize(request, data = {}, error = nil)
        @request = request
        @data = data
        @code = data[:code] || FX_OK
        @message = data[:message]
        @error = error
      end

      def [](key)
        data[key.to_sym]
      end

      def ok?
        code == FX_OK
      end

      def eof?
        code == FX_EOF
      end

      def to_s
        if message && !message.empty? && message.downcase != MAP[code]
          "#{message} (#{MAP[code]}, #{code})"
        else
          "#{MAP[code]} (#{code})"
        end
      end
      alias to_str to_s
    end

    # A request in flight; #wait runs the loop until it is answered.
    class Request
      attr_reader :session, :id, :type, :callback, :properties, :response, :paths

      def initialize(session, type, id, paths, &callback)
        @session = session
        @type = type
        @id = id
        @paths = paths
        @callback = callback
        @properties = {}
        @response = nil
      end

      def [](key)
        properties[key.to_sym]
      end

      def []=(key, value)
        properties[key.to_sym] = value
      end

      def pending?
        session.pending_requests.key?(id)
      end

      def wait
        session.loop { pending? }
        self
      end

      # the answer arrived: keep it and run the callback (internal)
      def respond(response)
        @response = response
        callback&.call(response)
      end
    end

    # SFTP v3 ATTRS. Net::SFTP::Protocol::V01::Attributes' readers, writers
    # and type predicates.
    class Attributes
      T_REGULAR = 1
      T_DIRECTORY = 2
      T_SYMLINK = 3
      T_SPECIAL = 4
      T_UNKNOWN = 5
      T_SOCKET = 6
      T_CHAR_DEVICE = 7
      T_BLOCK_DEVICE = 8
      T_FIFO = 9

      FIELDS = %i[size uid gid permissions atime mtime extended].freeze

      attr_reader :attributes

      def initialize(attributes = {})
        @attributes = attributes
      end

      %i[size permissions atime mtime extended].each do |f|
        define_method(f) { attributes[f] }
        define_method("#{f}=") { |v| attributes[f] = v }
      end

      def uid
        attributes[:uid] = Etc.getpwnam(attributes[:owner]).uid if attributes[:owner] && !attributes.key?(:uid)
        attributes[:uid]
      end

      def gid
        attributes[:gid] = Etc.getgrnam(attributes[:group]).gid if attributes[:group] && !attributes.key?(:gid)
        attributes[:gid]
      end

      def uid=(v)
        attributes[:uid] = v
      end

      def gid=(v)
        attributes[:gid] = v
      end

      def owner
        attributes[:owner] = Etc.getpwuid(attributes[:uid].to_i).name if attributes[:uid] && !attributes[:owner]
        attributes[:owner]
      end

      def group
        attributes[:group] = Etc.getgrgid(attributes[:gid].to_i).name if attributes[:gid] && !attributes[:group]
        attributes[:group]
      end

      # checked as Net::SFTP does, most specific type bits first
      TYPES = [[0o140000, T_SOCKET], [0o120000, T_SYMLINK], [0o100000, T_REGULAR], [0o60000, T_BLOCK_DEVICE],
               [0o40000, T_DIRECTORY], [0o20000, T_CHAR_DEVICE], [0o10000, T_FIFO]].freeze
      SYMBOLIC = { T_SOCKET => :socket, T_SYMLINK => :symlink, T_REGULAR => :regular,
                   T_BLOCK_DEVICE => :block_device, T_DIRECTORY => :directory, T_CHAR_DEVICE => :char_device,
                   T_FIFO => :fifo, T_SPECIAL => :special, T_UNKNOWN => :unknown }.freeze

      def type
        p = permissions
        return T_UNKNOWN unless p

        TYPES.each { |bits, t| return t if p & bits == bits }
        T_UNKNOWN
      end

      def symbolic_type
        SYMBOLIC.fetch(type)
      end

      def directory?
        type_is(T_DIRECTORY)
      end

      def symlink?
        type_is(T_SYMLINK)
      end

      def file?
        type_is(T_REGULAR)
      end

      # what the C request methods take: {size:, uid:, gid:, permissions:,
      # atime:, mtime:, extended: [count, raw]} (owner/group resolved here)
      def to_native
        h = {}
        %i[size permissions atime mtime].each { |f| h[f] = attributes[f] unless attributes[f].nil? }
        u = uid
        g = gid
        h[:uid] = u unless u.nil?
        h[:gid] = g unless g.nil?
        if (ext = attributes[:extended]) && !ext.empty?
          raw = ext.map { |k, v| [k.to_s.bytesize, k.to_s, v.to_s.bytesize, v.to_s].pack("Na*Na*") }.join
          h[:extended] = [ext.size, raw]
        end
        h
      end

      def self.native(attrs)
        case attrs
        when nil then nil
        when Attributes then attrs.to_native
        when Hash then new(attrs.transform_keys(&:to_sym)).to_native
        else
          raise ArgumentError, "attributes must be a Hash or attributes object, not #{attrs.class}" unless attrs.respond_to?(:attributes)

          new(attrs.attributes).to_native
        end
      end

      private

      def type_is(t)
        case type
        when t then true
        when T_UNKNOWN then nil
        else false
        end
      end
    end

    # A directory entry, or the path of a realpath/readlink answer.
    class Name
      attr_reader :name, :longname, :attributes

      def initialize(name, longname, attributes)
        @name = name
        @longname = longname
        @attributes = attributes
      end

      def directory?
        attributes.directory?
      end

      def symlink?
        attributes.symlink?
      end

      def file?
        attributes.file?
      end
    end
  end
end
