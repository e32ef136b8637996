# The one command for the gem: build the extension and run every test.
#   ruby bindings/ruby/test/run.rb [-v] [-n /pattern/]
require_relative "build"
EvSSHBuild.build!
Dir[File.join(__dir__, "test_*.rb")].sort.each { |f| require f }
