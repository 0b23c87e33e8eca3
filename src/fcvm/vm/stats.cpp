#include "fcvm/vm/stats.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <ctime>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::vm {
namespace {

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  for (auto w : split(line, ' ')) {
    w = trim(w);
    if (!w.empty()) out.push_back(w);
  }
  return out;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view stat) {
  auto close = stat.rfind(") ");
  if (close == std::string_view::npos) return std::nullopt;
  // After "pid (comm) ": field 3 (state) is index 0; utime 14 -> 11, stime 15 -> 12,
  // starttime 22 -> 19.
  auto f = words(stat.substr(close + 2));
  if (f.size() < 20) return std::nullopt;
  auto num = [](std::string_view s) { return parse_int(s, 0, INT64_MAX); };
  auto u = num(f[11]), s = num(f[12]), start = num(f[19]);
  if (!u || !s || !start) return std::nullopt;
  return ProcStat{static_cast<double>(*u), static_cast<double>(*s), static_cast<double>(*start)};
}

std::optional<int64_t> parse_status_kib(std::string_view status, std::string_view key) {
  for (auto line : split(status, '\n')) {
    if (line.substr(0, key.size()) != key || line.size() <= key.size() || line[key.size()] != ':') {
      continue;
    }
    auto f = words(line.substr(key.size() + 1));
    if (f.empty()) return std::nullopt;
    return parse_int(f[0], 0, INT64_MAX);
  }
  return std::nullopt;
}

std::optional<int64_t> parse_io_field(std::string_view io, std::string_view key) {
  return parse_status_kib(io, key);  // the same "key: number" lines
}

std::optional<std::pair<int64_t, int64_t>> parse_net_dev(std::string_view dev,
                                                         std::string_view iface) {
  for (auto line : split(dev, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos || trim(line.substr(0, colon)) != iface) continue;
    auto f = words(line.substr(colon + 1));
    if (f.size() < 9) return std::nullopt;
    auto rx = parse_int(f[0], 0, INT64_MAX), tx = parse_int(f[8], 0, INT64_MAX);
    if (!rx || !tx) return std::nullopt;
    return std::pair{*rx, *tx};
  }
  return std::nullopt;
}

Result<VmSample> sample_vm(const state::VmRecord& rec) {
  if (!is_active(rec) || !rec.vmm.alive()) {
    return fail(ErrorCode::kInvalidInput, fmt::format("VM {} is not running", rec.name));
  }
  auto base = fmt::format("/proc/{}/", rec.vmm.pid);
  FCVM_TRY_ASSIGN(auto stat_text, read_file(base + "stat"));
  FCVM_TRY_ASSIGN(auto status_text, read_file(base + "status"));
  FCVM_TRY_ASSIGN(auto uptime_text, read_file("/proc/uptime"));
  auto stat = parse_proc_stat(stat_text);
  auto uptime = parse_int(split(uptime_text, '.')[0], 0, INT64_MAX);
  if (!stat || !uptime) {
    return fail(ErrorCode::kInternal, fmt::format("cannot read {}stat", base));
  }
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  VmSample s;
  s.taken_ns = monotonic_ns();
  s.cpu_seconds = (stat->utime_ticks + stat->stime_ticks) / hz;
  s.uptime_seconds = static_cast<double>(*uptime) - stat->start_ticks / hz;
  s.rss_bytes = parse_status_kib(status_text, "VmRSS").value_or(0) * 1024;
  s.mem_limit_bytes = static_cast<int64_t>(rec.mem_mib) * 1024 * 1024;
  // Another user's VMM (or a hardened /proc) may hide these: zeros then.
  if (auto io = read_file(base + "io")) {
    s.block_read_bytes = parse_io_field(*io, "read_bytes").value_or(0);
    s.block_write_bytes = parse_io_field(*io, "write_bytes").value_or(0);
  }
  if (auto dev = read_file(base + "net/dev")) {
    if (auto tap = parse_net_dev(*dev, "tap0")) {
      s.net_rx_bytes = tap->second;  // what the tap sent went to the guest
      s.net_tx_bytes = tap->first;
    }
  }
  return s;
}

double cpu_percent(const VmSample& now, const std::optional<VmSample>& before) {
  if (before) {
    double wall = static_cast<double>(now.taken_ns - before->taken_ns) / 1e9;
    return wall > 0 ? (now.cpu_seconds - before->cpu_seconds) * 100.0 / wall : 0;
  }
  return now.uptime_seconds > 0 ? now.cpu_seconds * 100.0 / now.uptime_seconds : 0;
}

}  // namespace fcvm::vm
