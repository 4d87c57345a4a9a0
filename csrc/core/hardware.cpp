#include "llamatron/hardware.h"

namespace llamatron {

HardwarePeak hardware_peak(const std::string& name) {
  const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return {989, 4800};
  if (has("H100")) return has("PCIe") ? HardwarePeak{756, 2000} : HardwarePeak{989, 3350};
  if (has("A100")) return {312, 2039};
  return {};
}

}  // namespace llamatron
