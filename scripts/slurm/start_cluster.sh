#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this Debian machine (run as root, no systemd needed):
# munged, MariaDB + slurmdbd (job accounting, so `sacct` sees every finished/failed/killed job),
# slurmctld and slurmd, all in the background. Idempotent: a cluster that already answers with
# an idle node returns at once. See README.md beside this file.
#
# Usage: start_cluster.sh [--no-accounting]   (--no-accounting is SLURM_ACCOUNTING=none)
#
# Environment (all optional):
#   SLURM_ACCOUNTING=slurmdbd|none   slurmdbd (default): MariaDB + slurmdbd; none: no database,
#                                    finished jobs only in a jobcomp/filetxt file (sacct sees none),
#                                    as on many small clusters. Switching restarts slurmctld and slurmd.
#   SLURM_LOG_DIR=/var/log/slurm     daemon logs
#   SLURM_START_TIMEOUT=60           seconds to wait for each daemon / the idle node
#   SLURM_PROCTRACK=proctrack/pgid   proctrack plugin (proctrack/linuxproc also works here)
#   SLURM_CRED_EXPIRE=15             step credential lifetime = how long a requeued job waits
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

ACCOUNTING=${SLURM_ACCOUNTING:-slurmdbd}
for arg in "$@"; do
  case $arg in
    --no-accounting) ACCOUNTING=none ;;
    --accounting) ACCOUNTING=slurmdbd ;;
    *) echo "start_cluster: ERROR: unknown argument '$arg' (usage: start_cluster.sh [--no-accounting])" >&2; exit 2 ;;
  esac
done
LOG_DIR=${SLURM_LOG_DIR:-/var/log/slurm}
WAIT_S=${SLURM_START_TIMEOUT:-60}
CLUSTER=optlab            # fixed: slurmctld refuses a state folder written under another name
PARTITION=debug
CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm        # slurm pid files
MARK_DIR=/run/optlab-slurm  # one file per daemon this script started, for stop_cluster.sh
STATE_DIR=/var/lib/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
NODE=$(hostname -s)
T0=$(date +%s.%N)

say() { echo "start_cluster: $*"; }
# die MESSAGE [LOG...]: one clear line, then the tail of the first named log that is not empty
# (a daemon's .out has its stderr: with -D that is its log plus what came before the log opened).
die() {
  local msg=$1; shift
  echo "start_cluster: ERROR: $msg" >&2
  local f
  for f in "$@"; do
    if [[ -s $f ]]; then
      echo "---- last lines of $f (all logs: $LOG_DIR) ----" >&2
      tail -n 20 "$f" >&2
      break
    fi
  done
  exit 1
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# wait_for SECONDS CMD...: poll CMD (each try bounded to 5 s) every 0.5 s until it succeeds.
wait_for() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  until timeout 5 "$@" >/dev/null 2>&1; do
    (( $(date +%s) < end )) || return 1
    sleep 0.5
  done
}
# live PID: PID is a process that has not exited (a killed daemon can linger as a zombie here
# until init reaps it, and a zombie keeps its /proc entry and name).
live() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}
# alive PIDFILE NAME: the pid in PIDFILE is a live process called NAME.
alive() {
  local pid
  [[ -r $1 ]] && pid=$(tr -dc 0-9 <"$1") && [[ -n $pid ]] &&
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && live "$pid"
}
# launch NAME LOGBASE CMD...: start CMD detached from this shell (own session, no inherited
# stdin/stdout/stderr, so CI's pipes close when this script ends) and remember that we did.
launch() {
  local name=$1 out=$2; shift 2
  setsid -f "$@" </dev/null >>"$out" 2>&1
  mkdir -p "$MARK_DIR"
  touch "$MARK_DIR/$name"
}
stop_pidfile() {  # stop_pidfile PIDFILE NAME: TERM, wait up to 15 s, then KILL
  alive "$1" "$2" || return 0
  local pid; pid=$(tr -dc 0-9 <"$1")
  kill "$pid" 2>/dev/null || true
  local end=$(( $(date +%s) + 15 ))
  while live "$pid" && (( $(date +%s) < end )); do sleep 0.2; done
  live "$pid" && kill -9 "$pid" 2>/dev/null || true
}
node_state() { timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }
summary() {
  local cpus mem
  cpus=$(timeout 10 sinfo -h -n "$NODE" -o %c 2>/dev/null | head -n1)
  mem=$(timeout 10 sinfo -h -n "$NODE" -o %m 2>/dev/null | head -n1)
  say "$1: node=$NODE cpus=$cpus memory=${mem}MB partition=$PARTITION" \
      "accounting=$([[ $ACCOUNTING == slurmdbd ]] && echo "on (slurmdbd, cluster $CLUSTER)" || echo "off (jobcomp/filetxt)")" \
      "logs=$LOG_DIR ($(elapsed)s)"
}

