#!/usr/bin/env bash
# Would today's newest versions still pass? Build a throwaway environment with the newest versions
# pyproject.toml allows (R1_UNLOCKED=1 install), run the fast suite in it, and print what moved,
# what broke, and the lock that environment would write.
#
#   make upgrade-check            (= scripts/upgrade-check.sh)
#   KEEP=1 scripts/upgrade-check.sh     keep the environment and the new lock for a closer look
#   PYTEST_ARGS="-m 'not slow'" …       what to run (default: the fast suite)
#
# Bumping the lock is then one reviewed commit: copy the printed lock (or the file it names) over
# requirements.lock, run the whole suite (make test), and commit both with the fixes it needed.
set -uo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/r1-upgrade-check.XXXXXX")
[ "${KEEP:-0}" != 0 ] || trap 'rm -rf "$work"' EXIT
venv="$work/venv"

echo "== installing the newest allowed versions into $venv" >&2
if ! VENV="$venv" R1_UNLOCKED=1 scripts/install.sh >"$work/install.log" 2>&1; then
  tail -n 30 "$work/install.log" >&2
  echo "upgrade-check: the unlocked install failed (log above)" >&2
  exit 1
fi
VENV="$venv" scripts/lock.sh "$work/requirements.lock" >/dev/null

echo "== versions that moved (requirements.lock -> newest)"
join -j1 -a1 -a2 -e '-' -o 0,1.2,2.2 \
  <(grep -v '^#' requirements.lock | sed 's/==/ /' | tr 'A-Z' 'a-z' | sort) \
  <(grep -v '^#' "$work/requirements.lock" | sed 's/==/ /' | tr 'A-Z' 'a-z' | sort) |
  awk '$2 != $3 { printf "  %-28s %-14s -> %s\n", $1, $2, $3; moved++ } END { if (!moved) print "  (none)" }'

echo "== the fast suite on the newest versions"
# -W error for the libraries' deprecations: the next renamed argument fails here first, by name.
eval "set -- ${PYTEST_ARGS:--m \"not slow\"}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -x --no-header -rfE \
  -W "error::FutureWarning" -W "error::DeprecationWarning:transformers" -W "error::DeprecationWarning:trl" \
  -W "error::DeprecationWarning:accelerate" "$@" >"$work/pytest.log" 2>&1
status=$?
grep -E '^(FAILED|ERROR)|passed|failed|error' "$work/pytest.log" | tail -n 40
if [ $status -eq 0 ]; then
  echo "== result: the newest versions pass. The new lock:"
else
  echo "== result: BROKEN (pytest exit $status; full log: $work/pytest.log${KEEP:+ (kept)}). The lock it would be:"
fi
cat "$work/requirements.lock"
[ "${KEEP:-0}" = 0 ] || echo "kept: $work" >&2
exit $status
