#!/usr/bin/env bash
# Make a fresh clone ready to run: Tesseract (apt, where we are root on Debian), uv, and the
# project's virtualenvs. Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
TESS_PKGS="tesseract-ocr tesseract-ocr-fas tesseract-ocr-eng tesseract-ocr-ara tesseract-ocr-tur fonts-farsiweb fonts-dejavu-core fontconfig postgresql"

need_tesseract() {
  command -v tesseract >/dev/null 2>&1 || return 0
  local langs; langs="$(tesseract --list-langs 2>/dev/null || true)"
  for l in fas eng ara tur; do grep -qx "$l" <<<"$langs" || return 0; done
  # initdb is what the tests run (any Debian major version: 15 on bookworm, 17 on trixie).
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || return 0
  # The scan renderer (tests, sample archive) needs a Persian font and DejaVu for Latin text.
  # Read fc-list whole before matching: `fc-list | grep -q` stops reading at the first match,
  # fc-list dies of SIGPIPE once its output passes a pipe buffer, and under pipefail the test
  # then says "fonts missing" and apt runs again on every run.
  command -v fc-list >/dev/null 2>&1 || return 0
  local fonts; fonts="$(fc-list 2>/dev/null || true)"
  grep -qi "farsiweb" <<<"$fonts" || return 0
  grep -qi "dejavu" <<<"$fonts" || return 0
  return 1
}

if need_tesseract; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Tesseract (fas, eng, ara, tur), fonts and PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $TESS_PKGS >/dev/null
  else
    echo "bootstrap: Tesseract is missing and this is not root on Debian: run 'sudo apt-get install $TESS_PKGS' (or your OS's tesseract with fas/eng/ara/tur data); OCR tests will be skipped." >&2
  fi
fi

if ! command -v uv >/dev/null 2>&1 && ! "$PY" -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv from PyPI"
  "$PY" -m pip install -q --disable-pip-version-check uv
fi
UV=(uv); command -v uv >/dev/null 2>&1 || UV=("$PY" -m uv)

make_venv() {  # make_venv DIR AIRFLOW_VERSION EXTRAS
  local dir="$1" version="$2" extras="$3"
  [ -x "$dir/bin/python" ] || "${UV[@]}" venv -q -p "$PY" "$dir"
  "${UV[@]}" pip install -q -p "$dir/bin/python" "apache-airflow==$version" -e "$ROOT[$extras]"
}

make_venv "$ROOT/.venv" "$AIRFLOW_VERSION" "test,docs"
