// A container from a stored image runs under crun directly: the agent writes an OCI bundle whose
// root is the image's overlay (logic/oci.hpp) and runs `crun run` on stream 0. crun forwards
// every signal it gets to the container's process, exits with the container's status (128+N
// for a signal) and writes its pid file once the process runs, past the start barrier: an
// inotify watch on the bundle directory turns that into "container started". Execs are
// `crun exec --process FILE --pid-file FILE`; the pid file names the process a signal goes to.
//
// podman run with --rootfs costs about 3 s of CPU under emulation before the container starts,
// crun alone about 0.4 s (DESIGN.md, "The host image store").
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/exec.hpp"
#include "agent/logic/oci.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {

// A file of the container's root read as the container would see it: symbolic links resolve
// inside the root (openat2 RESOLVE_IN_ROOT), never out of it. "" when it does not exist.
Result<std::string> read_in_root(const std::string& root, const char* relative) {
  UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return fail_errno(fmt::format("open {}", root));
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, dir.get(), relative, &how, sizeof how)));
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return fail_errno(fmt::format("open {} in {}", relative, root));
  }
  return read_file(fmt::format("/proc/self/fd/{}", fd.get()));
}

std::optional<pid_t> read_pid_file(const std::string& file) {
  auto text = read_file(file);
  if (!text) return std::nullopt;
  auto pid = parse_int(trim(*text), 1, INT32_MAX);
  if (!pid) return std::nullopt;
  return static_cast<pid_t>(*pid);
}

}  // namespace

Result<ContainerUser> Agent::container_user(const std::string& spec) const {
  auto root = path(k_rootfs);
  FCVM_TRY_ASSIGN(auto passwd, read_in_root(root, "etc/passwd"));
  FCVM_TRY_ASSIGN(auto group, read_in_root(root, "etc/group"));
  return resolve_user(spec, passwd, group);
}

void Agent::start_crun_container() {
  auto bundle = path(k_bundle_dir);
  auto run = [&]() -> Result<> {
    FCVM_TRY(remove_all(bundle));
    FCVM_TRY(make_dirs(bundle, 0700));
    FCVM_TRY_ASSIGN(auto user, container_user(container_user_spec(*m_plan)));
    SpecFiles files{bundle + "/hosts", bundle + "/resolv.conf", bundle + "/hostname"};
    // The container gets copies of the guest's name files: what it writes stays its own.
    for (auto [from, to] : {std::pair{path("/etc/hosts"), files.hosts},
                            std::pair{path("/etc/resolv.conf"), files.resolv_conf}}) {
      auto text = read_file(from);
      FCVM_TRY(write_file_atomic(to, text ? *text : std::string(), 0644));
    }
    FCVM_TRY(write_file_atomic(files.hostname, m_plan->hostname + "\n", 0644));
    m_container_env = container_env(*m_plan, user);
    m_container_cwd = container_cwd(*m_plan);
    m_container_user = user;
    auto spec = container_spec(*m_plan, path(k_rootfs), user, m_container_env, files);
    FCVM_TRY(write_file_atomic(bundle + "/config.json", spec.dump(1), 0600));
    m_pid_watch.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!m_pid_watch) return fail_errno("inotify_init1");
    if (::inotify_add_watch(m_pid_watch.get(), bundle.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
      return fail_errno(fmt::format("inotify_add_watch {}", bundle));
    }
    return {};
  }();
  if (!run) {
    fail_plan("container", run.error().to_string());
    return;
  }
  m_phase = Phase::kStarting;
  // State of a container from before a restart of the agent in this boot (/run is a tmpfs).
  if (::access((path(k_crun_root) + "/" + k_container_name).c_str(), F_OK) == 0) {
    run_helper("crun delete", crun_delete_argv(path(k_crun_root)),
               [this](CommandOutput) { spawn_crun_run(); });
    return;
  }
  spawn_crun_run();
}

void Agent::spawn_crun_run() {
  if (m_phase != Phase::kStarting && m_phase != Phase::kStopping) return;
  auto bundle = path(k_bundle_dir);
  SpawnOptions options;
  options.argv = crun_run_argv(path(k_crun_root), bundle, bundle + "/" + k_main_pid_name);
  sayf("container command: {}", join(container_args(*m_plan), " "));
  std::string console_socket;
  if (m_plan->tty) {
    console_socket = bundle + "/console-main.sock";
    options.argv.insert(options.argv.begin() + 4, {"--console-socket", console_socket});
  }
  start_main_stream(std::move(options), console_socket);
}

