// Streams and events on the emulated device, and the emulated NCCL on top of them (docs/kernels.md,
// "Streams and events in the emulator"): work on a created stream waits until something
// synchronises with it, so a consumer that skips an event wait sees what a GPU could have shown
// it — a collective's output still poison (NaN), or an error for a buffer reused too early —
// instead of passing by luck.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/comm_emulated.h"
#include "cuda/runtime.h"
#include "llamatron/comm.h"
#include "llamatron/errors.h"
#include "llamatron/ops.h"

namespace llamatron::test {
namespace {

using rt::Event;
using rt::Stream;

// --- the runtime ----------------------------------------------------------------------------

TEST(EmulatedStreams, HostFunctionsRunInOrderOnlyWhenSomethingSynchronisesWithThem) {
  auto r = rt::make_emulated_runtime();
  Stream s = r->stream_create();
  Event first_two = r->event_create(), all = r->event_create();
  std::vector<int> ran;
  r->launch_host_func(s, [&] { ran.push_back(1); });
  r->launch_host_func(s, [&] { ran.push_back(2); });
  r->event_record(first_two, s);
  r->launch_host_func(s, [&] { ran.push_back(3); });
  r->event_record(all, s);
  EXPECT_TRUE(ran.empty()) << "work on a created stream ran at issue";
  r->stream_wait_event(nullptr, first_two);  // the eager default stream waits: the queue runs up to the event
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  r->event_synchronize(all);
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
  r->event_destroy(first_two);
  r->event_destroy(all);
  r->stream_destroy(s);
}

TEST(EmulatedStreams, CopiesQueueBehindPendingWorkAndAnotherStreamWaitsOnTheEvent) {
  auto r = rt::make_emulated_runtime();
  Stream producer = r->stream_create(), consumer = r->stream_create();
  auto* dev = static_cast<int*>(r->malloc(4 * sizeof(int)));
  int src = 0, seen = -1;
  r->launch_host_func(producer, [&] { src = 7; });
  r->memcpy_async(dev, &src, sizeof(int), rt::Copy::HostToDevice, producer);  // behind the host function
  Event written = r->event_create();
  r->event_record(written, producer);
  r->stream_wait_event(consumer, written);
  r->launch_host_func(consumer, [&] { seen = dev[0]; });
  EXPECT_EQ(src, 0);
  EXPECT_EQ(static_cast<unsigned>(dev[0]), 0xFFFFFFFFu) << "the copy ran before the host function it queues behind";
  r->stream_synchronize(consumer);  // runs the producer up to the event first
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(dev[0], 7);
  r->memset_async(dev, 0, sizeof(int), producer);  // an idle stream starts a copy or memset at once
  EXPECT_EQ(dev[0], 0);
  r->event_destroy(written);
  r->stream_destroy(producer);
  r->stream_destroy(consumer);
  r->free(dev);
}

TEST(EmulatedStreams, WhatDeferredWorkThrowsIsAnErrorAtTheSynchronisingCall) {
  auto r = rt::make_emulated_runtime();
  Stream s = r->stream_create();
  bool after = false;
  r->launch_host_func(s, [] { throw Error("boom from the stream"); });
  r->launch_host_func(s, [&] { after = true; });
  Event e = r->event_create();
  r->event_record(e, s);
  try {
    r->event_synchronize(e);
    ADD_FAILURE() << "the failure of deferred work was not reported";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("boom from the stream"), std::string::npos) << err.what();
  }
  EXPECT_FALSE(after);
  r->event_synchronize(e);  // the stream goes on after the failed operation
  EXPECT_TRUE(after);
  r->launch_host_func(s, [] { throw std::runtime_error("not an Error"); });
  EXPECT_THROW(r->stream_synchronize(s), Error);
  r->event_destroy(e);
  r->stream_destroy(s);
}

TEST(EmulatedStreams, DestroyAndDeviceSynchronizeCompletePendingWorkAndEventsTimeTheirPoint) {
  auto r = rt::make_emulated_runtime();
  Stream a = r->stream_create(), b = r->stream_create();
  int ran = 0;
  Event start = r->event_create(), stop = r->event_create();
  r->event_record(start, a);  // idle: passes now
  r->launch_host_func(a, [&] { ++ran; });
  r->event_record(stop, a);
  EXPECT_THROW(r->event_elapsed_ms(start, stop), Error) << "stop has not completed";
  r->launch_host_func(b, [&] { ++ran; });
  r->device_synchronize();
  EXPECT_EQ(ran, 2);
  EXPECT_GE(r->event_elapsed_ms(start, stop), 0.0f);
  r->launch_host_func(a, [&] { ++ran; });
  r->event_record(stop, a);
  r->stream_destroy(a);  // CUDA lets pending work complete
  EXPECT_EQ(ran, 3);
  r->event_synchronize(stop);  // recorded on a stream that is gone: complete
  r->event_destroy(start);
  r->event_destroy(stop);
  r->stream_destroy(b);
}

TEST(EmulatedStreams, DevicePointersAreThoseInsideLiveAllocations) {
  auto r = rt::make_emulated_runtime();
  auto* p = static_cast<char*>(r->malloc(1000));
  int host = 0;
  EXPECT_TRUE(r->is_device_pointer(p));
  EXPECT_TRUE(r->is_device_pointer(p + 999));
  EXPECT_FALSE(r->is_device_pointer(&host));
  r->free(p);
  EXPECT_FALSE(r->is_device_pointer(p));
}

// --- the emulated NCCL ------------------------------------------------------------------------

// One rank of two, the other one simulated: it contributes a copy of this rank's data to sums,
// and its chunk of a gather is kOther. Complete at issue, as MPI over one process would be.
constexpr float kOther = 100.0f;
class DoneWork final : public PendingWork {
 public:
  void wait() override {}
  double completed_us() const override { return 1; }
};
class TwoRanksHost final : public Communicator {
 public:
  explicit TwoRanksHost(int rank) : rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  Handle all_reduce_async(void* buf, int64_t n, DType, ReduceOp) override {
    for (int64_t i = 0; i < n; ++i) static_cast<float*>(buf)[i] *= 2;
    return done();
  }
  void all_reduce(double* v, int64_t n, ReduceOp) override {
    for (int64_t i = 0; i < n; ++i) v[i] *= 2;
  }
  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType, ReduceOp) override {
    const float* mine = static_cast<const float*>(send) + (rank_ ? counts[0] : 0);
    for (int64_t i = 0; i < counts[rank_]; ++i) static_cast<float*>(recv)[i] = 2 * mine[i];
    return done();
  }
  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType) override {
    float* out = static_cast<float*>(recv);
    float* mine = out + (rank_ ? counts[0] : 0);
    float* other = out + (rank_ ? 0 : counts[0]);
    std::memmove(mine, send, counts[rank_] * sizeof(float));
    for (int64_t i = 0; i < counts[1 - rank_]; ++i) other[i] = kOther;
    return done();
  }
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {  // the peer echoes what it gets
    const Transfer* sent = nullptr;
    for (const Transfer& x : transfers)
      if (x.kind == Transfer::Send) sent = &x;
    for (const Transfer& x : transfers)
      if (x.kind == Transfer::Recv) std::memcpy(x.buf, sent->buf, x.n * dtype_size(x.dtype));
    return done();
  }
  void broadcast(void*, int64_t, DType, int) override {}
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<TwoRanksHost>(rank_); }

 private:
  static Handle done() { return Handle(std::make_unique<DoneWork>()); }
  int rank_;
};

