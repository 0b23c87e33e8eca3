// fcvm_bench_net_setup: how long one VM's network takes to set up and to tear down, by mode.
//
//   fcvm_bench_net_setup [--runs N] DIR
//
// For each mode (rootless; privileged too when run as root) it builds and destroys the network of
// a VM N times, exactly as step 4 of a VM's start does (net::RootlessNetwork /
// net::PrivilegedNetwork with one published port; DIR stands in for the VM's directory), and
// prints min / median / max milliseconds of the set-up (until the VMM could start) and of the
// teardown. bench/net.sh runs it next to the throughput measurements.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "fcvm/net/privileged.hpp"
#include "fcvm/net/rootless.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int free_port() {
  fcvm::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  // sockaddr_in is the concrete address behind the generic sockaddr both calls take.
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 18080;
  }
  return ntohs(addr.sin_port);
}

struct Stats {
  double min = 0, median = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

// One set-up and teardown; false (with the error printed) when the set-up fails.
bool measure(const std::string& mode, const std::string& dir, std::vector<double>& setup,
             std::vector<double>& teardown) {
  fcvm::net::PortMapping port;
  port.host_port = free_port();
  port.guest_port = 80;
  auto& runner = fcvm::sys::default_runner();
  std::unique_ptr<fcvm::net::VmNetwork> net;
  auto t0 = Clock::now();
  if (mode == "privileged") {
    fcvm::net::PrivilegedConfig config;
    config.vm_id = fcvm::sys::random_hex(32);
    config.dir = dir;
    config.ports = {port};
    auto n = fcvm::net::PrivilegedNetwork::create(config, runner);
    if (!n) {
      fmt::print(stderr, "privileged: {}\n", n.error().to_string());
      return false;
    }
    net = std::move(*n);
  } else {
    fcvm::net::RootlessConfig config;
    config.dir = dir;
    config.ports = {port};
    auto n = fcvm::net::RootlessNetwork::create(config, runner);
    if (!n) {
      fmt::print(stderr, "rootless: {}\n", n.error().to_string());
      return false;
    }
    net = std::move(*n);
  }
  // All of it, including what a VM start overlaps with the VMM's start (rootless: slirp4netns
  // readiness and the port forwards).
  if (auto f = net->finish(); !f) {
    fmt::print(stderr, "finish: {}\n", f.error().to_string());
    return false;
  }
  setup.push_back(ms_since(t0));
  t0 = Clock::now();
  net.reset();
  teardown.push_back(ms_since(t0));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 10;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      auto n = fcvm::parse_int(argv[++i], 1, 10000);
      if (!n) return 2;
      runs = static_cast<int>(*n);
    } else {
      dir = a;
    }
  }
  if (dir.empty()) {
    fmt::print(stderr, "usage: fcvm_bench_net_setup [--runs N] DIR\n");
    return 2;
  }
  std::vector<std::string> modes = {"rootless"};
  if (::geteuid() == 0) modes.push_back("privileged");
  fmt::print("{:<11} {:>5} {:>22} {:>22}\n", "mode", "runs", "setup ms min/med/max",
             "teardown ms min/med/max");
  for (const auto& mode : modes) {
    std::vector<double> setup, teardown;
    // One warm-up run: the first privileged set-up may create the bridge and the table.
    std::vector<double> ignored_a, ignored_b;
    if (!measure(mode, dir, ignored_a, ignored_b)) return 1;
    for (int i = 0; i < runs; ++i) {
      if (!measure(mode, dir, setup, teardown)) return 1;
    }
    auto s = stats(setup);
    auto t = stats(teardown);
    fmt::print("{:<11} {:>5} {:>22} {:>22}\n", mode, runs,
               fmt::format("{:.1f}/{:.1f}/{:.1f}", s.min, s.median, s.max),
               fmt::format("{:.1f}/{:.1f}/{:.1f}", t.min, t.median, t.max));
  }
  if (::geteuid() != 0) fmt::print("privileged: skipped (needs root)\n");
  return 0;
}
