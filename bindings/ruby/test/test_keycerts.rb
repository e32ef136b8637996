require_relative "helper"
require "tmpdir"

# keycerts: a user certificate signed by a CA sshd trusts logs in with a
# key that is in no authorized_keys; without the certificate the same key
# is refused. The same script on Net::SSH and on EvSSH.
class TestKeycerts < Minitest::Test
  include SideBySide

  def test_keycerts_log_in_with_a_certified_key
    Dir.mktmpdir("evssh-cert-") do |d|
      key = File.join(d, "id_ed25519")
      system("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key, out: File::NULL)
      assert system("ssh-keygen", "-q", "-s", SSHD.user_ca, "-I", "evssh-test-cert", "-n", SSHD.user,
                    "-V", "-5m:+1h", "#{key}.pub", out: File::NULL, err: File::NULL)
      # not at id_ecdsa-cert.pub, where either library might find it unasked
      cert = File.join(d, "certificate.pub")
      File.rename("#{key}-cert.pub", cert)
      r = assert_same_result do |lib|
        with = start_with(lib, keys: [key], keycerts: [cert], use_agent: false) { |ssh| ssh.exec!("echo certified") }
        without = begin
          start_with(lib, keys: [key], use_agent: false) { |ssh| ssh.exec!("echo in") }
        rescue lib::AuthenticationFailed => e
          SideBySide.error_name(e)
        end
        [with, without]
      end
      assert_equal ["certified\n", "AuthenticationFailed"], r
    end
  end
end
