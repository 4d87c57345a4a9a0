#include "llamatron/grid.h"

#include <string>

#include "llamatron/errors.h"

namespace llamatron {

ProcessGrid::ProcessGrid(Communicator& world, const ParallelConfig& layout,
                         const std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>)>& device_group)
    : world_(world), tp_(static_cast<int>(layout.tensor_parallel)), pp_(static_cast<int>(layout.pipeline_parallel)) {
  const int n = world.size(), model_parallel = tp_ * pp_;
  dp_ = layout.data_parallel > 0 ? static_cast<int>(layout.data_parallel) : n / model_parallel;
  if (dp_ < 1 || tp_ * pp_ * dp_ != n) {
    const std::string layout_text = "parallel.tensor_parallel (" + std::to_string(tp_) + ") x parallel.pipeline_parallel (" +
                                    std::to_string(pp_) + ") x parallel.data_parallel (";
    if (layout.data_parallel > 0)
      throw Error("the world has " + std::to_string(n) + " process(es) but " + layout_text + std::to_string(dp_) + ") = " +
                  std::to_string(tp_ * pp_ * dp_) + ": launch with mpirun -np " + std::to_string(tp_ * pp_ * dp_) +
                  " or change parallel.*");
    throw Error("the world has " + std::to_string(n) + " process(es), not a multiple of " + layout_text +
                "the rest): launch a multiple of " + std::to_string(model_parallel) + " processes or change parallel.*");
  }
  const auto group = [&](const char* name, int color, int key) {
    std::unique_ptr<Communicator> g = world.split(color, key);
    return counting(device_group ? device_group(std::move(g)) : std::move(g), &stats_, name);
  };
  tp_group_ = group("tp", dp_rank() + dp_ * pp_rank(), tp_rank());
  dp_group_ = group("dp", tp_rank() + tp_ * pp_rank(), dp_rank());
  pp_group_ = group("pp", tp_rank() + tp_ * dp_rank(), pp_rank());
  // The backward's gradients travel on a group of their own: each link of each group then carries
  // one kind of message, in the same order at both ends, whatever interleaved 1F1B makes of it.
  if (pp_ > 1) pp_grad_group_ = group("pp", tp_rank() + tp_ * dp_rank(), pp_rank());
  mp_group_ = group("mp", dp_rank(), tp_rank() + tp_ * pp_rank());
}

}  // namespace llamatron
