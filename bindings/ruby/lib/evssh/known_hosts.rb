# Net::SSH's known hosts: KnownHosts (files in OpenSSH's format: patterns,
# hashed names, @cert-authority and @revoked markers), HostKeys (what
# search_for returns, with add_host_key) and HostKeyEntries. These are what a
# program's own `known_hosts:` object is modelled on and what the Ruby host
# key verifiers read; by default libevssh checks known_hosts itself in C.
require "openssl"
require "base64"
require "delegate"

module EvSSH
  module HostKeyEntries
    class PubKey < Delegator
      attr_reader :comment

      def initialize(key, comment: nil) # rubocop:disable Lint/MissingSuper
        @key = key
        @comment = comment
      end

      def __getobj__
        @key
      end

      def __setobj__(key)
        @key = key
      end

      def ssh_type
        @key.ssh_type
      end

      def ssh_types
        [ssh_type]
      end

      def to_blob
        @key.to_blob
      end

      def matches_key?(server_key)
        @key.ssh_type == server_key.ssh_type && @key.to_blob == server_key.to_blob
      end
    end

    class CertAuthority
      attr_reader :comment

      def initialize(key, comment: nil)
        @key = key
        @comment = comment
      end

      def ssh_types
        %w[ecdsa-sha2-nistp256-cert-v01@openssh.com ecdsa-sha2-nistp384-cert-v01@openssh.com
           ecdsa-sha2-nistp521-cert-v01@openssh.com ssh-ed25519-cert-v01@openssh.com
           ssh-rsa-cert-v01@openssh.com ssh-rsa-cert-v00@openssh.com]
      end

      def to_blob
        @key.to_blob
      end

      def matches_key?(server_key)
        ssh_types.include?(server_key.ssh_type) && server_key.respond_to?(:signature_key) &&
          server_key.signature_valid? && server_key.signature_key.to_blob == @key.to_blob
      end
    end
  end

  class HostKeys
    include Enumerable
    attr_reader :host

    def initialize(host_keys, host, known_hosts, options = {})
      @host_keys = host_keys
      @host = host
      @known_hosts = known_hosts
      @options = options
    end

    def add_host_key(key)
      @known_hosts.add(@host, key, @options)
      @host_keys.push(key)
    end

    def each(&block)
      @host_keys.each(&block)
    end

    def empty?
      @host_keys.empty?
    end
  end

  class KnownHosts
    SUPPORTED_TYPE = %w[ssh-rsa ssh-dss ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521
                        ssh-ed25519].freeze

    class << self
      def search_for(host, options = {})
        HostKeys.new(search_in(hostfiles(options), host, options), host, self, options)
      end

      def search_in(files, host, options = {})
        files.flat_map { |file| new(file).keys_for(host, options) }
      end

      def hostfiles(options, which = :all)
        files = []
        if which == :all || which == :user
          files += Array(options[:user_known_hosts_file] || %w[~/.ssh/known_hosts ~/.ssh/known_hosts2])
        end
        if which == :all || which == :global
          files += Array(options[:global_known_hosts_file] || %w[/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2])
        end
        files
      end

      # into the first user file that can be written
      def add(host, key, options = {})
        hostfiles(options, :user).each do |file|
          new(file).add(host, key)
          return
        rescue SystemCallError
          next
        end
      end
    end

    attr_reader :source

    def initialize(source)
      @source = File.expand_path(source)
    end

    # host: "name" or "name,ip" (host_as_string)
    def keys_for(host, options = {})
      keys = []
      return keys unless File.readable?(source)

      entries = host.split(",")
      File.foreach(source) do |line|
        fields = line.split
        marker = fields.first&.start_with?("@") ? fields.shift : nil
        hosts, type, content, comment = fields
        next if hosts.nil? || hosts.start_with?("#") || marker == "@revoked"
        next unless SUPPORTED_TYPE.include?(type) && content

        list = hosts.split(",")
        found = list.any? { |pattern| match(entries[0], pattern) } || hashed_match?(list, entries)
        found = list.include?(entries[1]) if found && options[:check_host_ip] && entries.size > 1 && list.size > 1
        next unless found

        begin
          key = Buffer.new(Base64.decode64(content)).read_key
        rescue NotImplementedError, ArgumentError, OpenSSL::PKey::PKeyError
          next
        end
        keys << (marker == "@cert-authority" ? HostKeyEntries::CertAuthority : HostKeyEntries::PubKey)
                .new(key, comment: comment)
      end
      keys
    end

    def match(host, pattern)
      return false if pattern.start_with?("!")
      return host == pattern unless pattern.include?("*") || pattern.include?("?")

      re = pattern.split("*", -1).map { |x| x.split("?", -1).map { |y| Regexp.escape(y) }.join(".") }.join(".*")
      host.match?(/\A#{re}\z/)
    end

    def hashed_match?(list, entries)
      return false unless list.size == 1 && list.first =~ /\A\|1(\|.+){2}\z/

      _, _, salt, hmac = list.first.split("|")
      salt = Base64.decode64(salt)
      entries.any? do |entry|
        Base64.strict_encode64(OpenSSL::HMAC.digest("SHA1", salt, entry)) == hmac
      end
    end

    def add(host, key)
      File.open(source, "a") do |file|
        file.puts "#{host} #{key.ssh_type} #{Base64.strict_encode64(key.to_blob)}"
      end
    end
  end
end
