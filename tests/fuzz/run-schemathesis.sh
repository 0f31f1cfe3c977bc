#!/usr/bin/env bash
# Schemathesis against a live Tessera: starts `tessera serve` on a scratch SQLite database,
# makes a project (Basic credentials for the Fabric and OAuth operations) and an ADMIN
# operator (a Bearer token for /v1), and runs Schemathesis against GET /openapi.json, once per
# credential, with every check Schemathesis has (as `--checks all`: also invalid data
# accepted, valid data refused, authentication ignored, deleted resources still served,
# created ones missing) in every phase (examples, coverage, fuzzing, and stateful along the
# links Schemathesis infers from the document). The few checks that are wrong for a reason the
# document cannot state are narrowed per operation or per phase in schemathesis.toml next to
# this script, each with its reason (hooks.py drops one false report of Schemathesis' own).
# Fails on any failure of any check and on any crash or panic of the server.
#
# Usage: tests/fuzz/run-schemathesis.sh PATH/TO/tessera PATH/TO/schemathesis [SECONDS]
# SCHEMATHESIS_SEED (default 1) picks another seed, to look further than CI does.
set -euo pipefail
TESSERA="$1"
ST="$2"
BUDGET="${3:-60}"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DB="sqlite://$WORK/fuzz.db"
# Generous rate and lockout limits: the fuzzer logs in and exchanges widgets thousands of
# times from one address, and a 429 or a lock would hide what it is looking for.
"$TESSERA" serve --listen 127.0.0.1:0 --database "$DB" \
  --embed-rate-per-minute 1000000 --lockout-failures 1000000 --login-address-failures 1000000 \
  > "$WORK/stdout" 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$WORK/stdout" 2>/dev/null && break
  sleep 0.1
done
BASE="$(sed -n 's/^listening on //p' "$WORK/stdout")"
[ -n "$BASE" ] || { cat "$WORK/server.log"; echo "server did not start"; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
P="$("$TESSERA" admin --database "$DB" project create --name fuzz)"
PID="$(echo "$P" | json '["project_id"]')"
TOK="$(echo "$P" | json '["api_token"]')"
"$TESSERA" admin --database "$DB" user create --username fuzz-admin@local \
  --password 'Fuzz-Admin-Passw0rd!' --role ADMIN > /dev/null
AT="$(curl -sf "$BASE/v1/tokens" -H 'Content-Type: application/json' \
  -d '{"username": "fuzz-admin@local", "password": "Fuzz-Admin-Passw0rd!"}' | json '["accessToken"]')"

FUZZ_DIR="$(realpath "$(dirname "$0")")"
export FUZZ_DIR # schemathesis.toml names its hooks file through it
CONFIG="$FUZZ_DIR/schemathesis.toml"
# Every check is enabled in the configuration file, not with `--checks all`, which would
# override the file's per-phase narrowing.
COMMON=(--max-time "$BUDGET" --workers 2 --seed "${SCHEMATHESIS_SEED:-1}"
        --request-timeout 10 --suppress-health-check all --warnings off)
status=0
# Schemathesis and Hypothesis keep caches (.schemathesis/, .hypothesis/) in the working
# directory, and replay what they hold: run from the scratch directory so that nothing is
# written into the checkout and every run starts from the same seed alone.
TESSERA="$(realpath "$TESSERA")"
ST="$(realpath "$ST")"
cd "$WORK"
echo "== Schemathesis: Fabric and OAuth operations, Basic credentials"
"$ST" --config-file "$CONFIG" run "$BASE/openapi.json" "${COMMON[@]}" \
  --exclude-path-regex '^/v1/' --auth "$PID:$TOK" || status=1
echo "== Schemathesis: Accounts API (/v1), an ADMIN operator's Bearer token"
"$ST" --config-file "$CONFIG" run "$BASE/openapi.json" "${COMMON[@]}" \
  --include-path-regex '^/v1/' --header "Authorization: Bearer $AT" || status=1

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run:"; tail -50 "$WORK/server.log"; exit 1
fi
if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked:"; grep -A5 "panicked" "$WORK/server.log" | head -40; exit 1
fi
exit "$status"
