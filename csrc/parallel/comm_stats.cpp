#include <numeric>
#include <utility>

#include "llamatron/comm.h"
#include "llamatron/trace.h"

namespace llamatron {
namespace {

// A counted collective: the time its waiter blocks is exposed communication; when tracing, the
// collective (issue to completion, on its group's row) and the wait (on the compute row) are events.
class CountedWork final : public PendingWork {
 public:
  CountedWork(std::unique_ptr<PendingWork> inner, CommStats* stats, std::string group, std::string label, double bytes)
      : inner_(std::move(inner)), stats_(stats), group_(std::move(group)), label_(std::move(label)), bytes_(bytes),
        issued_(trace::now_us()) {}
  void wait() override {
    const double t0 = trace::now_us();
    inner_->wait();
    const double t1 = trace::now_us();
    stats_->exposed_us += t1 - t0;
    if (!trace::recording()) return;
    const double done = inner_->completed_us() > 0 ? inner_->completed_us() : t1;
    trace::event(label_, "comm", "comm " + group_, issued_, done, {trace::arg("group", group_), trace::arg("bytes", bytes_)});
    trace::event("wait " + label_, "wait", "compute", t0, t1, {trace::arg("group", group_)});
  }
  double completed_us() const override { return inner_->completed_us(); }

 private:
  std::unique_ptr<PendingWork> inner_;
  CommStats* stats_;
  std::string group_, label_;
  double bytes_, issued_;
};

class CountingCommunicator final : public Communicator {
 public:
  CountingCommunicator(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name)
      : inner_(std::move(inner)), stats_(stats), name_(std::move(name)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return name_; }
  Handle all_reduce_async(void* buf, int64_t n, DType t, ReduceOp op) override {
    return counted("all_reduce", 2.0 * (size() - 1) / size() * static_cast<double>(n) * dtype_size(t),
                   inner_->all_reduce_async(buf, n, t, op));
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override {
    const double bytes = 2.0 * (size() - 1) / size() * static_cast<double>(n) * 8;
    add("all_reduce", bytes);
    const double t0 = trace::now_us();
    inner_->all_reduce(v, n, op);
    const double t1 = trace::now_us();
    stats_->exposed_us += t1 - t0;
    if (trace::recording() && size() > 1) {  // blocking: issue to completion is all wait
      trace::event(name_ + ".all_reduce", "comm", "comm " + name_, t0, t1, {trace::arg("group", name_), trace::arg("bytes", bytes)});
      trace::event("wait " + name_ + ".all_reduce", "wait", "compute", t0, t1, {trace::arg("group", name_)});
    }
  }
  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t, ReduceOp op) override {
    const double total = static_cast<double>(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
    return counted("reduce_scatter", (size() - 1) * total / size() * dtype_size(t),
                   inner_->reduce_scatter_async(send, recv, counts, t, op));
  }
  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t) override {
    const double total = static_cast<double>(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
    return counted("all_gather", (size() - 1) * total / size() * dtype_size(t), inner_->all_gather_async(send, recv, counts, t));
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    if (rank() == root) add("broadcast", static_cast<double>(n) * dtype_size(t));
    inner_->broadcast(buf, n, t, root);
  }
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    double bytes = 0;
    for (const Transfer& x : transfers)
      if (x.kind == Transfer::Send) bytes += static_cast<double>(x.n) * dtype_size(x.dtype);
    return counted("send", bytes, inner_->send_recv_async(transfers), transfers.empty());
  }
  void barrier() override { inner_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<CountingCommunicator>(inner_->split(color, key), stats_, name_ + ".sub");
  }

 private:
  void add(const char* op, double bytes) {
    if (size() > 1 && bytes > 0) stats_->bytes[name_ + "." + op] += bytes;
  }
  Handle counted(const char* op, double bytes, Handle inner, bool nothing = false) {
    if (size() == 1 || nothing) return inner;  // nothing moves: nothing to count or trace
    add(op, bytes);
    return Handle(std::make_unique<CountedWork>(inner.release(), stats_, name_, name_ + "." + op, bytes));
  }
  std::unique_ptr<Communicator> inner_;
  CommStats* stats_;
  std::string name_;
};

}  // namespace

double CommStats::total(const std::string& prefix) const {
  double t = 0;
  for (const auto& [k, v] : bytes)
    if (k.rfind(prefix, 0) == 0) t += v;
  return t;
}

std::unique_ptr<Communicator> counting(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name) {
  return std::make_unique<CountingCommunicator>(std::move(inner), stats, std::move(name));
}

}  // namespace llamatron
