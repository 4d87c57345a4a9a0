// Emulator self-tests: each kernel in selftest_kernels.cu against a host computation, and each
// misuse the emulator must report instead of hanging.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/emu/emu.h"  // set_cp_async_landing, smem_stats
#include "tests/emu/selftest_kernels.cuh"

namespace llamatron::selftest {
namespace {

// Small integers as bf16 bit patterns (exact: |v| < 256 needs 8 significant bits).
uint16_t bf16_bits(int v) {
  const float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

TEST(Emulator, BlockReduceWithSecondStageInWarpZeroOnly) {
  const int blocks = 5;
  std::vector<float> in(blocks * 256), out(blocks);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 17) - 8.0f;  // exact sums
  block_reduce_sum(in.data(), out.data(), blocks);
  for (int b = 0; b < blocks; ++b)
    EXPECT_EQ(out[b], std::accumulate(in.begin() + b * 256, in.begin() + (b + 1) * 256, 0.0f)) << b;
}

TEST(Emulator, SharedMemoryTiledTranspose) {
  const int rows = 45, cols = 70;  // not multiples of the 32 x 32 tile
  std::vector<float> in(rows * cols), out(rows * cols, -1);
  for (int i = 0; i < rows * cols; ++i) in[i] = static_cast<float>(i);
  transpose(in.data(), out.data(), rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) ASSERT_EQ(out[c * rows + r], in[r * cols + c]);
}

TEST(Emulator, BlockScanWithShuffleUp) {
  for (int n : {1, 31, 32, 100, 1024}) {
    std::vector<int> in(n), out(n), ref(n);
    for (int i = 0; i < n; ++i) in[i] = (i * 7) % 5 - 2;
    std::partial_sum(in.begin(), in.end(), ref.begin());
    block_scan(in.data(), out.data(), n);
    EXPECT_EQ(out, ref) << "n = " << n;
  }
}

TEST(Emulator, BallotAnyAll) {
  std::vector<int> pred(64, 1);
  for (int i = 0; i < 32; i += 3) pred[i] = 0;  // warp 0: mixed; warp 1: all true
  std::vector<unsigned> out(6);
  votes(pred.data(), out.data());
  unsigned expect = 0;
  for (int i = 0; i < 32; ++i) expect |= static_cast<unsigned>(pred[i] != 0) << i;
  EXPECT_EQ(out[0], expect);
  EXPECT_EQ(out[1], 1u);
  EXPECT_EQ(out[2], 0u);
  EXPECT_EQ(out[3], 0xffffffffu);
  EXPECT_EQ(out[4], 1u);
  EXPECT_EQ(out[5], 1u);
}

TEST(Emulator, AtomicsFromManyBlocks) {
  const int blocks = 64, n = blocks * 128;
  std::vector<float> value(n);
  for (int i = 0; i < n; ++i) value[i] = static_cast<float>((i * 37) % 101) * 0.25f;  // exact in fp32
  int counter = 0, max_bits = 0;
  float sum = 0.0f;
  atomics(value.data(), blocks, &counter, &sum, &max_bits);
  EXPECT_EQ(counter, n);
  EXPECT_EQ(sum, std::accumulate(value.begin(), value.end(), 0.0));  // every partial sum is exact
  float max_value;
  std::memcpy(&max_value, &max_bits, 4);
  EXPECT_EQ(max_value, 25.0f);
}

TEST(Emulator, AtomicMinExchCas) {
  const int blocks = 16, n = blocks * 128;
  int min_value = 1 << 30, exch = -1, cas_count = 0;
  more_atomics(blocks, &min_value, &exch, &cas_count);
  EXPECT_EQ(min_value, 1000 - (n - 1));
  EXPECT_GE(exch, 0);
  EXPECT_LT(exch, n);
  EXPECT_EQ(cas_count, n);  // no increment lost
}

TEST(Emulator, ShufflesWithWidth) {
  std::vector<int> out(96);
  segmented_shuffles(out.data());
  for (int lane = 0; lane < 32; ++lane) {
    const int seg16 = lane / 16 * 16, seg8 = lane / 8 * 8;
    EXPECT_EQ(out[lane * 3 + 0], lane % 16 + 1 < 16 ? lane + 1 : lane) << lane;  // past the segment: own value
    EXPECT_EQ(out[lane * 3 + 1], seg16 + ((lane % 16) ^ 8)) << lane;
    EXPECT_EQ(out[lane * 3 + 2], seg8 + 3) << lane;
  }
}

TEST(Emulator, MmaMatchesReferenceGemmExactly) {
  std::vector<uint16_t> a(16 * 16), b(16 * 8);
  std::vector<int> ai(16 * 16), bi(16 * 8);
  std::vector<float> c(16 * 8), d(16 * 8);
  for (int i = 0; i < 256; ++i) ai[i] = (i * 5) % 9 - 4, a[i] = bf16_bits(ai[i]);
  for (int i = 0; i < 128; ++i) bi[i] = (i * 3) % 7 - 3, b[i] = bf16_bits(bi[i]);
  for (int i = 0; i < 128; ++i) c[i] = static_cast<float>(i % 11);
  mma_16x8x16(a.data(), b.data(), c.data(), d.data());
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      int ref = static_cast<int>(c[m * 8 + n]);
      for (int k = 0; k < 16; ++k) ref += ai[m * 16 + k] * bi[k * 8 + n];
      ASSERT_EQ(d[m * 8 + n], static_cast<float>(ref)) << m << "," << n;
    }
}

// Expected registers straight from the PTX ISA description (FACTS.md): lane l gets, of matrix i,
// row l/4, columns 2(l%4) and 2(l%4)+1 (low half first); .trans gives the transposed matrix's.
TEST(Emulator, LdmatrixLayouts) {
  std::vector<uint16_t> m(4 * 64);
  for (int i = 0; i < 4 * 64; ++i) m[i] = static_cast<uint16_t>(1000 + i);
  for (int n : {1, 2, 4})
    for (bool trans : {false, true}) {
      std::vector<uint32_t> out(32 * n);
      ldmatrix_test(m.data(), out.data(), n, trans);
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < n; ++i) {
          const int row = lane / 4, col = 2 * (lane % 4);
          const auto at = [&](int r, int c) { return static_cast<uint32_t>(m[i * 64 + r * 8 + c]); };
          const uint32_t expect = trans ? (at(col, row) | at(col + 1, row) << 16) : (at(row, col) | at(row, col + 1) << 16);
          ASSERT_EQ(out[lane * n + i], expect) << "x" << n << (trans ? ".trans" : "") << " lane " << lane << " matrix " << i;
        }
    }
}

