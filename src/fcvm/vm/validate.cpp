#include "fcvm/vm/validate.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <regex>

#include "fcvm/net/privileged.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/backend_select.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<std::vector<net::PortMapping>> parse_ports(const std::vector<std::string>& publish) {
  std::vector<net::PortMapping> ports;
  for (const auto& p : publish) {
    FCVM_TRY_ASSIGN(auto m, net::parse_publish(p));
    ports.push_back(m);
  }
  FCVM_TRY(net::check_unique(ports));
  return ports;
}

Result<NetworkMode> validate_network(const std::string& text) {
  FCVM_TRY_ASSIGN(auto mode, parse_network_mode(text));
  if (mode == NetworkMode::kPrivileged) FCVM_TRY(net::check_privileged_available());
  return mode;
}

Result<> validate_gate(const std::string& spec) {
  if (spec.empty()) return {};
  FCVM_TRY(readiness::parse_gate(spec));
  return {};
}

Result<> check_volume_mode(const storage::VolumeMap& map, NetworkMode network) {
  switch (map.mode) {
    case storage::VolumeMode::kBlock:
      return {};
    case storage::VolumeMode::kNfs:
      if (::geteuid() != 0 || network != NetworkMode::kPrivileged) {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("invalid --map \"{}\": mode=nfs needs root and --network "
                                "privileged (the host exports the directory to the VM's address)",
                                map.to_string()));
      }
      FCVM_TRY(storage::find_nfs_server());
      return {};
    case storage::VolumeMode::kSshfs: {
      FCVM_TRY(storage::find_sftp_server());
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

Result<> check_snapshot_name_free(state::VmStore& store, const std::string& name) {
  FCVM_TRY(reconcile_snapshots(store));
  FCVM_TRY_ASSIGN(auto all, state::SnapshotStore(store.db()).list_all());
  for (const auto& snap : all) {
    if (snap.name == name) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("a snapshot named \"{}\" already exists", name));
    }
  }
  return {};
}

namespace {

Result<int> bounded(const std::string& text, int64_t lo, int64_t hi, const std::string& message) {
  auto v = parse_int(text, lo, hi);
  if (!v) return fail(ErrorCode::kInvalidInput, message);
  return static_cast<int>(*v);
}

}  // namespace

Result<image::PullRequest> validate_pull(const std::string& ref,
                                         const std::vector<std::string>& insecure_registries,
                                         const std::string& authfile, const RunDefaults& defaults) {
  image::PullRequest out;
  FCVM_TRY_ASSIGN(out.ref, storage::parse_image_ref(ref));
  out.insecure_registries = defaults.insecure_registries;
  out.insecure_registries.insert(out.insecure_registries.end(), insecure_registries.begin(),
                                 insecure_registries.end());
  for (const auto& reg : out.insecure_registries) FCVM_TRY(validate_registry(reg));
  if (!authfile.empty() && ::access(authfile.c_str(), R_OK) != 0) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --authfile \"{}\": not a readable file", authfile));
  }
  out.authfile = authfile;
  return out;
}

