#!/usr/bin/env bash
# Stop the daemons that start_cluster.sh started (best effort), newest first:
# slurmd, slurmctld, slurmdbd, MariaDB, munged. Each by its pid file, TERM then, after 20 s, KILL.
# Daemons that were already running before start_cluster.sh are left alone, unless --all.
# State (jobs, accounting database, munge key) stays on disk; start_cluster.sh resumes from it.
# Running jobs are not killed: their slurmstepd goes on and reports once the cluster is back
# (scancel them first for a clean stop).
set -uo pipefail

MARK_DIR=/run/optlab-slurm
all=0
[[ ${1:-} == --all ]] && all=1

# live PID: not exited (a zombie waiting for init to reap it counts as exited).
live() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}

# name comm pidfile
daemons=(
  "slurmd slurmd /run/slurm/slurmd.pid"
  "slurmctld slurmctld /run/slurm/slurmctld.pid"
  "slurmdbd slurmdbd /run/slurm/slurmdbd.pid"
  "mariadbd mariadbd /run/mysqld/mysqld.pid"
  "munged munged /run/munge/munged.pid"
)
seen=0
for d in "${daemons[@]}"; do
  read -r name comm pidfile <<<"$d"
  if (( !all )) && [[ ! -e $MARK_DIR/$name ]]; then
    continue
  fi
  seen=1
  rm -f "$MARK_DIR/$name"
  pid=$(tr -dc 0-9 <"$pidfile" 2>/dev/null || true)
  if [[ -z $pid || $(cat "/proc/$pid/comm" 2>/dev/null) != "$comm" ]] || ! live "$pid"; then
    echo "stop_cluster: $name not running"
    continue
  fi
  t0=$SECONDS
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do
    live "$pid" || break
    sleep 0.2
  done
  if live "$pid"; then
    kill -9 "$pid" 2>/dev/null
    echo "stop_cluster: $name (pid $pid) killed after 20 s"
  else
    echo "stop_cluster: $name (pid $pid) stopped ($((SECONDS - t0))s)"
  fi
done
(( seen )) || echo "stop_cluster: nothing that start_cluster.sh started is recorded in $MARK_DIR (--all stops them anyway)"
exit 0
