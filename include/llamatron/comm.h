// The one communicator interface every parallel dimension talks through (ARCHITECTURE.md,
// principle 4): Open MPI on the CPU backend and the emulated device, NCCL on GPUs. Buffers are
// where the tensors live (host memory for MPI). A process started without mpirun is a world of one.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/dtype.h"

namespace llamatron {

enum class ReduceOp { Sum, Max, Avg };

// What a communicator hands back for a collective in flight (one implementation per transport).
class PendingWork {
 public:
  virtual ~PendingWork() = default;
  // Returns when the result may be used: on the host (MPI) the buffers hold it; on a GPU the
  // compute stream waits for it (the host does not block). Throws what the collective failed with.
  virtual void wait() = 0;
  // Host time the collective completed, in steady_clock microseconds (after wait(); 0 when the
  // transport only knows it later, as a GPU does).
  virtual double completed_us() const = 0;
};

// A collective in flight (docs/parallelism.md, "Overlap"). wait() once before its output is read
// or its input overwritten; a Handle that goes out of scope unwaited waits then. Move-only.
class Handle {
 public:
  Handle() = default;
  explicit Handle(std::unique_ptr<PendingWork> work) : work_(std::move(work)) {}
  Handle(Handle&&) noexcept = default;
  Handle& operator=(Handle&& other) noexcept;
  ~Handle();
  void wait();
  bool pending() const { return work_ != nullptr; }
  // The work itself (wrappers that decorate a handle take it out; the handle is then empty).
  std::unique_ptr<PendingWork> release() { return std::move(work_); }

 private:
  void settle() noexcept;
  std::unique_ptr<PendingWork> work_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Non-blocking collectives. Each returns at once with a Handle; the buffers belong to the
  // collective until it is waited on. Collectives of one group run in the order they are issued
  // (every rank of the group issues them in the same order); different groups run concurrently.

  // In place over n elements of the group; Avg divides the sum by size(). F32 and I32 take every
  // op; BF16 is summed (pairwise in fp32, rounded each time, as NCCL does).
  virtual Handle all_reduce_async(void* buf, int64_t n, DType dtype, ReduceOp op) = 0;
  // send holds the chunks of every rank, counts[r] elements for rank r, back to back; rank r
  // receives the reduction of every rank's chunk r (counts.size() == size(); a count may be 0).
  virtual Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype,
                                      ReduceOp op) = 0;
  // Rank r's counts[r] elements land at chunk r of recv (chunks back to back) on every rank. send
  // may be recv's own chunk (in place).
  virtual Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) = 0;
  // Point-to-point transfers issued together and completed together (no ordering deadlock for any
  // pairing of sends and receives).
  struct Transfer {
    enum Kind { Send, Recv } kind;
    int peer;
    void* buf;
    int64_t n;
    DType dtype;
  };
  virtual Handle send_recv_async(const std::vector<Transfer>& transfers) = 0;

  // Blocking forms: issue and wait.
  void all_reduce(void* buf, int64_t n, DType dtype, ReduceOp op) { all_reduce_async(buf, n, dtype, op).wait(); }
  // Equal chunks of n elements: send holds size() of them, rank r receives the reduction of chunk r.
  void reduce_scatter(const void* send, void* recv, int64_t n, DType dtype, ReduceOp op) {
    reduce_scatter_async(send, recv, std::vector<int64_t>(size(), n), dtype, op).wait();
  }
  // Rank r's n elements are chunk r of recv on every rank. send may be recv + r * n (in place).
  void all_gather(const void* send, void* recv, int64_t n, DType dtype) {
    all_gather_async(send, recv, std::vector<int64_t>(size(), n), dtype).wait();
  }
  void send_recv(const std::vector<Transfer>& transfers) { send_recv_async(transfers).wait(); }

  // Host scalars: loss sums, token counts, squared norms (fp64 so sums over ranks stay exact).
  // Blocking: the caller needs the value.
  virtual void all_reduce(double* values, int64_t n, ReduceOp op) = 0;
  virtual void broadcast(void* buf, int64_t n, DType dtype, int root) = 0;
  virtual void barrier() = 0;
  // The sub-group of ranks with the same color, ordered by key (MPI_Comm_split).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // A short name for traces and errors ("dp", "tp.sub"; "" when not named).
  virtual std::string name() const { return ""; }
};

// Bytes this rank sends, per group and collective, by the ring algorithms' volumes (an all-reduce
// of S bytes over p ranks sends 2 (p - 1) / p * S; reduce-scatter and all-gather (p - 1) * chunk;
// a send its size): the layout's communication cost, whatever the library does underneath.
struct CommStats {
  std::map<std::string, double> bytes;       // "dp.reduce_scatter" -> bytes since reset
  std::map<std::string, double> inter_host;  // the part of them sent to a rank on another host
  double exposed_us = 0;                     // time spent waiting on the groups' collectives since reset
  // World rank -> host (topology.h; empty until known): what is inter-host, and where a group's
  // ranks are in the watchdog's message.
  std::vector<std::string> host_of;
  void reset() { bytes.clear(), inter_host.clear(), exposed_us = 0; }
  double total(const std::string& group_prefix) const;
};
// A communicator that counts into `stats` under `name` and forwards to `inner`; its splits count
// under name + "." + the split's name ("sub"). members[r] is the world rank of group rank r (empty:
// unknown). It also times every wait (stats->exposed_us), puts every wait under the watchdog
// (watchdog.h) and, while a trace records, puts each collective and each wait in it. The ring
// collectives send to the next rank of the group, point-to-point transfers to their peer: bytes to
// a rank on another host are counted in stats->inter_host as well.
std::unique_ptr<Communicator> counting(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name,
                                       std::vector<int> members = {});

// The world: every process of the mpirun job (MPI is initialised on first use and finalised at
// exit), or a world of one for a process started on its own.
Communicator& world();
// A group of this process alone (the single-process defaults; reference runs inside an MPI job).
Communicator& self_group();
// This process's rank among the job's processes on its node (0 without mpirun): its GPU.
int node_local_rank();
// How many of the job's processes run on this node (1 without mpirun): they share its memory.
int node_local_size();
// True when this process was started by mpirun (or another MPI launcher).
bool launched_by_mpi();
// Runs this rank's part of a phase that can fail on some ranks only (reading or writing files). If
// it throws on any rank, every rank throws an Error, so none waits in a collective for one that
// gave up: the lowest failing rank's reason is rank 0's error (the CLI prints it) when rank 0
// failed; otherwise that rank prints its reason and every rank's error says which rank failed.
// `what`, when not empty, prefixes the errors. Collective over `group`.
void fail_together(Communicator& group, const std::string& what, const std::function<void()>& work);

// Ends the job after an error: a clean exit when every rank reached the same error (configuration
// checks run identically everywhere), an abort of the whole job otherwise, so nothing hangs.
[[noreturn]] void exit_job(int code, bool every_rank_failed);

}  // namespace llamatron
