require_relative "lib/evssh/version"

Gem::Specification.new do |s|
  s.name = "evssh"
  s.version = EvSSH::VERSION
  s.summary = "Net::SSH's API over libevssh, an event-driven SSH-2 client library in C"
  s.description = "EvSSH is Net::SSH 7's public API (start, exec!, open_channel, loop, listen_to, " \
                  "global requests, known hosts, verifiers, proxies, the agent) on top of the evssh C library: " \
                  "a Net::SSH script ports by changing its require and its constant, and libraries built on " \
                  "Net::SSH (net-scp, net-sftp, ...) run on EvSSH sessions. Needs libevssh (pkg-config evssh)."
  s.authors = ["evssh authors"]
  s.license = "MIT"
  s.homepage = "https://example.invalid/evssh"
  s.metadata = { "rubygems_mfa_required" => "true" }
  s.files = Dir.chdir(__dir__) { Dir["lib/**/*.rb", "ext/**/*.{c,h,rb}", "README.md"] }
  s.extensions = ["ext/evssh/extconf.rb"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 2.7"
  s.add_development_dependency "minitest", ">= 5"
end
