#include "cuda/comm_emulated.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "llamatron/errors.h"
#include "llamatron/trace.h"

namespace llamatron::cuda {
namespace {

// The poison of an output in flight: 0xFF81 in every 16-bit word, a signalling NaN in bf16 and,
// two words at a time, in fp32 (0xFF81FF81). A kernel that reads it computes NaN; one that adds
// into it (a gradient accumulated before the reduction landed) writes a quiet NaN, other bits, so
// the completion sees the output was written, where an all-0xFF poison would come back unchanged.
constexpr uint64_t kPoison = 0xFF81FF81FF81FF81ull;

void poison(char* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) std::memcpy(p + i, &kPoison, 8);
  std::memcpy(p + i, &kPoison, n - i);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// FNV-1a over 8-byte words: enough to tell that a buffer changed, at memory speed.
uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
  return h;
}

bool still_poison(const char* p, size_t n) {
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    diff |= w ^ kPoison;
  }
  return diff == 0 && std::memcmp(p + i, &kPoison, n - i) == 0;
}

struct Span {
  const void* p;
  size_t bytes;
};

bool overlap(const Span& a, const Span& b) {
  const auto* x = static_cast<const char*>(a.p);
  const auto* y = static_cast<const char*>(b.p);
  return a.bytes > 0 && b.bytes > 0 && x < y + b.bytes && y < x + a.bytes;
}

// One collective on device buffers, from its issue to its completion on the group's stream.
struct Flight {
  struct Input {
    const char* p;
    size_t bytes;
    uint64_t hash;  // after the issue poisoned the outputs (an output may lie inside an input)
  };
  struct Output {
    char* dst;
    const char* result;  // in staging
    size_t bytes;
  };
  const char* what;
  Handle host;                                  // the MPI collective on the staging buffers
  std::vector<std::vector<char>> staging;       // held until completion (MPI reads and writes them)
  std::vector<Input> inputs;                    // must not change before completion
  std::vector<Output> outputs;                  // poison from issue to completion
  std::vector<Span> touched;                    // every input and output, for same-group ordering
  bool done = false;
  double completed_us = 0;

  char* stage(const void* src, size_t bytes) {  // a copy of an input as it is at issue
    char* s = scratch(bytes);
    if (bytes) std::memcpy(s, src, bytes);
    return s;
  }
  char* scratch(size_t bytes) { return staging.emplace_back(std::max<size_t>(bytes, 1)).data(); }
  void produce(void* dst, const char* result, size_t bytes) {
    if (!bytes) return;
    poison(static_cast<char*>(dst), bytes);
    outputs.push_back({static_cast<char*>(dst), result, bytes});
    touched.push_back({dst, bytes});
  }
  void guard(const void* src, size_t bytes) {
    if (!bytes) return;
    inputs.push_back({static_cast<const char*>(src), bytes, 0});
    touched.push_back({src, bytes});
  }

  // On the group's stream, once something synchronises with it.
  void complete() {
    done = true;
    std::unique_ptr<PendingWork> mpi = host.release();
    if (mpi) mpi->wait();
    for (const Input& in : inputs)
      if (hash_bytes(in.p, in.bytes) != in.hash)
        throw Error(std::string("the input of ") + what +
                    " was overwritten before the collective completed: the compute stream must wait on its Handle before "
                    "reusing the buffer");
    for (const Output& out : outputs)
      if (!still_poison(out.dst, out.bytes))
        throw Error(std::string("the output of ") + what +
                    " was written before the collective completed: nothing may write it before its Handle is waited on");
    for (const Output& out : outputs) std::memcpy(out.dst, out.result, out.bytes);
    completed_us = mpi && mpi->completed_us() > 0 ? mpi->completed_us() : now_us();  // when the traffic ended, for traces
    std::vector<std::vector<char>>().swap(staging);
  }
};

// A collective in flight: waiting makes the compute stream wait for its completion event (in the
// emulator, with the compute stream the eager default stream, that runs the completion now).
class EmulatedWork final : public PendingWork {
 public:
  EmulatedWork(rt::Runtime& rt, rt::Stream compute, rt::Event done, std::shared_ptr<Flight> flight)
      : rt_(rt), compute_(compute), done_(done), flight_(std::move(flight)) {}
  ~EmulatedWork() override {
    try {
      rt_.event_destroy(done_);
    } catch (const std::exception&) {
    }
  }
  void wait() override { rt_.stream_wait_event(compute_, done_); }
  double completed_us() const override { return flight_->completed_us; }