# render_slurm_conf: the slurm.conf for this machine, on stdout.
render_slurm_conf() {
  local cpus mem_total real_mem topo hw s c t acct
  cpus=$(nproc)
  mem_total=$(free -m | awk '/^Mem:/ { print $2 }')
  # A bit under the machine's memory (5%, at least 256 MB): slurmd drains a node whose
  # RealMemory is above what it measures.
  real_mem=$(( mem_total - ( mem_total / 20 > 256 ? mem_total / 20 : 256 ) ))
  # Sockets/cores/threads as slurmd sees them, where they add up to nproc; otherwise CPUs alone.
  topo=""
  hw=$(slurmd -C 2>/dev/null | head -n1 || true)
  s=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
  c=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
  t=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
  if [[ -n $s && -n $c && -n $t ]] && (( s * c * t == cpus )); then
    topo=" Sockets=$s CoresPerSocket=$c ThreadsPerCore=$t"
  fi
  if [[ $ACCOUNTING == slurmdbd ]]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none"
  else
    acct="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.txt"
  fi
  cat <<EOF
# One-node test cluster, written by scripts/slurm/start_cluster.sh (see README.md there).
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire+1 s before it may start again (default 120 s).
AuthInfo=cred_expire=${SLURM_CRED_EXPIRE:-15}
MpiDefault=none
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
MailProg=/bin/true
# Jobs share the node by cores; memory is not a consumable (with CR_Core_Memory a job
# without --mem takes the whole node).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No cgroups (they would move job processes out of this machine's own cgroups).
# proctrack/pgid: a step's leftover processes are found by process group, so the children of
# a task that was killed outright die with the step (proctrack/linuxproc follows parent pids
# and loses them once they are re-parented to init). task/affinity pins each task to its
# CPUs (torch sees -c threads).
ProctrackType=${SLURM_PROCTRACK:-proctrack/pgid}
TaskPlugin=task/affinity
# Start a batch job at submit (default: up to 3 s later); look at jobs that became eligible
# (a requeued job, --begin) every 2 s (default 60 s main loop, 30 s backfill).
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=5
# A request the node can never meet fails at submit instead of pending forever.
EnforcePartLimits=ALL
# A node that was down comes back as soon as its slurmd registers.
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
$acct
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus$topo RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"
[[ $ACCOUNTING == slurmdbd || $ACCOUNTING == none ]] || die "SLURM_ACCOUNTING must be slurmdbd or none, not '$ACCOUNTING'"

# ---- 0. already up? ---------------------------------------------------------------------------
# (Same slurm.conf as this run would write, daemons alive, then sinfo: with slurmctld down,
# sinfo itself retries for about 10 s.)
if [[ -f $CONF_DIR/slurm.conf ]] && [[ $(render_slurm_conf) == "$(cat "$CONF_DIR/slurm.conf")" ]] &&
   alive "$RUN_DIR/slurmctld.pid" slurmctld && alive "$RUN_DIR/slurmd.pid" slurmd &&
   { [[ $ACCOUNTING == none ]] || alive "$RUN_DIR/slurmdbd.pid" slurmdbd; }; then
  state=$(node_state || true)
  case $state in
    idle | mixed | allocated | completing)
      if [[ $ACCOUNTING == none ]] || timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        summary "already running (node $state)"
        exit 0
      fi ;;
  esac
fi

mkdir -p "$LOG_DIR"

