#include <functional>
#include <numeric>
#include <utility>

#include "llamatron/comm.h"
#include "llamatron/trace.h"
#include "llamatron/watchdog.h"

namespace llamatron {
namespace {

// A counted collective: the time its waiter blocks is exposed communication; when tracing, the
// collective (issue to completion, on its group's row) and the wait (on the compute row) are events.
class CountedWork final : public PendingWork {
 public:
  CountedWork(std::unique_ptr<PendingWork> inner, CommStats* stats, std::string group, std::string label, double bytes,
              std::function<std::string()> describe)
      : inner_(std::move(inner)), stats_(stats), group_(std::move(group)), label_(std::move(label)), bytes_(bytes),
        issued_(trace::now_us()), describe_(std::move(describe)) {}
  void wait() override {
    const double t0 = trace::now_us();
    {
      const watchdog::Watch deadline(describe_);
      inner_->wait();
    }
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
  std::function<std::string()> describe_;
};

class CountingCommunicator final : public Communicator {
 public:
  CountingCommunicator(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name, std::vector<int> members)
      : inner_(std::move(inner)), stats_(stats), name_(std::move(name)), members_(std::move(members)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return name_; }
  Handle all_reduce_async(void* buf, int64_t n, DType t, ReduceOp op) override {
    return counted("all_reduce", 2.0 * (size() - 1) / size() * static_cast<double>(n) * dtype_size(t),
                   inner_->all_reduce_async(buf, n, t, op));
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override {
    const double bytes = 2.0 * (size() - 1) / size() * static_cast<double>(n) * 8;
    add("all_reduce", bytes, next());
    const double t0 = trace::now_us();
    {
      const watchdog::Watch deadline(describer("all_reduce", {}));
      inner_->all_reduce(v, n, op);
    }
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
    if (rank() == root) add("broadcast", static_cast<double>(n) * dtype_size(t), next());
    const watchdog::Watch deadline(describer("broadcast", {}));
    inner_->broadcast(buf, n, t, root);
  }
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    if (transfers.empty() || size() == 1) return inner_->send_recv_async(transfers);
    double bytes = 0;
    std::vector<int> peers;
    for (const Transfer& x : transfers) {
      peers.push_back(x.peer);
      if (x.kind != Transfer::Send) continue;
      const double b = static_cast<double>(x.n) * dtype_size(x.dtype);
      add("send", b, x.peer);
      bytes += b;
    }
    return Handle(std::make_unique<CountedWork>(inner_->send_recv_async(transfers).release(), stats_, name_, name_ + ".send", bytes,
                                                describer("send/recv", peers)));
  }
  void barrier() override {
    const watchdog::Watch deadline(describer("barrier", {}));
    inner_->barrier();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<CountingCommunicator>(inner_->split(color, key), stats_, name_ + ".sub", std::vector<int>{});
  }

 private:
  int next() const { return (rank() + 1) % size(); }  // where a ring collective's bytes go
  // Counts bytes sent to group rank `to`; inter-host when its host differs from this rank's.
  void add(const char* op, double bytes, int to) {
    if (size() == 1 || bytes <= 0) return;
    const std::string key = name_ + "." + op;
    stats_->bytes[key] += bytes;
    const std::vector<std::string>& host = stats_->host_of;
    if (members_.empty() || host.empty()) return;
    const int me = members_[rank()], them = members_[to];
    if (host.at(me) != host.at(them)) stats_->inter_host[key] += bytes;
  }
  // What a wait is for, for the watchdog: the collective, the group, and where its ranks (or the
  // peers of a transfer) run. Built only when a deadline passes.
  std::function<std::string()> describer(const char* op, std::vector<int> peers) const {
    return [this, op, peers = std::move(peers)] {
      std::string s = name_ + "." + op + " on group " + name_ + " (" + std::to_string(size()) + " ranks";
      if (members_.empty()) return s + ")";
      const std::vector<std::string>& host = stats_->host_of;
      const auto where = [&](int group_rank) {
        const int w = members_.at(group_rank);
        return "rank " + std::to_string(w) + (host.empty() ? "" : " on " + host.at(w));
      };
      s += ": ";
      for (int r = 0; r < size(); ++r) s += (r ? ", " : "") + where(r);
      s += ")";
      if (!peers.empty()) {
        s += ", from or to ";
        for (size_t i = 0; i < peers.size(); ++i) s += (i ? ", " : "") + where(peers[i]);
      }
      return s;
    };
  }
  Handle counted(const char* op, double bytes, Handle inner) {
    if (size() == 1) return inner;  // nothing moves: nothing to count or trace
    add(op, bytes, next());
    return Handle(std::make_unique<CountedWork>(inner.release(), stats_, name_, name_ + "." + op, bytes, describer(op, {})));
  }
  std::unique_ptr<Communicator> inner_;
  CommStats* stats_;
  std::string name_;
  std::vector<int> members_;
};

}  // namespace

double CommStats::total(const std::string& prefix) const {
  double t = 0;
  for (const auto& [k, v] : bytes)
    if (k.rfind(prefix, 0) == 0) t += v;
  return t;
}

std::unique_ptr<Communicator> counting(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name,
                                       std::vector<int> members) {
  return std::make_unique<CountingCommunicator>(std::move(inner), stats, std::move(name), std::move(members));
}

}  // namespace llamatron
