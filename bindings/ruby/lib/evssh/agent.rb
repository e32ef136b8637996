# Net::SSH::Authentication::Agent: a client of ssh-agent (draft-miller-
# ssh-agent) for programs that list, use or load agent keys themselves. The
# agent's messages are framed and parsed with EvSSH::Buffer (libevssh's
# codec). Logging in with agent keys does not need this class: libevssh talks
# to the agent itself (IdentityAgent / SSH_AUTH_SOCK).
require "socket"

module EvSSH
  module Authentication
    class AgentError < EvSSH::Exception; end
    class AgentNotAvailable < AgentError; end

    class Agent
      # identities carry the agent's comment
      module Comment
        attr_accessor :comment
      end

      SSH2_AGENT_REQUEST_VERSION = 1
      SSH2_AGENT_REQUEST_IDENTITIES = 11
      SSH2_AGENT_IDENTITIES_ANSWER = 12
      SSH2_AGENT_SIGN_REQUEST = 13
      SSH2_AGENT_SIGN_RESPONSE = 14
      SSH2_AGENT_ADD_IDENTITY = 17
      SSH2_AGENT_REMOVE_IDENTITY = 18
      SSH2_AGENT_REMOVE_ALL_IDENTITIES = 19
      SSH2_AGENT_LOCK = 22
      SSH2_AGENT_UNLOCK = 23
      SSH2_AGENT_ADD_ID_CONSTRAINED = 25
      SSH2_AGENT_FAILURE = 30
      SSH2_AGENT_VERSION_RESPONSE = 103
      SSH_AGENT_FAILURE = 5
      SSH_AGENT_SUCCESS = 6
      SSH_AGENT_CONSTRAIN_LIFETIME = 1
      SSH_AGENT_CONSTRAIN_CONFIRM = 2
      SSH_AGENT_RSA_SHA2_256 = 0x02
      SSH_AGENT_RSA_SHA2_512 = 0x04
      MAX_MESSAGE = 256 * 1024

      attr_reader :socket, :logger

      def self.connect(logger = nil, agent_socket_factory = nil, identity_agent = nil)
        agent = new(logger)
        agent.connect!(agent_socket_factory, identity_agent)
        agent.negotiate!
        agent
      end

      def initialize(logger = nil)
        @logger = logger
      end

      def connect!(agent_socket_factory = nil, identity_agent = nil)
        @socket = if agent_socket_factory
                    agent_socket_factory.call
                  elsif identity_agent
                    UNIXSocket.open(File.expand_path(identity_agent))
                  elsif ENV["SSH_AUTH_SOCK"] && !ENV["SSH_AUTH_SOCK"].empty?
                    UNIXSocket.open(File.expand_path(ENV["SSH_AUTH_SOCK"]))
                  else
                    raise AgentNotAvailable, "Agent not configured"
                  end
      rescue SystemCallError, SocketError => e
        raise AgentNotAvailable, e.message
      end

      # Net::SSH asks the version the SSH-1 way; an SSH-2 agent answers failure.
      def negotiate!
        type, = send_and_wait(SSH2_AGENT_REQUEST_VERSION, :string, "SSH-2.0-evssh")
        raise AgentNotAvailable, "SSH2 agents are not yet supported" if type == SSH2_AGENT_VERSION_RESPONSE
        return if [SSH2_AGENT_FAILURE, SSH_AGENT_FAILURE, 2, 5].include?(type)

        raise AgentNotAvailable, "unknown response from agent: #{type}"
      end

      def identities
        type, body = send_and_wait(SSH2_AGENT_REQUEST_IDENTITIES)
        raise AgentError, "could not get identity count" if failed?(type)
        raise AgentError, "bad authentication reply: #{type}" if type != SSH2_AGENT_IDENTITIES_ANSWER

        count = body.read_long or raise AgentError, "truncated identities answer"
        Array.new(count) do
          blob = body.read_string
          comment = body.read_string
          raise AgentError, "truncated identities answer" unless comment

          begin
            key = Buffer.new(blob).read_key
          rescue NotImplementedError, ArgumentError, OpenSSL::PKey::PKeyError => e
            logger&.warn("ignoring agent key: #{e.message}")
            next
          end
          key.extend(Comment)
          key.comment = comment
          key
        end.compact
      end

      def close
        @socket&.close
      end

      # the signature blob the agent made of data with key
      def sign(key, data, flags = 0)
        type, reply = send_and_wait(SSH2_AGENT_SIGN_REQUEST, :string, key.to_blob, :string, data, :long, flags)
        raise AgentError, "agent could not sign data with requested identity" if failed?(type)
        raise AgentError, "bad authentication response #{type}" if type != SSH2_AGENT_SIGN_RESPONSE

        reply.read_string
      end

      def add_identity(priv_key, comment, lifetime: nil, confirm: false)
        constraints = Buffer.new
        constraints.write_byte(SSH_AGENT_CONSTRAIN_LIFETIME).write_long(lifetime) if lifetime
        constraints.write_byte(SSH_AGENT_CONSTRAIN_CONFIRM) if confirm
        req = constraints.empty? ? SSH2_AGENT_ADD_IDENTITY : SSH2_AGENT_ADD_ID_CONSTRAINED
        type, = send_and_wait(req, :raw, private_blob(priv_key), :string, comment.to_s, :raw, constraints.to_s)
        raise AgentError, "could not add identity to agent" if type != SSH_AGENT_SUCCESS
      end

      def remove_identity(key)
        type, = send_and_wait(SSH2_AGENT_REMOVE_IDENTITY, :string, key.to_blob)
        raise AgentError, "could not remove identity from agent" if type != SSH_AGENT_SUCCESS
      end

      def remove_all_identities
        type, = send_and_wait(SSH2_AGENT_REMOVE_ALL_IDENTITIES)
        raise AgentError, "could not remove all identities from agent" if type != SSH_AGENT_SUCCESS
      end

      private

      def failed?(type)
        [SSH_AGENT_FAILURE, SSH2_AGENT_FAILURE, 102].include?(type)
      end

      def send_and_wait(type, *args)
        body = Buffer.from(:byte, type, *args).to_s
        @socket.write([body.bytesize].pack("N") + body)
        len = read_exactly(4).unpack1("N")
        raise AgentError, "agent message of #{len} bytes" if len.zero? || len > MAX_MESSAGE

        reply = Buffer.new(read_exactly(len))
        [reply.read_byte, reply]
      end

      def read_exactly(n)
        data = @socket.read(n)
        raise AgentError, "agent closed the connection" unless data && data.bytesize == n

        data
      end

      # SSH2_AGENTC_ADD_IDENTITY's key fields (PROTOCOL.agent)
      def private_blob(key)
        k = KeyBlob
        case key
        when OpenSSL::PKey::RSA
          k.string("ssh-rsa") + [key.n, key.e, key.d, key.iqmp, key.p, key.q].map { |v| k.mpint(v) }.join
        when OpenSSL::PKey::EC
          curve = KeyBlob::CURVE_NAMES.fetch(key.group.curve_name)
          k.string("ecdsa-sha2-#{curve}") + k.string(curve) + k.string(key.public_key.to_bn.to_s(2)) +
            k.mpint(key.private_key)
        else
          raise NotImplementedError, "add_identity: unsupported key #{key.class}" unless key.respond_to?(:oid) && key.oid == "ED25519"

          pub = key.public_to_der[-32, 32]
          seed = OpenSSL::ASN1.decode(OpenSSL::ASN1.decode(key.private_to_der).value[2].value).value
          k.string("ssh-ed25519") + k.string(pub) + k.string(seed + pub)
        end
      end
    end
  end
end