TEST(Emulator, CpAsyncCopiesThroughDynamicSharedMemory) {
  const int vecs = 50;
  std::vector<float> in(4 * vecs), out(4 * vecs, 0);
  for (int i = 0; i < 4 * vecs; ++i) in[i] = static_cast<float>(i) + 0.5f;
  cp_async_copy(in.data(), out.data(), vecs);
  EXPECT_EQ(out, in);
}

// Each misuse is reported as an exception whose message says what and where; none hangs.
void expect_report(const std::function<void()>& misuse, const std::string& needle) {
  try {
    misuse();
    ADD_FAILURE() << "no report; expected one mentioning: " << needle;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Emulator, ReportsDivergentBarrier) { expect_report(divergent_barrier, "divergent __syncthreads"); }
TEST(Emulator, ReportsDeadlockWithWhereEachThreadWaits) {
  expect_report(shuffle_deadlock, "deadlocked");
  expect_report(shuffle_deadlock, "threads 0..15 (16) wait at warp primitive");
  expect_report(half_exit_deadlock, "threads 16..31 (16) wait at __syncthreads");
  expect_report(half_exit_deadlock, " 32 thread(s) have exited.");
}
// A failed block unwinds the threads that are waiting; the ones that never started stay unstarted
// (the lockstep schedule starts thread 0 first, and it fails before yielding).
TEST(Emulator, AFailedBlockDoesNotStartItsRemainingThreads) {
  std::vector<float> buf(64, 0.f);
  float* aligned = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 15) / 16 * 16);
  int started = 0;
  const emu::ScopedSchedule lockstep(emu::Schedule::Lockstep);
  expect_report([&] { fail_first(&started, aligned); }, "misaligned vector access");
  EXPECT_EQ(started, 1);
}
TEST(Emulator, ReportsLaneOutsideMask) { expect_report(lane_outside_mask, "outside its mask"); }
TEST(Emulator, RejectsOversizedBlock) { expect_report(oversized_block, "1..1024"); }
TEST(Emulator, RejectsOversizedGrid) { expect_report(oversized_grid, "65535"); }