class EmulatedNccl : public testing::Test {
 protected:
  std::unique_ptr<cuda::CudaBackend> backend = cuda::make_emulated_backend();  // registered for Device::CUDA

  static Tensor device_f32(const std::vector<float>& v) {
    Tensor h = Tensor::empty({static_cast<int64_t>(v.size())}, DType::F32);
    std::copy(v.begin(), v.end(), h.data<float>());
    Tensor d = Tensor::empty(h.shape(), DType::F32, Device::CUDA);
    d.copy_from(h);
    return d;
  }
  static std::vector<float> host_values(const Tensor& d) {
    Tensor h = Tensor::empty(d.shape(), d.dtype());
    h.copy_from(d);
    std::vector<float> out(h.numel());
    for (int64_t i = 0; i < h.numel(); ++i)
      out[i] = d.dtype() == DType::BF16 ? static_cast<float>(h.data<bf16>()[i]) : h.data<float>()[i];
    return out;
  }
  static std::vector<float> iota(int64_t n, float from = 1) {
    std::vector<float> v(n);
    std::iota(v.begin(), v.end(), from);
    return v;
  }
  static bool all_nan(const std::vector<float>& v) {
    for (float x : v)
      if (!std::isnan(x)) return false;
    return true;
  }
};

// The property the emulated device exists for: a kernel that reads a collective's output before
// waiting on its Handle reads NaN; after the wait it reads the result. Over a world of one the
// collective still goes through staging, poison and the deferred completion.
TEST_F(EmulatedNccl, AKernelThatReadsAnAllReduceBeforeItsWaitReadsNaN) {
  auto group = backend->device_group(self_group().split(0, 0));
  const std::vector<float> in = iota(40);
  Tensor x = device_f32(in);
  Tensor y = Tensor::empty({40}, DType::BF16, Device::CUDA);
  Handle h = group->all_reduce_async(x.raw(), 40, DType::F32, ReduceOp::Sum);
  backend->cast(x, y);  // a kernel on the compute stream, no wait
  EXPECT_TRUE(all_nan(host_values(y))) << "the kernel read the all-reduce's result before waiting on it";
  h.wait();
  backend->cast(x, y);
  EXPECT_EQ(host_values(y), in);  // sums of one rank, exact in bf16
  EXPECT_EQ(host_values(x), in);
}

