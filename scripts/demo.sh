#!/usr/bin/env bash
# The main job from a fresh clone: install, start the Delix emulator with real OCR (Tesseract)
# in the background, OCR the sample scans through DelixHook, print the text, stop the emulator.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
VENV="$ROOT/.venv"
export OMP_THREAD_LIMIT=1
if ! command -v tesseract >/dev/null 2>&1; then
  echo "demo: Tesseract is required for real OCR: install tesseract-ocr with fas and eng data, then re-run." >&2
  exit 1
fi

KEY="demo-$(date +%s)-$RANDOM"
LOG="$(mktemp)"
"$VENV/bin/delix-emulator" --host 127.0.0.1 --port 0 --api-key "$KEY" --ocr tesseract >"$LOG" 2>&1 &
EMULATOR=$!
trap 'kill -INT $EMULATOR 2>/dev/null; wait $EMULATOR 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 100); do
  URL="$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$LOG" | head -n1 || true)"
  [ -n "$URL" ] && break
  kill -0 $EMULATOR 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "demo: the emulator did not start" >&2; cat "$LOG" >&2; exit 1; }
echo "demo: Delix emulator with Tesseract at $URL"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow_home}"
export AIRFLOW_CONN_DELIX_DEFAULT="{\"conn_type\": \"delix\", \"host\": \"$URL\", \"password\": \"$KEY\"}"
"$VENV/bin/python" scripts/ocr_samples.py
