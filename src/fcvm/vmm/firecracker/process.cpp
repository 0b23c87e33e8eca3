#include "fcvm/vmm/firecracker/process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vmm/firecracker/api_client.hpp"
#include "fcvm/vmm/firecracker/models.hpp"

namespace fcvm::vmm::firecracker {
namespace {

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::string> resolve_bin(const std::string& explicit_path, const char* name) {
  if (!explicit_path.empty()) {
    if (::access(explicit_path.c_str(), X_OK) != 0) {
      return fail_errno(fmt::format("{} binary {} is not executable", name, explicit_path));
    }
    return explicit_path;
  }
  if (auto found = find_executable(name)) return *found;
  return fail(ErrorCode::kUnavailable,
              fmt::format("no {} binary: none configured and none found in PATH", name));
}

// GET /'s answer names the version; fcvm talks only to versions it knows the API of.
Result<> check_answer(const nlohmann::json& answer, SpawnedVmm& vmm) {
  auto info = InstanceInfo::from_json(answer);
  if (!info) return tl::unexpected<Error>(info.error());
  auto version = parse_version(info->vmm_version);
  if (!version) return tl::unexpected<Error>(version.error());
  FCVM_TRY(check_supported(*version));
  vmm.version = *version;
  FCVM_LOG(kInfo, "firecracker", "Firecracker {} answers on {}", version->to_string(),
           vmm.api_sock);
  return {};
}

}  // namespace

Result<std::string> resolve_firecracker_bin(const std::string& explicit_path) {
  return resolve_bin(explicit_path, "firecracker");
}

Result<std::string> resolve_jailer_bin(const std::string& explicit_path) {
  return resolve_bin(explicit_path, "jailer");
}

std::vector<std::string> firecracker_argv(const std::string& bin, const std::string& api_sock,
                                          const std::string& id) {
  std::vector<std::string> argv = {bin, "--api-sock", api_sock};
  if (!id.empty()) {
    argv.emplace_back("--id");
    argv.push_back(id);
  }
  return argv;
}

std::vector<std::string> jailer_argv(const std::string& jailer_bin, const ProcessOptions& options) {
  const JailerOptions& j = *options.jailer;
  std::vector<std::string> argv = {jailer_bin,
                                   "--id",
                                   options.id,
                                   "--exec-file",
                                   options.firecracker_bin,
                                   "--uid",
                                   std::to_string(j.uid),
                                   "--gid",
                                   std::to_string(j.gid)};
  auto add = [&argv](const char* flag, const std::string& value) {
    argv.emplace_back(flag);
    argv.push_back(value);
  };
  if (!j.chroot_base_dir.empty()) add("--chroot-base-dir", j.chroot_base_dir);
  if (!j.parent_cgroup.empty()) add("--parent-cgroup", j.parent_cgroup);
  if (j.cgroup_version != 0) add("--cgroup-version", std::to_string(j.cgroup_version));
  for (const auto& c : j.cgroups) add("--cgroup", c);
  for (const auto& r : j.resource_limits) add("--resource-limit", r);
  if (!j.netns.empty()) add("--netns", j.netns);
  // After "--": Firecracker's own arguments. The jailer already passes --id.
  argv.emplace_back("--");
  argv.emplace_back("--api-sock");
  argv.emplace_back(k_jailed_api_sock);
  return argv;
}

JailLayout::JailLayout(const JailerOptions& jailer, const std::string& firecracker_bin,
                       const std::string& id)
    : m_instance_dir(
          fmt::format("{}/{}/{}", jailer.chroot_base_dir, base_name(firecracker_bin), id)),
      m_root(m_instance_dir + "/root"),
      m_uid(jailer.uid),
      m_gid(jailer.gid) {}

std::string JailLayout::host_path(const std::string& jailed_path) const {
  if (jailed_path.empty() || jailed_path[0] != '/') return m_root + "/" + jailed_path;
  return m_root + jailed_path;
}

Result<std::string> JailLayout::expose(const std::string& host_file, bool writable, bool copy_ok,
                                       const std::string& as) const {
  auto name = as.empty() ? base_name(host_file) : as;
  auto target = m_root + "/" + name;
  struct stat src {};
  struct stat dst {};
  if (::stat(host_file.c_str(), &src) != 0) return fail_errno(fmt::format("stat {}", host_file));
  bool exists = ::stat(target.c_str(), &dst) == 0;
  bool same = exists && src.st_ino == dst.st_ino && src.st_dev == dst.st_dev;
  // Another file under this name (a drive pointed elsewhere): Firecracker keeps what it opened.
  if (exists && !same && ::unlink(target.c_str()) != 0) {
    return fail_errno(fmt::format("replace {} in the jail", target));
  }
  if (!same && ::link(host_file.c_str(), target.c_str()) != 0) {
    int e = errno;
    if (e == EXDEV && !writable && copy_ok) {
      FCVM_TRY_CTX(clone_file_data(host_file, target, false, 0644), "copy into the jail");
    } else {
      auto hint = e == EXDEV ? " (the jail must be on the same filesystem as the VM's files)" : "";
      return fail_errno(fmt::format("hard-link {} into the jail at {}{}", host_file, target, hint),
                        e);
    }
  }
  if (writable) {
    if (::lchown(target.c_str(), m_uid, m_gid) != 0) {
      return fail_errno(fmt::format("chown {} to {}:{}", target, m_uid, m_gid));
    }
  } else if ((src.st_mode & S_IROTH) == 0 && ::chmod(target.c_str(), src.st_mode | S_IROTH) != 0) {
    return fail_errno(fmt::format("make {} readable in the jail", target));
  }
  return "/" + name;
}

std::string jail_cgroup(const std::string& id) {
  return fmt::format("{}/{}/{}", k_cgroup_root, k_jail_parent_cgroup, id);
}

namespace {
// The jail's cgroup takes cpu.max and memory.max: those controllers must be enabled down to its
// parent (a host managed by systemd has them at the root already; a bare one may not).
Result<> prepare_jail_cgroup() {
  auto parent = fmt::format("{}/{}", k_cgroup_root, k_jail_parent_cgroup);
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
    return fail_errno(fmt::format("create cgroup {}", parent));
  }
  for (const auto& dir : {std::string(k_cgroup_root), parent}) {
    auto control = dir + "/cgroup.subtree_control";
    auto current = read_file(control);
    if (current && current->find("cpu") != std::string::npos &&
        current->find("memory") != std::string::npos) {
      continue;
    }
    UniqueFd fd(::open(control.c_str(), O_WRONLY | O_CLOEXEC));
    constexpr std::string_view k_enable = "+cpu +memory";
    if (!fd || ::write(fd.get(), k_enable.data(), k_enable.size()) < 0) {
      return fail_errno(fmt::format("enable the cpu and memory controllers in {}", control));
    }
  }
  return {};
}
}  // namespace

