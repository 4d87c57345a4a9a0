// The emulator cost benchmark compiled by g++ against the emulator.
#include "benchmarks/emu_cost.cu"
