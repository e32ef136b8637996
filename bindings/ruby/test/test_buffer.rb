require_relative "helper"

# EvSSH::Buffer against Net::SSH::Buffer: every method, same inputs, same
# results (no server needed).
class TestBuffer < Minitest::Test
  include SideBySide

  def test_writers_and_from
    assert_same_result do |lib|
      b = lib::Buffer.new
      b.write_byte(1, 2).write_long(7, 0xffffffff).write_int64(2**40 + 3).write_string("a", "bc")
       .write_mstring("m").write_bool(true, false).write_bignum(OpenSSL::BN.new(0), OpenSSL::BN.new(255),
                                                                OpenSSL::BN.new(2**64)).write("raw", "x")
      f = lib::Buffer.from(:byte, 9, :long, 1, :string, %w[p q], :bool, true, :int64, 5, :raw, "zz",
                           :bignum, OpenSSL::BN.new(128), :mstring, "ms")
      [b.to_s, f.to_s, b.length, f.content, b.empty?, lib::Buffer.new.empty?]
    end
  end

  def test_readers
    assert_same_result do |lib|
      src = lib::Buffer.from(:byte, 200, :long, 3, :int64, 2**50, :string, "hello", :bool, false, :bool, true,
                             :bignum, OpenSSL::BN.new(2**70), :string, "tail").to_s
      b = lib::Buffer.new(src)
      r = [b.read_byte, b.read_long, b.read_int64, b.read_string, b.read_bool, b.read_bool, b.read_bignum.to_s,
           b.available, b.position, b.eof?]
      b.reset!
      r << b.read(3) << b.position << b.read!(2) << b.position << b.length
      b.position = 8 # the "hello" string (read! dropped the first 5 bytes)
      r << b.remainder_as_buffer.to_s << b.read_buffer.to_s
      r << (b == lib::Buffer.new(b.to_s)) << b.read_bool << b.read_bool << b.read_bignum.to_s << b.read_string
      r << b.eof? << b.read
      b.clear!
      r << b.length << b.eof?
    end
  end

  def test_read_to_all_consume
    assert_same_result do |lib|
      b = lib::Buffer.new("line one\nline two\nrest")
      r = [b.read_to("\n"), b.read_to(/t\w+/), b.read_to(10), b.read_to("missing"), b.position]
      b.consume!
      r << b.to_s << b.position
      b.append("more")
      r << b.to_s << b.consume!(3).to_s << b.consume!(100).to_s
      l = lib::Buffer.from(:long, 1, :long, 2, :long, 3)
      r << l.read_all { |x| x.read_long }
      r
    end
  end

  KEYS = [OpenSSL::PKey::RSA.new(2048), OpenSSL::PKey::EC.generate("prime256v1"),
          OpenSSL::PKey::EC.generate("secp384r1"), OpenSSL::PKey::EC.generate("secp521r1")].freeze

  def test_keys_in_buffers
    assert_same_result do |lib|
      KEYS.map do |k|
        blob = case k
               when OpenSSL::PKey::RSA
                 lib::Buffer.from(:string, "ssh-rsa", :bignum, k.e, :bignum, k.n).to_s
               else
                 curve = { "prime256v1" => "nistp256", "secp384r1" => "nistp384", "secp521r1" => "nistp521" }[k.group.curve_name]
                 lib::Buffer.from(:string, "ecdsa-sha2-#{curve}", :string, curve, :string, k.public_key.to_bn.to_s(2)).to_s
               end
        key = lib::Buffer.new(blob).read_key
        [key.ssh_type, key.to_blob == blob, lib::Buffer.from(:key, key).to_s == blob, key.fingerprint,
         key.fingerprint("SHA256"), key.class]
      end
    end
  end

  def test_ed25519_key_in_buffers
    assert_same_result do |lib|
      raw = ["3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"].pack("H*")
      blob = lib::Buffer.from(:string, "ssh-ed25519", :string, raw).to_s
      key = lib::Buffer.new(blob).read_key
      [key.ssh_type, key.to_blob == blob, key.fingerprint("SHA256"), lib::Buffer.from(:key, key).to_s == blob]
    end
  end

  def test_unsupported_key_type
    assert_same_result { |lib| lib::Buffer.from(:string, "ssh-nope", :string, "x").read_key }
  end

  # a typed read past the end: EvSSH returns nil and stays put (Net::SSH
  # returns the short remainder); on well-formed data they agree
  def test_short_reads
    b = EvSSH::Buffer.new("\x00\x00\x00\x09abc")
    assert_nil b.read_string
    assert_equal 0, b.position
    assert_nil EvSSH::Buffer.new("\x01\x02").read_long
    assert_nil EvSSH::Buffer.new("").read_byte
    assert_equal "abc", EvSSH::Buffer.new("abc").read(10)
  end
end
