#pragma once
// `fcvm stats`: what a running VM costs the host, read from its VMM process in /proc: CPU time,
// resident memory (the guest's RAM as far as it has been touched, plus the VMM), disk I/O and the
// traffic of the VM's tap device (the VMM lives in the VM's network namespace).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct VmSample {
  double cpu_seconds = 0;     // user + system time of the VMM
  double uptime_seconds = 0;  // since the VMM started
  int64_t rss_bytes = 0;
  int64_t mem_limit_bytes = 0;  // the guest's RAM
  int64_t block_read_bytes = 0, block_write_bytes = 0;
  int64_t net_rx_bytes = 0, net_tx_bytes = 0;  // as the guest sees them (tap tx = guest rx)
  int64_t taken_ns = 0;                        // CLOCK_MONOTONIC
};

// kInvalidInput when the VM does not run (or its VMM is gone).
Result<VmSample> sample_vm(const state::VmRecord& rec);
// CPU use between two samples (percent of one CPU); with no earlier one, since the VMM started.
double cpu_percent(const VmSample& now, const std::optional<VmSample>& before);

// Parsers of the /proc records (pure, unit-tested).
struct ProcStat {
  double utime_ticks = 0, stime_ticks = 0, start_ticks = 0;
};
std::optional<ProcStat> parse_proc_stat(std::string_view stat);
std::optional<int64_t> parse_status_kib(std::string_view status, std::string_view key);
std::optional<int64_t> parse_io_field(std::string_view io, std::string_view key);
// (rx, tx) bytes of one interface in /proc/PID/net/dev.
std::optional<std::pair<int64_t, int64_t>> parse_net_dev(std::string_view dev,
                                                         std::string_view iface);

}  // namespace fcvm::vm
