require_relative "helper"
require "open3"
require "rbconfig"

# Each script in netssh_scripts/ is a Net::SSH program. It runs as is under
# net-ssh 7 and, with only the require and the constant changed, under
# evssh, against the same sshd; the outputs must be identical.
class TestNetSSHCompat < Minitest::Test
  SCRIPTS = Dir[File.join(__dir__, "netssh_scripts", "*.rb")].sort

  def self.netssh_available?
    system(RbConfig.ruby, "-e", 'require "net/ssh"', out: File::NULL, err: File::NULL)
  end

  def run_script(code)
    env = { "SSH_PORT" => SSHD.port.to_s, "SSH_USER" => SSHD.user, "SSH_KEY" => SSHD.key,
            "SSH_KNOWN_HOSTS" => SSHD.known_hosts }
    incs = ["-I", File.expand_path("../lib", __dir__), "-I", EvSSHBuild::OUT]
    out, err, st = Open3.capture3(env, RbConfig.ruby, *incs, "-e", code)
    [out, err, st]
  end

  def self.evssh_version(code)
    code.sub(%(require "net/ssh"), %(require "evssh")).gsub("Net::SSH", "EvSSH")
  end

  SCRIPTS.each do |path|
    define_method("test_#{File.basename(path, '.rb')}") do
      skip "net-ssh not installed (Debian: ruby-net-ssh)" unless TestNetSSHCompat.netssh_available?
      code = File.read(path)
      ported = TestNetSSHCompat.evssh_version(code)
      refute_includes code, "EvSSH"
      assert_equal code, ported.sub(%(require "evssh"), %(require "net/ssh")).gsub("EvSSH", "Net::SSH"),
                   "only the require and the constant differ"
      ref, ref_err, ref_st = run_script(code)
      assert ref_st.success?, "net-ssh run failed: #{ref_err}"
      got, got_err, got_st = run_script(ported)
      assert got_st.success?, "evssh run failed: #{got_err}"
      refute_empty ref
      assert_equal ref, got
    end
  end
end