 private:
  rt::Runtime& rt_;
  rt::Stream compute_;
  rt::Event done_;
  std::shared_ptr<Flight> flight_;
};

class EmulatedDeviceCommunicator final : public Communicator {
 public:
  EmulatedDeviceCommunicator(std::unique_ptr<Communicator> host, rt::Runtime& rt, rt::Stream compute)
      : host_(std::move(host)), rt_(rt), compute_(compute), stream_(rt.stream_create()), ready_(rt.event_create()) {}
  ~EmulatedDeviceCommunicator() override {
    try {
      rt_.stream_destroy(stream_);  // completes what is still in flight
    } catch (const std::exception& e) {
      std::fprintf(stderr, "llamatron: a collective failed: %s\n", e.what());
    }
    try {
      rt_.event_destroy(ready_);
    } catch (const std::exception&) {
    }
  }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  Handle all_reduce_async(void* buf, int64_t n, DType t, ReduceOp op) override {
    const size_t bytes = static_cast<size_t>(n) * dtype_size(t);
    if (!on_device("all_reduce", {{buf, bytes}})) return host_->all_reduce_async(buf, n, t, op);
    auto f = start("all_reduce", {{buf, bytes}});
    char* s = f->stage(buf, bytes);
    f->host = host_->all_reduce_async(s, n, t, op);
    f->produce(buf, s, bytes);  // in place: the output is the input, poison until complete
    return issue(f);
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override { host_->all_reduce(v, n, op); }

  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t, ReduceOp op) override {
    LT_CHECK(static_cast<int>(counts.size()) == size(), "reduce_scatter needs one count per rank");
    const size_t es = dtype_size(t);
    const size_t in = static_cast<size_t>(std::accumulate(counts.begin(), counts.end(), int64_t{0})) * es;
    const size_t out = static_cast<size_t>(counts[rank()]) * es;
    if (!on_device("reduce_scatter", {{send, in}, {recv, out}})) return host_->reduce_scatter_async(send, recv, counts, t, op);
    auto f = start("reduce_scatter", {{send, in}, {recv, out}});
    char* s_in = f->stage(send, in);
    char* s_out = f->scratch(out);
    f->host = host_->reduce_scatter_async(s_in, s_out, counts, t, op);
    f->produce(recv, s_out, out);
    f->guard(send, in);
    return issue(f);
  }

  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t) override {
    LT_CHECK(static_cast<int>(counts.size()) == size(), "all_gather needs one count per rank");
    const size_t es = dtype_size(t);
    const size_t total = static_cast<size_t>(std::accumulate(counts.begin(), counts.end(), int64_t{0})) * es;
    const size_t own_at = static_cast<size_t>(std::accumulate(counts.begin(), counts.begin() + rank(), int64_t{0})) * es;
    const size_t own = static_cast<size_t>(counts[rank()]) * es;
    if (!on_device("all_gather", {{send, own}, {recv, total}})) return host_->all_gather_async(send, recv, counts, t);
    auto f = start("all_gather", {{send, own}, {recv, total}});
    char* s_in = f->stage(send, own);
    char* s_out = f->scratch(total);
    f->host = host_->all_gather_async(s_in, s_out, counts, t);
    char* r = static_cast<char*>(recv);
    if (send == r + own_at) {  // in place: this rank's chunk is the input and stays as it is
      f->produce(r, s_out, own_at);
      f->produce(r + own_at + own, s_out + own_at + own, total - own_at - own);
    } else {
      f->produce(r, s_out, total);
    }
    f->guard(send, own);
    return issue(f);
  }

  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    if (transfers.empty()) return {};
    std::vector<Span> spans;
    for (const Transfer& x : transfers) spans.push_back({x.buf, static_cast<size_t>(x.n) * dtype_size(x.dtype)});
    if (!on_device("send/recv", spans)) return host_->send_recv_async(transfers);
    auto f = start("send/recv", spans);
    std::vector<Transfer> staged = transfers;
    for (size_t i = 0; i < staged.size(); ++i)
      staged[i].buf = staged[i].kind == Transfer::Send ? f->stage(transfers[i].buf, spans[i].bytes) : f->scratch(spans[i].bytes);
    f->host = host_->send_recv_async(staged);
    for (size_t i = 0; i < staged.size(); ++i)
      if (transfers[i].kind == Transfer::Recv) f->produce(transfers[i].buf, static_cast<const char*>(staged[i].buf), spans[i].bytes);
    for (size_t i = 0; i < staged.size(); ++i)
      if (transfers[i].kind == Transfer::Send) f->guard(transfers[i].buf, spans[i].bytes);
    return issue(f);
  }

  // Blocking: after the group's earlier collectives (NCCL runs them in order on its stream).
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    const size_t bytes = static_cast<size_t>(n) * dtype_size(t);
    if (!on_device("broadcast", {{buf, bytes}})) return host_->broadcast(buf, n, t, root);
    rt_.stream_synchronize(stream_);
    inputs_ready();
    std::vector<char> s(std::max<size_t>(bytes, 1));
    std::memcpy(s.data(), buf, bytes);
    host_->broadcast(s.data(), n, t, root);
    std::memcpy(buf, s.data(), bytes);
  }
  void barrier() override {
    rt_.stream_synchronize(stream_);
    rt_.stream_synchronize(compute_);
    host_->barrier();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<EmulatedDeviceCommunicator>(host_->split(color, key), rt_, compute_);
  }

 private:
  // Device memory goes through here, host memory to MPI; NCCL takes no host memory, so a
  // collective that mixes the two is an error (it would fail on a GPU).
  bool on_device(const char* what, const std::vector<Span>& spans) {
    bool device = false, host = false;
    for (const Span& s : spans)
      if (s.bytes > 0) (rt_.is_device_pointer(s.p) ? device : host) = true;
    if (device && host)
      throw Error(std::string(what) + " on device and host buffers at once: NCCL moves device memory only, so every buffer of "
                  "a collective on the CUDA device must be device memory");
    return device;
  }

  // The inputs as the compute stream has written them so far (NCCL: the communication stream
  // waits on an event recorded on the compute stream at issue; here the host takes the copy, so
  // it waits for that event itself; on the eager default stream it has passed already).
  void inputs_ready() {
    rt_.event_record(ready_, compute_);
    rt_.event_synchronize(ready_);
  }

  // A new collective. Collectives of one group run in issue order on its stream (as NCCL's do):
  // one that touches the buffers of an earlier one still in flight completes that one first, so
  // that, say, an all-reduce of an all-reduce's result gets that result, not its poison.
  std::shared_ptr<Flight> start(const char* what, const std::vector<Span>& spans) {
    std::erase_if(in_flight_, [](const std::shared_ptr<Flight>& f) { return f->done; });
    const auto conflicts = [&](const std::shared_ptr<Flight>& f) {
      for (const Span& a : f->touched)
        for (const Span& b : spans)
          if (overlap(a, b)) return true;
      return false;
    };
    if (std::any_of(in_flight_.begin(), in_flight_.end(), conflicts)) {
      rt_.stream_synchronize(stream_);
      in_flight_.clear();
    }
    inputs_ready();
    auto f = std::make_shared<Flight>();
    f->what = what;
    return f;
  }

  // Its completion on the group's stream, and the event its consumer waits on.
  Handle issue(const std::shared_ptr<Flight>& f) {
    for (Flight::Input& in : f->inputs) in.hash = hash_bytes(in.p, in.bytes);
    in_flight_.push_back(f);
    trace::DeviceTimeline* timeline = trace::device_timeline();  // the collective on its stream's row
    const int begin = timeline ? timeline->mark(stream_) : -1;
    rt_.launch_host_func(stream_, [f] { f->complete(); });
    if (timeline) trace::device_event(f->what, "comm", row_, begin, timeline->mark(stream_));
    rt::Event done = rt_.event_create();
    rt_.event_record(done, stream_);
    return Handle(std::make_unique<EmulatedWork>(rt_, compute_, done, f));
  }

  std::unique_ptr<Communicator> host_;  // destroyed last: the stream's pending work waits on it
  rt::Runtime& rt_;
  rt::Stream compute_;
  rt::Stream stream_;  // this group's communication stream
  rt::Event ready_;
  std::vector<std::shared_ptr<Flight>> in_flight_;
  std::string row_ = "stream comm " + std::to_string(++groups_made_);  // its row in a trace
  static inline int groups_made_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_emulated_device_communicator(std::unique_ptr<Communicator> host, rt::Runtime& runtime,
                                                                rt::Stream compute) {
  return std::make_unique<EmulatedDeviceCommunicator>(std::move(host), runtime, compute);
}

}  // namespace llamatron::cuda
