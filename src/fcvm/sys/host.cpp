#include "fcvm/sys/host.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <cstdlib>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::sys {

std::string boot_id() {
  auto text = read_file("/proc/sys/kernel/random/boot_id");
  return text ? std::string(trim(*text)) : std::string();
}

std::optional<long> tsc_khz() {
  auto text = read_file("/proc/cpuinfo");
  if (!text) return std::nullopt;
  for (auto line : split(*text, '\n')) {
    if (line.rfind("cpu MHz", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    double mhz = std::strtod(std::string(trim(line.substr(colon + 1))).c_str(), nullptr);
    if (mhz > 0) return static_cast<long>(mhz * 1000.0);
  }
  return std::nullopt;
}

int online_cpus() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::optional<unsigned long long> process_start_time(int pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses: fields resume after the last
  // ')'.
  auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  auto fields = split(std::string_view(*text).substr(close + 2), ' ');
  // fields[0] is field 3 (state); starttime is field 22.
  if (fields.size() < 20) return std::nullopt;
  return std::strtoull(std::string(fields[19]).c_str(), nullptr, 10);
}

std::string random_hex(size_t n) {
  std::string out;
  unsigned char buf[64];
  while (out.size() < n) {
    ssize_t got = ::getrandom(buf, sizeof buf, 0);
    if (got <= 0) continue;
    for (ssize_t i = 0; i < got && out.size() < n; ++i) {
      out += "0123456789abcdef"[buf[i] >> 4];
      if (out.size() < n) out += "0123456789abcdef"[buf[i] & 15];
    }
  }
  return out;
}

}  // namespace fcvm::sys
