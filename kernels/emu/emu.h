// The CUDA-on-CPU emulator: what a kernel source sees when it is compiled by g++ instead of nvcc.
// Each CUDA thread is a fiber; a worker thread runs one block to completion; blocks are spread over
// the cores. Included (through kernels/launch.cuh) only when !defined(__CUDACC__).
#pragma once
#if defined(__CUDACC__)
#error "kernels/emu/emu.h is the emulator; nvcc builds use the real CUDA runtime"
#endif

// Keywords first: CUDA's crt/host_defines.h defines these only if they are not defined yet.
// (__forceinline__ and __align__ it defines for g++ itself, as GNU attributes, which is right here.)
#define __global__
#define __device__
#define __host__
#define __constant__ static
#define __launch_bounds__(...)  // a register-allocation hint for ptxas; nothing to emulate
// One instance per worker thread = one per running block (a worker runs one block at a time). Not
// poisoned: a static array keeps what that worker's previous block left (docs/kernels.md).
#define __shared__ static thread_local

#include <cuda_bf16.h>
#include <vector_types.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <stdexcept>
#include <string>

namespace llamatron::emu {

// ---- execution context -------------------------------------------------------------------------
struct FiberState;
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned lane_id();
void* dynamic_smem();

// A launch or attribute a GPU would refuse before running anything; what() says why, and
// kernels::launch adds the kernel's name and the launch shape (kernels::launch_failure).
struct LaunchRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Runs body() as grid x block CUDA threads. Throws LaunchRefused on a bad launch configuration, and
// std::runtime_error with a readable report on a divergent barrier or a warp primitive misuse
// (instead of hanging). `kernel` identifies the kernel (for its shared-memory attribute).
void launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body);
// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): without it a
// launch may use at most 48 KiB of dynamic shared memory, as on a GPU. LaunchRefused above 227 KiB.
void set_max_dynamic_smem(const void* kernel, size_t bytes);
// Blocks start in reverse order (last block first) while set: a GPU promises no block order, so a
// result that changes with it (e.g. float atomics from several blocks) is order-dependent.
void set_reverse_block_order(bool on);

// ---- what a GPU does that a CPU would hide ------------------------------------------------------
// Fresh dynamic shared memory (and, in the emulated runtime, fresh device memory) holds garbage on
// a GPU; here it is filled with this byte, a NaN in bf16 and fp32, so a kernel that reads what it never
// wrote computes NaN instead of a lucky zero.
constexpr unsigned char kPoisonByte = 0xFF;
// A vector access, cp.async or ldmatrix row at an address not aligned to its size faults on a GPU
// ("misaligned address"); here it fails the launch, naming the access, address and thread.
void check_aligned(const void* p, size_t alignment, const char* what);
// Fails the launch from inside a kernel with this message (a call a GPU would get wrong).
[[noreturn]] void kernel_misuse(const std::string& msg);
// cp.async: a thread's copies stay pending until a cp.async.wait_group lands their group. The
// default lands them as late as allowed (at the wait), so a read before the wait sees poison; at
// issue is the other extreme, so an early issue into a buffer still being read is caught too.
// Default: LLAMATRON_EMU_CP_ASYNC = at-wait | at-issue.
enum class CpAsyncLanding { AtWait, AtIssue };
CpAsyncLanding set_cp_async_landing(CpAsyncLanding landing);  // returns the previous setting
// The interleaving of a block's warps. Lockstep (the default) advances every thread to its next
// barrier or warp primitive in turn, so warps never drift apart; a GPU promises no such thing. The
// run-ahead schedules let one warp run as far as it can before the next starts (first warp first,
// or last first), which turns a missing __syncthreads between warps into wrong or poisoned data:
// a read of another warp's data before it is written (last-warp-ahead), or an overwrite of data
// another warp has not read yet (first-warp-ahead, with cp.async landing at issue).
// Default: LLAMATRON_EMU_SCHEDULE = lockstep | first-warp-ahead | last-warp-ahead.
enum class Schedule { Lockstep, FirstWarpAhead, LastWarpAhead };
Schedule set_schedule(Schedule schedule);  // returns the previous setting
// Sets a knob for one scope and then restores what was there (the environment's choice, say), so a
// test that pins one setting does not change the rest of a binary run under another.
template <typename Knob, Knob (*set)(Knob)>
class Scoped {
 public:
  explicit Scoped(Knob value) : previous_(set(value)) {}
  ~Scoped() { set(previous_); }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;

