// The emulator's runtime: fibers, the per-block scheduler, barriers, warp exchange.
//
// Scheduling is cooperative and deterministic: a worker runs the fibers of one block round-robin;
// a fiber runs until it reaches a barrier, then yields. A barrier releases when every thread it
// counts has arrived. If a full round makes no progress, the block is deadlocked (a divergent
// __syncthreads, a warp primitive some lane never reaches): the launch fails with a report of
// where each thread waits, instead of hanging as a GPU would.
#include "kernels/emu/emu.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <deque>
#include <initializer_list>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <omp.h>

// AddressSanitizer must be told about every stack switch, or it reports the fibers' stacks as
// corrupt (FACTS.md). These hooks compile to nothing in a normal build.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
// A reused fiber stack still carries the redzones of frames that never returned: clear them.
#define LT_ASAN_UNPOISON(ptr, size) ASAN_UNPOISON_MEMORY_REGION(ptr, size)
#define LT_ASAN_START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define LT_ASAN_FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define LT_ASAN_UNPOISON(ptr, size) ((void)(ptr), (void)(size))
#define LT_ASAN_START_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define LT_ASAN_FINISH_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

namespace llamatron::emu {
namespace {

// ---- the stack switch ---------------------------------------------------------------------------
// glibc's swapcontext also saves and restores the signal mask, a system call per switch; a fiber
// needs only the callee-saved registers and the FP control words. On x86-64 (System V) this is
// that switch in a few instructions; elsewhere ucontext does the job, slower.
#if defined(__x86_64__)
extern "C" void lt_emu_switch(void** save_sp, void* next_sp);
asm(R"(
.text
.globl lt_emu_switch
.type lt_emu_switch,@function
lt_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size lt_emu_switch, .-lt_emu_switch
)");

struct Context {
  void* sp = nullptr;
};
inline void switch_context(Context& from, Context& to) { lt_emu_switch(&from.sp, to.sp); }
// A context that starts entry() (which must never return) on [stack, stack + size).
void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  auto* sp = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t{15});
  *--sp = 0;                                   // entry's return address: it never returns
  *--sp = reinterpret_cast<uint64_t>(entry);   // where lt_emu_switch's ret lands (rsp % 16 == 8 then)
  for (int i = 0; i < 6; ++i) *--sp = 0;       // rbp, rbx, r12-r15
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  --sp;
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc{};
};
inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

constexpr size_t kStackBytes = 256 * 1024;  // flash-attention-style kernels keep big register arrays
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxDynamicSmem = 227 * 1024;     // sm_90's per-block maximum (opt-in)
constexpr size_t kDefaultDynamicSmem = 48 * 1024;  // without the opt-in attribute

struct Barrier {
  uint64_t generation = 0;
  unsigned arrived = 0;
};

struct WarpSlot {  // one per (warp, mask) in use: a barrier and the lanes' published values
  Barrier barrier;
  uint64_t values[32] = {};
  uint64_t gathered[32][kMaxGatherWords] = {};
};

enum class Wait { None, Block, Warp };

struct CpAsyncCopy {
  void* dst;
  const void* src;
  size_t bytes;
};

struct Fiber {
  Context ctx;
  char* stack = nullptr;
  uint3 tid{};
  unsigned linear = 0;
  bool done = false;
  Wait wait = Wait::None;
  const uint64_t* wait_generation = nullptr;
  uint64_t seen_generation = 0;
  const char* file = "";
  int line = 0;
  unsigned mask = 0;
  std::vector<CpAsyncCopy> cp_open;                // issued since the last commit
  std::deque<std::vector<CpAsyncCopy>> cp_groups;  // committed and not landed yet, oldest first
  bool blocked() const { return wait != Wait::None && *wait_generation == seen_generation; }
};

struct Worker {
  Context scheduler;
  const void* scheduler_stack = nullptr;  // the worker thread's own stack, learnt at the first switch
  size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  uint3 block{};
  dim3 block_dim, grid_dim;
  unsigned live = 0;
  Barrier block_barrier;
  const char* block_site_file = nullptr;  // where the first arrival of this barrier round called it
  int block_site_line = 0;
  std::string error;     // set inside a fiber; the scheduler throws it
  bool aborting = false;  // unwinding the fibers of a failed block
  std::vector<std::map<unsigned, WarpSlot>> warps;
  std::vector<char> smem;
  Schedule schedule = Schedule::Lockstep;
  unsigned rescan = 0;  // run-ahead schedules: every fiber before this position is blocked or done
  const std::function<void()>* body = nullptr;

