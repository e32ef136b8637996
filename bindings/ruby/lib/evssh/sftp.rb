# EvSSH's native SFTP client: session.sftp is an EvSSH::SFTP::Session,
# Net::SFTP::Session's API (net-sftp 4) over libevssh's evssh_sftp_* (the
# C half in ext/evssh/ext_sftp.c), at C speed for whole files. As API.md
# says, session.sftp is native whether or not net-sftp is loaded; code that
# wants net-sftp itself on an EvSSH session constructs it,
# Net::SFTP::Session.new(ssh), which keeps working. Status failures raise
# Net::SFTP::StatusException when net-sftp is loaded (EvSSH::SFTP's classes
# catch them too), EvSSH::SFTP::StatusException otherwise.
#
# Nothing here when the extension was built against a libevssh without
# SFTP (extconf's evssh_sftp_open check): session.sftp is then net-sftp's,
# as before, if net-sftp is loaded.
require "stringio"
return unless defined?(EvSSH::SFTP::Session) && EvSSH::SFTP::Session.private_method_defined?(:_open)

require "evssh/sftp/protocol"
require "evssh/sftp/session"
require "evssh/sftp/transfer"
require "evssh/sftp/file"

module EvSSH
  module SFTP
    # Net::SFTP.start's signature: a session to host, then its sftp; with a
    # block, the block gets the sftp, the loop runs until its requests are
    # done and the session is closed.
    def self.start(host, user = nil, ssh_options = {}, sftp_options = {}, &block)
      ssh = EvSSH.start(host, user, ssh_options)
      begin
        sftp = Session.new(ssh, sftp_options[:version]).connect!
        return sftp unless block

        block.call(sftp)
        sftp.loop
        ssh.close
        nil
      rescue ::Exception
        ssh.shutdown! unless ssh.closed?
        raise
      end
    end
  end

  class Session
    # Net::SFTP's accessor: the session's one SFTP client, connected unless
    # wait is false
    def sftp(wait = true)
      @sftp ||= begin
        s = SFTP::Session.new(self)
        s.connect! if wait
        s
      end
    end
  end
end
