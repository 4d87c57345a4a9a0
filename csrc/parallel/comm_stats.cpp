#include <utility>

#include "llamatron/comm.h"

namespace llamatron {
namespace {

class CountingCommunicator final : public Communicator {
 public:
  CountingCommunicator(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name)
      : inner_(std::move(inner)), stats_(stats), name_(std::move(name)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  void all_reduce(void* buf, int64_t n, DType t, ReduceOp op) override {
    add("all_reduce", 2.0 * (size() - 1) / size() * static_cast<double>(n) * dtype_size(t));
    inner_->all_reduce(buf, n, t, op);
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override {
    add("all_reduce", 2.0 * (size() - 1) / size() * static_cast<double>(n) * 8);
    inner_->all_reduce(v, n, op);
  }
  void reduce_scatter(const void* send, void* recv, int64_t n, DType t, ReduceOp op) override {
    add("reduce_scatter", static_cast<double>(size() - 1) * static_cast<double>(n) * dtype_size(t));
    inner_->reduce_scatter(send, recv, n, t, op);
  }
  void all_gather(const void* send, void* recv, int64_t n, DType t) override {
    add("all_gather", static_cast<double>(size() - 1) * static_cast<double>(n) * dtype_size(t));
    inner_->all_gather(send, recv, n, t);
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    if (rank() == root) add("broadcast", static_cast<double>(n) * dtype_size(t));
    inner_->broadcast(buf, n, t, root);
  }
  void send_recv(const std::vector<Transfer>& transfers) override {
    for (const Transfer& x : transfers)
      if (x.kind == Transfer::Send) add("send", static_cast<double>(x.n) * dtype_size(x.dtype));
    inner_->send_recv(transfers);
  }
  void barrier() override { inner_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<CountingCommunicator>(inner_->split(color, key), stats_, name_ + ".sub");
  }

 private:
  void add(const char* op, double bytes) {
    if (size() > 1) stats_->bytes[name_ + "." + op] += bytes;
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