Result<> remove_jail(const std::string& vm_dir, const std::string& id) {
  FCVM_TRY(remove_all(vm_dir + "/" + k_jail_dir_name));
  auto cgroup = jail_cgroup(id);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (::rmdir(cgroup.c_str()) != 0) {
    if (errno == ENOENT) return {};
    if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      return fail_errno(fmt::format("remove cgroup {}", cgroup));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

std::string log_tail(const std::string& path, size_t max_bytes) {
  if (path.empty()) return {};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0) return {};
  off_t start = size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
  std::string text(static_cast<size_t>(size - start), '\0');
  ssize_t n = ::pread(fd.get(), text.data(), text.size(), start);
  if (n <= 0) return {};
  text.resize(static_cast<size_t>(n));
  return std::string(trim(text));
}

Result<SpawnedVmm> spawn_firecracker(const ProcessOptions& options) {
  SpawnedVmm vmm;
  std::vector<std::string> argv;
  // Firecracker refuses to bind over a stale socket; jailed, this path becomes a symlink to it.
  vmm.api_sock = options.api_sock;
  if (::unlink(vmm.api_sock.c_str()) != 0 && errno != ENOENT) {
    return fail_errno(fmt::format("remove stale API socket {}", vmm.api_sock));
  }
  if (options.jailer) {
    auto jailer_bin = resolve_jailer_bin(options.jailer->jailer_bin);
    if (!jailer_bin) return tl::unexpected<Error>(jailer_bin.error());
    argv = jailer_argv(*jailer_bin, options);
    vmm.jail.emplace(*options.jailer, options.firecracker_bin, options.id);
    if (options.jailer->cgroup_version == 2) FCVM_TRY(prepare_jail_cgroup());
    // A jail left by a VMM that was killed: the jailer refuses to reuse one.
    FCVM_TRY_CTX(remove_all(vmm.jail->instance_dir()), "remove a stale jail");
    FCVM_TRY_CTX(make_dirs(options.jailer->chroot_base_dir, 0700), "create the jail's directory");
    auto inside = vmm.jail->host_path(k_jailed_api_sock);
    if (::symlink(inside.c_str(), vmm.api_sock.c_str()) != 0) {
      return fail_errno(fmt::format("symlink {} -> {}", vmm.api_sock, inside));
    }
  } else {
    argv = firecracker_argv(options.firecracker_bin, options.api_sock, options.id);
  }

  UniqueFd log;
  if (!options.log_path.empty()) {
    log.reset(::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) return fail_errno(fmt::format("open {}", options.log_path));
  }
  SpawnOptions spawn;
  spawn.argv = argv;
  spawn.stdout_fd = log.get();
  spawn.stderr_fd = log.get();
  // Its own session: a terminal's Ctrl-C reaches fcvm, which stops the VM in order.
  spawn.new_session = true;
  spawn.join_namespaces_of = options.join_namespaces_of;
  if (!options.jailer) spawn.cwd = options.cwd;
  spawn.new_pid_namespace = options.jailer && options.jailer->new_pid_ns;
  FCVM_LOG(kDebug, "firecracker", "spawn: {}", join(argv, " "));
  auto child = ChildProcess::spawn(spawn);
  if (!child) return tl::unexpected<Error>(child.error());
  vmm.process = std::move(*child);

  // Wait until the API answers GET /: the socket file appears before Firecracker accepts on it.
  auto client = ApiClient::for_socket(
      vmm.api_sock, ApiTimeouts{std::chrono::milliseconds(200), std::chrono::milliseconds(1000)});
  auto deadline = std::chrono::steady_clock::now() + options.ready_timeout;
  std::string last = "no answer";
  for (;;) {
    auto status = vmm.process.try_wait();
    if (!status) return tl::unexpected<Error>(status.error());
    if (*status) {
      auto tail = log_tail(options.log_path);
      ::unlink(vmm.api_sock.c_str());
      return fail(ErrorCode::kSystem,
                  fmt::format("{} exited ({}) before its API socket answered{}{}", argv[0],
                              (*status)->describe(), tail.empty() ? "" : ": ", tail));
    }
    if (::access(vmm.api_sock.c_str(), F_OK) == 0) {
      auto info = client.get("/");
      if (info) {
        auto checked = check_answer(*info, vmm);
        if (checked) return vmm;
        vmm.process.terminate(std::chrono::milliseconds(0));
        ::unlink(vmm.api_sock.c_str());
        return fail(checked.error().wrap(argv[0]));
      }
      last = info.error().to_string();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      vmm.process.terminate(std::chrono::milliseconds(0));
      ::unlink(vmm.api_sock.c_str());
      auto tail = log_tail(options.log_path);
      return fail(ErrorCode::kTimeout,
                  fmt::format("{}: API socket {} did not answer within {} ms (last: {}){}{}",
                              argv[0], vmm.api_sock, options.ready_timeout.count(), last,
                              tail.empty() ? "" : "; its output: ", tail));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace fcvm::vmm::firecracker
