// The self-test kernels compiled by g++ against the emulator (the .cu itself goes to nvcc).
#include "tests/emu/selftest_kernels.cu"
