#include "llamatron/grid.h"

#include <string>
#include <vector>

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
  // Each group with the world ranks of its members, in group-rank order.
  const auto group = [&](const char* name, int color, int key, int n, const std::function<int(int)>& member) {
    std::unique_ptr<Communicator> g = world.split(color, key);
    std::vector<int> members(n);
    for (int i = 0; i < n; ++i) members[i] = member(i);
    return counting(device_group ? device_group(std::move(g)) : std::move(g), &stats_, name, std::move(members));
  };
  const int t = tp_rank(), d = dp_rank(), s = pp_rank();
  const auto tp_members = [&](int i) { return rank_of(i, d, s); };
  const auto dp_members = [&](int i) { return rank_of(t, i, s); };
  const auto pp_members = [&](int i) { return rank_of(t, d, i); };
  tp_group_ = group("tp", d + dp_ * s, t, tp_, tp_members);
  dp_group_ = group("dp", t + tp_ * s, d, dp_, dp_members);
  pp_group_ = group("pp", t + tp_ * d, s, pp_, pp_members);
  // The backward's gradients travel on a group of their own: each link of each group then carries
  // one kind of message, in the same order at both ends, whatever interleaved 1F1B makes of it.
  if (pp_ > 1) pp_grad_group_ = group("pp", t + tp_ * d, s, pp_, pp_members);
  mp_group_ = group("mp", d, t + tp_ * s, tp_ * pp_, [&](int i) { return rank_of(i % tp_, d, i / tp_); });
}

}  // namespace llamatron
