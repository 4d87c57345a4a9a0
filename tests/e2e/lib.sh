# Shared by the end-to-end scripts (sourced): the check counters, and the venv with `tokenizers`
# from PyPI that the Hugging Face tools need (made once in WORKDIR/../tools-venv, shared).
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1: $2"; }
check() { if eval "$2"; then pass "$1"; else fail "$1" "${3:-}"; fi; }
finish() { echo "$PASSED passed, $FAILED failed"; (( FAILED == 0 && PASSED > 0 )); exit; }  # no checks run: a failure too

# tools_venv WORKDIR: prints the venv's python; returns 1 when pip cannot install tokenizers
# (WORKDIR/pip.out says why): the caller fails, not skips.
tools_venv() {
  local venv=$1/../tools-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tokenizers" 2>/dev/null; then
    /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install -q "tokenizers>=0.15" >"$1/pip.out" 2>&1
  fi
  "$venv/bin/python" -c "import tokenizers" 2>/dev/null || return 1
  echo "$(cd "$venv" && pwd)/bin/python"
}
