#!/usr/bin/env bash
# The seed walkthrough on the file key store with SQLite: init, serve, bootstrap, token,
# certificate, inspect, verify with openssl. Everything lives under ./demo; the CA is stopped
# (by its PID) when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO="$PWD/demo"
PORT="${DEMO_PORT:-9443}"
rm -rf "$DEMO"
mkdir -p "$DEMO"
umask 077
head -c 24 /dev/urandom | base64 > "$DEMO/password.txt"
head -c 24 /dev/urandom | base64 > "$DEMO/provisioner-password.txt"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "step ca init (CA files in $DEMO/ca)"
STEPPATH="$DEMO/ca" step ca init --name "Stepstone Demo" --dns 127.0.0.1,localhost \
  --address "127.0.0.1:$PORT" --provisioner demo@stepstone.internal \
  --password-file "$DEMO/password.txt" \
  --provisioner-password-file "$DEMO/provisioner-password.txt"
FP=$(STEPPATH="$DEMO/ca" step certificate fingerprint "$DEMO/ca/certs/root_ca.crt")

say "step-ca (the appliance) on https://127.0.0.1:$PORT"
STEPPATH="$DEMO/ca" step-ca "$DEMO/ca/config/ca.json" --password-file "$DEMO/password.txt" \
  >"$DEMO/step-ca.log" 2>&1 &
CA_PID=$!
trap 'kill "$CA_PID" 2>/dev/null; wait "$CA_PID" 2>/dev/null || true' EXIT
export STEPPATH="$DEMO/client"
for _ in $(seq 1 60); do
  if step ca health --ca-url "https://127.0.0.1:$PORT" --root "$DEMO/ca/certs/root_ca.crt" \
      >/dev/null 2>&1; then break; fi
  kill -0 "$CA_PID" 2>/dev/null || { cat "$DEMO/step-ca.log"; exit 1; }
  sleep 0.5
done

say "step ca bootstrap (client files in $STEPPATH)"
step ca bootstrap --ca-url "https://127.0.0.1:$PORT" --fingerprint "$FP"
step ca health

say "step ca token"
TOKEN=$(step ca token demo.internal --san demo.internal --san 127.0.0.1 \
  --password-file "$DEMO/provisioner-password.txt")
echo "$TOKEN" | step crypto jwt inspect --insecure

say "step ca certificate"
step ca certificate demo.internal "$DEMO/demo.crt" "$DEMO/demo.key" --token "$TOKEN"

say "step certificate inspect --short"
step certificate inspect --short "$DEMO/demo.crt"

say "openssl verify -x509_strict"
openssl verify -x509_strict -CAfile "$STEPPATH/certs/root_ca.crt" \
  -untrusted "$DEMO/demo.crt" "$DEMO/demo.crt"

say "step ca renew (mTLS with the certificate itself)"
step ca renew "$DEMO/demo.crt" "$DEMO/demo.key" --force
step certificate inspect --short "$DEMO/demo.crt"

say "step ca revoke, then renewal is refused"
SERIAL=$(step certificate inspect --format json "$DEMO/demo.crt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial_number"])')
step ca revoke "$SERIAL" --reason "demo" --password-file "$DEMO/provisioner-password.txt"
if step ca renew "$DEMO/demo.crt" "$DEMO/demo.key" --force; then
  echo "a revoked certificate was renewed: this is a bug" >&2; exit 1
fi

say "the same token again is refused (single use)"
if step ca certificate demo.internal "$DEMO/again.crt" "$DEMO/again.key" --token "$TOKEN"; then
  echo "replay was accepted: this is a bug" >&2; exit 1
fi
printf '\nDemo complete. Files are in %s; the CA has been stopped.\n' "$DEMO"
