#!/usr/bin/env bash
# scripts/gpu_check.sh without a GPU, in its bundle mode (.gpu/ from scripts/gpu_bundle.sh) with
# stand-ins for nvidia-smi and the four binaries: every step runs and is named, a failed step or a
# benchmark that fell back to the CPU fails the check without stopping the later steps, the GPU
# training's losses are compared with the CPU's, a library the machine lacks is named in one line,
# and a machine without a GPU is refused at once.
#
# Usage: gpu_check.sh WORKDIR SOURCE_DIR      (CTest: gpu_check_script)
set -u
W=$1 SRC=$2
rm -rf "$W" && mkdir -p "$W/bin" "$W/repo/scripts" "$W/repo/tests/e2e" "$W/repo/.gpu/bin" "$W/repo/.gpu/lib"
source "$SRC/tests/e2e/lib.sh"
cp "$SRC/scripts/gpu_check.sh" "$W/repo/scripts/"
cp "$SRC/tests/e2e/emulated_cuda.sh" "$SRC/tests/e2e/tiny_synthetic.yaml" "$W/repo/tests/e2e/"

# Stand-ins (emulated_cuda.sh asks nvidia-smi once more). Each binary appends its arguments to calls.log; FAIL_TESTS, CPU_FALLBACK and
# CUDA_LOSS make them misbehave the way a broken GPU machine would.
stub() { printf '#!/usr/bin/env bash\necho "%s $*" >>"%s/calls.log"\n%s\n' "$1" "$W" "$2" >"$3" && chmod +x "$3"; }
stub nvidia-smi 'echo "GPU 0: stand-in"; exit "${NO_GPU:-0}"' "$W/bin/nvidia-smi"
stub llamatron 'if [ "$1" = train ]; then
  loss=5.5; [[ "$*" == *device=cuda* ]] && loss=${CUDA_LOSS:-5.5}
  for i in 1 2 3 4 5 6; do echo "[00:00:00] step $i/6 | loss $loss"; done
else echo "llamatron: stand-in"; fi' "$W/repo/.gpu/bin/llamatron"
stub gpu_backend_tests 'exit "${FAIL_TESTS:-0}"' "$W/repo/.gpu/bin/gpu_backend_tests"
for b in bench_kernels bench_attention; do
  stub $b 'if [ -n "${CPU_FALLBACK:-}" ]; then echo "# no GPU present: timing the CPU"; else echo "1.0 ms"; fi' "$W/repo/.gpu/bin/$b"
done
run() { (cd "$W" && rm -f calls.log && env PATH="$W/bin:$PATH" "$@" bash repo/scripts/gpu_check.sh 2>&1); }

out=$(run); rc=$?
check "all steps pass: exit 0, every step once, in order, the attention benchmark at T=4096 d=128 and d=64" \
  '[ $rc -eq 0 ] && echo "$out" | grep -q "every step passed" &&
   [ "$(grep -c "" "$W/calls.log")" -eq 9 ] &&
   [ "$(cut -d" " -f1 "$W/calls.log" | uniq | tr "\n" " ")" = "nvidia-smi llamatron gpu_backend_tests llamatron nvidia-smi bench_kernels bench_attention " ] &&
   grep -q "bench_attention --seq 4096 --head-dim 128$" "$W/calls.log" && grep -q "bench_attention --seq 4096 --head-dim 64" "$W/calls.log"' "$out"
check "the GPU training ran on train.device=cuda and was compared with the CPU run" \
  'grep -q "llamatron train .*train.device=cuda" "$W/calls.log" && echo "$out" | grep -q "ok - both runs logged 6 steps" && echo "$out" | grep -q "ok - CUDA-device losses match"' "$out"

out=$(run FAIL_TESTS=1 CPU_FALLBACK=1); rc=$?
check "a failed test binary and benchmarks that fell back to the CPU: exit 1, each named, later steps still ran" \
  '[ $rc -eq 1 ] && echo "$out" | grep -q "FAILED: gpu_backend_tests (exit 1)" && echo "$out" | grep -q "FAILED: bench_kernels (exit 3)" &&
   echo "$out" | grep -q "FAILED: bench_attention d=64 (exit 3)" && [ "$(grep -c bench_attention "$W/calls.log")" -eq 2 ]' "$out"

out=$(run CUDA_LOSS=6.5); rc=$?
check "GPU losses off by more than the bf16 bound fail the training step" \
  '[ $rc -eq 1 ] && echo "$out" | grep -q "FAILED: GPU training matches the CPU backend"' "$out"

out=$(run NO_GPU=9); rc=$?
check "no GPU: one line, exit 1, nothing else runs" \
  '[ $rc -eq 1 ] && echo "$out" | grep -q "finds no GPU" && [ "$(grep -c "" "$W/calls.log")" -eq 1 ]' "$out"

# A real executable that needs a library the machine lacks (built here, the library then removed).
if echo 'int lt_missing(void); int main(void) { return lt_missing(); }' >"$W/main.c" &&
   echo 'int lt_missing(void) { return 0; }' >"$W/lib.c" &&
   cc -shared -fPIC -o "$W/liblt_missing.so" "$W/lib.c" &&
   cc -o "$W/repo/.gpu/bin/gpu_backend_tests" "$W/main.c" -L"$W" -llt_missing && rm "$W/liblt_missing.so"; then
  out=$(run); rc=$?
  check "a library the machine lacks: named in one line, exit 1, nothing runs" \
    '[ $rc -eq 1 ] && echo "$out" | grep -q "this machine lacks liblt_missing.so" && [ "$(grep -c "" "$W/calls.log")" -eq 1 ]' "$out"
else
  fail "build the executable with a missing library" "cc failed"
fi
finish