void Agent::on_pid_watch() {
  alignas(inotify_event) char buf[4096];
  bool written = false;
  for (;;) {
    ssize_t n = ::read(m_pid_watch.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      // inotify_event records are laid out back to back in the buffer the kernel filled.
      const auto* event = reinterpret_cast<const inotify_event*>(buf + at);
      if (event->len > 0 && std::strcmp(event->name, k_main_pid_name) == 0) written = true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  if (!written) return;
  auto pid = read_pid_file(path(k_bundle_dir) + "/" + k_main_pid_name);
  if (!pid) return;
  m_pid_watch.reset();
  m_container_pid = *pid;
  container_started(fmt::format("crun: pid {}", *pid));
}

void Agent::stop_crun_container() {
  const auto& name = m_plan->image.config.stop_signal;
  int sig = SIGTERM;
  if (!name.empty()) {
    if (auto n = signal_number(name)) {
      sig = *n;
    } else {
      send_log(fmt::format("unknown stop signal '{}' in the image: sending SIGTERM", name));
    }
  }
  sayf("signal {} to the container (pid {}), SIGKILL in {} s", sig, m_container_pid,
       m_stop_timeout_s);
  if (m_container_pid > 0 && ::kill(m_container_pid, sig) != 0 && errno != ESRCH) {
    send_log(fmt::format("signal {} to the container: {}", sig, std::strerror(errno)));
  }
  m_kill_at_ms = uptime_ms() + std::max(0, m_stop_timeout_s) * 1000LL;
}

// The stop deadline passed: first the container's process gets SIGKILL (which ends its pid
// namespace), then, should crun itself hang, crun.
void Agent::kill_crun_container() {
  auto it = m_streams.find(agent_proto::k_main_stream);
  if (it == m_streams.end() || it->second.proc->exited()) return;
  if (m_container_pid > 0 && !m_container_killed) {
    m_container_killed = true;
    send_log(fmt::format("the container did not stop within {} s: killing it", m_stop_timeout_s));
    if (::kill(m_container_pid, SIGKILL) != 0 && errno != ESRCH) {
      send_log(fmt::format("SIGKILL to the container: {}", std::strerror(errno)));
    }
    m_kill_at_ms = uptime_ms() + 30'000;
    return;
  }
  send_log("crun run did not end: killing it");
  (void)it->second.proc->signal(SIGKILL);
}

bool Agent::crun_container_ran() const {
  return m_container_pid > 0 ||
         read_pid_file(path(k_bundle_dir) + "/" + k_main_pid_name).has_value();
}

Result<SpawnOptions> Agent::crun_exec_options(const agent_proto::Exec& exec, Stream& stream) {
  ContainerUser user = m_container_user;
  if (!exec.user.empty()) {
    FCVM_TRY_ASSIGN(user, container_user(exec.user));
  }
  auto base = fmt::format("{}/exec-{}", path(k_bundle_dir), exec.stream);
  stream.process_file = base + ".json";
  stream.pid_file = base + ".pid";
  (void)remove_all(stream.pid_file);
  auto process = exec_process(exec, user, m_container_env, m_container_cwd);
  FCVM_TRY(write_file_atomic(stream.process_file, process.dump(), 0600));
  SpawnOptions options;
  options.argv = crun_exec_argv(path(k_crun_root), stream.process_file, stream.pid_file);
  if (exec.tty) {
    stream.console_socket = base + ".console.sock";
    options.argv.insert(options.argv.begin() + 4, {"--console-socket", stream.console_socket});
  }
  return options;
}

std::optional<pid_t> Agent::crun_exec_pid(const Stream& stream) const {
  auto pid = read_pid_file(stream.pid_file);
  if (!pid) return std::nullopt;
  // crun exec waits for the process it started: while that is its child the pid is current.
  auto stat = read_file(fmt::format("/proc/{}/stat", *pid));
  auto parent = stat ? stat_parent(*stat) : std::nullopt;
  if (parent != stream.proc->pid()) return std::nullopt;
  return pid;
}

}  // namespace fcvm::agent
