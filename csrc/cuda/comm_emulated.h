// The emulated device's stand-in for NCCL (comm_nccl.h): the same interface over the same ranks,
// the data moved by the MPI group it wraps, with NCCL's stream semantics made observable
// (docs/kernels.md, "Streams and events in the emulator"). Device buffers
// (Runtime::is_device_pointer) go through the group's own communication stream; host buffers and
// host scalars straight to `host`. A collective on device buffers copies its inputs to staging
// buffers and starts the MPI collective on them at once, fills its outputs with poison (a
// signalling NaN in bf16 and fp32) and completes on the group's stream, where it checks that no one wrote its
// inputs or outputs meanwhile and copies the result in. A Handle's wait makes the compute stream
// wait for that point, which in the emulator runs it. So a kernel that reads an output before the
// wait reads NaN, and a buffer reused before the wait fails the wait with an Error naming the
// collective. `compute` is the stream the backend's kernels run on; split() makes the sub-group's
// own communicator the same way.
#pragma once
#include <memory>

#include "cuda/runtime.h"
#include "llamatron/comm.h"

namespace llamatron::cuda {

std::unique_ptr<Communicator> make_emulated_device_communicator(std::unique_ptr<Communicator> host, rt::Runtime& runtime,
                                                                rt::Stream compute);

}  // namespace llamatron::cuda
