#!/bin/sh
# make check: the Ruby binding's own suite (bindings/ruby/test/run.rb), built
# against the library this tree just built. Skipped (77) in the sanitizer
# build, whose instrumented library cannot be loaded into a plain ruby, and
# when ruby's development files are missing.
if [ "${EVSSH_SANITIZERS:-no}" = yes ]; then
  echo "SKIP: the sanitizer build's library cannot load into an uninstrumented ruby"
  exit 77
fi
if ! ruby -rmkmf -e1 >/dev/null 2>&1; then
  echo "SKIP: ruby with mkmf (Debian ruby-dev) not found"
  exit 77
fi
exec ruby "${EVSSH_SRCDIR:?}/bindings/ruby/test/run.rb"
