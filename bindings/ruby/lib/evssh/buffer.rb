# The rest of Net::SSH::Buffer's methods on EvSSH::Buffer, whose core (the
# typed reads and writes, append, consume!, position) is C over libevssh's
# bounds-checked codec. Net::SSH's writers take any number of values; the
# key and bignum fields build on EvSSH::KeyBlob. One difference, on purpose:
# a typed read past the end returns nil and leaves the position where it was
# (Net::SSH returns the short remainder and moves on).
module EvSSH
  class Buffer
    %i[write_byte write_bool write_long write_int64 write_string].each do |m|
      alias_method :"__evssh_#{m}", m
      private :"__evssh_#{m}"
      define_method(m) do |*values|
        values.each { |v| send(:"__evssh_#{m}", v) }
        self
      end
    end

    alias_method :__evssh_read, :read
    private :__evssh_read

    class << self
      alias_method :__evssh_from, :from
      private :__evssh_from

      # Buffer.from(:byte, 1, :string, "x", :key, key, :bignum, bn, ...)
      def from(*args)
        raise ArgumentError, "odd number of arguments given" unless args.length.even?
        return __evssh_from(*args) if args.each_slice(2).all? { |t, _| BASIC_FIELDS.include?(t) }

        buffer = new
        args.each_slice(2) do |type, value|
          if type == :raw
            buffer.append(value.to_s)
          else
            buffer.send("write_#{type}", *Array(value))
          end
        end
        buffer
      end
    end
    BASIC_FIELDS = %i[byte bool long int64 string mstring raw].freeze

    def ==(other)
      to_s == other.to_s
    end

    def empty?
      length.zero?
    end

    # Net::SSH: read, then drop what has been read
    def read!(count = nil)
      data = read(count)
      consume!
      data
    end

    def read_all
      result = []
      result << yield(self) until eof?
      result
    end

    # Read up to and including the pattern (String, Regexp or byte); nil
    # when it is not there.
    def read_to(pattern)
      rest = to_s[position..] || ""
      index = rest.index(pattern) or return nil
      len = case pattern
            when String then pattern.bytesize
            when Integer then 1
            when Regexp then Regexp.last_match(0).bytesize
            end
      read(index + len)
    end

    def remainder_as_buffer
      Buffer.new(to_s[position..] || "")
    end

    def read_buffer
      s = read_string
      s && Buffer.new(s)
    end

    def read_bignum
      data = read_string
      data && OpenSSL::BN.new(data, 2)
    end

    def read_key
      type = read_string
      type && read_keyblob(type)
    end

    def read_keyblob(type)
      KeyBlob.read_public(type, self)
    end

    def read_private_keyblob(type)
      KeyBlob.read_private(type, self)
    end

    def write_moved(string)
      append(string)
    end

    def write_mstring(*texts)
      write_string(*texts)
    end

    def write_bignum(*numbers)
      numbers.each { |n| append(KeyBlob.mpint(n)) }
      self
    end

    def write_key(*keys)
      keys.each { |k| append(k.to_blob) }
      self
    end
  end
end
