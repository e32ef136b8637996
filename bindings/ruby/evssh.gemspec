require_relative "lib/evssh/version"

Gem::Specification.new do |s|
  s.name = "evssh"
  s.version = EvSSH::VERSION
  s.summary = "Net::SSH's API over libevssh, an event-driven SSH-2 client library in C"
  s.description = "EvSSH gives Ruby programs Net::SSH's Session/Channel API (start, exec!, " \
                  "open_channel, loop, listen_to, global requests) on top of the evssh C library, " \
                  "so a Net::SSH script ports by changing its require and its constant."
  s.authors = ["evssh authors"]
  s.license = "MIT"
  s.files = Dir["lib/**/*.rb", "ext/**/*.{c,h,rb}", "README.md"]
  s.extensions = ["ext/evssh/extconf.rb"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 2.7"
  s.add_development_dependency "minitest", ">= 5"
end
