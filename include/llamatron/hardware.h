// Published peaks of the GPUs we meet (FACTS.md), for "% of peak" in benchmarks and MFU in logs.
// Looked up by the device name the runtime reports; 0 when the device is not in the table.
#pragma once
#include <string>

namespace llamatron {

struct HardwarePeak {
  double bf16_tflops = 0;  // dense tensor-core bf16
  double hbm_gbs = 0;
};

HardwarePeak hardware_peak(const std::string& device_name);

}  // namespace llamatron
