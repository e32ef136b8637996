# EvSSH: Net::SSH's API over libevssh, the C SSH-2 client library. A
# Net::SSH script ports by changing its require and its constant; libraries
# written for Net::SSH (net-scp, net-sftp, SSHKit, ...) run on EvSSH sessions
# (and, after `require "evssh/net_ssh"`, on Net::SSH.start). The protocol
# lives entirely in C (ext/evssh); lib/evssh holds Net::SSH's Ruby surface:
# options, errors, buffers, keys, known hosts, verifiers, proxies, the agent.
require "openssl"
require "digest"
require "logger"
require "etc"
require "socket"
require "shellwords"
require "evssh/version"
begin
  require "evssh/evssh_ext"
rescue LoadError
  require "evssh_ext"
end
require "evssh/errors"
require "evssh/buffer"
require "evssh/keys"
require "evssh/known_hosts"
require "evssh/verifiers"
require "evssh/prompt"
require "evssh/agent"
require "evssh/proxy"
require "evssh/transport"
require "evssh/options"
require "evssh/session"
require "evssh/forward"
require "evssh/channel"
require "evssh/buffered_io"
require "evssh/multi"
require "evssh/sftp"

module EvSSH
  class << self
    # EvSSH.start(host, user = nil, options = {}) { |ssh| ... }, Net::SSH's
    # signature: options as a Hash or as keywords (see EvSSH::VALID_OPTIONS;
    # `options: { "Keyword" => value }` adds raw ssh_config keywords). With
    # a block the session is closed when the block ends and the block's value
    # is returned; without one the session is returned.
    def start(host, user = nil, options = nil, **keywords)
      opts = (options || {}).merge(keywords)
      session = Session.build(host, user, opts)
      session.connect
      return session unless block_given?

      begin
        yield session
      ensure
        session.close unless session.closed?
      end
    end

    # A configured session not yet connected, so handlers (on_global_request,
    # on_open_channel) can be in place for what the server sends right after
    # authentication (hostkeys-00@openssh.com); then session.connect.
    def prepare(host, user = nil, options = nil, **keywords)
      Session.build(host, user, (options || {}).merge(keywords))
    end
  end
end
