# shellcheck shell=bash
# The e2e runner shared by tests/e2e.sh and tests/e2e-root.sh. A suite sources qemu/lib.sh and
# this file, sets what is listed below, defines its cases and fixtures, and ends with
# `e2e_main "$@"`:
#
#   OUT        the suite's output directory; case NAME runs in $OUT/NAME
#   CASES      "name|description" lines, run in this order by default
#   OPTIN      the same for cases run only when named (optional)
#   XFAIL      name -> a known, reported linuxrc bug in one line (optional, `declare -A`): that
#              case's failure is printed as "xfail" and does not fail the run; should it pass,
#              "XPASS" says the entry can go
#   ARCH       the nodes' architecture: amd64 (default) or arm64 (KDIR is then Debian's arm64
#              kernel; the suite's boots say --arch arm64 themselves)
#   fixtures   a function run once, after the case selection and the build (UR_TOOL, UR_LINUXRC
#              and KDIR are set), that builds what the cases boot
#   boot_fixtures  a function run by every `boot`: appends the suite's default arguments (after
#              --initrd "$IMG" --kernel-dir "$KDIR") to the array `args` (optional)
#   case_<name>  one function per case (dashes become underscores): calls `boot` and any extra
#              checks, returns non-zero on failure; `why` records the reason
#
# Usage of a suite: SUITE [--list] [CASE...]. Output: "== NAME: description", then "ok NAME
# (N s)", or "FAIL NAME (N s) log: CONSOLE" and its reasons indented; a summary; and the last
# line exactly "N passed, N failed", which CI reads. Exit status non-zero if any case failed.

# Checked in every boot: the kernel must never die, whatever linuxrc runs into.
ALWAYS_FORBID=('Kernel panic' 'BUG: ' 'Oops: ')
OPTIN=()
declare -A XFAIL=()
# The case being run, the file its failure reasons go to, and the current boot's directory: the
# runner sets RUN to $OUT/$CASE; a case with several boots sets it per boot (e.g. `local`).
CASE="" REASONS="" RUN=""

why() { echo "$*" >>"$REASONS"; }
console() { echo "$RUN/console.log"; }

# boot ARGS...: one qemu/boot.sh run into $RUN with the suite's fixtures; boot.sh's FAIL lines
# become reasons (prefixed by the boot's subdirectory when a case has several).
boot() {
  local rc=0 f sub=${RUN#"$OUT/$CASE"}
  local args=(--initrd "$IMG" --kernel-dir "$KDIR" --dir "$RUN" --log "$RUN/console.log")
  for f in "${ALWAYS_FORBID[@]}"; do args+=(--forbid "$f"); done
  ! declare -F boot_fixtures >/dev/null || boot_fixtures
  mkdir -p "$RUN"
  "$UR_QEMU/boot.sh" "${args[@]}" "$@" >"$RUN/boot.out" 2>&1 || rc=$?
  grep '^boot: FAIL: ' "$RUN/boot.out" | sed "s|^boot: FAIL: |${sub:+${sub#/}: }|" >>"$REASONS" || true
  [ "$rc" = 0 ] || why "qemu/boot.sh exited $rc; see $RUN/boot.out"
  return "$rc"
}

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

# describe NAME: the description of case NAME ("(opt-in) ..." for an OPTIN one).
# shellcheck disable=SC2153 # CASES is the suite's
describe() {
  local c
  for c in "${CASES[@]}"; do [ "${c%%|*}" != "$1" ] || { echo "${c#*|}"; return; }; done
  for c in ${OPTIN[@]+"${OPTIN[@]}"}; do [ "${c%%|*}" != "$1" ] || { echo "(opt-in) ${c#*|}"; return; }; done
}

# e2e_main [--list] [CASE...]: the suite's command line; see the top of this file.
# shellcheck disable=SC2153 # CASES is the suite's
e2e_main() {
  local names=() all=() c s w=0 selected passed=0 failed=0 xfailed=0 xpassed=0 t0 t_all
  for c in "${CASES[@]}"; do names+=("${c%%|*}"); done
  all=("${names[@]}")
  for c in ${OPTIN[@]+"${OPTIN[@]}"}; do all+=("${c%%|*}"); done
  if [ "${1:-}" = --list ]; then
    for s in "${all[@]}"; do [ ${#s} -le "$w" ] || w=${#s}; done
    for s in "${all[@]}"; do printf '%-*s %s\n' "$w" "$s" "$(describe "$s")"; done
    exit 0
  fi
  selected=("$@")
  [ ${#selected[@]} -gt 0 ] || selected=("${names[@]}")
  for s in "${selected[@]}"; do
    [[ " ${all[*]} " == *" $s "* ]] || ur_die "no case named $s (see --list)"
  done

  ur_bins
  if [ "${ARCH:-amd64}" = arm64 ]; then KDIR=$(ur_kernel_dir_arm64); else KDIR=$(ur_kernel_dir); fi
  mkdir -p "$OUT"
  fixtures

  # shellcheck disable=SC2317 # called by the trap
  on_signal() { echo "interrupted during $CASE" >&2; }
  ur_signal_traps on_signal
  t_all=$SECONDS
  for CASE in "${selected[@]}"; do
    RUN=$OUT/$CASE REASONS=$OUT/$CASE/reasons
    rm -rf "$RUN"
    mkdir -p "$RUN"
    : >"$REASONS"
    t0=$SECONDS
    echo "== $CASE: $(describe "$CASE")"
    if "case_${CASE//-/_}"; then
      if [ -n "${XFAIL[$CASE]:-}" ]; then
        echo "XPASS $CASE ($((SECONDS - t0)) s): fixed? take it out of XFAIL (${XFAIL[$CASE]})"
        xpassed=$((xpassed + 1))
      else
        echo "ok $CASE ($((SECONDS - t0)) s)"
      fi
      passed=$((passed + 1))
    elif [ -n "${XFAIL[$CASE]:-}" ]; then
      echo "xfail $CASE ($((SECONDS - t0)) s) known bug: ${XFAIL[$CASE]}; log: $(console)"
      sed 's/^/    /' "$REASONS"
      xfailed=$((xfailed + 1))
    else
      echo "FAIL $CASE ($((SECONDS - t0)) s) log: $(console)"
      sed 's/^/    /' "$REASONS"
      failed=$((failed + 1))
    fi
  done
  echo "(${#selected[@]} cases in $((SECONDS - t_all)) s; $xpassed passed unexpectedly," \
    "$xfailed known failures)"
  # CI reads this last line: exactly 'N passed, N failed'.
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
