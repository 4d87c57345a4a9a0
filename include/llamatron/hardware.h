// Published peaks of the GPUs we meet (FACTS.md), for "% of peak" in benchmarks and MFU in logs.
// Looked up by the device name the runtime reports; 0 when the device is not in the table.
#pragma once
#include <cstdint>
#include <string>

namespace llamatron {

struct HardwarePeak {
  double bf16_tflops = 0;  // dense tensor-core bf16
  double hbm_gbs = 0;
};

HardwarePeak hardware_peak(const std::string& device_name);

// This machine: its memory (physical, or the container's cgroup limit when lower; 0 if unknown)
// and its logical CPUs.
uint64_t host_memory_bytes();
int host_cpus();

}  // namespace llamatron
