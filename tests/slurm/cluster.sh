#!/usr/bin/env bash
# A one-node SLURM for the project's tests: munge, MariaDB + slurmdbd (accounting),
# slurmctld, slurmd with two fake GPUs. Idempotent; every daemon it starts is stopped by
# the PID it recorded, never by name.
#   tests/slurm/cluster.sh up     install (Debian packages) if needed, configure, start
#   tests/slurm/cluster.sh down   stop what `up` started
#   tests/slurm/cluster.sh status
set -euo pipefail

STATE=${NOISYKD_SLURM_DIR:-/var/tmp/noisykd-slurm}
CLUSTER=noisykd
ACCOUNT=noisykd
PARTITION=debug

log() { echo "slurm-test: $*" >&2; }
fail() {
    log "ERROR: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then log "last lines of $2:"; tail -n 30 "$2" >&2; fi
    exit 1
}

install_packages() {
    local missing=()
    for bin in slurmctld slurmd slurmdbd munged mariadbd sinfo; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing SLURM, munge and MariaDB (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
        slurmdbd mariadb-server >/dev/null
}

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

# A daemon this configuration started earlier (its own PID file names a live process of that
# name) is adopted instead of started twice; a stale PID file is removed, so that waiting for
# the new daemon's PID file does not succeed on the old one.
adopt_or_clear() {  # name, daemon's own pid file
    local name=$1 pidfile=$2 pid
    running "$name" && return 0
    if [ -s "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
            echo "$pid" > "$STATE/$name.pid"
            log "adopted running $name (pid $pid)"
            return 0
        fi
        rm -f "$pidfile"
    fi
    return 1
}

wait_for() {  # name, seconds, command...
    local name=$1 secs=$2; shift 2
    for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

write_config() {
    mkdir -p "$STATE"/{spool,state,log,run,dev,mysql} /etc/slurm
    [ -e "$STATE/dev/fakegpu0" ] || mknod "$STATE/dev/fakegpu0" c 1 3
    [ -e "$STATE/dev/fakegpu1" ] || mknod "$STATE/dev/fakegpu1" c 1 3
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
    cat > "$STATE/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=600
GresTypes=gpu
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:fake:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    cat > "$STATE/gres.conf" <<CONF
Name=gpu Type=fake File=$STATE/dev/fakegpu[0-1]
CONF
    cat > "$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$STATE/slurmdbd.conf"
    # The jobstep plugin clears SLURM_CONF before its inner srun: the config must be found at
    # the default path, so link it there.
    ln -sf "$STATE/slurm.conf" /etc/slurm/slurm.conf
    ln -sf "$STATE/gres.conf" /etc/slurm/gres.conf
    ln -sf "$STATE/slurmdbd.conf" /etc/slurm/slurmdbd.conf
}

start_munge() {
    adopt_or_clear munged /run/munge/munged.pid && return 0
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "a munged not started by this script is already running; using it"
        return 0
    fi
    mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
    su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" \
        || fail "munged did not start" /var/log/munge/munged.log
    wait_for munge 10 test -s /run/munge/munged.pid || fail "munged wrote no PID" /var/log/munge/munged.log
    cp /run/munge/munged.pid "$STATE/munged.pid"
}

start_mariadb() {
    adopt_or_clear mariadbd "$STATE/run/mariadbd.pid" && return 0
    if [ ! -d "$STATE/mysql/mysql" ]; then
        mariadb-install-db --user=root --datadir="$STATE/mysql" >"$STATE/log/mariadb-init.log" 2>&1 \
            || fail "MariaDB data folder could not be created" "$STATE/log/mariadb-init.log"
    fi
    rm -f "$STATE/run/mysqld.sock"
    mariadbd --user=root --datadir="$STATE/mysql" --socket="$STATE/run/mysqld.sock" \
        --pid-file="$STATE/run/mariadbd.pid" --bind-address=127.0.0.1 --port=3306 \
        --log-error="$STATE/log/mariadb.log" >/dev/null 2>&1 &
    echo $! > "$STATE/mariadbd.pid"
    wait_for mariadb 30 mariadb --socket="$STATE/run/mysqld.sock" -e "select 1" \
        || fail "MariaDB did not come up" "$STATE/log/mariadb.log"
    mariadb --socket="$STATE/run/mysqld.sock" -e "
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
        || fail "MariaDB user for slurmdbd could not be created" "$STATE/log/mariadb.log"
}

start_daemon() {  # name, log, command...
    local name=$1 logf=$2; shift 2
    adopt_or_clear "$name" "$STATE/run/$name.pid" && return 0
    "$@" || fail "$name did not start" "$logf"
    wait_for "$name" 15 test -s "$STATE/run/$name.pid" || fail "$name wrote no PID" "$logf"
    cp "$STATE/run/$name.pid" "$STATE/$name.pid"
}

up() {
    install_packages
    write_config
    start_munge
    start_mariadb
    start_daemon slurmdbd "$STATE/log/slurmdbd.log" slurmdbd
    wait_for slurmdbd 20 sacctmgr -n list cluster || fail "slurmdbd does not answer" "$STATE/log/slurmdbd.log"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    start_daemon slurmctld "$STATE/log/slurmctld.log" slurmctld
    start_daemon slurmd "$STATE/log/slurmd.log" slurmd
    wait_for node 30 sh -c "sinfo -h -o %T | grep -qx idle" \
        || { scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true; \
             wait_for node 10 sh -c "sinfo -h -o %T | grep -qx idle"; } \
        || fail "the node did not become idle ($(sinfo -h -o '%T %E' 2>&1))" "$STATE/log/slurmd.log"
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
    log "up: partition $PARTITION, account $ACCOUNT, $(nproc) CPUs, 2 fake GPUs"
}

down() {
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        if running "$name"; then
            local pid
            pid=$(cat "$STATE/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$STATE/$name.pid"
    done
    log "down"
}

status() {
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if running "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
    done
    sinfo 2>/dev/null || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
