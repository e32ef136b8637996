require_relative "helper"
require "open3"
require "rbconfig"

# The gem as a user gets it: `gem build`, then `gem install` into a fresh
# GEM_HOME, finding libevssh through pkg-config (an evssh.pc that points at
# this build tree), then `ruby -revssh` with nothing of the source tree on
# the load path.
class TestGem < Minitest::Test
  ROOT = File.expand_path("..", __dir__)
  SRC = File.expand_path("../..", ROOT)

  def sh(env, *cmd, chdir:)
    out, st = Open3.capture2e(env, *cmd, chdir: chdir)
    assert st.success?, "#{cmd.join(' ')} failed:\n#{out}"
    out
  end

  def test_build_install_and_use
    skip "gem command not found" unless system("sh", "-c", "command -v gem >/dev/null")
    skip "pkg-config not found" unless system("sh", "-c", "command -v pkg-config >/dev/null")
    pc_in = File.join(File.dirname(EvSSHBuild::LIBDIR), "evssh.pc")
    skip "no evssh.pc in the build tree" unless File.exist?(pc_in)
    Dir.mktmpdir("evssh-gem-") do |tmp|
      # a copy: gem build writes the .gem beside the gemspec (the source
      # tree may be read-only)
      src = File.join(tmp, "src")
      FileUtils.mkdir_p(src)
      %w[lib ext evssh.gemspec README.md].each { |f| FileUtils.cp_r(File.join(ROOT, f), src) }
      clean = { "EVSSH_BUILDDIR" => nil, "EVSSH_DIR" => nil, "EVSSH_EXT_DIR" => nil, "RUBYLIB" => nil,
                "RUBYOPT" => nil }
      sh(clean, "gem", "build", "evssh.gemspec", chdir: src)
      gem = Dir[File.join(src, "evssh-*.gem")].first
      assert gem, "gem build made no .gem"
      # libevssh as pkg-config finds an installed one, here in the build tree
      pc_dir = File.join(tmp, "pkgconfig")
      FileUtils.mkdir_p(pc_dir)
      pc = File.read(pc_in).sub(/^libdir=.*$/, "libdir=#{EvSSHBuild::LIBDIR}")
                           .sub(/^includedir=.*$/, "includedir=#{File.join(SRC, 'include')}")
      File.write(File.join(pc_dir, "evssh.pc"), pc)
      home = File.join(tmp, "gems")
      env = clean.merge("PKG_CONFIG_PATH" => [pc_dir, ENV["PKG_CONFIG_PATH"]].compact.join(":"),
                        "GEM_HOME" => home, "GEM_PATH" => home)
      sh(env, "gem", "install", "--local", "--no-document", "--install-dir", home, gem, chdir: tmp)
      out = sh(env, RbConfig.ruby, "-revssh", "-e", "p EvSSH::VERSION", chdir: tmp)
      assert_equal "#{EvSSH::VERSION.inspect}\n", out
      where = sh(env, RbConfig.ruby, "-revssh", "-e", "puts $LOADED_FEATURES.grep(/evssh_ext/)", chdir: tmp)
      assert where.start_with?(home), "the extension came from #{where}"
      opts = { port: SSHD.port, keys: [SSHD.key], user_known_hosts_file: SSHD.known_hosts, verify_host_key: :always,
               config: false }
      one_line = "print EvSSH.start('127.0.0.1', #{SSHD.user.inspect}, #{opts.inspect}) { |s| s.exec!('echo installed-gem') }"
      assert_equal "installed-gem\n", sh(env, RbConfig.ruby, "-revssh", "-e", one_line, chdir: tmp)
    end
  end
end
