// The Open MPI communicator (CPU backend and the emulated device: buffers in host memory), and the
// world of one for a process started without mpirun.
#include <mpi.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "llamatron/comm.h"
#include "llamatron/errors.h"
#include "llamatron/watchdog.h"

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

// acc[i] = acc[i] op in[i] over n elements: the ring's local step.
void reduce_into(void* acc, const void* in, int64_t n, DType t, ReduceOp op) {
  const bool max = op == ReduceOp::Max;
  if (t == DType::F32) {
    float* a = static_cast<float*>(acc);
    const float* b = static_cast<const float*>(in);
    for (int64_t i = 0; i < n; ++i) a[i] = max ? std::max(a[i], b[i]) : a[i] + b[i];
  } else if (t == DType::I32) {
    int32_t* a = static_cast<int32_t*>(acc);
    const int32_t* b = static_cast<const int32_t*>(in);
    for (int64_t i = 0; i < n; ++i) a[i] = max ? std::max(a[i], b[i]) : a[i] + b[i];
  } else {
    LT_CHECK(!max, "bf16 buffers are only summed");
    bf16* a = static_cast<bf16*>(acc);
    const bf16* b = static_cast<const bf16*>(in);
    for (int64_t i = 0; i < n; ++i) a[i] = bf16(static_cast<float>(a[i]) + static_cast<float>(b[i]));  // as NCCL's ring
  }
}

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(call) + " failed: " + std::string(text, len));
}

// Point-to-point messages go out as pieces of at most kPieceBytes, posted together. Open MPI's TCP
// transport sends a message above its eager limit (64 KiB) with a rendezvous handshake, and when
// both directions of a link are busy, as in every ring round, that halves the throughput: on two
// simulated hosts at 200 Mbit/s, an exchange of 2 MB each way moved 88-112 Mbit/s per direction,
// the same bytes as 60 KB messages 191 (docs/parallelism.md, "Overlap"). MPI keeps messages with
// one tag between two ranks in order, so the pieces land in place; both sides cut a count alike.
constexpr size_t kPieceBytes = 60 << 10;

