# require "evssh/net_ssh": Net::SSH.start returns EvSSH sessions, so code
# that itself requires 'net/ssh' and calls Net::SSH.start (net-scp's
# Net::SCP.start, net-sftp's Net::SFTP.start, SSHKit, net-ssh-multi, ...)
# runs on libevssh unmodified.
#
# What it replaces: only the singleton method Net::SSH.start (prepended).
# The rest of net-ssh (Net::SSH::Buffer, Config, KnownHosts, Prompt, ...)
# stays net-ssh's, so net-ssh must be installed. While it is on, the
# exceptions EvSSH raises are Net::SSH's classes (Net::SSH::AuthenticationFailed,
# Net::SSH::HostKeyMismatch, ...), so `rescue Net::SSH::...` works; `rescue
# EvSSH::...` catches them too.
#
# Turning it off: EvSSH::NetSSH.disable! (Net::SSH.start is net-ssh's own
# again; enable! turns it back on), or EVSSH_NET_SSH=0 in the environment,
# which leaves it off after the require.
require "net/ssh"
require "evssh"

module EvSSH
  module NetSSH
    @active = false

    class << self
      def active?
        @active
      end

      def enable!
        @active = true
        self
      end

      def disable!
        @active = false
        self
      end
    end

    module Start
      def start(host, user = nil, options = {}, &block)
        return super unless EvSSH::NetSSH.active?

        EvSSH.start(host, user, options || {}, &block)
      end
    end
  end
end

Net::SSH.singleton_class.prepend(EvSSH::NetSSH::Start) unless Net::SSH.singleton_class < EvSSH::NetSSH::Start
EvSSH::NetSSH.enable! unless ENV["EVSSH_NET_SSH"] == "0"
