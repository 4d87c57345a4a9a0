// Errors some ranks meet and others do not (a full disk on one node, a file only one node lacks):
// made collective, so that no rank waits forever in a collective for one that gave up.
#include <cstdio>

#include "llamatron/comm.h"
#include "llamatron/errors.h"

namespace llamatron {

void fail_together(Communicator& group, const std::string& what, const std::function<void()>& work) {
  std::string error;
  try {
    work();
  } catch (const std::exception& e) {  // filesystem errors too: the phase fails as a sentence, not a crash
    error = e.what();
  }
  double first = error.empty() ? 0 : group.size() - group.rank();  // the max is the lowest failing rank
  group.all_reduce(&first, 1, ReduceOp::Max);
  if (first == 0) return;
  const int failed = group.size() - static_cast<int>(first);
  const std::string prefix = what.empty() ? "" : what + ": ";
  if (failed == group.rank()) {
    if (failed == 0) throw Error(prefix + error);
    std::fprintf(stderr, "llamatron: error on rank %d: %s\n", group.rank(), error.c_str());
  }
  throw Error(prefix + "rank " + std::to_string(failed) + " failed (its reason is printed above)");
}

}  // namespace llamatron
