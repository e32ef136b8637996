#!/bin/sh
# make check: the layer rule, checked on the objects just built (see
# layers.py): no call cycle among the library's source files.
dir="${EVSSH_BUILDDIR:-.}/src"
if ! command -v python3 >/dev/null 2>&1 || ! command -v nm >/dev/null 2>&1; then
  echo "SKIP: python3 and nm are needed for the layer check"
  exit 77
fi
exec python3 "${EVSSH_SRCDIR:?}/test/layers.py" --dir "$dir"
