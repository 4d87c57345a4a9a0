// Every kernel source, compiled by g++ against the CUDA emulator: one translation unit, so the
// emulated kernels build once. (nvcc compiles the same .cu files for the GPU.)
#include "kernels/attention.cu"
#include "kernels/cross_entropy.cu"
#include "kernels/elementwise.cu"
#include "kernels/optimizer.cu"
#include "kernels/rmsnorm.cu"
