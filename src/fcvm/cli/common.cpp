#include "fcvm/cli/common.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>

#include "fcvm/net/privileged.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::cli {

Result<> load_config(Session& s) {
  auto cfg = config::load();
  if (!cfg) return tl::unexpected<Error>(cfg.error());
  s.config = *cfg;
  s.config_loaded = true;
  return {};
}

Result<> open_session(Session& s) {
  if (!s.config_loaded) FCVM_TRY(load_config(s));
  auto paths = vm::default_paths();
  if (!paths) return tl::unexpected<Error>(paths.error());
  s.paths = *paths;
  // Environment variables win over the file.
  bool env_data = std::getenv("FCVM_DATA_DIR") != nullptr && *std::getenv("FCVM_DATA_DIR") != '\0';
  bool env_guest =
      std::getenv("FCVM_GUEST_DIR") != nullptr && *std::getenv("FCVM_GUEST_DIR") != '\0';
  if (!env_data && !s.config.data_dir.empty()) {
    if (s.paths.guest_dir == s.paths.data_dir) s.paths.guest_dir = s.config.data_dir;
    s.paths.data_dir = s.config.data_dir;
  }
  if (!env_guest && !s.config.guest_dir.empty()) s.paths.guest_dir = s.config.guest_dir;
  s.ctx.emplace(vm::Context{s.paths, sys::default_runner()});
  auto store = vm::open_store(*s.ctx);
  if (!store) return tl::unexpected<Error>(store.error());
  s.store.emplace(std::move(*store));
  return {};
}

Result<state::VmRecord> resolve(Session& s, const std::string& ref) {
  auto rec = s.store->find(ref);
  if (!rec) return tl::unexpected<Error>(rec.error());
  auto current = vm::reconcile(*s.store, *rec);
  if (!current) return tl::unexpected<Error>(current.error());
  if (!*current) return fail(ErrorCode::kNotFound, fmt::format("no VM named \"{}\"", ref));
  return **current;
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

Result<std::vector<net::PortMapping>> parse_ports(const std::vector<std::string>& publish) {
  std::vector<net::PortMapping> ports;
  for (const auto& p : publish) {
    auto m = net::parse_publish(p);
    if (!m) return tl::unexpected<Error>(m.error());
    ports.push_back(*m);
  }
  FCVM_TRY(net::check_unique(ports));
  return ports;
}

Result<> validate_network(const std::string& mode) {
  if (mode != "rootless" && mode != "privileged") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --network \"{}\": expected rootless or privileged", mode));
  }
  if (mode == "privileged") FCVM_TRY(net::check_privileged_available());
  return {};
}

Result<> validate_gate(const std::string& spec) {
  if (spec.empty()) return {};
  auto gate = readiness::parse_gate(spec);
  if (!gate) return tl::unexpected<Error>(gate.error());
  return {};
}

Result<> check_volume_mode(const storage::VolumeMap& map, const std::string& network) {
  switch (map.mode) {
    case storage::VolumeMode::kBlock:
      return {};
    case storage::VolumeMode::kNfs:
      if (::geteuid() != 0 || network != "privileged") {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("invalid --map \"{}\": mode=nfs needs root and --network "
                                "privileged (the host exports the directory to the VM's address)",
                                map.to_string()));
      }
      if (auto server = storage::find_nfs_server(); !server) {
        return tl::unexpected<Error>(server.error());
      }
      return {};
    case storage::VolumeMode::kSshfs: {
      auto server = storage::find_sftp_server();
      if (!server) return tl::unexpected<Error>(server.error());
      if (::access("/usr/bin/bwrap", X_OK) != 0) {
        return fail(ErrorCode::kUnavailable,
                    "mode=sshfs needs bubblewrap on the host (apt-get install bubblewrap)");
      }
      return {};
    }
  }
  return fail(ErrorCode::kInternal, "unknown volume mode");
}

Result<> check_ports_available(const std::vector<net::PortMapping>& ports) {
  FCVM_TRY(net::check_host_ports_free(ports));
  return net::check_ports_not_published(ports);
}

Result<> check_snapshot_name_free(Session& s, const std::string& name) {
  FCVM_TRY(vm::reconcile_snapshots(*s.store));
  auto all = state::SnapshotStore(s.store->db()).list_all();
  if (!all) return tl::unexpected<Error>(all.error());
  for (const auto& snap : *all) {
    if (snap.name == name) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("a snapshot named \"{}\" already exists", name));
    }
  }
  return {};
}

}  // namespace fcvm::cli
