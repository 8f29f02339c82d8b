# shellcheck shell=bash
# Helpers shared by the e2e runners (tests/e2e.sh, tests/e2e-root.sh). The runner provides
# `console` (the current boot's console log), `why` (record a failure reason), $OUT and $CASE.

# within FROM-ERE TO-ERE SECONDS [AT-LEAST]: the kernel timestamps of the first lines matching
# FROM and TO are at most SECONDS (and at least AT-LEAST, default 0) apart, in that order. The
# gap is also logged to the case's "gaps" file.
within() {
  local a b d
  a=$(ur_ktime "$1" "$(console)") b=$(ur_ktime "$2" "$(console)")
  if [ -z "$a" ] || [ -z "$b" ]; then
    why "no timestamped line for '$1' or '$2'"
    return 1
  fi
  d=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
  echo "$d s from '$1' to '$2' (bounds ${4:-0}..$3 s)" >>"$OUT/$CASE/gaps"
  awk -v d="$d" -v s="$3" -v m="${4:-0}" 'BEGIN { exit !(d >= m && d <= s) }' && return 0
  why "'$2' came $d s after '$1'; bounds ${4:-0}..$3 s"
  return 1
}
