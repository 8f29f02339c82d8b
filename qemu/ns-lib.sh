# shellcheck shell=bash
# Shared by the PID 1 scripts of the harness's namespaces (qemu/ns-init.sh, qemu/storm-ns.sh),
# which source it after declaring their UR_* keys with defaults.

# ns_load_spec WHO SPEC: reads SPEC's KEY=VALUE lines (qemu/lib.sh's ur_spec writes them, quoted
# for bash). A key the script did not declare is refused, naming WHO; then SPEC is sourced.
ns_load_spec() {
  local who=$1 spec=$2 line key
  while IFS= read -r line; do
    key=${line%%=*}
    [[ $key =~ ^UR_[A-Z_]+$ && -v $key ]] || { echo "$who: $spec: unknown key in: $line" >&2; exit 1; }
  done <"$spec"
  # shellcheck source=/dev/null # written by ur_spec, checked above
  . "$spec"
}

# note WHAT: a timing line in the run directory's "timings", ms since this file was sourced.
ns_t_start=${EPOCHREALTIME/./}
note() { echo "+$(((${EPOCHREALTIME/./} - ns_t_start) / 1000)) ms: $*" >>"$UR_DIR/timings"; }