  ~Worker() {
    for (Fiber& f : fibers)
      if (f.stack) munmap(f.stack, kStackBytes);
  }
};

thread_local Worker* tl_worker = nullptr;

Worker& worker() {
  thread_local Worker w;
  return w;
}

Fiber& me() { return *tl_worker->current; }

// Thrown inside a fiber to unwind its stack (destructors run) when its block has failed.
struct FiberAbort {};

void yield() {
  Worker& w = *tl_worker;
  void* fake = nullptr;
  LT_ASAN_START_SWITCH(&fake, w.scheduler_stack, w.scheduler_stack_size);
  switch_context(me().ctx, w.scheduler);
  LT_ASAN_FINISH_SWITCH(fake, nullptr, nullptr);
  if (w.aborting) throw FiberAbort{};
}

// A misuse found inside a fiber: record it and unwind this fiber; the scheduler reports it.
[[noreturn]] void fail(const std::string& msg) {
  Worker& w = *tl_worker;
  if (w.error.empty()) w.error = msg;
  throw FiberAbort{};
}

std::string where(const char* file, int line) { return std::string(file) + ":" + std::to_string(line); }

void land(std::vector<CpAsyncCopy>& copies) {
  for (const CpAsyncCopy& c : copies) std::memcpy(c.dst, c.src, c.bytes);
  copies.clear();
}

void land_all(Fiber& f) {
  for (auto& g : f.cp_groups) land(g);
  f.cp_groups.clear();
  land(f.cp_open);
}

void fiber_main() {
  Worker& w = *tl_worker;
  LT_ASAN_FINISH_SWITCH(nullptr, &w.scheduler_stack, &w.scheduler_stack_size);
  if (w.aborting) {  // the block failed before this thread started: it never runs the kernel
    me().done = true;
    return;
  }
  try {
    (*w.body)();
  } catch (const FiberAbort&) {
    me().done = true;
    return;
  } catch (const std::exception& e) {  // e.g. bad_alloc in kernel code: report it, do not terminate
    if (w.error.empty()) w.error = std::string("exception in an emulated kernel: ") + e.what();
    me().done = true;
    return;
  }
  Fiber& f = me();
  land_all(f);  // on a GPU, copies nobody waited for still arrive
  f.done = true;
  f.wait = Wait::None;
  --w.live;
  // Threads that exited no longer count: the barrier may now be complete.
  if (w.block_barrier.arrived > 0 && w.block_barrier.arrived == w.live) {
    ++w.block_barrier.generation;
    w.block_barrier.arrived = 0;
    w.rescan = 0;
  }
}

// Every fiber starts here; when the thread's work is done it switches back for good.
void fiber_entry() {
  fiber_main();
  Worker& w = *tl_worker;
  LT_ASAN_START_SWITCH(nullptr, w.scheduler_stack, w.scheduler_stack_size);  // this fiber's stack dies
  switch_context(me().ctx, w.scheduler);
  __builtin_unreachable();  // a finished fiber is never resumed
}

std::string deadlock_report(Worker& w, unsigned threads_in_block) {
  std::map<std::string, std::vector<unsigned>> groups;
  for (unsigned i = 0; i < threads_in_block; ++i) {
    const Fiber& f = w.fibers[i];
    if (f.done) continue;
    std::string what = f.wait == Wait::Block ? "__syncthreads at " : "warp primitive (mask 0x";
    if (f.wait == Wait::Warp) {
      std::ostringstream m;
      m << std::hex << f.mask;
      what += m.str() + ") at ";
    }
    groups[what + where(f.file, f.line)].push_back(f.linear);
  }
  std::ostringstream out;
  out << "emulated kernel deadlocked in block (" << w.block.x << "," << w.block.y << "," << w.block.z
      << "): not every thread a barrier counts reached it.";
  for (const auto& [site, threads] : groups) {
    out << " threads " << threads.front();
    if (threads.size() > 1) out << ".." << threads.back() << " (" << threads.size() << ")";
    out << " wait at " << site << ";";
  }
  const unsigned exited = threads_in_block - w.live;
  if (exited) out << " " << exited << " thread(s) have exited.";
  return out.str();
}

