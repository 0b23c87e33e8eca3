#include "agent/logic/oci.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "agent/logic/podman.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {

constexpr const char* k_default_path =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// podman 4's default capabilities (containers.conf default_capabilities).
const std::vector<std::string>& default_capabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE",     "CAP_FOWNER",    "CAP_FSETID",
      "CAP_KILL",    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP",   "CAP_SETGID",
      "CAP_SETPCAP", "CAP_SETUID",           "CAP_SYS_CHROOT"};
  return caps;
}

nlohmann::json capabilities() {
  const auto& caps = default_capabilities();
  return {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
}

nlohmann::json user_json(const ContainerUser& user) {
  nlohmann::json u = {{"uid", user.uid}, {"gid", user.gid}, {"umask", 022}};
  if (!user.additional_gids.empty()) u["additionalGids"] = user.additional_gids;
  return u;
}

// One line of /etc/passwd or /etc/group split at ':' (comments and short lines skipped).
std::vector<std::vector<std::string_view>> records(std::string_view text, size_t min_fields) {
  std::vector<std::vector<std::string_view>> out;
  for (auto line : split(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto fields = split(line, ':');
    if (fields.size() >= min_fields) out.push_back(std::move(fields));
  }
  return out;
}

std::optional<uint32_t> parse_id(std::string_view text) {
  auto v = parse_int(text, 0, UINT32_MAX - 1);
  if (!v) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::string_view env_name(std::string_view entry) { return entry.substr(0, entry.find('=')); }

}  // namespace

Result<ContainerUser> resolve_user(std::string_view spec, std::string_view passwd,
                                   std::string_view group) {
  auto colon = spec.find(':');
  std::string_view user_part = spec.substr(0, colon);
  std::optional<std::string_view> group_part;
  if (colon != std::string_view::npos) group_part = spec.substr(colon + 1);
  if (user_part.empty()) user_part = "0";
  if (group_part && group_part->empty()) {
    return fail(ErrorCode::kInvalidInput, fmt::format("user '{}': the group is empty", spec));
  }
  auto numeric_uid = parse_id(user_part);
  ContainerUser user;
  std::string matched_name;
  for (const auto& f : records(passwd, 7)) {
    if (f[0] == user_part || (numeric_uid && parse_id(f[2]) == numeric_uid)) {
      auto uid = parse_id(f[2]);
      auto gid = parse_id(f[3]);
      if (!uid || !gid) continue;
      user.uid = *uid;
      user.gid = *gid;
      user.home = std::string(f[5]);
      matched_name = std::string(f[0]);
      break;
    }
  }
  if (matched_name.empty()) {
    if (!numeric_uid) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("user '{}' is not in the container's /etc/passwd", user_part));
    }
    user.uid = *numeric_uid;
    user.gid = 0;
    user.home = *numeric_uid == 0 ? "/root" : "/";
  }
  if (group_part) {
    // An explicit group is the primary group and the only one.
    auto numeric_gid = parse_id(*group_part);
    std::optional<uint32_t> gid;
    for (const auto& f : records(group, 3)) {
      if (f[0] == *group_part || (numeric_gid && parse_id(f[2]) == numeric_gid)) {
        gid = parse_id(f[2]);
        if (gid) break;
      }
    }
    if (!gid) gid = numeric_gid;
    if (!gid) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("group '{}' is not in the container's /etc/group", *group_part));
    }
    user.gid = *gid;
    return user;
  }
  if (!matched_name.empty()) {
    for (const auto& f : records(group, 4)) {
      auto members = split(f[3], ',');
      if (std::find(members.begin(), members.end(), matched_name) == members.end()) continue;
      auto gid = parse_id(f[2]);
      if (gid && *gid != user.gid &&
          std::find(user.additional_gids.begin(), user.additional_gids.end(), *gid) ==
              user.additional_gids.end()) {
        user.additional_gids.push_back(*gid);
      }
    }
  }
  return user;
}

std::string container_user_spec(const agent_proto::Plan& plan) {
  return plan.user.empty() ? plan.image.config.user : plan.user;
}

std::vector<std::string> container_args(const agent_proto::Plan& plan) {
  const auto& config = plan.image.config;
  auto args = plan.entrypoint.empty() ? config.entrypoint : plan.entrypoint;
  const auto& command = !plan.command.empty()
                            ? plan.command
                            : (plan.entrypoint.empty() ? config.cmd : std::vector<std::string>{});
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

std::string container_cwd(const agent_proto::Plan& plan) {
  if (!plan.workdir.empty()) return plan.workdir;
  if (!plan.image.config.workdir.empty()) return plan.image.config.workdir;
  return "/";
}

std::vector<std::string> merge_env(std::vector<std::string> base,
                                   const std::vector<std::string>& overrides) {
  for (const auto& entry : overrides) {
    auto name = env_name(entry);
    auto it = std::find_if(base.begin(), base.end(),
                           [&](const std::string& b) { return env_name(b) == name; });
    if (it != base.end()) {
      *it = entry;
    } else {
      base.push_back(entry);
    }
  }
  return base;
}

std::vector<std::string> container_env(const agent_proto::Plan& plan, const ContainerUser& user) {
  std::vector<std::string> env = {"TERM=xterm", k_default_path};
  env = merge_env(std::move(env), plan.image.config.env);
  auto has = [&](std::string_view name) {
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return env_name(e) == name; });
  };
  if (!has("HOME")) env.push_back("HOME=" + user.home);
  env = merge_env(std::move(env), {"HOSTNAME=" + plan.hostname});
  return merge_env(std::move(env), plan.env);
}

