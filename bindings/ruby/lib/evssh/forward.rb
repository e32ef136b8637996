# EvSSH::Forward, session.forward: Net::SSH::Service::Forward's API (local,
# local_socket, remote, cancel_*, active_*, agent) over libevssh's
# forwarding, which listens, accepts, opens the channels and relays in C, in
# the session's loop, with bounded memory (the local socket is read only
# while its channel has little queued; the channel is paused while the
# local socket lags). What Net::SSH keeps and shows is kept here, in the
# same shape and at the same moments: active_locals are [port, bind] pairs
# from the call on, active_remotes [port, bind] pairs once the server said
# yes, and a refused remote forward yields :error to the block and raises
# EvSSH::Exception from the loop unless the block returns :no_exception.
require "socket"

module EvSSH
  class Forward
    # Net::SSH::Service::Forward::Remote
    Remote = Struct.new(:host, :port)

    # the errors a listen can fail with, raised as Net::SSH's TCPServer.new does
    LISTEN_ERRNO = %i[EADDRINUSE EACCES EADDRNOTAVAIL EAFNOSUPPORT].filter_map do |n|
      Errno.const_get(n) if Errno.const_defined?(n)
    end.freeze

    attr_reader :session

    def initialize(session)
      @session = session
      @local_forwarded_ports = {}
      @local_forwarded_sockets = {}
      @remote_forwarded_ports = {}
      @replies = {}
      @token = 0
      @agent_forwarded = false
    end

    def logger
      session.logger
    end

    # local(port, host, hostport) / local(bind_address, port, host,
    # hostport) / local(unix_server, host, hostport): the local port
    def local(*args)
      raise ArgumentError, "expected 3 or 4 parameters, got #{args.length}" if args.length < 3 || args.length > 4

      if defined?(UNIXServer) && args.first.instance_of?(UNIXServer)
        # libevssh listens on the path itself: the server given makes way
        server = args.shift
        path = server.path
        server.close
        File.delete(path) if File.exist?(path)
        bind = path
        port = 0
      else
        bind = "127.0.0.1"
        bind = args.shift if args.first.is_a?(String) && args.first =~ /\D/
        port = args.shift.to_i
      end
      host = args.shift.to_s
      hostport = args.shift.to_i
      bound = listening { session._forward_local(bind, port, host, hostport) }
      if bind.start_with?("/")
        # as Net::SSH: a unix server's forward is known by no port or address
        @local_forwarded_ports[[nil, nil]] = bind
        return nil
      end
      @local_forwarded_ports[[bound, bind]] = bind
      bound
    end

    # Stop listening; connections already open go on until they end.
    def cancel_local(port, bind_address = "127.0.0.1")
      key = [port, bind_address]
      bind = @local_forwarded_ports.delete(key)
      return unless bind

      session._forward_cancel_local(bind, bind.start_with?("/") ? 0 : port)
    end

    def active_locals
      @local_forwarded_ports.keys
    end

    # local_socket(local_path, remote_path): a unix socket here, each
    # connection to the server's unix socket (direct-streamlocal)
    def local_socket(local_socket_path, remote_socket_path)
      File.delete(local_socket_path) if File.exist?(local_socket_path)
      listening { session._forward_local_socket(local_socket_path.to_s, remote_socket_path.to_s) }
      @local_forwarded_sockets[local_socket_path] = true
      local_socket_path
    end

    def cancel_local_socket(local_socket_path)
      return unless @local_forwarded_sockets.delete(local_socket_path)

      session._forward_cancel_local(local_socket_path.to_s, 0)
    end

    def active_local_sockets
      @local_forwarded_sockets.keys
    end

    # remote(port, host, remote_port, remote_host = "127.0.0.1") { |bound_port, remote_host| }:
    # the server listens on remote_host:remote_port (0: it picks, and the
    # block gets the port) and each connection goes to host:port here; a
    # refusal yields :error and raises EvSSH::Exception from the loop unless
    # the block returns :no_exception.
    def remote(port, host, remote_port, remote_host = "127.0.0.1", &block)
      token = (@token += 1)
      @replies[token] = [:remote, port.to_i, host.to_s, remote_port.to_i, remote_host.to_s, block]
      begin
        session._forward_remote(remote_host.to_s, remote_port.to_i, host.to_s, port.to_i, token)
      rescue StandardError
        @replies.delete(token)
        raise
      end
      session
    end
    alias remote_to remote

    # remote_socket(remote_path, host, port) { |path| }: the server listens
    # on its unix socket remote_path (streamlocal-forward@openssh.com)
    def remote_socket(remote_socket_path, host, port, &block)
      token = (@token += 1)
      @replies[token] = [:remote_socket, port.to_i, host.to_s, 0, remote_socket_path.to_s, block]
      session._forward_remote(remote_socket_path.to_s, 0, host.to_s, port.to_i, token)
      session
    end

    # cancel_remote(port, host = "127.0.0.1"): the server stops listening;
    # a forward the server does not know raises from the loop, as Net::SSH's
    def cancel_remote(port, host = "127.0.0.1")
      key = [port, host]
      if session._forward_cancel_remote(host.to_s, port.to_i)
        @remote_forwarded_ports.delete(key)
      else
        # not ours: the server says so, as it does to Net::SSH
        session.send_global_request("cancel-tcpip-forward", :string, host, :long, port) do |success, _|
          raise EvSSH::Exception, "could not cancel remote forward request on #{host}:#{port}" unless success

          @remote_forwarded_ports.delete(key)
        end
      end
      session
    end

    def active_remotes
      @remote_forwarded_ports.keys
    end

    # { [local port, local host] => [remote port, remote host] }
    def active_remote_destinations
      @remote_forwarded_ports.each_with_object({}) do |(remote, local), result|
        result[[local.port, local.host]] = remote
      end
    end

    # Net::SSH's agent(channel): ask for agent forwarding on a session
    # channel, once per session (the server keeps it for later channels).
    def agent(channel)
      return if @agent_forwarded

      @agent_forwarded = true
      channel._request_agent do |_ch, ok|
        if ok
          logger&.debug("evssh") { "authentication agent forwarding is active" }
        else
          logger&.error("evssh") { "could not establish forwarding of authentication agent" }
        end
      end
    rescue EvSSH::Exception => e
      # no agent here: as Net::SSH, the session goes on without it
      logger&.error("evssh") { "could not establish forwarding of authentication agent: #{e.message}" }
    end
    alias agent! agent

    # Session#__forward_reply: the server answered a remote forward
    def __reply(token, status, bound_port)
      kind, port, host, remote_port, remote_host, block = @replies.delete(token)
      return unless kind

      if status.zero?
        if kind == :remote_socket
          @remote_forwarded_ports[[remote_host, nil]] = Remote.new(host, port)
          block&.call(remote_host)
        else
          remote_port = bound_port if remote_port.zero?
          @remote_forwarded_ports[[remote_port, remote_host]] = Remote.new(host, port)
          block&.call(remote_port, remote_host)
        end
      else
        instruction = block&.call(:error)
        unless instruction == :no_exception
          logger&.error("evssh") { "remote forwarding request failed" }
          raise EvSSH::Exception, "remote forwarding request failed"
        end
      end
    end

    private

    # a listen that failed in the kernel raises its Errno, as TCPServer.new
    # does for Net::SSH; the message is libevssh's (it names the address)
    def listening
      yield
    rescue EvSSH::Exception => e
      klass = LISTEN_ERRNO.find { |k| e.message.end_with?(k.new.message.sub(/\A.*? - /, "")) }
      raise klass, e.message if klass

      raise
    end
  end

  class Session
    # Net::SSH's session.forward
    def forward
      @forward ||= Forward.new(self)
    end

    def __forward_reply(token, status, bound_port)
      forward.__reply(token, status, bound_port)
    end
  end
end