 private:
  Knob previous_;
};
using ScopedSchedule = Scoped<Schedule, set_schedule>;
using ScopedCpAsyncLanding = Scoped<CpAsyncLanding, set_cp_async_landing>;
void cp_async_issue(void* smem_dst, const void* gmem_src, size_t bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);
// Shared-memory bank conflicts of ldmatrix, counted exactly from the row addresses: each 8-row
// phase reads eight 16-byte rows in one wavefront when they fall in eight different 16-byte bank
// groups; every further row in an already used group (a different address) costs one more.
struct SmemStats {
  uint64_t ldmatrix_phases = 0;
  uint64_t ldmatrix_extra_wavefronts = 0;
};
void record_ldmatrix(const uint64_t* row_addresses, int matrices);
SmemStats smem_stats();
void reset_smem_stats();

// ---- synchronisation ----------------------------------------------------------------------------
void sync_block(const char* file, int line);
void sync_warp(unsigned mask, const char* file, int line);
// Warp exchange: every lane of `mask` publishes `value`; returns the value of lane `src`.
uint64_t warp_exchange(unsigned mask, uint64_t value, unsigned src, const char* file, int line);
// Every lane of `mask` publishes n <= kMaxGatherWords words; out[32][n] receives all lanes' words
// (the building block of the warp-collective mma / ldmatrix emulation).
constexpr int kMaxGatherWords = 8;
void warp_all_gather(unsigned mask, const uint64_t* mine, int n, uint64_t* out, const char* file, int line);
// Warp vote: the ballot of `pred` over `mask`.
unsigned warp_ballot(unsigned mask, bool pred, const char* file, int line);

template <typename T>
T shfl_impl(unsigned mask, T var, int src_lane_in_segment, int width, const char* file, int line) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  const unsigned segment = lane_id() / width * width;
  const unsigned src = segment + (static_cast<unsigned>(src_lane_in_segment) % width);
  const uint64_t got = warp_exchange(mask, bits, src, file, line);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

}  // namespace llamatron::emu

// ---- the names a kernel uses --------------------------------------------------------------------
#define threadIdx (::llamatron::emu::thread_idx())
#define blockIdx (::llamatron::emu::block_idx())
#define blockDim (::llamatron::emu::block_dim())
#define gridDim (::llamatron::emu::grid_dim())
constexpr int warpSize = 32;

// Warp and block primitives are functions with a defaulted source_location, so a report can say
// which line each waiting thread is stuck on.
using LtLoc = std::source_location;
inline void __syncthreads(LtLoc loc = LtLoc::current()) { ::llamatron::emu::sync_block(loc.file_name(), loc.line()); }
inline void __syncwarp(unsigned mask = 0xffffffffu, LtLoc loc = LtLoc::current()) {
  ::llamatron::emu::sync_warp(mask, loc.file_name(), loc.line());
}
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32, LtLoc loc = LtLoc::current()) {
  return ::llamatron::emu::shfl_impl(mask, var, src_lane, width, loc.file_name(), loc.line());
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32, LtLoc loc = LtLoc::current()) {
  const int in_seg = static_cast<int>(::llamatron::emu::lane_id() % width);
  return ::llamatron::emu::shfl_impl(mask, var, in_seg ^ lane_mask, width, loc.file_name(), loc.line());
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32, LtLoc loc = LtLoc::current()) {
  const unsigned in_seg = ::llamatron::emu::lane_id() % width;  // lanes below delta keep their value
  const T got = ::llamatron::emu::shfl_impl(mask, var, static_cast<int>(in_seg >= delta ? in_seg - delta : in_seg), width,
                                            loc.file_name(), loc.line());
  return in_seg >= delta ? got : var;
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32, LtLoc loc = LtLoc::current()) {
  const unsigned in_seg = ::llamatron::emu::lane_id() % width;  // lanes past the segment keep theirs
  const bool inside = in_seg + delta < static_cast<unsigned>(width);
  const T got = ::llamatron::emu::shfl_impl(mask, var, static_cast<int>(inside ? in_seg + delta : in_seg), width,
                                            loc.file_name(), loc.line());
  return inside ? got : var;
}
inline unsigned __ballot_sync(unsigned mask, int pred, LtLoc loc = LtLoc::current()) {
  return ::llamatron::emu::warp_ballot(mask, pred != 0, loc.file_name(), loc.line());
}
inline int __any_sync(unsigned mask, int pred, LtLoc loc = LtLoc::current()) {
  return ::llamatron::emu::warp_ballot(mask, pred != 0, loc.file_name(), loc.line()) != 0u;
}
inline int __all_sync(unsigned mask, int pred, LtLoc loc = LtLoc::current()) {
  return ::llamatron::emu::warp_ballot(mask, pred != 0, loc.file_name(), loc.line()) == mask;
}

