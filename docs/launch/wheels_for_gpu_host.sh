#!/usr/bin/env bash
# The wheels a GPU host without internet needs for cnn_jax (docs/RUNNING.md, "A GPU host
# without internet"), downloaded on a machine with an index for the host's Python and
# platform (default: CPython 3.12, manylinux x86_64), into ./wheels (ignored by git).
#
#   bash docs/launch/wheels_for_gpu_host.sh                      # all of cnn_jax's dependencies
#   HAVE="$(ssh HOST python3 -m pip list --format=freeze | cut -d= -f1)" \
#       bash docs/launch/wheels_for_gpu_host.sh                 # minus what the host has
#   WITH_CUDA=1 bash docs/launch/wheels_for_gpu_host.sh          # plus jax[cuda13] (GBs)
set -euo pipefail
cd "$(dirname "$0")/../.."
python_version="${PYTHON_VERSION:-3.12}"
out="${OUT:-wheels}"
mkdir -p "$out"
# The requirements as setup.cfg states them (install_requires and the test extra), less the
# packages the host already has, and cnn_jax itself as a wheel.
requirements="$(python3 - "$HAVE" <<'PY'
import configparser, re, sys
have = {re.sub(r'[-_.]+', '-', name.lower()) for name in sys.argv[1].split()}
config = configparser.ConfigParser()
config.read('setup.cfg')
lines = (config['options']['install_requires'] + '\n' +
         config['options.extras_require']['test']).splitlines()
for line in lines:
    line = line.split('#')[0].strip()
    name = re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0]
    if line and re.sub(r'[-_.]+', '-', name.lower()) not in have:
        print(line)
PY
)"
[ -z "${WITH_CUDA:-}" ] || requirements="$requirements
jax[cuda13]>=0.10.2"
echo "$requirements" > "$out/requirements.txt"
python3 -m pip download --quiet --dest "$out" --only-binary=:all: \
  --python-version "$python_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -r "$out/requirements.txt"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" .
# pip resolved the dependencies of these as if nothing were installed (dm-pix asks for jax):
# the host's own packages stay, so their wheels need not travel.
for name in ${HAVE:-}; do
  pattern="$(echo "$name" | tr 'A-Z-.' 'a-z__')"
  find "$out" -maxdepth 1 -iname "${pattern}-[0-9]*.whl" -delete
done
echo "$(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out (Python $python_version)"