TEST(Emulator, DynamicSharedMemoryAbove48KiBNeedsTheAttribute) {
  std::vector<float> in(4 * 4096), out(4 * 4096, 0);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  try {
    big_smem_copy(in.data(), out.data(), false);
    ADD_FAILURE() << "64 KiB launched without the attribute";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("set_max_dynamic_smem"), std::string::npos) << e.what();
  }
  big_smem_copy(in.data(), out.data(), true);
  EXPECT_EQ(out, in);
}

// A refused launch is one line naming the kernel (as written at the call site) and the launch
// shape, then the reason; the GPU build writes the same line around the CUDA error string.
std::string refusal(const std::function<void()>& launch) {
  try {
    launch();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(not refused)";
}
TEST(Emulator, RefusedLaunchNamesTheKernelAndItsShape_block2048) {
  EXPECT_EQ(refusal(oversized_block),
            "launch of empty_kernel failed: grid (1,1,1), block (2048,1,1), dynamic smem 0 bytes: "
            "2048 threads per block; CUDA allows 1..1024 (z <= 64)");
  EXPECT_EQ(refusal(oversized_grid).rfind("launch of empty_kernel failed: grid (1,70000,1), block (32,1,1), dynamic smem 0 bytes: ", 0), 0u)
      << refusal(oversized_grid);
}
TEST(Emulator, RefusedLaunchNamesTheKernelAndItsShape_smemAbove48KiBWithoutTheAttribute) {
  const std::string what = refusal([] { read_unwritten_smem(nullptr, 16384); });  // 64 KiB; refused before it runs
  EXPECT_EQ(what.rfind("launch of read_smem_kernel failed: grid (1,1,1), block (64,1,1), dynamic smem 65536 bytes: ", 0), 0u) << what;
  EXPECT_NE(what.find("than the 49152 bytes this kernel allows; raise it with kernels::set_max_dynamic_smem"), std::string::npos) << what;
}
TEST(Emulator, RefusedLaunchNamesTheKernelAndItsShape_smemAbove227KiB) {
  EXPECT_EQ(refusal(oversized_smem_attribute),
            "cudaFuncSetAttribute(empty_kernel, MaxDynamicSharedMemorySize, 233472 bytes) failed: "
            "more than the 227 KiB of dynamic shared memory a block may have");
  const std::string what = refusal(smem_beyond_the_maximum);
  EXPECT_EQ(what.rfind("launch of empty_kernel failed: grid (1,1,1), block (32,1,1), dynamic smem 232464 bytes: ", 0), 0u) << what;
  EXPECT_NE(what.find("than the 232448 bytes this kernel allows"), std::string::npos) << what;
}

// ---- what a GPU does that a CPU would hide ----
bool is_poison(float x) { return std::bit_cast<uint32_t>(x) == 0xFFFFFFFFu; }

TEST(EmulatorStrictness, UnwrittenSharedMemoryIsPoisonNotZero) {
  std::vector<float> out(100, 0.f);
  read_unwritten_smem(out.data(), 100);
  for (float x : out) ASSERT_TRUE(is_poison(x)) << x;
}

// cp.async.wait_group N: every committed group but the newest N has landed. By default the emulator
// lands a group no earlier than that, so reading the second group after wait_group 1 sees poison;
// landing at issue (the other legal extreme) shows its data already.
TEST(EmulatorStrictness, CpAsyncGroupLandsAtItsWait) {
  std::vector<float> in(8);
  std::iota(in.begin(), in.end(), 1.f);
  for (const auto landing : {emu::CpAsyncLanding::AtWait, emu::CpAsyncLanding::AtIssue}) {
    const emu::ScopedCpAsyncLanding pinned(landing);
    std::vector<float> out(16, 0.f);
    cp_async_groups(in.data(), out.data());
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], in[i]) << i;
    for (int i = 4; i < 8; ++i) {
      if (landing == emu::CpAsyncLanding::AtWait) EXPECT_TRUE(is_poison(out[i])) << i << ": " << out[i];
      else EXPECT_EQ(out[i], in[i]) << i;
    }
    for (int i = 0; i < 8; ++i) EXPECT_EQ(out[8 + i], in[i]) << i;
  }
}

