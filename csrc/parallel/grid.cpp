#include "llamatron/grid.h"

#include <string>
#include <vector>

#include "llamatron/errors.h"

namespace llamatron {

ProcessGrid::ProcessGrid(Communicator& world, const ParallelConfig& layout,
                         const std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>)>& device_group)
    : world_(world),
      tp_(static_cast<int>(layout.tensor_parallel)),
      pp_(static_cast<int>(layout.pipeline_parallel)),
      cp_(static_cast<int>(layout.context_parallel)) {
  const int n = world.size(), model_parallel = tp_ * pp_ * cp_;
  dp_ = layout.data_parallel > 0 ? static_cast<int>(layout.data_parallel) : n / model_parallel;
  if (dp_ < 1 || model_parallel * dp_ != n) {
    const std::string layout_text = "parallel.tensor_parallel (" + std::to_string(tp_) + ") x parallel.pipeline_parallel (" +
                                    std::to_string(pp_) + (cp_ > 1 ? ") x parallel.context_parallel (" + std::to_string(cp_) : "") +
                                    ") x parallel.data_parallel (";
    if (layout.data_parallel > 0)
      throw Error("the world has " + std::to_string(n) + " process(es) but " + layout_text + std::to_string(dp_) + ") = " +
                  std::to_string(model_parallel * dp_) + ": launch with mpirun -np " + std::to_string(model_parallel * dp_) +
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
  const int t = tp_rank(), d = dp_rank(), s = pp_rank(), c = cp_rank();
  const auto tp_members = [&](int i) { return rank_of(i, d, s, c); };
  const auto dp_members = [&](int i) { return rank_of(t, i, s, c); };
  const auto pp_members = [&](int i) { return rank_of(t, d, i, c); };
  // Colors: the other coordinates, each group's own left out.
  tp_group_ = group("tp", c + cp_ * (d + dp_ * s), t, tp_, tp_members);
  dp_group_ = group("dp", t + tp_ * (c + cp_ * s), d, dp_, dp_members);
  pp_group_ = group("pp", t + tp_ * (c + cp_ * d), s, pp_, pp_members);
  // The backward's gradients travel on a group of their own: each link of each group then carries
  // one kind of message, in the same order at both ends, whatever interleaved 1F1B makes of it.
  if (pp_ > 1) pp_grad_group_ = group("pp", t + tp_ * (c + cp_ * d), s, pp_, pp_members);
  mp_group_ = group("mp", c + cp_ * d, t + tp_ * s, tp_ * pp_, [&](int i) { return rank_of(i % tp_, d, i / tp_, c); });
  if (cp_ > 1) {
    cp_group_ = group("cp", t + tp_ * (d + dp_ * s), c, cp_, [&](int i) { return rank_of(t, d, s, i); });
    grad_group_ = group("dp", t + tp_ * s, c + cp_ * d, dp_ * cp_, [&](int i) { return rank_of(t, i / cp_, s, i % cp_); });
  }
}

}  // namespace llamatron
