#include "agent/logic/podman.hpp"

#include <fmt/format.h>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

std::string volume_mount_dir(size_t index) { return fmt::format("{}/{}", k_volume_root, index); }

std::vector<std::string> podman_run_argv(const agent_proto::Plan& plan, const std::string& image) {
  std::vector<std::string> argv = {"podman",      "run",       "--name", k_container_name,
                                   "--replace",   "--network", "host",   "--sdnotify=conmon",
                                   "--pull=never"};
  if (!plan.entrypoint.empty()) {
    // podman reads a JSON array as the exact entrypoint argv (a plain string would be one word).
    argv.push_back("--entrypoint");
    argv.push_back(nlohmann::json(plan.entrypoint)
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  for (const auto& kv : plan.env) {
    argv.push_back("-e");
    argv.push_back(kv);
  }
  if (!plan.user.empty()) {
    argv.push_back("--user");
    argv.push_back(plan.user);
  }
  if (plan.read_only) argv.emplace_back("--read-only");
  if (plan.stdin_open) argv.emplace_back("-i");
  if (plan.tty) argv.emplace_back("-t");
  if (plan.init) argv.emplace_back("--init");
  for (const auto& u : plan.ulimits) {
    argv.push_back("--ulimit");
    argv.push_back(fmt::format("{}={}:{}", u.name, u.soft, u.hard));
  }
  if (!plan.workdir.empty()) {
    argv.push_back("-w");
    argv.push_back(plan.workdir);
  }
  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    argv.push_back("-v");
    argv.push_back(fmt::format("{}:{}{}", volume_mount_dir(i), plan.volumes[i].guest_path,
                               plan.volumes[i].read_only ? ":ro" : ""));
  }
  argv.push_back(image);
  argv.insert(argv.end(), plan.command.begin(), plan.command.end());
  return argv;
}

std::vector<std::string> podman_exec_argv(const agent_proto::Exec& exec) {
  std::vector<std::string> argv = {"podman", "exec", "-i"};
  if (exec.tty) argv.push_back("-t");
  for (const auto& kv : exec.env) {
    argv.push_back("-e");
    argv.push_back(kv);
  }
  if (!exec.workdir.empty()) {
    argv.push_back("-w");
    argv.push_back(exec.workdir);
  }
  if (!exec.user.empty()) {
    argv.push_back("-u");
    argv.push_back(exec.user);
  }
  argv.push_back(k_container_name);
  argv.insert(argv.end(), exec.argv.begin(), exec.argv.end());
  return argv;
}

Result<std::vector<std::string>> in_vm_argv(const agent_proto::Exec& exec) {
  if (exec.user.empty()) return exec.argv;
  auto parts = split(exec.user, ':');
  auto uid = parse_int(parts[0], 0, UINT32_MAX - 1);
  auto gid = parts.size() == 2 ? parse_int(parts[1], 0, UINT32_MAX - 1) : uid;
  if (!uid || !gid || parts.size() > 2) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("user '{}': in the VM the user must be UID or UID:GID", exec.user));
  }
  std::vector<std::string> argv = {"setpriv", fmt::format("--reuid={}", *uid),
                                   fmt::format("--regid={}", *gid), "--clear-groups", "--"};
  argv.insert(argv.end(), exec.argv.begin(), exec.argv.end());
  return argv;
}

std::vector<std::string> podman_load_argv(const std::string& path) {
  return {"podman", "load", "-i", path};
}

std::vector<std::string> podman_stop_argv(int timeout_s) {
  return {"podman", "stop", "-t", std::to_string(timeout_s < 0 ? 0 : timeout_s), k_container_name};
}

std::vector<std::string> podman_kill_argv(int sig) {
  return {"podman", "kill", "-s", std::to_string(sig), k_container_name};
}

std::vector<std::string> podman_running_argv() {
  return {"podman", "container", "inspect", "--format", "{{.State.Running}}", k_container_name};
}

std::optional<std::string> parse_loaded_image(std::string_view output) {
  for (auto line : split(output, '\n')) {
    line = trim(line);
    std::string_view names;
    for (std::string_view prefix : {"Loaded image(s):", "Loaded image:"}) {
      if (line.substr(0, prefix.size()) == prefix) {
        names = trim(line.substr(prefix.size()));
        break;
      }
    }
    if (names.empty()) continue;
    auto first = trim(split(names, ',')[0]);
    if (first.empty()) continue;
    constexpr std::string_view sha = "sha256:";
    if (first.substr(0, sha.size()) == sha) first.remove_prefix(sha.size());
    return std::string(first);
  }
  return std::nullopt;
}

bool notify_says_ready(std::string_view datagram) {
  for (auto line : split(datagram, '\n')) {
    if (trim(line) == "READY=1") return true;
  }
  return false;
}

std::string tail_lines(std::string_view text, size_t max_bytes) {
  text = trim(text);
  if (text.size() <= max_bytes) return std::string(text);
  auto tail = text.substr(text.size() - max_bytes);
  auto nl = tail.find('\n');
  if (nl != std::string_view::npos && nl + 1 < tail.size()) tail.remove_prefix(nl + 1);
  return "..." + std::string(tail);
}

}  // namespace fcvm::agent