# ---- 1. packages -------------------------------------------------------------------------------
pkgs=(munge slurm-client slurmctld slurmd)
[[ $ACCOUNTING == slurmdbd ]] && pkgs+=(slurmdbd mariadb-server mariadb-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  say "installing ${missing[*]} (log: $LOG_DIR/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting daemons themselves: this script starts
  # (and stop_cluster.sh stops) them. Only if no policy is in place already.
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  rc=0
  {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
  (( policy_added )) && rm -f /usr/sbin/policy-rc.d
  (( rc == 0 )) || die "apt-get install ${missing[*]} failed (exit $rc)" "$LOG_DIR/apt.log"
fi
id slurm >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slurm

# ---- 2. munge ----------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  say "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
if ! munge_ok >/dev/null 2>&1; then
  # --force: start even if a dead munged left its socket behind. munged forks into the background.
  runuser -u munge -- /usr/sbin/munged --force </dev/null >>"$LOG_DIR/munged.out" 2>&1 ||
    die "munged did not start" "$LOG_DIR/munged.out" /var/log/munge/munged.log
  mkdir -p "$MARK_DIR" && touch "$MARK_DIR/munged"
  wait_for "$WAIT_S" bash -c 'munge -n </dev/null | unmunge' ||
    die "munged does not answer (munge -n | unmunge)" /var/log/munge/munged.log
fi

# ---- 3. folders --------------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR"
install -d -o slurm -g slurm -m 0755 "$RUN_DIR" "$LOG_DIR" "$STATE_DIR"
install -d -o slurm -g slurm -m 0700 "$STATE_DIR/slurmctld"
install -d -o root -g root -m 0755 "$STATE_DIR/slurmd"

# write_conf FILE OWNER MODE: FILE gets stdin; returns 0 if its content changed.
write_conf() {
  local file=$1 owner=$2 mode=$3 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file"
}

# ---- 4. accounting: MariaDB + slurmdbd ----------------------------------------------------------
if [[ $ACCOUNTING == slurmdbd ]]; then
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  touch "$LOG_DIR/mariadb.log" && chown mysql:mysql "$LOG_DIR/mariadb.log"
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    say "initialising the MariaDB data folder"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$LOG_DIR/mariadb.log" 2>&1 ||
      die "mariadb-install-db failed" "$LOG_DIR/mariadb.log"
  fi
  if ! timeout 5 mariadb-admin ping --silent >/dev/null 2>&1; then
    # Unix socket and 127.0.0.1 only; slurm's recommended lock timeout; a small buffer pool.
    launch mariadbd "$LOG_DIR/mariadb.log" /usr/sbin/mariadbd --user=mysql \
      --bind-address=127.0.0.1 --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
      --log-error="$LOG_DIR/mariadb.log" --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900
    wait_for "$WAIT_S" mariadb-admin ping --silent || die "MariaDB did not start within ${WAIT_S}s" "$LOG_DIR/mariadb.log"
  fi
  # The database password: kept from an earlier run's slurmdbd.conf, else a new random one.
  db_pass=$(sed -n 's/^StoragePass=//p' "$CONF_DIR/slurmdbd.conf" 2>/dev/null | head -n1 || true)
  [[ -n $db_pass ]] || db_pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  mariadb -u root <<SQL || die "could not create the accounting database and user" "$LOG_DIR/mariadb.log"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$db_pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
  dbd_changed=0
  write_conf "$CONF_DIR/slurmdbd.conf" slurm:slurm 0600 <<EOF && dbd_changed=1
# Written by scripts/slurm/start_cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$db_pass
StorageLoc=$DB_NAME
EOF
  (( dbd_changed )) && stop_pidfile "$RUN_DIR/slurmdbd.pid" slurmdbd
  if ! alive "$RUN_DIR/slurmdbd.pid" slurmdbd; then
    launch slurmdbd "$LOG_DIR/slurmdbd.out" /usr/sbin/slurmdbd -D
  fi
  # sacctmgr only needs slurmdbd (it reads slurm.conf for the host, so write that first).
fi

# ---- 5. slurm.conf -----------------------------------------------------------------------------
conf_changed=0
render_slurm_conf | write_conf "$CONF_DIR/slurm.conf" root:root 0644 && conf_changed=1

if [[ $ACCOUNTING == slurmdbd ]]; then
  wait_for "$WAIT_S" sacctmgr -n -P list cluster ||
    die "slurmdbd does not answer within ${WAIT_S}s (sacctmgr list cluster)" "$LOG_DIR/slurmdbd.out" "$LOG_DIR/slurmdbd.log"
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    out=$(timeout 20 sacctmgr -i add cluster "$CLUSTER" 2>&1) ||
      die "sacctmgr -i add cluster $CLUSTER failed: $(tr '\n' ' ' <<<"$out")" "$LOG_DIR/slurmdbd.log"
  fi
fi

# ---- 6. slurmctld and slurmd --------------------------------------------------------------------
if (( conf_changed )); then  # a new slurm.conf (other CPUs/memory/accounting): restart both
  stop_pidfile "$RUN_DIR/slurmd.pid" slurmd
  stop_pidfile "$RUN_DIR/slurmctld.pid" slurmctld
fi
launched_ctld=0
if ! alive "$RUN_DIR/slurmctld.pid" slurmctld; then
  launched_ctld=1
  # -i: a damaged state file (e.g. after a kill -9) is skipped instead of stopping slurmctld.
  launch slurmctld "$LOG_DIR/slurmctld.out" /usr/sbin/slurmctld -D -i
fi
wait_for "$WAIT_S" scontrol ping ||
  die "slurmctld does not answer within ${WAIT_S}s" "$LOG_DIR/slurmctld.out" "$LOG_DIR/slurmctld.log"
slurmd_since=0
if ! alive "$RUN_DIR/slurmd.pid" slurmd; then
  slurmd_since=$(( $(date +%s) - 1 ))
  launch slurmd "$LOG_DIR/slurmd.out" /usr/sbin/slurmd -D
fi
# After a restart slurmctld shows the node as it saved it (often "idle") before the new slurmd
# has registered: only a registration newer than our launch counts.
registered() {
  (( slurmd_since == 0 )) && return 0
  local t
  t=$(timeout 10 scontrol show node -o "$NODE" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2)
  [[ -n $t && $t != None ]] && (( $(date -d "$t" +%s 2>/dev/null || echo 0) >= slurmd_since ))
}

# ---- 7. wait for the idle node --------------------------------------------------------------------
end=$(( $(date +%s) + WAIT_S ))
resumed=0
while :; do
  state=$(node_state || true)
  case $state in
    idle | mixed | allocated | completing) registered && break ;;
    down* | drain* | fail*)
      # ReturnToService=2 clears a plain DOWN; an earlier drain (e.g. a killed slurmd) needs this.
      if (( !resumed )) && alive "$RUN_DIR/slurmd.pid" slurmd; then
        timeout 10 scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        resumed=1
      fi ;;
  esac
  if ! alive "$RUN_DIR/slurmd.pid" slurmd && (( $(date +%s) > end - WAIT_S + 5 )); then
    die "slurmd exited during start-up" "$LOG_DIR/slurmd.out" "$LOG_DIR/slurmd.log"
  fi
  if (( $(date +%s) >= end )); then
    reason=$(timeout 10 sinfo -h -n "$NODE" -o '%T %E' 2>/dev/null | head -n1)
    die "node $NODE not idle within ${WAIT_S}s (sinfo: ${reason:-no answer})" "$LOG_DIR/slurmd.out" "$LOG_DIR/slurmctld.out"
  fi
  sleep 0.5
done
# ---- 8. jobs that died with the machine -----------------------------------------------------------
# slurmctld restores jobs that were running when it stopped. A job whose processes are gone
# (the machine or its session was stopped, or someone killed slurmstepd) would otherwise stay
# RUNNING and hold its CPUs forever (seen: > 13 min, across restarts). Live jobs keep their
# slurmstepd across a slurmd restart, so: a job that started before this script and has no
# slurmstepd is cancelled.
if (( slurmd_since || launched_ctld )); then
  steps=$(pgrep -a -x slurmstepd 2>/dev/null || true)
  stale=()
  while read -r jid start; do
    [[ -n $jid ]] || continue
    t=$(date -d "$start" +%s 2>/dev/null || echo 0)
    (( t > 0 && t < ${T0%.*} )) || continue
    grep -q "\[$jid\." <<<"$steps" || stale+=("$jid")
  done < <(timeout 10 squeue -h -t R,S -w "$NODE" -o '%A %S' 2>/dev/null || true)
  if (( ${#stale[@]} )); then
    timeout 20 scancel "${stale[@]}" 2>/dev/null || true
    say "cancelled ${#stale[@]} job(s) left RUNNING from before this start but without processes: ${stale[*]}"
  fi
fi
summary "cluster up"
