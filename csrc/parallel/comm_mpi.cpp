// The Open MPI communicator (CPU backend and the emulated device: buffers in host memory), and the
// world of one for a process started without mpirun.
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "llamatron/comm.h"
#include "llamatron/errors.h"

namespace llamatron {
namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::I32: return MPI_INT;
    case DType::BF16: return MPI_UINT16_T;  // moved as bits
  }
  return MPI_DATATYPE_NULL;
}

int count(int64_t n) {
  LT_CHECK(n >= 0 && n <= INT_MAX, "an MPI message of " + std::to_string(n) + " elements: split it below 2^31");
  return static_cast<int>(n);
}

// bf16 sums (MPI has no bf16): each pair added in fp32 and rounded to nearest-even, as NCCL does.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = bf16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op o;
    MPI_Op_create(bf16_sum, 1, &o);
    return o;
  }();
  return op;
}

MPI_Op mpi_op(ReduceOp op, DType t) {
  if (t == DType::BF16) {
    LT_CHECK(op == ReduceOp::Sum, "bf16 buffers are only summed over MPI");
    return bf16_sum_op();
  }
  return op == ReduceOp::Max ? MPI_MAX : MPI_SUM;  // Avg = Sum, then a division
}

void divide(void* buf, int64_t n, DType t, int size) {
  LT_CHECK(t == DType::F32, "ReduceOp::Avg needs fp32");
  float* x = static_cast<float*>(buf);
  for (int64_t i = 0; i < n; ++i) x[i] /= static_cast<float>(size);
}

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(call) + " failed: " + std::string(text, len));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(void* buf, int64_t n, DType t, ReduceOp op) override {
    check(MPI_Allreduce(MPI_IN_PLACE, buf, count(n), mpi_type(t), mpi_op(op, t), comm_), "MPI_Allreduce");
    if (op == ReduceOp::Avg) divide(buf, n, t, size_);
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override {
    check(MPI_Allreduce(MPI_IN_PLACE, v, count(n), MPI_DOUBLE, op == ReduceOp::Max ? MPI_MAX : MPI_SUM, comm_), "MPI_Allreduce");
    if (op == ReduceOp::Avg)
      for (int64_t i = 0; i < n; ++i) v[i] /= size_;
  }
  void reduce_scatter(const void* send, void* recv, int64_t n, DType t, ReduceOp op) override {
    check(MPI_Reduce_scatter_block(send, recv, count(n), mpi_type(t), mpi_op(op, t), comm_), "MPI_Reduce_scatter_block");
    if (op == ReduceOp::Avg) divide(recv, n, t, size_);
  }
  void all_gather(const void* send, void* recv, int64_t n, DType t) override {
    const bool in_place = send == static_cast<const char*>(recv) + static_cast<size_t>(rank_) * n * dtype_size(t);
    check(MPI_Allgather(in_place ? MPI_IN_PLACE : send, count(n), mpi_type(t), recv, count(n), mpi_type(t), comm_),
          "MPI_Allgather");
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    check(MPI_Bcast(buf, count(n), mpi_type(t), root, comm_), "MPI_Bcast");
  }
  void send_recv(const std::vector<Transfer>& transfers) override {
    std::vector<MPI_Request> requests(transfers.size());
    for (size_t i = 0; i < transfers.size(); ++i) {
      const Transfer& x = transfers[i];
      if (x.kind == Transfer::Send)
        check(MPI_Isend(x.buf, count(x.n), mpi_type(x.dtype), x.peer, 0, comm_, &requests[i]), "MPI_Isend");
      else
        check(MPI_Irecv(x.buf, count(x.n), mpi_type(x.dtype), x.peer, 0, comm_, &requests[i]), "MPI_Irecv");
    }
    check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    return std::make_unique<MpiCommunicator>(sub, true);
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

// A process on its own: every collective over one rank is a copy or nothing.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(void*, int64_t, DType, ReduceOp) override {}
  void all_reduce(double*, int64_t, ReduceOp) override {}
  void reduce_scatter(const void* send, void* recv, int64_t n, DType t, ReduceOp) override { copy(send, recv, n, t); }
  void all_gather(const void* send, void* recv, int64_t n, DType t) override { copy(send, recv, n, t); }
  void broadcast(void*, int64_t, DType, int) override {}
  void send_recv(const std::vector<Transfer>& transfers) override {
    LT_CHECK(transfers.empty(), "point-to-point transfer in a world of one");
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SelfCommunicator>(); }

 private:
  static void copy(const void* src, void* dst, int64_t n, DType t) {
    if (src != dst) std::memmove(dst, src, static_cast<size_t>(n) * dtype_size(t));
  }
};

void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

Communicator& self_group() {
  static SelfCommunicator self;
  return self;
}

namespace {
// (rank among this node's processes, their count): a split of the world by shared memory, made
// when MPI starts, since it is collective over the world and later callers may be a sub-group.
std::pair<int, int> g_node_local{0, 1};

void find_node_local() {
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  MPI_Comm_rank(node, &g_node_local.first);
  MPI_Comm_size(node, &g_node_local.second);
  MPI_Comm_free(&node);
}
}  // namespace

Communicator& world() {
  static std::unique_ptr<Communicator> w = [] () -> std::unique_ptr<Communicator> {
    if (!launched_by_mpi()) return std::make_unique<SelfCommunicator>();
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_mpi);
    find_node_local();
    return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
  }();
  return *w;
}

int node_local_rank() {
  world();  // initialises MPI (and the split) when launched by mpirun
  return g_node_local.first;
}
int node_local_size() {
  world();
  return g_node_local.second;
}

void exit_job(int code, bool every_rank_failed) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1 && !every_rank_failed) MPI_Abort(MPI_COMM_WORLD, code);  // the others may wait in a collective
    MPI_Finalize();
  }
  std::exit(code);
}

}  // namespace llamatron
