# Shared by the end-to-end scripts (sourced): the check counters, and the venv with `tokenizers`
# from PyPI that the Hugging Face tools need (made once in WORKDIR/../tools-venv, shared).
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1: $2"; }
check() { if eval "$2"; then pass "$1"; else fail "$1" "${3:-}"; fi; }
finish() { echo "$PASSED passed, $FAILED failed"; (( FAILED == 0 && PASSED > 0 )); exit; }  # no checks run: a failure too

# tools_venv WORKDIR [MODULE...]: prints the venv's python (tokenizers, and each MODULE from PyPI of
# that name); returns 1 when pip cannot install them (WORKDIR/pip.out says why): the caller fails, not skips.
tools_venv() {
  local venv=$1/../tools-venv out=$1/pip.out
  shift
  local imports="import tokenizers${*:+; import ${*// /, }}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$imports" 2>/dev/null; then
    { [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"; } && "$venv/bin/pip" install -q "tokenizers>=0.15" "$@" >"$out" 2>&1
  fi
  "$venv/bin/python" -c "$imports" 2>/dev/null || return 1
  echo "$(cd "$venv" && pwd)/bin/python"
}

# mpi_workdir WORKDIR: a fresh WORKDIR as W (absolute), and mpirun allowed as root, one OpenMP
# thread per rank (the scripts that run llamatron under mpirun).
mpi_workdir() {
  rm -rf "$1" && mkdir -p "$1" || exit 2
  W=$(cd "$1" && pwd)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
}

# ---- the command line as a user meets it (cli_errors.sh, hostile_inputs.sh) ----------------------
# cli_workdir BIN WORKDIR: BIN (made absolute), a fresh WORKDIR as W, and RUN_DIR (the binary runs
# there, so a core file from a crash would land there), OUT and ERR (the last run's output).
cli_workdir() {
  BIN=$1
  [[ $BIN == /* ]] || BIN=$PWD/$BIN
  [[ -x $BIN ]] || { echo "$0: $BIN is not an executable" >&2; exit 2; }
  rm -rf "$2" && mkdir -p "$2/run" || exit 2
  W=$(cd "$2" && pwd)
  RUN_DIR=$W/run
  OUT=$W/stdout.txt
  ERR=$W/stderr.txt
  RC=0
}

# run_cli ARGS...: runs llamatron in RUN_DIR; sets RC and fills OUT and ERR.
run_cli() {
  rm -f "$RUN_DIR"/core*
  (cd "$RUN_DIR" && exec timeout 120 "$BIN" "$@") >"$OUT" 2>"$ERR"
  RC=$?
}

describe_rc() {
  if (( RC == 124 )); then echo "timed out"
  elif (( RC > 128 )); then echo "killed by signal $((RC - 128))"
  else echo "exit status $RC"
  fi
}

# Prints lines of stdout that are not spdlog log lines ("[HH:MM:SS] ...").
stray_stdout() { grep -Ev '^\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] ' "$OUT" | head -3; }

# crash_sign FILE: the first line of FILE that shows a process died rather than exited (an uncaught
# exception, a signal, Open MPI's report of one); nothing when there is none. Under mpirun the job's
# status stays non-zero either way, so an error test must look for these too.
crash_sign() {
  grep -m1 -E 'terminate called|Process received signal|exited on signal|Segmentation fault|core dumped|AddressSanitizer' "$1"
}

core_files() { compgen -G "$RUN_DIR/core*" | head -3; }

# Prints why the last run is not a clean user error naming KEYWORD; prints nothing if it is one.
error_problem() {
  local keyword=$1 lines
  mapfile -t lines <"$ERR"
  if [[ -n $(core_files) ]]; then echo "core file left: $(core_files)"
  elif (( RC != 1 )); then echo "$(describe_rc), expected exit status 1; stderr: $(head -c 300 "$ERR")"
  elif (( ${#lines[@]} != 1 )); then echo "stderr has ${#lines[@]} lines, expected 1: $(head -c 300 "$ERR")"
  elif [[ ${lines[0]} != "llamatron: error: "?* ]]; then echo "stderr line does not start with 'llamatron: error: ': ${lines[0]}"
  elif [[ ${lines[0]} != *"$keyword"* ]]; then echo "stderr does not mention '$keyword': ${lines[0]}"
  elif [[ -n $(stray_stdout) ]]; then echo "stdout has non-log output: $(stray_stdout)"
  fi
}

# expect_error NAME KEYWORD -- ARGS...: llamatron ARGS must fail as a user error that mentions KEYWORD.
expect_error() {
  local name=$1 keyword=$2 problem
  [[ ${3-} == -- ]] || { echo "$0: bad expect_error row '$name': third argument must be --" >&2; exit 2; }
  shift 3
  run_cli "$@"
  problem=$(error_problem "$keyword")
  if [[ -z $problem ]]; then pass "$name"; else fail "$name" "$problem"; fi
}

