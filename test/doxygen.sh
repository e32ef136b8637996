#!/bin/sh
# make check: the API reference builds without a single doxygen warning.
# Runs docs/Doxyfile (what `make docs` runs) with WARN_AS_ERROR=YES into a
# scratch folder, so an undocumented public function, type or callback in
# include/, a broken \ref or a bad command in a guide fails the suite. 77
# (skipped) when configure found no doxygen.
if [ -z "${DOXYGEN:-}" ] || ! command -v "$DOXYGEN" >/dev/null 2>&1; then
  echo "SKIP: doxygen not found by configure (Debian package doxygen); the API reference is not checked"
  exit 77
fi
out=test/doxygen.tmp
rm -rf "$out" && mkdir -p "$out" || exit 1
# later settings win: the checked file plus two overrides
{ cat "${EVSSH_DOXYFILE:?}"; echo "OUTPUT_DIRECTORY = $PWD/$out"; echo "WARN_AS_ERROR = FAIL_ON_WARNINGS"; } >"$out/Doxyfile"
if ! "$DOXYGEN" "$out/Doxyfile" >"$out/doxygen.out" 2>&1; then
  cat "$out/doxygen.out"
  echo "FAIL: doxygen warned (above); fix the comment or the guide it names"
  exit 1
fi
if [ -s "$out/doxygen.out" ]; then
  cat "$out/doxygen.out"
  echo "FAIL: doxygen printed the above"
  exit 1
fi
pages=$(ls "$out/html" | grep -c '\.html$')
echo "PASS: the API reference built without warnings ($pages HTML pages)"
rm -rf "$out"
