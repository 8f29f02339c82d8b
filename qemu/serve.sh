#!/usr/bin/env bash
# Runs a command next to one NFS server that outlives single boots: inside fresh namespaces,
# start rpcbind + ganesha exporting DIR (as qemu/boot.sh does per boot), run CMD there, stop the
# server when CMD ends and check that nothing survived. Inside CMD, boot with
# `qemu/boot.sh --nfs external ...`: every such boot then reaches this same server.
#
#   qemu/serve.sh --export DIR [--nfs v3|v4|none] [--dir RUNDIR] -- CMD [ARGS...]
#
# --nfs none starts no server: CMD gets the namespaces alone and runs its own (qemu/ceph.sh's
# ganesha heads).
# Exit status: CMD's, or 1 if a process of the namespace was left behind, 2 on setup errors.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

export_dir="" nfs=v3 dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --export) export_dir=$2; shift 2 ;;
    --nfs) nfs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: qemu/serve.sh --export DIR [--nfs v3|v4|none] [--dir RUNDIR] -- CMD [ARGS...]" >&2
      exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "serve.sh: no command" >&2; exit 2; }
[ -d "$export_dir" ] || { echo "serve.sh: --export $export_dir is not a directory" >&2; exit 2; }
case $nfs in v3 | v4 | none) ;; *) echo "serve.sh: --nfs must be v3, v4 or none" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "serve.sh: needs root" >&2; exit 2; }
[ -n "$dir" ] || dir=$UR_OUT/serve/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$dir"

dir=$(realpath "$dir")
ur_spec "$dir/spec" UR_DIR="$dir" UR_NFS="$nfs" UR_EXPORT="$(realpath "$export_dir")"
trap 'ur_ns_stop' EXIT
ur_signal_traps ur_ns_stop
ur_ns_start --net --mount -- serve "$dir/spec" "$@"
rc=0
ur_ns_wait "" || rc=$?
mapfile -t left < <(ur_ns_leftovers)
if [ ${#left[@]} -gt 0 ]; then
  echo "serve.sh: processes left behind: ${left[*]}" >&2
  kill -KILL "${left[@]}" 2>/dev/null || true
  rc=1
fi
exit "$rc"
