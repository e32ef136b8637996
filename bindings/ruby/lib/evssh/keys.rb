# SSH public key blobs and key files as OpenSSL keys, the way Net::SSH hands
# them to programs (KeyFactory, Buffer#read_key, known_hosts entries, agent
# identities): an OpenSSL::PKey that also answers ssh_type, to_blob and
# fingerprint. We extend each key object rather than OpenSSL's classes, so
# net-ssh loaded beside us keeps its own methods. Ed25519 is OpenSSL's own
# (no extra gem). Key files: PEM/PKCS#8 through OpenSSL, OpenSSH's format
# parsed here with libevssh's bcrypt-pbkdf for encrypted ones (no
# bcrypt_pbkdf gem); a file only libevssh can read (a key file cipher
# OpenSSL lacks) comes back as its public key that signs through libevssh.
require "openssl"
require "base64"

module EvSSH
  module KeyBlob
    # what Net::SSH's keys answer
    module Methods
      def ssh_type
        @__ssh_type
      end

      def ssh_signature_type
        ssh_type == "ssh-rsa" ? "ssh-rsa" : ssh_type
      end

      def to_blob
        @__ssh_blob
      end

      # "aa:bb:..." (MD5, Net::SSH's default) or "SHA256:..."
      def fingerprint(algorithm = "MD5")
        KeyBlob.fingerprint(to_blob, algorithm)
      end

      def public_key_blob_for_comparison
        to_blob
      end
    end

    CURVES = { "nistp256" => "prime256v1", "nistp384" => "secp384r1", "nistp521" => "secp521r1" }.freeze
    CURVE_NAMES = CURVES.invert.freeze
    ED25519_OID = "1.3.101.112"

    module_function

    def fingerprint(blob, algorithm = "MD5")
      case algorithm.to_s.upcase
      when "MD5" then OpenSSL::Digest.hexdigest("MD5", blob).scan(/../).join(":")
      when "SHA256" then "SHA256:#{Base64.strict_encode64(OpenSSL::Digest.digest('SHA256', blob)).sub(/=+\z/, '')}"
      else raise OpenSSL::Digest::DigestError, "unsupported ssh key digest #{algorithm}"
      end
    end

    def mpint(n)
      n = OpenSSL::BN.new(n.to_s) unless n.is_a?(OpenSSL::BN)
      return "\0\0\0\0".b if n.zero?

      raw = n.to_s(2)
      raw = "\0".b + raw if raw.getbyte(0) & 0x80 != 0
      [raw.bytesize].pack("N") + raw
    end

    def string(s)
      s = s.to_s.b
      [s.bytesize].pack("N") + s
    end

    # give an OpenSSL key Net::SSH's methods; returns it
    def decorate(key, type, blob)
      key.extend(Methods)
      key.instance_variable_set(:@__ssh_type, type)
      key.instance_variable_set(:@__ssh_blob, blob.b)
      key
    end

    # The public key blob of an OpenSSL key (RSA, EC, Ed25519, DSA).
    def blob_of(key)
      return key.to_blob if key.respond_to?(:to_blob)

      case key
      when OpenSSL::PKey::RSA
        string("ssh-rsa") + mpint(key.e) + mpint(key.n)
      when OpenSSL::PKey::EC
        curve = CURVE_NAMES.fetch(key.group.curve_name) { raise NotImplementedError, "unsupported curve #{key.group.curve_name}" }
        string("ecdsa-sha2-#{curve}") + string(curve) + string(key.public_key.to_bn.to_s(2))
      when OpenSSL::PKey::DSA
        string("ssh-dss") + mpint(key.p) + mpint(key.q) + mpint(key.g) + mpint(key.pub_key)
      else
        raise NotImplementedError, "unsupported key type #{key.class}" unless key.respond_to?(:oid) && key.oid == "ED25519"

        string("ssh-ed25519") + string(key.public_to_der[-32, 32])
      end
    end

    def type_of(blob)
      Buffer.new(blob).read_string
    end

    # decorate a key loaded by OpenSSL with its blob
    def from_openssl(key)
      blob = blob_of(key)
      decorate(key, type_of(blob), blob)
    end

    def spki(algorithm, params, public_bits)
      alg = [OpenSSL::ASN1::ObjectId.new(algorithm)]
      alg << params if params
      OpenSSL::ASN1::Sequence.new([OpenSSL::ASN1::Sequence.new(alg), OpenSSL::ASN1::BitString.new(public_bits)]).to_der
    end

    # the key whose type string was just read from buffer
    def read_public(type, buffer)
      start = buffer.position
      key = case type
            when "ssh-rsa"
              e = buffer.read_bignum
              n = buffer.read_bignum
              raise ArgumentError, "truncated ssh-rsa key" unless e && n

              OpenSSL::PKey::RSA.new(OpenSSL::ASN1::Sequence([OpenSSL::ASN1::Integer(n), OpenSSL::ASN1::Integer(e)]).to_der)
            when "ssh-dss"
              p, q, g, y = Array.new(4) { buffer.read_bignum }
              raise ArgumentError, "truncated ssh-dss key" unless y

              params = OpenSSL::ASN1::Sequence([OpenSSL::ASN1::Integer(p), OpenSSL::ASN1::Integer(q), OpenSSL::ASN1::Integer(g)])
              OpenSSL::PKey::DSA.new(spki("DSA", params, OpenSSL::ASN1::Integer(y).to_der))
            when "ssh-ed25519"
              pub = buffer.read_string
              raise ArgumentError, "bad ssh-ed25519 key" unless pub && pub.bytesize == 32

              OpenSSL::PKey.read(spki(ED25519_OID, nil, pub))
            when /\Aecdsa-sha2-(\w+)\z/
              curve = buffer.read_string
              q = buffer.read_string
              raise ArgumentError, "truncated #{type} key" unless q
              raise NotImplementedError, "unsupported key type `#{type}'" unless CURVES[curve] && curve == Regexp.last_match(1)

              OpenSSL::PKey.read(spki("id-ecPublicKey", OpenSSL::ASN1::ObjectId.new(CURVES[curve]), q))
            else
              raise NotImplementedError, "unsupported key type `#{type}'"
            end
      blob = string(type) + buffer.to_s[start...buffer.position]
      decorate(key, type, blob)
    end

    # OpenSSH's private key fields after the type string (an openssh-key-v1
    # file, or an agent's add-identity message)
    def read_private(type, buffer)
      key = case type
            when "ssh-rsa"
              n, e, d, iqmp, p, q = Array.new(6) { buffer.read_bignum }
              raise ArgumentError, "truncated ssh-rsa private key" unless q

              dmp1 = d % (p - 1)
              dmq1 = d % (q - 1)
              seq = [0, n, e, d, p, q, dmp1, dmq1, iqmp].map { |v| OpenSSL::ASN1::Integer(v) }
              OpenSSL::PKey::RSA.new(OpenSSL::ASN1::Sequence(seq).to_der)
            when "ssh-ed25519"
              _pub = buffer.read_string
              both = buffer.read_string
              raise ArgumentError, "bad ssh-ed25519 private key" unless both && both.bytesize == 64

              pkcs8 = OpenSSL::ASN1::Sequence([OpenSSL::ASN1::Integer(0),
                                               OpenSSL::ASN1::Sequence([OpenSSL::ASN1::ObjectId.new(ED25519_OID)]),
                                               OpenSSL::ASN1::OctetString(OpenSSL::ASN1::OctetString(both[0, 32]).to_der)])
              OpenSSL::PKey.read(pkcs8.to_der)
            when /\Aecdsa-sha2-(\w+)\z/
              curve = buffer.read_string
              q = buffer.read_string
              d = buffer.read_bignum
              raise ArgumentError, "truncated #{type} private key" unless d && CURVES[curve]

              ec = OpenSSL::ASN1::Sequence([OpenSSL::ASN1::Integer(1), OpenSSL::ASN1::OctetString(d.to_s(2)),
                                            OpenSSL::ASN1::ASN1Data.new([OpenSSL::ASN1::ObjectId.new(CURVES[curve])], 0, :CONTEXT_SPECIFIC),
                                            OpenSSL::ASN1::ASN1Data.new([OpenSSL::ASN1::BitString.new(q)], 1, :CONTEXT_SPECIFIC)])
              OpenSSL::PKey::EC.new(ec.to_der)
            else
              raise NotImplementedError, "cannot decode private key of type #{type}"
            end
      from_openssl(key)
    end
  end

  # Net::SSH::KeyFactory: private and public keys from files or strings.
  class KeyFactory
    OPENSSH_MAGIC = "openssh-key-v1\0".b
    OPENSSH_PEM = /-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----/m
    MAX_PASSPHRASE_TRIES = 3

    class << self
      def load_private_key(filename, passphrase = nil, ask_passphrase = true, prompt = Prompt.default)
        data = File.read(File.expand_path(filename))
        load_data_private_key(data, passphrase, ask_passphrase, filename, prompt)
      end

      def load_data_private_key(data, passphrase = nil, ask_passphrase = true, filename = "", prompt = Prompt.default)
        tries = 0
        prompter = nil
        begin
          key = ruby_private(data, passphrase) || native_private(data, passphrase, filename)
        rescue OpenSSL::PKey::PKeyError, ArgumentError => e
          raise unless encrypted?(data) && ask_passphrase && prompt && tries < MAX_PASSPHRASE_TRIES

          tries += 1
          prompter ||= prompt.start(type: "private_key", filename: filename, sha256: nil)
          passphrase = prompter.ask("Enter passphrase for #{filename}:", false)
          retry
        end
        prompter.success if prompter.respond_to?(:success)
        key
      rescue OpenSSL::PKey::PKeyError, ArgumentError => e
        raise ArgumentError, "Could not parse PKey: #{e.message}"
      end

      def load_public_key(filename)
        load_data_public_key(File.read(File.expand_path(filename)), filename)
      end

      # "type base64 [comment]" (a .pub file, an authorized_keys line)
      def load_data_public_key(data, filename = "")
        fields = data.split(/\s+/).reject(&:empty?)
        fields.shift while fields.first && fields.first !~ /\A(ssh-|ecdsa-|sk-)/
        raise ArgumentError, "public key at #{filename} is not valid" if fields.size < 2

        blob = Base64.decode64(fields[1])
        Buffer.new(blob).read_key
      end

      private

      def encrypted?(data)
        data.include?("ENCRYPTED") || (data =~ OPENSSH_PEM && !Base64.decode64(Regexp.last_match(1)).include?("\0\0\0\4none"))
      end

      # the key as an OpenSSL key with Net::SSH's methods, or nil when only
      # libevssh can read the file
      def ruby_private(data, passphrase)
        if data =~ OPENSSH_PEM
          openssh_private(Base64.decode64(Regexp.last_match(1)), passphrase)
        else
          KeyBlob.from_openssl(OpenSSL::PKey.read(data, passphrase || ""))
        end
      rescue NotImplementedError
        nil
      end

      # libevssh's reading of the file: its public key, signing in C
      def native_private(data, passphrase, filename)
        native = Native.load(data, filename.to_s.empty? ? nil : filename.to_s, passphrase)
        key = Buffer.new(native.to_blob).read_key
        key.instance_variable_set(:@comment, native.comment)
        key.define_singleton_method(:ssh_do_sign) do |payload, sig_alg = nil|
          # as Net::SSH: the signature itself, ssh-rsa (SHA-1) unless told
          Buffer.new(native.sign(sig_alg || ssh_type, payload)).tap(&:read_string).read_string
        end
        key.define_singleton_method(:private?) { true }
        key
      end

      # openssh-key-v1 (PROTOCOL.key)
      def openssh_private(raw, passphrase)
        raise ArgumentError, "not an openssh-key-v1 key" unless raw.start_with?(OPENSSH_MAGIC)

        b = Buffer.new(raw[OPENSSH_MAGIC.bytesize..])
        cipher = b.read_string
        kdf = b.read_string
        kdf_options = b.read_string
        count = b.read_long
        raise ArgumentError, "#{count} keys in one file" unless count == 1

        b.read_string # public key
        priv = b.read_string or raise ArgumentError, "truncated key"
        priv = decrypt(priv, cipher, kdf, kdf_options, passphrase) unless cipher == "none"
        p = Buffer.new(priv)
        raise ArgumentError, "wrong passphrase" unless p.read_long == p.read_long

        key = KeyBlob.read_private(p.read_string, p)
        key.instance_variable_set(:@comment, p.read_string)
        key
      end

      def decrypt(data, cipher, kdf, kdf_options, passphrase)
        raise OpenSSL::PKey::PKeyError, "passphrase needed" if passphrase.nil? || passphrase.empty?
        raise NotImplementedError, "key file kdf #{kdf}" unless kdf == "bcrypt"

        o = Buffer.new(kdf_options)
        salt = o.read_string
        rounds = o.read_long
        name = { "aes256-ctr" => "aes-256-ctr", "aes256-cbc" => "aes-256-cbc", "aes128-ctr" => "aes-128-ctr",
                 "aes192-ctr" => "aes-192-ctr", "aes128-cbc" => "aes-128-cbc", "aes192-cbc" => "aes-192-cbc" }
               .fetch(cipher) { raise NotImplementedError, "key file cipher #{cipher}" }
        c = OpenSSL::Cipher.new(name).decrypt
        material = EvSSH.bcrypt_pbkdf(passphrase, salt, c.key_len + c.iv_len, rounds)
        c.key = material[0, c.key_len]
        c.iv = material[c.key_len, c.iv_len]
        c.padding = 0
        c.update(data) + c.final
      end
    end
  end
end
