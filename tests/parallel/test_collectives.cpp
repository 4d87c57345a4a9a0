// The communicator's own collectives over real Open MPI (part of parallel_tests, under mpirun -np 8),
// against sums computed here. Messages go out in pieces of 60 KiB (comm_mpi.cpp): the counts below
// sit on and around the piece boundaries for fp32 (15360 elements) and bf16 (30720), with empty
// chunks, on the whole world and on a group of 3. Values are small integers, so every sum is exact
// in fp32 and in bf16 and the expected output is exact too.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/dtype.h"

namespace llamatron {
namespace {

const std::vector<int64_t> kCounts = {0, 1, 15360, 15361, 30720, 30721, 7, 61441};

std::vector<int64_t> counts_for(int p) {
  std::vector<int64_t> c(p);
  for (int q = 0; q < p; ++q) c[q] = kCounts[(q + 1) % kCounts.size()] + (q == 0 ? 2 : 0);
  return c;
}

float contribution(int rank, int64_t i) { return static_cast<float>((rank * 7 + i) % 5); }

template <class T>
void reduce_scatter_and_all_gather(Communicator& g, DType t) {
  const int p = g.size(), me = g.rank();
  const std::vector<int64_t> counts = counts_for(p);
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  int64_t first = 0;  // of this rank's chunk
  for (int q = 0; q < me; ++q) first += counts[q];

  std::vector<T> send(total), mine(counts[me]);
  for (int64_t i = 0; i < total; ++i) send[i] = T(contribution(me, i));
  g.reduce_scatter_async(send.data(), mine.data(), counts, t, ReduceOp::Sum).wait();
  for (int64_t j = 0; j < counts[me]; ++j) {
    float want = 0;
    for (int r = 0; r < p; ++r) want += contribution(r, first + j);
    ASSERT_EQ(static_cast<float>(mine[j]), want) << "rank " << me << " of " << p << ", element " << j;
  }

  // All-gather what each rank reduced: everyone ends up with the whole summed buffer.
  std::vector<T> all(total);
  g.all_gather_async(mine.data(), all.data(), counts, t).wait();
  for (int64_t i = 0; i < total; ++i) {
    float want = 0;
    for (int r = 0; r < p; ++r) want += contribution(r, i);
    ASSERT_EQ(static_cast<float>(all[i]), want) << "rank " << me << " of " << p << ", element " << i;
  }
}

// The world, and a group of 3 (ranks 0..2; the rest form another group and run it too).
template <class T>
void on_world_and_a_group_of_three(DType t) {
  Communicator& w = world();
  reduce_scatter_and_all_gather<T>(w, t);
  std::unique_ptr<Communicator> g = w.split(w.rank() < 3 ? 0 : 1, w.rank());
  reduce_scatter_and_all_gather<T>(*g, t);
  w.barrier();
}

TEST(Collectives, Fp32RingsAcrossMessagePieces) { on_world_and_a_group_of_three<float>(DType::F32); }
TEST(Collectives, Bf16RingsAcrossMessagePieces) { on_world_and_a_group_of_three<bf16>(DType::BF16); }

// Pipeline-style transfers: each rank sends to the next and receives from the previous, several
// buffers in one call (same tag: they must land in order), one of them empty.
TEST(Collectives, SendRecvAcrossMessagePieces) {
  Communicator& w = world();
  const int p = w.size(), me = w.rank(), next = (me + 1) % p, prev = (me - 1 + p) % p;
  ASSERT_GE(p, 2) << "run under mpirun -np 2 or more";
  const std::vector<int64_t> sizes = {100003, 0, 15360, 1};
  std::vector<std::vector<float>> out(sizes.size()), in(sizes.size());
  std::vector<Communicator::Transfer> transfers;
  for (size_t k = 0; k < sizes.size(); ++k) {
    out[k].resize(sizes[k]), in[k].assign(sizes[k], -1.0f);
    for (int64_t i = 0; i < sizes[k]; ++i) out[k][i] = contribution(me, i + static_cast<int64_t>(k));
    transfers.push_back({Communicator::Transfer::Send, next, out[k].data(), sizes[k], DType::F32});
    transfers.push_back({Communicator::Transfer::Recv, prev, in[k].data(), sizes[k], DType::F32});
  }
  w.send_recv_async(transfers).wait();
  for (size_t k = 0; k < sizes.size(); ++k)
    for (int64_t i = 0; i < sizes[k]; ++i)
      ASSERT_EQ(in[k][i], contribution(prev, i + static_cast<int64_t>(k))) << "buffer " << k << ", element " << i;
}

}  // namespace
}  // namespace llamatron
