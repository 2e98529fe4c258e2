#!/usr/bin/env bash
# docs/launch/slurm.sbatch on a real single-node SLURM cluster on this machine: its time-limit
# signal, the checkpoint, the job requeuing itself, the resume, one log for every attempt.
#
#   sudo bash tests/slurm_single_node.sh [--keep]
#
# Installs Debian's slurmctld, slurmd and munge if missing (root; apt-get), starts them on
# this host only (a cluster of one node with this machine's cores), and submits the script
# with a time limit of 3 minutes whose signal comes 90 s before it, for a T2 run of 2 tasks
# (--distributed=auto, one CPU device each) that needs more than one attempt. Prints the
# job's log and its state as each attempt ends. Not part of the pytest suite: minutes of
# wall time and a system service. --keep leaves the daemons running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=${1:-}
if [ "$(id -u)" != 0 ]; then echo "run as root (it starts SLURM's daemons)" >&2; exit 2; fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=cnnjax
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
stop_daemons() {
  if [ "$KEEP" != --keep ]; then
    scancel --user=root 2>/dev/null || true
    pkill -x slurmd || true; pkill -x slurmctld || true
  fi
}
trap stop_daemons EXIT
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 1
done
sinfo

WORK=$(mktemp -d /tmp/cnn_jax-slurm.XXXXXX)
export TFDS_DATA_DIR=${TFDS_DATA_DIR:-$(cd .. && pwd)/shared/data/tfds}
# The documented script, resized on the command line (sbatch's options override #SBATCH
# lines): one node, 2 tasks of one core, no GPU; its own run directory and log.
JOB=$(SHARED=$WORK sbatch --parsable --nodes=1 \
  --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --time=00:03:00 \
  --signal=TERM@90 --output="$WORK/slurm-%j.out" \
  --export=ALL,SHARED="$WORK",CNN_JAX_NO_TCMALLOC=1 \
  "$ROOT/docs/launch/slurm.sbatch" --config.train.num_epochs=8 \
  --config.train.batch_size=64 --config.train.pictures=none)
echo "job $JOB submitted at $(date -u +%H:%M:%S); its run: $WORK/runs/pool-slurm"
last=''
while true; do
  info=$(scontrol show job "$JOB" 2>/dev/null | tr ' ' '\n' \
    | grep -E '^(JobState|Restarts|RunTime)=' | tr '\n' ' ' || true)
  state=$(echo "$info" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  if [ "$state" != "$last" ]; then echo "$(date -u +%H:%M:%S) $info"; last=$state; fi
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|'') break;; esac
  sleep 2
done
echo "--- $WORK/slurm-$JOB.out (one log, every attempt):"
cat "$WORK/slurm-$JOB.out"
echo "--- jobcomp:"
grep "JobId=$JOB " /var/log/slurm/jobcomp.log || true
echo "--- results.json:"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ('status','steps')}, r['final']['test'].get('error'))" "$WORK/runs/pool-slurm/results.json"
