#!/usr/bin/env bash
# Fails when any FILE needs a glibc newer than MAX, read from the versioned symbols it imports
# (objdump -T: "GLIBC_2.36 arc4random"), so what is checked is the linked result, not the build
# flags' intent. Prints each file's newest glibc version and, for a file over MAX, the symbols
# that need more.
#
#   bash tools/check_glibc.sh 2.35 gpu_bundle/bin/* gpu_bundle/lib/*
#
# 2.35 is Ubuntu 22.04's glibc, the oldest a GPU machine is expected to run.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: check_glibc.sh MAX_VERSION FILE..." >&2; exit 2; }
max=$1
shift
newer() {  # newer A B: whether version A > version B
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$1" ]
}
fail=0
for f in "$@"; do
  [ -f "$f" ] || { echo "check_glibc: $f: no such file" >&2; fail=1; continue; }
  syms=$(objdump -T "$f" 2>/dev/null | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+\)?[[:space:]]+[^[:space:]]+$' |
    sed -E 's/^GLIBC_([0-9.]+)\)?[[:space:]]+/\1 /' || true)
  if [ -z "$syms" ]; then
    echo "check_glibc: $(basename "$f"): no versioned glibc symbols"
    continue
  fi
  top=$(cut -d' ' -f1 <<< "$syms" | sort -uV | tail -n 1)
  if newer "$top" "$max"; then
    over=$(while read -r v s; do newer "$v" "$max" && echo "$s@GLIBC_$v"; done <<< "$syms" |
      sort -u | tr '\n' ' ' || true)
    echo "check_glibc: $(basename "$f"): needs glibc $top > $max: $over" >&2
    fail=1
  else
    echo "check_glibc: $(basename "$f"): glibc $top (<= $max)"
  fi
done
exit $fail
