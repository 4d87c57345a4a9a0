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

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place over n elements of the group; Avg divides the sum by size(). F32 and I32 take every
  // op; BF16 is summed (pairwise in fp32, rounded each time, as NCCL does).
  virtual void all_reduce(void* buf, int64_t n, DType dtype, ReduceOp op) = 0;
  // Host scalars: loss sums, token counts, squared norms (fp64 so sums over ranks stay exact).
  virtual void all_reduce(double* values, int64_t n, ReduceOp op) = 0;
  // send holds size() chunks of n elements; rank r receives the reduction of every rank's chunk r.
  virtual void reduce_scatter(const void* send, void* recv, int64_t n, DType dtype, ReduceOp op) = 0;
  // Rank r's n elements are chunk r of recv on every rank. send may be recv + r * n (in place).
  virtual void all_gather(const void* send, void* recv, int64_t n, DType dtype) = 0;
  virtual void broadcast(void* buf, int64_t n, DType dtype, int root) = 0;
  // Point-to-point transfers issued together and completed together (no ordering deadlock for any
  // pairing of sends and receives).
  struct Transfer {
    enum Kind { Send, Recv } kind;
    int peer;
    void* buf;
    int64_t n;
    DType dtype;
  };
  virtual void send_recv(const std::vector<Transfer>& transfers) = 0;
  virtual void barrier() = 0;
  // The sub-group of ranks with the same color, ordered by key (MPI_Comm_split).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// Bytes this rank sends, per group and collective, by the ring algorithms' volumes (an all-reduce
// of S bytes over p ranks sends 2 (p - 1) / p * S; reduce-scatter and all-gather (p - 1) * chunk;
// a send its size): the layout's communication cost, whatever the library does underneath.
struct CommStats {
  std::map<std::string, double> bytes;  // "dp.reduce_scatter" -> bytes since reset
  void reset() { bytes.clear(); }
  double total(const std::string& group_prefix) const;
};
// A communicator that counts into `stats` under `name` and forwards to `inner`; its splits count
// under name + "." + the split's name ("sub").
std::unique_ptr<Communicator> counting(std::unique_ptr<Communicator> inner, CommStats* stats, std::string name);

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
