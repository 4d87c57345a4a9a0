// The NCCL communicator (GPU builds): the same interface as MPI's (llamatron/comm.h) over the
// same ranks. Device buffers go through NCCL on the group's own communication stream, ordered
// after the compute stream's work by events both ways (a Handle's wait makes the compute stream
// wait); host buffers and host scalars through the MPI group it wraps, which also carries the
// unique id from the group's first rank to the others. Created collectively by every rank of
// `host`; split() makes the sub-group's own NCCL communicator the same way.
#pragma once
#include <memory>

#include "cuda/runtime.h"
#include "llamatron/comm.h"

namespace llamatron::cuda {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, rt::Stream stream);

}  // namespace llamatron::cuda
