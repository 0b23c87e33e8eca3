#pragma once
// Facts about the host that several modules need.
#include <optional>
#include <string>

#include "fcvm/util/result.hpp"

namespace fcvm::sys {

// The boot id (/proc/sys/kernel/random/boot_id): distinguishes pids across reboots.
std::string boot_id();
// TSC frequency in kHz from /proc/cpuinfo "cpu MHz" (nullopt if unknown).
std::optional<long> tsc_khz();
int online_cpus();
// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
std::optional<unsigned long long> process_start_time(int pid);
// Random lowercase hex string of n characters from the kernel's CSPRNG.
std::string random_hex(size_t n);

}  // namespace fcvm::sys