// ---- atomics: blocks run on different OS threads, so these are real atomics ---------------------
template <typename T>
inline T atomicAdd(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_add(val);
}
template <typename T>
inline T atomicExch(T* address, T val) {
  return std::atomic_ref<T>(*address).exchange(val);
}
template <typename T>
inline T atomicCAS(T* address, T compare, T val) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
  return compare;  // the old value, whether or not it was replaced
}
// Stores val while `better(val, current)`, by CAS; returns the old value (atomicMax / atomicMin).
template <typename T, typename Better>
inline T atomic_replace_if(T* address, T val, Better better) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (better(val, old) && !a.compare_exchange_weak(old, val)) {
  }
  return old;
}
template <typename T>
inline T atomicMax(T* address, T val) {
  return atomic_replace_if(address, val, [](T v, T old) { return old < v; });
}
template <typename T>
inline T atomicMin(T* address, T val) {
  return atomic_replace_if(address, val, [](T v, T old) { return v < old; });
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned __activemask() { return 0xffffffffu; }  // the emulator never runs a warp partially
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// ---- math intrinsics --------------------------------------------------------------------------
// The fast intrinsics are approximations on a GPU. Here each returns the exact value (computed in
// double, rounded) moved by the worst-case error the CUDA C++ Programming Guide's intrinsic table
// gives it (ex2.approx: about 2 ulp, by the PTX ISA), up or down by the input's lowest bit, so a
// tolerance that holds here holds for whatever the GPU returns within those bounds. The _rn ones
// are IEEE-exact on both.
namespace llamatron::emu {
// `exact` moved by n ulps away from zero (up) or toward it; 0, inf and NaN stay.
inline float ulps_moved(float exact, int n, bool up) {
  if (exact == 0.f || !std::isfinite(exact)) return exact;
  const int64_t mag = std::bit_cast<uint32_t>(std::fabs(exact)), moved = up ? mag + n : mag - n;
  const float out = std::bit_cast<float>(static_cast<uint32_t>(std::clamp<int64_t>(moved, 0, 0x7f7fffff)));
  return std::copysign(out, exact);
}
inline bool low_bit(float x) { return (std::bit_cast<uint32_t>(x) & 1u) != 0; }
inline float abs_moved(float exact, float err, bool up) { return up ? exact + err : exact - err; }
constexpr float kApproxAbsErr = 3.6e-7f;  // 2^-21.41
}  // namespace llamatron::emu
inline float __expf(float x) {
  return ::llamatron::emu::ulps_moved(static_cast<float>(std::exp(static_cast<double>(x))), 2 + static_cast<int>(std::floor(std::fabs(1.173f * x))), ::llamatron::emu::low_bit(x));
}
inline float __logf(float x) {
  const float exact = static_cast<float>(std::log(static_cast<double>(x)));
  return x >= 0.5f && x <= 2.f ? ::llamatron::emu::abs_moved(exact, ::llamatron::emu::kApproxAbsErr, ::llamatron::emu::low_bit(x))
                               : ::llamatron::emu::ulps_moved(exact, 3, ::llamatron::emu::low_bit(x));
}
// For 2^126 < |b| < 2^128 the GPU's reciprocal underflows: 0 (NaN for an infinite a).
inline float __fdividef(float a, float b) {
  if (std::isfinite(b) && std::fabs(b) > 0x1p126f) return std::isinf(a) ? NAN : std::copysign(0.f, a) * std::copysign(1.f, b);
  return ::llamatron::emu::ulps_moved(a / b, 2, ::llamatron::emu::low_bit(a));
}
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
// Accurate to 2^-21.41 only in [-pi, pi] on a GPU, and much worse beyond: callers reduce the
// argument first, so anything past pi (plus the reduction's own rounding) is a misuse.
inline void __sincosf(float x, float* s, float* c) {
  if (std::fabs(x) > 3.2f)
    ::llamatron::emu::kernel_misuse("__sincosf(" + std::to_string(x) + "): its error bound holds only in [-pi, pi]; " +
                                    "reduce the argument first (as rope does in kernels/elementwise.cu)");
  const bool up = ::llamatron::emu::low_bit(x);
  *s = ::llamatron::emu::abs_moved(static_cast<float>(std::sin(static_cast<double>(x))), ::llamatron::emu::kApproxAbsErr, up);
  *c = ::llamatron::emu::abs_moved(static_cast<float>(std::cos(static_cast<double>(x))), ::llamatron::emu::kApproxAbsErr, !up);
}
inline float rsqrtf(float x) { return ::llamatron::emu::ulps_moved(static_cast<float>(1.0 / std::sqrt(static_cast<double>(x))), 2, ::llamatron::emu::low_bit(x)); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
using std::fmaxf;
using std::fminf;
// CUDA's device-side integer min/max.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
