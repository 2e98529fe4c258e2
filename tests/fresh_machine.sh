#!/usr/bin/env bash
# The README's two set-up commands, run as a new user would: a fresh clone of this repository's
# committed HEAD in a temporary folder (../shared beside it), a fresh virtual environment, an
# empty home (so no pip, dataset, layer or compilation cache), and each command exactly as the
# README writes it. Prints each command's time, exit status and pytest's summary line.
#
#   bash tests/fresh_machine.sh                 # both commands
#   bash tests/fresh_machine.sh --tests         # only the test command
#   bash tests/fresh_machine.sh --tests --busy  # the tests with a 2-worker search beside them
#   bash tests/fresh_machine.sh --keep          # keep the temporary folder for a look
#
# What a developer installed by hand is not hidden from it (a Debian package stays on the
# machine): run it where that package is absent, or remove it first. For tcmalloc,
# `apt-get remove libtcmalloc-minimal4` makes this machine a fresh one again.
set -uo pipefail

which=both busy=0 keep=0
for arg in "$@"; do
  case "$arg" in
    --tests) which=tests ;;
    --run) which=run ;;
    --busy) busy=1 ;;
    --keep) keep=1 ;;
    *) echo "error: unknown argument $arg; allowed: --tests, --run, --busy, --keep" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$repo/.." && pwd)/shared"
[ -d "$shared/data" ] || { echo "error: $shared/data not found (../shared beside the repository)" >&2; exit 2; }
python="${PYTHON:-python3}"

root="$(mktemp -d /tmp/cnn_jax-fresh.XXXXXX)"
cleanup() {
  [ -n "${busy_pid:-}" ] && kill -- "-$busy_pid" 2>/dev/null
  if [ "$keep" = 1 ]; then echo "kept: $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT
git clone --quiet "$repo" "$root/main"
ln -s "$shared" "$root/shared"
mkdir "$root/home"
"$python" -m venv "$root/venv"
echo "fresh clone of $(git -C "$repo" rev-parse --short HEAD) in $root/main;" \
  "$("$python" --version); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"

# The two commands, read from the README so that this checks what a user copies.
mapfile -t commands < <(grep -E '^    pip install -e .* && ' "$repo/README.md")
[ "${#commands[@]}" = 2 ] || { echo "error: the README no longer has its two 'pip install -e ... && ...' commands" >&2; exit 2; }

run_in_fresh_env() {  # a login-free shell: the venv first on PATH, an empty home
  env -i PATH="$root/venv/bin:/usr/local/bin:/usr/bin:/bin" HOME="$root/home" \
    LANG=C.UTF-8 ${CI:+CI=$CI} bash -c "cd '$root/main' && $1"
}

status=0
for i in 0 1; do
  [ "$which" = tests ] && [ "$i" = 0 ] && continue
  [ "$which" = run ] && [ "$i" = 1 ] && continue
  command="${commands[$i]#    }"
  if [ "$i" = 1 ] && [ "$busy" = 1 ]; then
    # A 2-worker search on the real model shares the 2 cores with the whole test run.
    run_in_fresh_env "pip install -q -e . >/dev/null" || exit 1
    setsid env -i PATH="$root/venv/bin:/usr/bin:/bin" HOME="$root/home" \
      TFDS_DATA_DIR="$root/shared/data/tfds" bash -c "cd '$root/main' && exec python launch.py \
      --config=experiments/pool.py:sweep=search,trials=1000 --workdir='$root/busy' --sweep \
      --workers=2" >"$root/busy.log" 2>&1 &
    busy_pid=$!
    echo "beside the tests: a 2-worker search (pid $busy_pid, log $root/busy.log)"
  fi
  echo "\$ $command"
  start=$(date +%s)
  run_in_fresh_env "$command" >"$root/command$i.log" 2>&1
  rc=$?
  echo "exit status $rc after $(( $(date +%s) - start )) s"
  if [ "$i" = 1 ]; then
    grep -E '^(FAILED|ERROR) ' "$root/command$i.log"
    grep -E '(passed|failed|error).* in [0-9.]+s' "$root/command$i.log" | tail -1
  else
    grep -iE 'test error|error:' "$root/command$i.log" | tail -3
  fi
  [ "$rc" = 0 ] || { status=1; tail -20 "$root/command$i.log"; }
done
if [ -n "${busy_pid:-}" ]; then
  if kill -0 "$busy_pid" 2>/dev/null; then echo "the search beside the tests was still running: stopped"
  else echo "the search beside the tests had ended: $(tail -1 "$root/busy.log")"; fi
fi
exit $status