enum class Direction { Send, Recv };
void post_pieces(std::vector<MPI_Request>& r, Direction d, void* buf, int64_t n, DType t, int peer, int tag, MPI_Comm comm) {
  const int64_t per = static_cast<int64_t>(kPieceBytes / dtype_size(t));
  int64_t at = 0;
  do {  // one (empty) message for n = 0, as the other side expects
    const int64_t k = std::min(per, n - at);
    char* p = static_cast<char*>(buf) + static_cast<size_t>(at) * dtype_size(t);
    MPI_Request q;
    if (d == Direction::Send) check(MPI_Isend(p, static_cast<int>(k), mpi_type(t), peer, tag, comm, &q), "MPI_Isend");
    else check(MPI_Irecv(p, static_cast<int>(k), mpi_type(t), peer, tag, comm, &q), "MPI_Irecv");
    r.push_back(q);
    at += k;
  } while (at < n);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One MPI operation, in rounds: `step` posts a round's non-blocking calls into `requests`; the
// progress thread calls it at the start and again each time that round has completed, until a
// step posts nothing. Then the op is finished (Avg's division) and marked done for the waiter.
struct MpiOp {
  std::function<void(std::vector<MPI_Request>&)> step;
  std::function<void()> finish;
  std::vector<MPI_Request> requests;
  std::string what;  // for the watchdog: "all_reduce on a group of 8 ranks"
  // Guarded by the progress engine's mutex:
  bool done = false;
  std::string error;
  double completed_us = 0;
};

// Every MPI call of the process goes through here (docs/parallelism.md, "Overlap"). One thread
// initialises MPI, starts each operation as it is issued (non-blocking MPI_I* calls, so any mix of
// groups and orders is deadlock-free), and tests the ones in flight until they complete: the
// collectives progress while the caller computes, and since one thread makes every MPI call, the
// FUNNELED thread level is enough, whatever the library provides above it.
// LLAMATRON_COMM_THREAD=0 runs the same calls on the caller's thread (started at issue, progressed
// only inside wait): no overlap, the same results.
// LLAMATRON_COMM_DELAY_US=N (tests) delays each operation's start and completion by a random
// 0..N microseconds, to shake out waits that are missing or in the wrong place.
class ProgressEngine {
 public:
  static ProgressEngine& get() {
    static ProgressEngine* engine = new ProgressEngine();  // never destroyed: used up to exit
    return *engine;
  }

  // Runs `fn` where MPI calls are made, and returns when it has run (its exception rethrown).
  void call(const std::function<void()>& fn) {
    auto op = std::make_shared<MpiOp>();
    op->step = [&fn, first = true](std::vector<MPI_Request>&) mutable {
      if (first) fn();
      first = false;
    };
    submit(op);
    wait(*op);
  }

  void submit(const std::shared_ptr<MpiOp>& op) {
    if (!threaded_) return start(*op);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) throw Error("an MPI operation after MPI was finalised");
    queue_.push_back(op);
    wake_.notify_one();
  }

  void wait(MpiOp& op) {
    // Every wait has a deadline, also those on groups no counting wrapper names (the world's).
    const watchdog::Watch deadline([&op] { return "MPI " + (op.what.empty() ? std::string("operation") : op.what); });
    if (!threaded_) {
      while (!op.done) {
        const int rc = MPI_Waitall(static_cast<int>(op.requests.size()), op.requests.data(), MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
          complete(op, error_text(rc, "MPI_Waitall"));
          break;
        }
        advance(op);
      }
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiters_;
      done_.wait(lock, [&] { return op.done; });
      --waiters_;
    }
    if (!op.error.empty()) throw Error(op.error);
  }

  // MPI_Finalize on the thread that initialised MPI, then the thread ends. Idempotent: exit_job
  // finalises before std::exit, which runs the atexit finalisation again.
  void finalize() {
    if (threaded_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_) return;
      }
      call([] { finalize_now(); });
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopped_ = true;
        wake_.notify_one();
      }
      thread_.join();
    } else {
      finalize_now();
    }
  }

  int delay_us() const { return delay_us_; }

 private:
  ProgressEngine() {
    const char* t = std::getenv("LLAMATRON_COMM_THREAD");
    threaded_ = !(t && std::string(t) == "0");
    if (const char* d = std::getenv("LLAMATRON_COMM_DELAY_US")) delay_us_ = std::max(0, std::atoi(d));
    if (!threaded_) {
      init();
      return;
    }
    std::promise<void> ready;
    thread_ = std::thread([this, &ready] {
      try {
        init();
        ready.set_value();
      } catch (...) {
        ready.set_exception(std::current_exception());
        return;
      }
      loop();
    });
    ready.get_future().get();
  }

  void init() {
    // Open MPI's non-blocking all-reduce (the TP all-reduces) picks the binomial tree for in-place
    // buffers, which sends log2(p) times the data through the root's link: on simulated hosts at
    // 100 Mbit/s, 4 MiB took 671 ms over 2 hosts and 1680 ms over 4 where the ring took 338 and 551
    // (docs/launching.md, "All-reduce algorithm"). The ring, unless the user chose one (an
    // OMPI_MCA_ variable, which mpirun --mca also sets, wins).
    ::setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    rng_.seed(static_cast<uint64_t>(rank) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(::getpid()));
  }

  static void finalize_now() {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Finalize();
  }

  void random_delay() {
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(rng_() % static_cast<uint64_t>(delay_us_)));
  }

  void start(MpiOp& op) {
    random_delay();
    advance(op);
  }

  // The op's next round (its previous one has completed), or its completion.
  void advance(MpiOp& op) {
    op.requests.clear();
    try {
      op.step(op.requests);
    } catch (const std::exception& e) {
      return complete(op, e.what());
    }
    if (op.requests.empty()) complete(op, "");
  }

  static std::string error_text(int rc, const char* call) {
    try {
      check(rc, call);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  void complete(MpiOp& op, const std::string& error) {
    std::string why = error;
    if (why.empty() && op.finish) {
      try {
        op.finish();
      } catch (const std::exception& e) {
        why = e.what();
      }
    }
    if (threaded_) random_delay();
    std::lock_guard<std::mutex> lock(mu_);
    op.error = why;
    op.completed_us = now_us();
    op.done = true;
    done_.notify_all();
  }

  // Start what was issued, in issue order; test what is in flight; sleep briefly when nothing
  // moved and nobody waits (the thread must not take CPU from the computation it runs under).
  void loop() {
    std::vector<std::shared_ptr<MpiOp>> active;
    int idle_rounds = 0;
    double last_moved_us = 0;
    for (;;) {
      std::deque<std::shared_ptr<MpiOp>> fresh;
      bool someone_waits = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (active.empty()) wake_.wait(lock, [&] { return stopped_ || !queue_.empty(); });
        if (stopped_ && queue_.empty() && active.empty()) return;
        fresh.swap(queue_);
        someone_waits = waiters_ > 0;
      }
      bool moved = !fresh.empty();
      for (auto& op : fresh) {
        start(*op);
        if (!op->done) active.push_back(op);
      }
      for (size_t i = 0; i < active.size();) {
        MpiOp& op = *active[i];
        int flag = 0;
        const int rc = MPI_Testall(static_cast<int>(op.requests.size()), op.requests.data(), &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) complete(op, error_text(rc, "MPI_Testall"));
        else if (flag) advance(op);  // the next round, or done
        moved |= rc != MPI_SUCCESS || flag;
        if (op.done) active.erase(active.begin() + static_cast<std::ptrdiff_t>(i));
        else ++i;
      }
      if (moved || active.empty()) {
        idle_rounds = 0;
        last_moved_us = now_us();
      } else if (someone_waits && now_us() - last_moved_us < 20) {
        std::this_thread::yield();  // a caller is blocked: a message that is about to land is taken at once
      } else {
        // Then back off, to 50 us while a caller waits and to 200 us while nobody does: enough to
        // keep TCP streams moving (the socket buffers hold far more than that at any link speed
        // here), little CPU taken from the computation it runs under. Spinning for as long as a
        // caller waited took 40% of a 2-core machine from the other rank's backward.
        const int cap_us = someone_waits ? 50 : 200;
        std::this_thread::sleep_for(std::chrono::microseconds(std::min(cap_us, 5 << std::min(idle_rounds++, 6))));
      }
    }
  }

  bool threaded_ = true;
  int delay_us_ = 0;
  std::mt19937_64 rng_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::deque<std::shared_ptr<MpiOp>> queue_;
  int waiters_ = 0;
  bool stopped_ = false;
};