// Each 8-row phase of ldmatrix costs one wavefront per 16-byte row sharing a bank group (row
// address / 16 mod 8) with others; rows 128 bytes apart all share one.
TEST(EmulatorStrictness, LdmatrixBankConflictsAreCountedExactly) {
  const auto extra_for = [](int stride) {
    emu::reset_smem_stats();
    ldmatrix_rows(stride);
    const emu::SmemStats s = emu::smem_stats();
    EXPECT_EQ(s.ldmatrix_phases, 4u) << "stride " << stride;
    return s.ldmatrix_extra_wavefronts;
  };
  EXPECT_EQ(extra_for(8), 0u);       // 16-byte rows back to back: 8 groups
  EXPECT_EQ(extra_for(64), 4u * 7);  // 128-byte rows: all in one group, 8 wavefronts a phase
  EXPECT_EQ(extra_for(72), 0u);      // padded to 144 bytes: groups 0, 1, ..., 7 again
  EXPECT_EQ(extra_for(32), 4u * 3);  // 64-byte rows: two groups, 4 rows each
  EXPECT_EQ(extra_for(0), 0u);       // one row for every lane: a broadcast
}

// Lockstep interleaving hides a missing barrier (warp 0 happens to read before warp 1 writes);
// the run-ahead schedules take both sides of the race, so the result changes with the schedule.
// With the barrier, every schedule gives warp 1's values.
TEST(EmulatorStrictness, RunAheadSchedulesTakeBothSidesOfARace) {
  const auto run = [](emu::Schedule schedule, bool with_barrier) {
    const emu::ScopedSchedule pinned(schedule);
    std::vector<int> out(32, -1);
    racy_overwrite(out.data(), with_barrier);
    return out[5];
  };
  EXPECT_EQ(run(emu::Schedule::Lockstep, false), 5);
  EXPECT_EQ(run(emu::Schedule::FirstWarpAhead, false), 5);
  EXPECT_EQ(run(emu::Schedule::LastWarpAhead, false), 105);
  for (const auto s : {emu::Schedule::Lockstep, emu::Schedule::FirstWarpAhead, emu::Schedule::LastWarpAhead})
    EXPECT_EQ(run(s, true), 105);
}

