// The emulated device runtime behaves like CUDA's for what the backend relies on, and misuse is
// an error; the CUDA runtime, where there is no GPU, says why instead of failing later.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "cuda/runtime.h"
#include "llamatron/errors.h"

namespace llamatron::rt {
namespace {

TEST(EmulatedRuntime, CopiesMemsetsStreamsAndEvents) {
  auto rt = make_emulated_runtime();
  EXPECT_EQ(rt->device_count(), 1);
  EXPECT_EQ(rt->properties(0).sm, 90);
  std::vector<int> host(1000), back(1000, -1);
  for (int i = 0; i < 1000; ++i) host[i] = i * 3;
  void* dev = rt->malloc(host.size() * sizeof(int));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(dev) % 256, 0u);
  Stream s = rt->stream_create();
  Event start = rt->event_create(), stop = rt->event_create();
  rt->event_record(start, s);
  rt->memcpy_async(dev, host.data(), host.size() * sizeof(int), Copy::HostToDevice, s);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  rt->event_record(stop, s);
  rt->stream_synchronize(s);
  rt->memcpy(back.data(), dev, back.size() * sizeof(int), Copy::DeviceToHost);
  EXPECT_EQ(back, host);
  EXPECT_GE(rt->event_elapsed_ms(start, stop), 19.0f);
  rt->memset_async(dev, 0, 16, s);
  rt->memcpy(back.data(), dev, 16, Copy::DeviceToHost);
  EXPECT_EQ(back[0], 0);
  EXPECT_EQ(back[3], 0);
  EXPECT_EQ(back[4], 12);
  rt->event_destroy(start);
  rt->event_destroy(stop);
  rt->stream_destroy(s);
  rt->free(dev);
}

// cudaMalloc does not zero memory; the emulated one poisons it (0xFF: NaN in bf16 and fp32), so
// a reader that relies on zeros fails on the CPU too.
TEST(EmulatedRuntime, FreshDeviceMemoryIsPoisonNotZero) {
  auto rt = make_emulated_runtime();
  const size_t bytes = 1000;
  auto* p = static_cast<unsigned char*>(rt->malloc(bytes));
  std::vector<unsigned char> host(bytes, 0);
  rt->memcpy(host.data(), p, bytes, Copy::DeviceToHost);
  for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(host[i], 0xFF) << i;
  rt->free(p);
}

TEST(EmulatedRuntime, MisuseIsAnError) {
  auto rt = make_emulated_runtime();
  void* dev = rt->malloc(64);
  rt->free(dev);
  EXPECT_THROW(rt->free(dev), Error);  // double free
  int x = 0;
  EXPECT_THROW(rt->free(&x), Error);   // not a device allocation
  Stream s = rt->stream_create();
  rt->stream_destroy(s);
  EXPECT_THROW(rt->stream_synchronize(s), Error);
  Event e = rt->event_create(), f = rt->event_create();
  EXPECT_THROW(rt->event_elapsed_ms(e, f), Error);  // never recorded
  EXPECT_THROW(rt->properties(1), Error);
}

TEST(CudaRuntime, ReportsWhyItIsUnavailableOrWorks) {
  std::string why;
  auto rt = make_cuda_runtime(&why);
  if (rt) {
    EXPECT_GE(rt->device_count(), 1);  // a GPU machine: the real runtime answers
  } else {
    EXPECT_FALSE(why.empty());
    EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace llamatron::rt