class MpiWork final : public PendingWork {
 public:
  explicit MpiWork(std::shared_ptr<MpiOp> op) : op_(std::move(op)) {}
  void wait() override { ProgressEngine::get().wait(*op_); }
  double completed_us() const override { return op_->completed_us; }

 private:
  std::shared_ptr<MpiOp> op_;
};

// An op of one round: `post` issues its calls once.
Handle issue(std::string what, std::function<void(std::vector<MPI_Request>&)> post, std::function<void()> finish = {}) {
  auto op = std::make_shared<MpiOp>();
  op->what = std::move(what);
  op->step = [post = std::move(post), first = true](std::vector<MPI_Request>& r) mutable {
    if (first) post(r);
    first = false;
  };
  op->finish = std::move(finish);
  ProgressEngine::get().submit(op);
  return Handle(std::make_unique<MpiWork>(op));
}

// Counts (checked to fit MPI's int arguments) and displacements of a v-collective.
struct Layout {
  std::vector<int> counts;
  std::vector<int64_t> displs;
  int64_t total = 0;
  explicit Layout(const std::vector<int64_t>& c) {
    for (int64_t n : c) {
      counts.push_back(count(n));
      displs.push_back(total);
      total += n;
    }
  }
};

// A ring collective's state between its rounds.
struct Ring {
  Layout layout;
  int tag;
  int round = 0;
  std::vector<char> acc, incoming;  // reduce-scatter: the partial sums, the chunk just received
  DType dtype;
  Ring(const std::vector<int64_t>& counts, DType t, int message_tag) : layout(counts), tag(message_tag), dtype(t) {}
  char* at(int rank) { return acc.data() + static_cast<size_t>(layout.displs[rank]) * dtype_size(dtype); }
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    ProgressEngine::get().call([&] {
      MPI_Comm_rank(comm_, &rank_);
      MPI_Comm_size(comm_, &size_);
    });
  }
  ~MpiCommunicator() override {
    if (!owned_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      MPI_Comm c = comm_;
      ProgressEngine::get().call([&] { MPI_Comm_free(&c); });
    }
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Handle all_reduce_async(void* buf, int64_t n, DType t, ReduceOp op) override {
    const int c = count(n);
    return issue(
        what("all_reduce"),
        [=, this](std::vector<MPI_Request>& r) {
          r.resize(1);
          check(MPI_Iallreduce(MPI_IN_PLACE, buf, c, mpi_type(t), mpi_op(op, t), comm_, &r[0]), "MPI_Iallreduce");
        },
        average(op, buf, n, t));
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override {
    const int c = count(n);
    const int size = size_;
    issue(
        what("all_reduce"),
        [=, this](std::vector<MPI_Request>& r) {
          r.resize(1);
          check(MPI_Iallreduce(MPI_IN_PLACE, v, c, MPI_DOUBLE, op == ReduceOp::Max ? MPI_MAX : MPI_SUM, comm_, &r[0]), "MPI_Iallreduce");
        },
        [=] {
          if (op == ReduceOp::Avg)
            for (int64_t i = 0; i < n; ++i) v[i] /= size;
        })
        .wait();
  }
  // Reduce-scatter and all-gather are rings over point-to-point messages: p - 1 rounds, each
  // sending one rank's chunk to the next rank and receiving one from the previous, so each rank
  // sends (p - 1) / p of the data (libnbc's MPI_Ireduce_scatter reduces everything to one rank
  // and scatters it: twice that), and every sum is taken in the same order whatever the timing.
  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t, ReduceOp op) override {
    LT_CHECK(static_cast<int>(counts.size()) == size_, "reduce_scatter needs one count per rank");
    if (op == ReduceOp::Avg) LT_CHECK(t == DType::F32, "ReduceOp::Avg needs fp32");
    auto ring = std::make_shared<Ring>(counts, t, next_tag());
    const size_t bytes = static_cast<size_t>(ring->layout.total) * dtype_size(t);
    ring->acc.resize(bytes);  // the partial sums: the caller's send buffer stays as it was
    ring->incoming.resize(static_cast<size_t>(*std::max_element(counts.begin(), counts.end())) * dtype_size(t));
    auto op_ = std::make_shared<MpiOp>();
    op_->what = what("reduce_scatter");
    op_->step = [=, this](std::vector<MPI_Request>& r) {
      const int p = size_, me = rank_;
      if (ring->round == 0) std::memcpy(ring->acc.data(), send, bytes);
      if (ring->round > 0) {  // the chunk received last round joins this rank's partial sum of it
        const int got = (me - ring->round - 1 + 2 * p) % p;
        reduce_into(ring->at(got), ring->incoming.data(), counts[got], t, op);
      }
      if (ring->round == p - 1) {
        std::memcpy(recv, ring->at(me), static_cast<size_t>(counts[me]) * dtype_size(t));
        if (op == ReduceOp::Avg) divide(recv, counts[me], t, p);
        return;
      }
      const int give = (me - ring->round - 1 + 2 * p) % p, take = (me - ring->round - 2 + 2 * p) % p;
      post_pieces(r, Direction::Send, ring->at(give), ring->layout.counts[give], t, (me + 1) % p, ring->tag, comm_);
      post_pieces(r, Direction::Recv, ring->incoming.data(), ring->layout.counts[take], t, (me - 1 + p) % p, ring->tag, comm_);
      ++ring->round;
    };
    ProgressEngine::get().submit(op_);
    return Handle(std::make_unique<MpiWork>(op_));
  }
  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t) override {
    LT_CHECK(static_cast<int>(counts.size()) == size_, "all_gather needs one count per rank");
    auto ring = std::make_shared<Ring>(counts, t, next_tag());
    auto op_ = std::make_shared<MpiOp>();
    op_->what = what("all_gather");
    op_->step = [=, this](std::vector<MPI_Request>& r) {
      const int p = size_, me = rank_;
      char* out = static_cast<char*>(recv);
      const auto chunk = [&](int q) { return out + static_cast<size_t>(ring->layout.displs[q]) * dtype_size(t); };
      if (ring->round == 0 && send != chunk(me)) std::memmove(chunk(me), send, static_cast<size_t>(counts[me]) * dtype_size(t));
      if (ring->round == p - 1) return;
      const int give = (me - ring->round + p) % p, take = (me - ring->round - 1 + 2 * p) % p;
      post_pieces(r, Direction::Send, chunk(give), ring->layout.counts[give], t, (me + 1) % p, ring->tag, comm_);
      post_pieces(r, Direction::Recv, chunk(take), ring->layout.counts[take], t, (me - 1 + p) % p, ring->tag, comm_);
      ++ring->round;
    };
    ProgressEngine::get().submit(op_);
    return Handle(std::make_unique<MpiWork>(op_));
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    const int c = count(n);
    issue(what("broadcast"), [=, this](std::vector<MPI_Request>& r) {
      r.resize(1);
      check(MPI_Ibcast(buf, c, mpi_type(t), root, comm_, &r[0]), "MPI_Ibcast");
    }).wait();
  }
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    return issue(what("send/recv"), [=, this](std::vector<MPI_Request>& r) {
      for (const Transfer& x : transfers)
        post_pieces(r, x.kind == Transfer::Send ? Direction::Send : Direction::Recv, x.buf, x.n, x.dtype, x.peer, 0, comm_);
    });
  }
  void barrier() override {
    issue(what("barrier"), [this](std::vector<MPI_Request>& r) {
      r.resize(1);
      check(MPI_Ibarrier(comm_, &r[0]), "MPI_Ibarrier");
    }).wait();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    ProgressEngine::get().call([&] { check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split"); });
    return std::make_unique<MpiCommunicator>(sub, true);
  }

 private:
  std::string what(const char* op) const {
    return std::string(op) + " over " + std::to_string(size_) + " ranks (rank " + std::to_string(rank_) + " of them)";
  }
  std::function<void()> average(ReduceOp op, void* buf, int64_t n, DType t) const {
    if (op != ReduceOp::Avg) return {};
    LT_CHECK(t == DType::F32, "ReduceOp::Avg needs fp32");
    const int size = size_;
    return [=] { divide(buf, n, t, size); };
  }
  // Each ring collective has its own message tag (pipeline transfers use 0): several in flight on
  // one group never take each other's messages. Every rank issues a group's collectives in the
  // same order, so they agree on the tags.
  int next_tag() { return 1 + static_cast<int>(issued_++ % 32000); }  // MPI guarantees tags up to 32767
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  uint64_t issued_ = 0;
};

// Work that was complete when it was issued (a world of one).
class DoneWork final : public PendingWork {
 public:
  DoneWork() : at_(now_us()) {}
  void wait() override {}
  double completed_us() const override { return at_; }

 private:
  double at_;
};

// A process on its own: every collective over one rank is a copy or nothing.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Handle all_reduce_async(void*, int64_t, DType, ReduceOp) override { return done(); }
  void all_reduce(double*, int64_t, ReduceOp) override {}
  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t, ReduceOp) override {
    copy(send, recv, counts.at(0), t);
    return done();
  }
  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t) override {
    copy(send, recv, counts.at(0), t);
    return done();
  }
  void broadcast(void*, int64_t, DType, int) override {}
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    LT_CHECK(transfers.empty(), "point-to-point transfer in a world of one");
    return done();
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SelfCommunicator>(); }

 private:
  static Handle done() { return Handle(std::make_unique<DoneWork>()); }
  static void copy(const void* src, void* dst, int64_t n, DType t) {
    if (src != dst) std::memmove(dst, src, static_cast<size_t>(n) * dtype_size(t));
  }
};

void finalize_mpi() { ProgressEngine::get().finalize(); }

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
  ProgressEngine::get().call([] {
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    MPI_Comm_rank(node, &g_node_local.first);
    MPI_Comm_size(node, &g_node_local.second);
    MPI_Comm_free(&node);
  });
}
}  // namespace

Communicator& world() {
  static std::unique_ptr<Communicator> w = [] () -> std::unique_ptr<Communicator> {
    if (!launched_by_mpi()) return std::make_unique<SelfCommunicator>();
    ProgressEngine::get();  // initialises MPI on the thread that makes every MPI call
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
    // The others may wait in a collective: end them all (MPI_Abort from any thread is allowed to
    // be best effort, and ends the job here).
    if (size > 1 && !every_rank_failed) MPI_Abort(MPI_COMM_WORLD, code);
    finalize_mpi();
  }
  std::exit(code);
}

}  // namespace llamatron