void run_block(Worker& w, uint3 block) {
  w.block = block;
  const unsigned n = w.block_dim.x * w.block_dim.y * w.block_dim.z;
  if (w.fibers.size() < n) w.fibers.resize(n);
  w.live = n;
  w.block_barrier = Barrier{};
  w.warps.assign((n + 31) / 32, {});
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = w.fibers[i];
    if (!f.stack) {
      void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("emulator: cannot allocate a fiber stack");
      f.stack = static_cast<char*>(p);
    }
    f.linear = i;
    f.tid = uint3{i % w.block_dim.x, i / w.block_dim.x % w.block_dim.y, i / (w.block_dim.x * w.block_dim.y)};
    f.done = false;
    f.wait = Wait::None;
    f.cp_open.clear();
    f.cp_groups.clear();
    LT_ASAN_UNPOISON(f.stack, kStackBytes);
    make_context(f.ctx, f.stack, kStackBytes, fiber_entry);
  }
  auto resume = [&](Fiber& f) {
    w.current = &f;
    LT_ASAN_START_SWITCH(&w.scheduler_fake_stack, f.stack, kStackBytes);
    switch_context(w.scheduler, f.ctx);
    LT_ASAN_FINISH_SWITCH(w.scheduler_fake_stack, nullptr, nullptr);
  };
  std::string report;
  // Run-ahead: always resume the first runnable fiber in schedule order, so one warp runs as far as
  // it can (to a __syncthreads, or to the end) before the next one starts.
  while (w.schedule != Schedule::Lockstep && report.empty()) {
    const bool reversed = w.schedule == Schedule::LastWarpAhead;
    unsigned p = w.rescan;
    for (; p < n; ++p) {
      const Fiber& f = w.fibers[reversed ? n - 1 - p : p];
      if (!f.done && !f.blocked()) break;
    }
    w.rescan = p;
    if (!w.error.empty()) report = w.error;
    else if (w.live == 0) return;
    else if (p == n) report = deadlock_report(w, n);
    else {
      Fiber& f = w.fibers[reversed ? n - 1 - p : p];
      f.wait = Wait::None;
      resume(f);
    }
  }
  while (report.empty()) {
    bool progress = false, all_done = true;
    for (unsigned i = 0; i < n && w.error.empty(); ++i) {
      Fiber& f = w.fibers[i];
      if (f.done) continue;
      all_done = false;
      if (f.blocked()) continue;
      f.wait = Wait::None;
      resume(f);
      progress = true;
    }
    if (!w.error.empty()) report = w.error;
    else if (all_done) return;
    else if (!progress) report = deadlock_report(w, n);
  }
  // Unwind every unfinished fiber (its pending barrier wait throws), so no destructor is skipped.
  w.aborting = true;
  for (unsigned i = 0; i < n; ++i)
    if (!w.fibers[i].done) resume(w.fibers[i]);
  w.aborting = false;
  throw std::runtime_error(report);
}

// Arrive at `b`, which releases when `expected` threads have arrived, and wait for the release.
void arrive_and_wait(Barrier& b, unsigned expected, Wait kind, unsigned mask, const char* file, int line) {
  Fiber& f = me();
  f.wait = kind;
  f.wait_generation = &b.generation;
  f.seen_generation = b.generation;
  f.file = file;
  f.line = line;
  f.mask = mask;
  if (++b.arrived == expected) {
    ++b.generation;
    b.arrived = 0;
    tl_worker->rescan = 0;  // some waiting fibers are runnable again
  }
  yield();
}

WarpSlot& warp_slot(unsigned mask, const char* file, int line) {
  const unsigned lane = lane_id();
  if (!(mask >> lane & 1u)) {
    std::ostringstream m;
    m << "warp primitive at " << where(file, line) << " called by lane " << lane << " outside its mask 0x" << std::hex << mask;
    fail(m.str());
  }
  const unsigned warp = me().linear / 32;
  const unsigned n = tl_worker->block_dim.x * tl_worker->block_dim.y * tl_worker->block_dim.z;
  const unsigned lanes = std::min(32u, n - warp * 32);
  if (lanes < 32 && (mask >> lanes) != 0) {
    std::ostringstream m;
    m << "warp primitive at " << where(file, line) << " names lanes beyond the block's last warp (mask 0x" << std::hex << mask << ")";
    fail(m.str());
  }
  return tl_worker->warps[warp][mask];
}

}  // namespace

const uint3& thread_idx() { return me().tid; }
const uint3& block_idx() { return tl_worker->block; }
const dim3& block_dim() { return tl_worker->block_dim; }
const dim3& grid_dim() { return tl_worker->grid_dim; }
unsigned lane_id() { return me().linear % 32; }
void* dynamic_smem() { return tl_worker->smem.data(); }