TEST_F(EmulatedNccl, ReusingAReduceScatterInputBeforeTheWaitIsAnErrorNamingIt) {
  auto group = backend->device_group(self_group().split(0, 0));
  Tensor x = device_f32(iota(16)), out = Tensor::empty({16}, DType::F32, Device::CUDA);
  Handle h = group->reduce_scatter_async(x.raw(), out.raw(), {16}, DType::F32, ReduceOp::Sum);
  backend->zero(x.raw(), 16 * sizeof(float));  // the compute stream overwrites the input
  try {
    h.wait();
    ADD_FAILURE() << "an input overwritten before completion passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the input of reduce_scatter was overwritten before the collective completed"),
              std::string::npos)
        << e.what();
  }
  // A copy into the input (Tensor::copy_from: the runtime's memcpy) is caught the same way.
  Tensor y = device_f32(iota(16));
  Handle g = group->reduce_scatter_async(y.raw(), out.raw(), {16}, DType::F32, ReduceOp::Sum);
  y.copy_from(x);
  EXPECT_THROW(g.wait(), Error);
}

TEST_F(EmulatedNccl, WritingAnOutputBeforeTheWaitIsAnError) {
  auto group = backend->device_group(self_group().split(0, 0));
  Tensor x = Tensor::zeros({32}, DType::BF16, Device::CUDA), one = Tensor::zeros({32}, DType::BF16, Device::CUDA);
  Handle h = group->all_reduce_async(x.raw(), 32, DType::BF16, ReduceOp::Sum);
  ops::add_inplace(x, one);  // a kernel accumulating into the buffer before the sum landed
  try {
    h.wait();
    ADD_FAILURE() << "an output written before completion passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the output of all_reduce was written before the collective completed"), std::string::npos)
        << e.what();
  }
}

// Unequal counts (a ZeRO-1 bucket across shard boundaries) and an in-place gather at rank 1, whose
// chunk is not at the start: the ranges poisoned, checked and filled are each rank's own.
TEST_F(EmulatedNccl, ReduceScatterWithUnequalCountsAndInPlaceAllGatherLandAfterTheWait) {
  for (int rank : {0, 1}) {
    auto group = cuda::make_emulated_device_communicator(std::make_unique<TwoRanksHost>(rank), backend->runtime(), nullptr);
    const std::vector<int64_t> counts = {3, 5};
    const std::vector<float> in = iota(8);
    Tensor send = device_f32(in), recv = Tensor::empty({8}, DType::F32, Device::CUDA);
    Tensor mine = recv.view(0, {counts[rank]});
    Handle rs = group->reduce_scatter_async(send.raw(), mine.raw(), counts, DType::F32, ReduceOp::Sum);
    EXPECT_TRUE(all_nan(host_values(mine))) << "rank " << rank;
    rs.wait();
    std::vector<float> want(counts[rank]);
    for (int64_t i = 0; i < counts[rank]; ++i) want[i] = 2 * in[(rank ? counts[0] : 0) + i];
    EXPECT_EQ(host_values(mine), want) << "rank " << rank;

    // In place: this rank's chunk of `flat` is the input; the other chunk is poison until the wait.
    Tensor flat = device_f32(iota(8, 10));
    const int64_t at = rank ? counts[0] : 0, other_at = rank ? 0 : counts[0];
    Handle ag = group->all_gather_async(flat.view(at, {0}).raw(), flat.raw(), counts, DType::F32);
    const std::vector<float> before = host_values(flat);
    for (int64_t i = 0; i < counts[rank]; ++i) EXPECT_EQ(before[at + i], 10 + at + i) << "its own chunk stays";
    for (int64_t i = 0; i < counts[1 - rank]; ++i) EXPECT_TRUE(std::isnan(before[other_at + i])) << "rank " << rank;
    ag.wait();
    const std::vector<float> after = host_values(flat);
    for (int64_t i = 0; i < counts[rank]; ++i) EXPECT_EQ(after[at + i], 10 + at + i);
    for (int64_t i = 0; i < counts[1 - rank]; ++i) EXPECT_EQ(after[other_at + i], kOther);
  }
}

