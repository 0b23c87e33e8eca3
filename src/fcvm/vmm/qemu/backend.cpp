#include "fcvm/vmm/qemu/backend.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include "fcvm/sys/host.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vmm::qemu {

std::string QemuBackend::vmm_log_tail() const {
  auto text = read_file(m_spec.vmm_log);
  if (!text) return {};
  auto t = std::string(trim(*text));
  if (t.size() > 600) t = "..." + t.substr(t.size() - 600);
  return t;
}

Result<> QemuBackend::start(const VmSpec& spec) {
  m_spec = spec;
  auto argv = build_command_line(spec, m_options.accel, sys::tsc_khz(), m_options.binary);
  FCVM_LOG(kInfo, "qemu", "accel={} argv: {}", m_options.accel == Accel::kKvm ? "kvm" : "tcg",
           join(argv, " "));
  UniqueFd log_fd(::open(spec.vmm_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd) return fail_errno(fmt::format("open {}", spec.vmm_log));
  SpawnOptions opts;
  opts.argv = argv;
  opts.stdout_fd = log_fd.get();
  opts.stderr_fd = log_fd.get();
  opts.join_namespaces_of = spec.netns_holder;
  auto child = ChildProcess::spawn(opts);
  if (!child) return tl::unexpected<Error>(std::move(child.error()).wrap("start qemu"));
  m_process = std::move(*child);

  // QEMU creates its sockets during start-up; an early exit means a bad configuration.
  auto paths = paths_for(spec);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    auto st = m_process.try_wait();
    if (st && *st) {
      return fail(ErrorCode::kSystem, fmt::format("qemu exited during start-up ({}): {}",
                                                  (*st)->describe(), vmm_log_tail()));
    }
    if (path_exists(paths.qmp_socket)) {
      auto qmp = QmpClient::connect(paths.qmp_socket, std::chrono::seconds(5));
      if (qmp) {
        m_qmp = std::move(*qmp);
        return {};
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        return tl::unexpected<Error>(qmp.error());
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill();
      return fail(ErrorCode::kTimeout, "qemu did not open its QMP socket within 15 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Result<UniqueFd> QemuBackend::connect_agent(std::chrono::milliseconds timeout) {
  return unix_connect(paths_for(m_spec).agent_socket, timeout);
}

Result<> QemuBackend::pause() {
  if (!m_qmp) return fail(ErrorCode::kInternal, "qemu is not running");
  FCVM_TRY(m_qmp->execute("stop"));
  return {};
}

Result<> QemuBackend::resume() {
  if (!m_qmp) return fail(ErrorCode::kInternal, "qemu is not running");
  FCVM_TRY(m_qmp->execute("cont"));
  return {};
}

Result<> QemuBackend::shutdown() {
  if (!m_process.running()) return {};
  if (m_qmp) {
    // `quit` ends QEMU at once; the connection may close before the answer arrives.
    (void)m_qmp->execute("quit", nullptr, std::chrono::seconds(2));
  }
  auto st = m_process.wait_for(std::chrono::seconds(3));
  if (!st || !*st) kill();
  return {};
}

Result<std::optional<ExitStatus>> QemuBackend::wait_exit(std::chrono::milliseconds timeout) {
  if (m_process.pid() <= 0) return std::optional<ExitStatus>(ExitStatus{true, 0});
  return m_process.wait_for(timeout);
}

void QemuBackend::kill() {
  if (m_process.running()) {
    (void)m_process.signal(SIGKILL);
    (void)m_process.wait();
  }
  m_qmp.reset();
}

Accel choose_accel(const std::string& kernel, const std::string& cache_file, std::string& why) {
  if (const char* forced = std::getenv("FCVM_ACCEL")) {
    std::string f = forced;
    if (f == "kvm" || f == "tcg") {
      why = fmt::format("FCVM_ACCEL={}", f);
      return f == "kvm" ? Accel::kKvm : Accel::kTcg;
    }
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    why = "/dev/kvm is missing or not accessible: using TCG (software emulation)";
    return Accel::kTcg;
  }
  auto key = fmt::format("{} {}", sys::boot_id(), kernel);
  if (auto cached = read_file(cache_file)) {
    auto lines = split(*cached, '\n');
    if (lines.size() >= 2 && lines[0] == key) {
      why = std::string(lines[1]);
      return why.rfind("kvm", 0) == 0 ? Accel::kKvm : Accel::kTcg;
    }
  }
  // The probe: boot the kernel without a root disk. A working KVM reaches the "unable to mount
  // root" panic within a second or two and (panic=-1, -no-reboot) QEMU exits.
  auto dir = cache_file + ".d";
  (void)make_dirs(dir);
  auto console = dir + "/console.log";
  ::unlink(console.c_str());
  SpawnOptions opts;
  opts.argv = {"qemu-system-x86_64",
               "-machine",
               "microvm,pit=on,acpi=on",
               "-accel",
               "kvm",
               "-cpu",
               "host",
               "-m",
               "256M",
               "-nodefaults",
               "-no-user-config",
               "-nographic",
               "-no-reboot",
               "-kernel",
               kernel,
               "-append",
               "console=ttyS0 panic=-1 reboot=t",
               "-chardev",
               fmt::format("file,id=c,path={}", console),
               "-serial",
               "chardev:c"};
  bool ok = false;
  auto child = ChildProcess::spawn(opts);
  if (child) {
    auto st = child->wait_for(std::chrono::seconds(5));
    auto text = read_file(console);
    ok = st && *st && text &&
         (text->find("Kernel panic") != std::string::npos ||
          text->find("VFS:") != std::string::npos);
    if (!st || !*st) (void)child->terminate(std::chrono::milliseconds(200));
  }
  why = ok ? "kvm: probe boot succeeded"
           : "tcg: /dev/kvm exists but a probe guest did not boot with it; using TCG (slow)";
  (void)write_file_atomic(cache_file, key + "\n" + why + "\n");
  (void)remove_all(dir);
  return ok ? Accel::kKvm : Accel::kTcg;
}

}  // namespace fcvm::vmm::qemu
