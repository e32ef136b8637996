# Builds ext/evssh into tmp/ext (out of the source directory) with mkmf and
# make, rebuilding when a source or the library changed (by content). Returns
# the build directory; `ruby test/build.rb` just builds.
require "fileutils"
require "rbconfig"
require "digest"

module EvSSHBuild
  ROOT = File.expand_path("..", __dir__)
  EXT = File.join(ROOT, "ext", "evssh")
  # objects go to the build tree when make check says where it is (the
  # source tree may be read-only, as in make distcheck)
  OUT = ENV["EVSSH_BUILDDIR"].to_s.empty? ? File.join(ROOT, "tmp", "ext")
                                          : File.join(ENV["EVSSH_BUILDDIR"], "ruby-ext")
  LIBDIR = ENV["EVSSH_BUILDDIR"].to_s.empty? ? File.expand_path("../../.libs", ROOT)
                                             : File.join(ENV["EVSSH_BUILDDIR"], ".libs")

  def self.build!(quiet: true)
    # a prebuilt extension (e.g. an -fsanitize build) instead of tmp/ext
    return ENV["EVSSH_EXT_DIR"] if ENV["EVSSH_EXT_DIR"] && !ENV["EVSSH_EXT_DIR"].empty?
    FileUtils.mkdir_p(OUT)
    so = File.join(OUT, "evssh_ext.#{RbConfig::CONFIG['DLEXT']}")
    inputs = (Dir[File.join(EXT, "*")] + Dir[File.join(LIBDIR, "libevssh.so*")] +
              Dir[File.expand_path("../../include/evssh.h", ROOT)]).sort
    # by content, not mtime: a checkout or copy can make an old object look new
    digest = Digest::SHA256.new
    inputs.each { |f| digest << f << (File.file?(f) ? File.binread(f) : "") }
    stamp = File.join(OUT, "inputs-sha256.log")
    return OUT if File.exist?(so) && File.exist?(stamp) && File.read(stamp) == digest.hexdigest
    log = File.join(OUT, "build.log")
    # extconf's feature checks change the compile flags, which make does not
    # see: objects from an earlier configuration must not survive
    FileUtils.rm_f(Dir[File.join(OUT, "*.o")] + [so])
    Dir.chdir(OUT) do
      ok = system(RbConfig.ruby, File.join(EXT, "extconf.rb"), out: log, err: [:child, :out]) &&
           system("make", "-s", "V=0", out: [log, "a"], err: [:child, :out])
      unless ok
        warn File.read(log)
        abort "building the evssh extension failed (log: #{log})"
      end
      warn File.read(log) unless quiet
    end
    File.write(stamp, digest.hexdigest)
    OUT
  end
end

if $PROGRAM_NAME == __FILE__
  puts EvSSHBuild.build!(quiet: false)
end