TEST_F(EmulatedNccl, OverOneRankEveryCollectiveGivesItsResultAfterTheWait) {
  auto group = backend->device_group(self_group().split(0, 0));
  const std::vector<float> in = iota(37);
  Tensor x = device_f32(in);
  Handle ag = group->all_gather_async(x.raw(), x.raw(), {37}, DType::F32);  // in place: nothing to poison
  ag.wait();
  EXPECT_EQ(host_values(x), in);
  Tensor out = Tensor::empty({37}, DType::F32, Device::CUDA);
  Handle rs = group->reduce_scatter_async(x.raw(), out.raw(), {37}, DType::F32, ReduceOp::Avg);
  EXPECT_TRUE(all_nan(host_values(out)));
  rs.wait();
  EXPECT_EQ(host_values(out), in);
  // Two all-reduces of one buffer in a row, no wait between: the group runs them in order, so the
  // second sums the first one's result, not its poison.
  Handle a = group->all_reduce_async(x.raw(), 37, DType::F32, ReduceOp::Sum);
  Handle b = group->all_reduce_async(x.raw(), 37, DType::F32, ReduceOp::Sum);
  a.wait();
  b.wait();
  EXPECT_EQ(host_values(x), in);
  group->broadcast(x.raw(), 37, DType::F32, 0);
  EXPECT_EQ(host_values(x), in);
  double scalar = 3;
  group->all_reduce(&scalar, 1, ReduceOp::Sum);  // host scalars go to the host group
  EXPECT_EQ(scalar, 3);
  auto sub = group->split(0, 0);
  Handle s = sub->all_reduce_async(x.raw(), 37, DType::F32, ReduceOp::Sum);
  EXPECT_TRUE(all_nan(host_values(x))) << "the sub-group is an emulated device group too";
  s.wait();
  EXPECT_EQ(host_values(x), in);
  group->barrier();
}

TEST_F(EmulatedNccl, ReceivedBuffersArePoisonUntilTheWaitAndSentOnesMustStayPut) {
  auto group = cuda::make_emulated_device_communicator(std::make_unique<TwoRanksHost>(0), backend->runtime(), nullptr);
  const std::vector<float> in = iota(12);
  Tensor sent = device_f32(in), got = Tensor::empty({12}, DType::F32, Device::CUDA);
  using T = Communicator::Transfer;
  Handle h = group->send_recv_async({{T::Send, 1, sent.raw(), 12, DType::F32}, {T::Recv, 1, got.raw(), 12, DType::F32}});
  EXPECT_TRUE(all_nan(host_values(got)));
  h.wait();
  EXPECT_EQ(host_values(got), in);
  Handle again = group->send_recv_async({{T::Send, 1, sent.raw(), 12, DType::F32}, {T::Recv, 1, got.raw(), 12, DType::F32}});
  backend->zero(sent.raw(), 12 * sizeof(float));  // the next forward overwrites the stage output
  EXPECT_THROW(again.wait(), Error);
  // Host buffers go to the host group as they are; a collective mixing the two is an error.
  std::vector<float> host(12, 1.0f);
  group->all_reduce_async(host.data(), 12, DType::F32, ReduceOp::Sum).wait();
  EXPECT_EQ(host[0], 2.0f);
  EXPECT_THROW(group->reduce_scatter_async(host.data(), got.raw(), {6, 6}, DType::F32, ReduceOp::Sum), Error);
}

// A Handle dropped unwaited waits when it goes out of scope (comm.h); the communicator's own end
// completes what is still in flight.
TEST_F(EmulatedNccl, UnwaitedWorkCompletesWhenItsHandleOrGroupGoes) {
  Tensor x = device_f32(iota(8));
  {
    auto group = backend->device_group(self_group().split(0, 0));
    { Handle h = group->all_reduce_async(x.raw(), 8, DType::F32, ReduceOp::Sum); }
    EXPECT_EQ(host_values(x), iota(8));
    Handle kept = group->all_reduce_async(x.raw(), 8, DType::F32, ReduceOp::Sum);
    kept.release();  // the work gone without a wait: only the group's end completes it
    EXPECT_TRUE(all_nan(host_values(x)));
  }
  EXPECT_EQ(host_values(x), iota(8));
}

}  // namespace
}  // namespace llamatron::test