void sync_block(const char* file, int line) {
  Worker& w = *tl_worker;
  if (w.block_barrier.arrived == 0) {
    w.block_site_file = file;
    w.block_site_line = line;
  } else if (w.block_site_line != line || std::strcmp(w.block_site_file, file) != 0) {
    fail("divergent __syncthreads: threads wait at " + where(w.block_site_file, w.block_site_line) + " and at " +
         where(file, line) + " (thread " + std::to_string(me().linear) + ") in the same round; every thread of the "
         "block must reach the same barrier");
  }
  arrive_and_wait(w.block_barrier, w.live, Wait::Block, 0, file, line);
}

void sync_warp(unsigned mask, const char* file, int line) {
  WarpSlot& s = warp_slot(mask, file, line);
  arrive_and_wait(s.barrier, static_cast<unsigned>(__builtin_popcount(mask)), Wait::Warp, mask, file, line);
}

uint64_t warp_exchange(unsigned mask, uint64_t value, unsigned src, const char* file, int line) {
  WarpSlot& s = warp_slot(mask, file, line);
  const unsigned expected = static_cast<unsigned>(__builtin_popcount(mask));
  s.values[lane_id()] = value;
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);  // everyone has published
  const uint64_t got = s.values[src % 32];
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);  // everyone has read
  return got;
}

void warp_all_gather(unsigned mask, const uint64_t* mine, int n, uint64_t* out, const char* file, int line) {
  WarpSlot& s = warp_slot(mask, file, line);
  const unsigned expected = static_cast<unsigned>(__builtin_popcount(mask));
  std::copy_n(mine, n, s.gathered[lane_id()]);
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);
  for (unsigned l = 0; l < 32; ++l) std::copy_n(s.gathered[l], n, out + l * n);
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);
}

unsigned warp_ballot(unsigned mask, bool pred, const char* file, int line) {
  WarpSlot& s = warp_slot(mask, file, line);
  const unsigned expected = static_cast<unsigned>(__builtin_popcount(mask));
  s.values[lane_id()] = pred;
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);
  unsigned ballot = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && s.values[l]) ballot |= 1u << l;
  arrive_and_wait(s.barrier, expected, Wait::Warp, mask, file, line);
  return ballot;
}

void check_aligned(const void* p, size_t alignment, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % alignment == 0) return;
  const Worker& w = *tl_worker;
  std::ostringstream m;
  m << "misaligned " << what << " at " << p << ": it needs " << alignment << "-byte alignment, and a GPU "
    << "faults with 'misaligned address' (thread " << me().linear << " of block (" << w.block.x << ","
    << w.block.y << "," << w.block.z << "))";
  fail(m.str());
}

void kernel_misuse(const std::string& msg) { fail(msg + " (thread " + std::to_string(me().linear) + ")"); }

// The knobs' defaults come from the environment (LLAMATRON_EMU_SCHEDULE, LLAMATRON_EMU_CP_ASYNC),
// so a whole test binary can run under another interleaving; a bad value is an error at launch.
template <typename E>
E from_env(const char* var, std::initializer_list<std::pair<const char*, E>> values) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == 0) return values.begin()->second;
  std::string names;
  for (const auto& [name, e] : values) {
    if (std::strcmp(v, name) == 0) return e;
    names += std::string(names.empty() ? "" : ", ") + name;
  }
  throw std::runtime_error(std::string(var) + "='" + v + "' is not one of: " + names);
}

std::atomic<int> g_schedule{-1}, g_cp_async_landing{-1};  // -1: not set yet, read the environment

Schedule current_schedule() {
  if (g_schedule < 0)
    g_schedule = static_cast<int>(from_env<Schedule>("LLAMATRON_EMU_SCHEDULE", {{"lockstep", Schedule::Lockstep},
                                                                                 {"first-warp-ahead", Schedule::FirstWarpAhead},
                                                                                 {"last-warp-ahead", Schedule::LastWarpAhead}}));
  return static_cast<Schedule>(g_schedule.load());
}

CpAsyncLanding current_landing() {
  if (g_cp_async_landing < 0)
    g_cp_async_landing = static_cast<int>(
        from_env<CpAsyncLanding>("LLAMATRON_EMU_CP_ASYNC", {{"at-wait", CpAsyncLanding::AtWait}, {"at-issue", CpAsyncLanding::AtIssue}}));
  return static_cast<CpAsyncLanding>(g_cp_async_landing.load());
}

Schedule set_schedule(Schedule schedule) {
  const Schedule previous = current_schedule();
  g_schedule = static_cast<int>(schedule);
  return previous;
}
CpAsyncLanding set_cp_async_landing(CpAsyncLanding landing) {
  const CpAsyncLanding previous = current_landing();
  g_cp_async_landing = static_cast<int>(landing);
  return previous;
}