Result<RunOptions> validate_run(const RunRequest& r, const RunDefaults& defaults,
                                const EnvLookup& env) {
  RunOptions o;
  if (r.image_and_command.empty()) {
    return fail(ErrorCode::kInvalidInput,
                "missing IMAGE (fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]])");
  }
  if (!r.name.empty()) FCVM_TRY(validate_name(r.name));
  o.name = r.name;
  o.command.assign(r.image_and_command.begin() + 1, r.image_and_command.end());
  if (!r.entrypoint.empty()) o.entrypoint = {r.entrypoint};
  FCVM_TRY_ASSIGN(o.ports, parse_ports(r.publish));
  for (const auto& f : r.env_files) {
    FCVM_TRY_ASSIGN(auto entries, read_env_file(f, env));
    o.env.insert(o.env.end(), entries.begin(), entries.end());
  }
  for (const auto& e : r.env) {
    FCVM_TRY_ASSIGN(auto entry, normalize_env(e, env));
    o.env.push_back(entry);
  }
  if (r.guest_pull && !r.authfile.empty()) {
    return fail(ErrorCode::kInvalidInput,
                "--authfile applies to the host image store: it cannot be used with --guest-pull");
  }
  FCVM_TRY_ASSIGN(auto fetch, validate_pull(r.image_and_command[0], r.insecure_registries,
                                            r.authfile, defaults));
  o.image = std::move(fetch.ref);
  o.insecure_registries = std::move(fetch.insecure_registries);
  o.authfile = std::move(fetch.authfile);
  o.guest_pull = r.guest_pull;
  if (!r.workdir.empty() && r.workdir[0] != '/') {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --workdir \"{}\": must be an absolute path", r.workdir));
  }
  o.workdir = r.workdir;
  if (!r.user.empty()) FCVM_TRY(validate_user(r.user));
  o.user = r.user;
  if (!r.hostname.empty()) FCVM_TRY(validate_hostname(r.hostname));
  o.hostname = r.hostname;
  o.read_only = r.read_only;
  o.init = r.init;
  for (const auto& text : r.ulimits) {
    FCVM_TRY_ASSIGN(auto u, parse_ulimit(text));
    // A later one for the same resource wins, as podman's.
    std::erase_if(o.ulimits, [&](const agent_proto::Ulimit& e) { return e.name == u.name; });
    o.ulimits.push_back(std::move(u));
  }
  o.interactive = r.interactive;
  o.tty = r.tty;
  for (const auto& text : r.labels) {
    FCVM_TRY_ASSIGN(auto label, parse_label(text));
    o.labels[label.first] = label.second;
  }
  auto mem = r.mem.empty() ? std::to_string(defaults.mem_mib) : r.mem;
  FCVM_TRY_ASSIGN(
      o.mem_mib,
      bounded(mem, 128, 1 << 20,
              fmt::format("invalid --mem \"{}\": expected MiB as a whole number >= 128", mem)));
  auto cpu = r.cpu.empty() ? std::to_string(defaults.vcpus) : r.cpu;
  FCVM_TRY_ASSIGN(o.vcpus, bounded(cpu, 1, 64,
                                   fmt::format("invalid --cpu \"{}\": expected a whole number "
                                               "from 1 to 64",
                                               cpu)));
  FCVM_TRY_ASSIGN(o.vmm, parse_vmm_choice(r.vmm.empty() ? defaults.vmm : r.vmm));
  o.jailer = r.jailer.empty() ? defaults.jailer : r.jailer;
  if (o.jailer != "auto" && o.jailer != "on" && o.jailer != "off") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid jailer setting \"{}\": expected auto, on or off", o.jailer));
  }
  if (!r.jailer.empty() && r.jailer == "on") {
    if (o.vmm == vmm::VmmKind::kQemu) {
      return fail(ErrorCode::kInvalidInput, "--jailer: the jailer runs Firecracker, not QEMU");
    }
    if (::geteuid() != 0) {
      return fail(ErrorCode::kInvalidInput,
                  "--jailer: the jailer needs root (it chroots Firecracker and changes its user)");
    }
  }
  FCVM_TRY_ASSIGN(o.network, validate_network(r.network.empty() ? defaults.network : r.network));
  auto stop = r.stop_timeout.empty() ? std::to_string(defaults.stop_timeout_s) : r.stop_timeout;
  FCVM_TRY_ASSIGN(
      o.stop_timeout_s,
      bounded(stop, 0, 3600,
              fmt::format("invalid --stop-timeout \"{}\": expected seconds 0-3600", stop)));
  auto boot = r.boot_timeout.empty() ? std::to_string(defaults.boot_timeout_s) : r.boot_timeout;
  FCVM_TRY_ASSIGN(
      o.boot_timeout_s,
      bounded(boot, 10, 3600,
              fmt::format("invalid --boot-timeout \"{}\": expected seconds 10-3600", boot)));
  if (!r.ttl.empty()) {
    FCVM_TRY_ASSIGN(o.ttl_s, parse_ttl_seconds(r.ttl, "--timeout"));
  }
  if (!r.restart.empty()) {
    FCVM_TRY_ASSIGN(o.restart, parse_restart_policy(r.restart));
    if (o.restart.kind != RestartPolicy::Kind::kNo && !r.detach) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("--restart {} needs -d: a foreground run ends with its container",
                              r.restart));
    }
  }
  o.timings_file = r.timings_file;
  for (const auto& text : r.maps) {
    FCVM_TRY_ASSIGN(auto m, storage::parse_volume_map(text));
    o.volumes.push_back(m);
  }
  FCVM_TRY(storage::check_unique_guests(o.volumes));
  for (const auto& m : o.volumes) FCVM_TRY(check_volume_mode(m, o.network));
  if (!r.map_size.empty()) {
    auto size = storage::parse_size_mib(r.map_size);
    if (!size) return fail(ErrorCode::kInvalidInput, "--map-size: " + size.error().message());
    o.map_size_mib = *size;
  }
  FCVM_TRY(validate_gate(r.wait_ready));
  o.wait_ready = r.wait_ready;
  o.keep_on_failure = r.keep_on_failure;
  if (!r.save_snapshot.empty()) FCVM_TRY(validate_snapshot_name(r.save_snapshot));
  if (r.snapshot_then_stop && r.save_snapshot.empty()) {
    return fail(ErrorCode::kInvalidInput, "--snapshot-then-stop needs --save-snapshot NAME");
  }
  if (!r.save_snapshot.empty() && !o.volumes.empty()) {
    return fail(ErrorCode::kInvalidInput,
                "--save-snapshot: VMs with --map volumes cannot be snapshotted (yet)");
  }
  o.save_snapshot = r.save_snapshot;
  o.snapshot_then_stop = r.snapshot_then_stop;
  // Last, because it touches the host.
  FCVM_TRY(check_ports_available(o.ports));
  return o;
}