// Each fast intrinsic errs by its documented worst case (docs/kernels.md), not by nothing: within
// the bound everywhere, and off the exact value for most inputs.
TEST(EmulatorStrictness, FastIntrinsicsErrByTheirDocumentedBounds) {
  std::vector<float> x;
  for (int i = 0; i < 200; ++i) x.push_back(-3.1f + 0.031f * static_cast<float>(i) + 1e-4f * static_cast<float>(i % 7));
  std::vector<float> out(6 * x.size());
  fast_math(x.data(), out.data(), static_cast<int>(x.size()));
  const auto ulp = [](double v) { return std::nextafter(static_cast<float>(std::fabs(v)), INFINITY) - static_cast<float>(std::fabs(v)); };
  int moved = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i], ax = std::fabs(xi);
    const double exact[6] = {std::exp(xi), std::log(ax), std::sin(xi), std::cos(xi), 1 / std::sqrt(ax), std::exp2(xi)};
    const double bound[6] = {(2 + std::floor(std::fabs(1.173 * xi)) + 0.5) * ulp(exact[0]),
                             ax >= 0.5 && ax <= 2 ? 3.6e-7 + ulp(exact[1]) : 3.5 * ulp(exact[1]),
                             3.6e-7 + ulp(exact[2]), 3.6e-7 + ulp(exact[3]), 2.5 * ulp(exact[4]), 2.5 * ulp(exact[5])};
    for (int f = 0; f < 6; ++f) {
      const double err = std::fabs(out[6 * i + f] - exact[f]);
      ASSERT_LE(err, bound[f]) << "function " << f << " at x = " << xi;
      moved += err > 0.5 * ulp(exact[f]);
    }
  }
  EXPECT_GT(moved, static_cast<int>(5 * x.size()));
  float flushed = 1.f;
  const float tiny = -130.f;  // 2^-130 is subnormal: ex2.approx.ftz gives 0
  fast_math(&tiny, out.data(), 1);
  flushed = out[5];
  EXPECT_EQ(flushed, 0.f);
}

// Outside their documented ranges the GPU's answers differ from the math: __fdividef by a divisor
// beyond 2^126 gives 0, and __sincosf past pi is a misuse (its bound no longer holds).
TEST(EmulatorStrictness, FastIntrinsicsOutsideTheirRanges) {
  float out[3] = {};
  fast_divide_and_sincos(3.f, 0x1.8p126f, 0.5f, out);
  EXPECT_EQ(out[0], 0.f);
  fast_divide_and_sincos(3.f, 0x1p126f, 3.1f, out);  // 2^126 itself is still in range
  EXPECT_NEAR(out[0], 3.f * 0x1p-126f, 3.f * 0x1p-126f * 0x1p-21f);
  EXPECT_NEAR(out[1], std::sin(3.1), 4e-7);
  expect_report([&] { fast_divide_and_sincos(1.f, 1.f, 4.f, out); }, "__sincosf(4.000000): its error bound holds only in [-pi, pi]");
}

TEST(EmulatorStrictness, MisalignedAccessesAreReported) {
  std::vector<float> buf(64, 0.f);
  float* aligned = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 15) / 16 * 16);
  expect_report([&] { misaligned_cp_async(aligned); }, "misaligned cp.async global source");
  expect_report(misaligned_ldmatrix, "misaligned ldmatrix row address");
  expect_report([&] { misaligned_vector(aligned); }, "misaligned vector access");
  expect_report([&] { misaligned_vector(aligned); }, "needs 16-byte alignment");
}

#if defined(__SANITIZE_ADDRESS__)
// Only in the AddressSanitizer build of this test (emu_tests_asan): out-of-bounds writes from a
// kernel's fibers are caught, which needs the emulator's fiber-switch annotations.
TEST(EmulatorAsan, CatchesOutOfBoundsWriteInAKernel) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::vector<float> buf(40);
        out_of_bounds_write(buf.data());
      },
      "heap-buffer-overflow");
}

// Static __shared__ arrays live in thread-local storage, which ASan has no redzones for; the
// same build adds -fsanitize=bounds, which checks every index into an array of known size.
TEST(EmulatorAsan, CatchesOutOfBoundsStaticSharedMemoryWrite) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(shared_out_of_bounds_write(), "out of bounds for type 'float \\[32\\]'");
}
#endif

}  // namespace
}  // namespace llamatron::selftest