void cp_async_issue(void* smem_dst, const void* gmem_src, size_t bytes) {
  check_aligned(smem_dst, bytes, "cp.async shared-memory destination");
  check_aligned(gmem_src, bytes, "cp.async global source");
  if (current_landing() == CpAsyncLanding::AtIssue) {
    std::memcpy(smem_dst, gmem_src, bytes);
    return;
  }
  me().cp_open.push_back({smem_dst, gmem_src, bytes});
}

void cp_async_commit() {
  Fiber& f = me();
  f.cp_groups.push_back(std::move(f.cp_open));
  f.cp_open.clear();
}

void cp_async_wait(int pending_groups) {
  Fiber& f = me();  // lands every committed group but the newest `pending_groups`
  while (static_cast<int>(f.cp_groups.size()) > pending_groups) {
    land(f.cp_groups.front());
    f.cp_groups.pop_front();
  }
}

std::atomic<uint64_t> g_ldmatrix_phases{0}, g_ldmatrix_extra{0};

void record_ldmatrix(const uint64_t* row_addresses, int matrices) {
  uint64_t extra = 0;
  for (int i = 0; i < matrices; ++i) {
    uint64_t chunks[8];
    int n = 0;
    for (int r = 0; r < 8; ++r) {  // distinct 16-byte rows: the same address is a broadcast
      const uint64_t chunk = row_addresses[8 * i + r] / 16;
      if (std::find(chunks, chunks + n, chunk) == chunks + n) chunks[n++] = chunk;
    }
    int per_group[8] = {};
    for (int k = 0; k < n; ++k) ++per_group[chunks[k] % 8];
    extra += static_cast<uint64_t>(*std::max_element(per_group, per_group + 8) - 1);
  }
  g_ldmatrix_phases += static_cast<uint64_t>(matrices);
  g_ldmatrix_extra += extra;
}

SmemStats smem_stats() { return {g_ldmatrix_phases.load(), g_ldmatrix_extra.load()}; }
void reset_smem_stats() {
  g_ldmatrix_phases = 0;
  g_ldmatrix_extra = 0;
}

std::mutex g_attr_mu;
std::map<const void*, size_t> g_max_dynamic_smem;

void set_max_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes > kMaxDynamicSmem)
    throw LaunchRefused("more than the 227 KiB of dynamic shared memory a block may have");
  std::lock_guard<std::mutex> lock(g_attr_mu);
  g_max_dynamic_smem[kernel] = bytes;
}

std::atomic<bool> g_reverse_blocks{false};
void set_reverse_block_order(bool on) { g_reverse_blocks = on; }

void launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body) {
  // The shape itself is in the message kernels::launch builds around these reasons.
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || block.z > 64)
    throw LaunchRefused(std::to_string(threads) + " threads per block; CUDA allows 1..1024 (z <= 64)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u)
    throw LaunchRefused("an empty grid, or one beyond CUDA's limits (x < 2^31, y and z <= 65535)");
  size_t allowed = kDefaultDynamicSmem;
  {
    std::lock_guard<std::mutex> lock(g_attr_mu);
    auto it = g_max_dynamic_smem.find(kernel);
    if (it != g_max_dynamic_smem.end()) allowed = it->second;
  }
  if (dynamic_smem_bytes > allowed)
    throw LaunchRefused("more dynamic shared memory than the " + std::to_string(allowed) +
                        " bytes this kernel allows; raise it with kernels::set_max_dynamic_smem (<= 227 KiB)");
  const int64_t blocks = static_cast<int64_t>(grid.x) * grid.y * grid.z;
  std::string first_error;
  std::mutex mu;
  const bool reverse = g_reverse_blocks;
  const Schedule schedule = current_schedule();
  current_landing();  // a bad LLAMATRON_EMU_CP_ASYNC fails here, outside the fibers
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t b = reverse ? blocks - 1 - i : i;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!first_error.empty()) continue;
    }
    Worker& w = worker();
    tl_worker = &w;
    w.block_dim = block;
    w.grid_dim = grid;
    w.body = &body;
    w.schedule = schedule;
    w.rescan = 0;
    w.error.clear();
    w.smem.assign(dynamic_smem_bytes, static_cast<char>(kPoisonByte));
    const uint3 bi{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                   static_cast<unsigned>(b / (static_cast<int64_t>(grid.x) * grid.y))};
    try {
      run_block(w, bi);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) throw std::runtime_error(first_error);
}

}  // namespace llamatron::emu