nlohmann::json rlimits(const std::vector<agent_proto::Ulimit>& ulimits) {
  // podman's defaults, replaced by the plan's limits of the same resource.
  std::vector<agent_proto::Ulimit> all = {{"nofile", 1048576, 1048576}, {"nproc", 32768, 32768}};
  for (const auto& u : ulimits) {
    std::erase_if(all, [&](const agent_proto::Ulimit& e) { return e.name == u.name; });
    all.push_back(u);
  }
  auto value = [](int64_t v) -> uint64_t {
    return v < 0 ? UINT64_MAX : static_cast<uint64_t>(v);  // -1: RLIM_INFINITY
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& u : all) {
    std::string type = "RLIMIT_";
    for (char c : u.name) type += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out.push_back({{"type", type}, {"hard", value(u.hard)}, {"soft", value(u.soft)}});
  }
  return out;
}

nlohmann::json container_spec(const agent_proto::Plan& plan, const std::string& rootfs,
                              const ContainerUser& user, const std::vector<std::string>& env,
                              const SpecFiles& files) {
  using nlohmann::json;
  json process = {
      {"terminal", plan.tty},
      {"user", user_json(user)},
      {"args", container_args(plan)},
      {"env", env},
      {"cwd", container_cwd(plan)},
      {"capabilities", capabilities()},
      {"rlimits", rlimits(plan.ulimits)},
  };
  auto mount = [](const char* dest, const char* type, const char* source,
                  std::vector<std::string> options) {
    return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
  };
  auto bind = [](const std::string& dest, const std::string& source, bool read_only) {
    std::vector<std::string> options = {"rbind", "rprivate"};
    if (read_only) options.emplace_back("ro");
    return json{{"destination", dest}, {"type", "bind"}, {"source", source}, {"options", options}};
  };
  if (plan.tty && plan.rows > 0 && plan.cols > 0) {
    process["consoleSize"] = {{"height", plan.rows}, {"width", plan.cols}};
  }
  if (plan.init) {
    // podman --init: catatonit (static in the guest) as PID 1, bind-mounted read-only.
    auto args = process["args"].get<std::vector<std::string>>();
    args.insert(args.begin(), {k_init_path, "--"});
    process["args"] = args;
  }
  json mounts = json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/sys/fs/cgroup", "cgroup", "cgroup",
            {"rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"}),
      bind("/etc/hosts", files.hosts, false),
      bind("/etc/resolv.conf", files.resolv_conf, false),
      bind("/etc/hostname", files.hostname, false),
  });
  if (plan.read_only) {
    // podman's --read-only-tmpfs (on by default): what programs expect to write stays writable.
    for (const char* dir : {"/tmp", "/var/tmp", "/run"}) {
      mounts.push_back(mount(dir, "tmpfs", "tmpfs", {"rw", "rprivate", "nosuid", "nodev"}));
    }
  }
  // After /run's tmpfs, which would hide it.
  if (plan.init) mounts.push_back(bind(k_init_path, k_guest_init, true));
  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    mounts.push_back(bind(plan.volumes[i].guest_path, fmt::format("/run/fcvm/volumes/{}", i),
                          plan.volumes[i].read_only));
  }
  json linux_section = {
      {"namespaces", json::array({{{"type", "pid"}},
                                  {{"type", "ipc"}},
                                  {{"type", "uts"}},
                                  {{"type", "mount"}},
                                  {{"type", "cgroup"}}})},
      {"cgroupsPath", "/fcvm/main"},
      {"resources", {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}}},
      {"maskedPaths",
       {"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
        "/sys/dev/block"}},
      {"readonlyPaths",
       {"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  return json{{"ociVersion", "1.0.0"},
              {"process", process},
              {"root", {{"path", rootfs}, {"readonly", plan.read_only}}},
              {"hostname", plan.hostname},
              {"mounts", mounts},
              {"linux", linux_section}};
}

nlohmann::json exec_process(const agent_proto::Exec& exec, const ContainerUser& user,
                            const std::vector<std::string>& container_env,
                            const std::string& container_cwd) {
  auto env = merge_env(container_env, exec.env);
  auto process = nlohmann::json{{"terminal", exec.tty},
                                {"user", user_json(user)},
                                {"args", exec.argv},
                                {"env", env},
                                {"cwd", exec.workdir.empty() ? container_cwd : exec.workdir},
                                {"capabilities", capabilities()}};
  if (exec.tty && exec.rows > 0 && exec.cols > 0) {
    process["consoleSize"] = {{"height", exec.rows}, {"width", exec.cols}};
  }
  return process;
}

std::vector<std::string> crun_run_argv(const std::string& root, const std::string& bundle,
                                       const std::string& pid_file) {
  return {"crun", "--root",     root,     "run",           "--bundle",
          bundle, "--pid-file", pid_file, k_container_name};
}

std::vector<std::string> crun_exec_argv(const std::string& root, const std::string& process_file,
                                        const std::string& pid_file) {
  return {"crun",       "--root",     root,     "exec",          "--process",
          process_file, "--pid-file", pid_file, k_container_name};
}

int crun_exec_failure_code(std::string_view message) {
  auto has = [&](std::string_view words) { return message.find(words) != std::string_view::npos; };
  if (has("executable file") && has("not found")) return 127;
  if (has("No such file or directory")) return 127;
  if (has("Permission denied") || has("permission denied")) return 126;
  return 125;
}

std::vector<std::string> crun_delete_argv(const std::string& root) {
  return {"crun", "--root", root, "delete", "--force", k_container_name};
}

}  // namespace fcvm::agent
