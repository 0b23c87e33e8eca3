#include "fcvm/cli/common.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {

RawTerminal::RawTerminal() {
  if (::isatty(0) && ::tcgetattr(0, &m_saved) == 0) {
    termios raw = m_saved;
    ::cfmakeraw(&raw);
    m_active = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
}

RawTerminal::~RawTerminal() {
  if (m_active) ::tcsetattr(0, TCSANOW, &m_saved);
}

std::optional<vm::WindowSize> terminal_size() {
  winsize ws{};
  // TIOCGWINSZ fills ws for a terminal (and fails harmlessly for anything else).
  if (::ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0) return std::nullopt;
  return vm::WindowSize{ws.ws_row, ws.ws_col};
}

Result<> load_config(Session& s) {
  auto cfg = config::load();
  if (!cfg) return tl::unexpected<Error>(cfg.error());
  s.config = *cfg;
  s.config_loaded = true;
  return {};
}

Result<> open_session(Session& s) {
  if (!s.config_loaded) FCVM_TRY(load_config(s));
  auto env = vm::Environment::capture();
  auto paths = vm::resolve_paths(env, s.config.data_dir, s.config.guest_dir);
  if (!paths) return tl::unexpected<Error>(paths.error());
  s.paths = *paths;
  s.ctx.emplace(vm::Context{s.paths, sys::default_runner(), env.accel,
                            vm::firecracker_bin(env, s.paths), vm::jailer_bin(env, s.paths)});
  auto store = vm::open_store(*s.ctx);
  if (!store) return tl::unexpected<Error>(store.error());
  s.store.emplace(std::move(*store));
  return {};
}

Result<state::VmRecord> resolve(Session& s, const std::string& ref) {
  return vm::find_vm(*s.store, ref);
}

std::string human_duration(int64_t ms) {
  int64_t s = ms / 1000;
  if (s < 60) return fmt::format("{} second{}", s, s == 1 ? "" : "s");
  if (s < 3600) return fmt::format("{} minute{}", s / 60, s / 60 == 1 ? "" : "s");
  if (s < 86400) return fmt::format("{} hour{}", s / 3600, s / 3600 == 1 ? "" : "s");
  return fmt::format("{} day{}", s / 86400, s / 86400 == 1 ? "" : "s");
}

std::string human_size(int64_t bytes) {
  constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

vm::RunDefaults run_defaults(const config::Config& config) {
  return {config.defaults.mem_mib,
          config.defaults.vcpus,
          config.defaults.stop_timeout_s,
          config.defaults.boot_timeout_s,
          config.vmm,
          config.jailer,
          config.network,
          config.insecure_registries};
}

}  // namespace fcvm::cli