Result<std::pair<std::string, std::string>> parse_label(const std::string& text) {
  auto eq = text.find('=');
  std::string key = text.substr(0, eq);
  std::string value = eq == std::string::npos ? std::string() : text.substr(eq + 1);
  auto control = [](const std::string& s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  };
  if (key.empty() || control(key) || control(value) || key.size() > 256 || value.size() > 4096) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --label \"{}\": expected KEY=VALUE (a non-empty key, no "
                            "control characters)",
                            text));
  }
  return std::pair{key, value};
}

Result<> validate_hostname(const std::string& hostname) {
  static const std::regex re(
      "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*");
  if (hostname.size() > 63 || !std::regex_match(hostname, re)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --hostname \"{}\": expected letters, digits and '-' in "
                            "dot-separated labels, at most 63 characters",
                            hostname));
  }
  return {};
}

Result<> validate_user(const std::string& user) {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?");
  if (user.size() > 256 || !std::regex_match(user, re)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --user \"{}\": expected NAME or UID, optionally :GROUP or "
                            ":GID",
                            user));
  }
  return {};
}

Result<CloneOptions> validate_clone(const CloneRequest& r) {
  CloneOptions c;
  if (!r.name.empty()) FCVM_TRY(validate_name(r.name));
  c.name = r.name;
  for (const auto& text : r.labels) {
    FCVM_TRY_ASSIGN(auto label, parse_label(text));
    c.labels[label.first] = label.second;
  }
  FCVM_TRY_ASSIGN(c.ports, parse_ports(r.publish));
  if (!r.network.empty()) {
    FCVM_TRY_ASSIGN(c.network, validate_network(r.network));
  }
  FCVM_TRY(validate_gate(r.wait_ready));
  c.wait_ready = r.wait_ready;
  c.keep_on_failure = r.keep_on_failure;
  c.timings_file = r.timings_file;
  if (!r.ttl.empty()) {
    FCVM_TRY_ASSIGN(c.ttl_s, parse_ttl_seconds(r.ttl, "--timeout"));
  }
  // Last, because it touches the host.
  FCVM_TRY(check_ports_available(c.ports));
  return c;
}

Result<> check_run(Context& ctx, state::VmStore& store, const RunOptions& options) {
  if (!options.save_snapshot.empty())
    FCVM_TRY(check_snapshot_name_free(store, options.save_snapshot));
  // An explicit --vmm firecracker that cannot work fails before anything is created.
  if (options.vmm == vmm::VmmKind::kFirecracker || options.jailer == "on") {
    std::string why;
    FCVM_TRY(select_backend(ctx, options.vmm, why, options.jailer));
  }
  return {};
}

}  // namespace fcvm::vm
