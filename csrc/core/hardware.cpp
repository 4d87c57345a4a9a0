#include "llamatron/hardware.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

namespace llamatron {

HardwarePeak hardware_peak(const std::string& name) {
  const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return {989, 4800};
  if (has("H100")) return has("PCIe") ? HardwarePeak{756, 2000} : HardwarePeak{989, 3350};
  if (has("A100")) return {312, 2039};
  return {};
}

uint64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  uint64_t bytes = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
  // A container's memory limit (cgroup v2, then v1) is what this process can really use.
  for (const char* limit : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(limit);
    uint64_t v = 0;
    if (f >> v && v > 0) bytes = bytes ? std::min(bytes, v) : v;
  }
  return bytes;
}

int host_cpus() { return std::max(1u, std::thread::hardware_concurrency()); }

}  // namespace llamatron
