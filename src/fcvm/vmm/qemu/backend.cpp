#include "fcvm/vmm/qemu/backend.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <sstream>
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
  auto argv = build_command_line(spec, m_options.accel, sys::tsc_khz(), m_options.binary);
  return launch(spec, std::move(argv));
}

Result<> QemuBackend::launch(const VmSpec& spec, std::vector<std::string> argv) {
  m_spec = spec;
  auto paths = paths_for(spec);
  // Our own RAM file starts empty: whatever a crashed run left there is not this guest's.
  if (!spec.memory_private) ::unlink(paths.memory_file.c_str());
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
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    auto st = m_process.try_wait();
    if (st && *st) {
      remove_memory_file();
      return fail(ErrorCode::kSystem, fmt::format("qemu exited during start-up ({}): {}",
                                                  (*st)->describe(), vmm_log_tail()));
    }
    if (path_exists(paths.qmp_socket)) {
      auto qmp = QmpClient::connect(paths.qmp_socket, std::chrono::seconds(5));
      if (qmp) {
        m_qmp = std::move(*qmp);
        return hold_memory_file();
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

Result<> QemuBackend::hold_memory_file() {
  if (m_spec.memory_private) return {};
  // QEMU has created and mapped its RAM file (it answers QMP only after that). We keep our own
  // descriptor (snapshots read the RAM through it) and unlink the name at once: the memory then
  // goes with the last of QEMU and us, whatever kills either, and never lingers as a file.
  auto path = paths_for(m_spec).memory_file;
  m_memory_fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!m_memory_fd) {
    auto e = fail_errno(fmt::format("open the guest memory file {}", path));
    kill();
    return e;
  }
  ::unlink(path.c_str());
  return {};
}

void QemuBackend::remove_memory_file() {
  // The shared RAM file is this VM's memory and nothing else's: gone with the VMM. A snapshot's
  // file (mapped privately) is never touched.
  m_memory_fd.reset();
  if (!m_spec.dir.empty() && !m_spec.memory_private) {
    ::unlink(paths_for(m_spec).memory_file.c_str());
  }
}

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

nlohmann::json ignore_shared_capability() {
  return {{"capabilities",
           nlohmann::json::array({{{"capability", "x-ignore-shared"}, {"state", true}}})}};
}
}  // namespace

Result<> QemuBackend::snapshot_create(const std::string& mem_path, const std::string& state_path,
                                      const std::vector<std::string>& disk_paths) {
  (void)disk_paths;  // QEMU's device state does not name disk files
  if (!m_qmp || !m_process.running()) {
    return fail(ErrorCode::kInternal, "snapshot: qemu is not running");
  }
  if (m_spec.memory_private) {
    return fail(ErrorCode::kUnavailable,
                "this VM was restored from a snapshot and its memory is a private copy of that "
                "snapshot's: take snapshots of VMs started with `fcvm run`");
  }
  // The guest stops; the migration stream then holds the device state only, because the RAM
  // (shared, in its file) is skipped with x-ignore-shared. `stop` also flushes the disks.
  FCVM_TRY(m_qmp->execute("stop"));
  FCVM_TRY(m_qmp->execute("migrate-set-capabilities", ignore_shared_capability()));
  FCVM_TRY(m_qmp->execute("migrate", {{"uri", "exec:cat > " + shell_quote(state_path)}}));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto info = m_qmp->execute("query-migrate");
    if (!info) return tl::unexpected<Error>(info.error().wrap("query-migrate"));
    auto status = info->value("status", std::string());
    if (status == "completed") break;
    if (status == "failed" || status == "cancelled") {
      return fail(ErrorCode::kSystem, fmt::format("qemu: saving the device state {}: {}", status,
                                                  info->value("error-desc", std::string("?"))));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      (void)m_qmp->execute("migrate_cancel");
      return fail(ErrorCode::kTimeout, "qemu: saving the device state took over 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // With the guest stopped the RAM file is consistent: its copy is the snapshot's memory.
  if (!m_memory_fd) return fail(ErrorCode::kInternal, "snapshot: the guest memory is not held");
  auto copied = clone_fd_data(m_memory_fd.get(), mem_path, false, 0600);
  if (!copied) return tl::unexpected<Error>(copied.error().wrap("copy the guest memory"));
  return {};
}

Result<> QemuBackend::snapshot_load(const VmSpec& spec, const std::string& mem_path,
                                    const std::string& state_path, bool resume_guest) {
  if (m_process.pid() > 0) return fail(ErrorCode::kInternal, "qemu backend already started");
  auto restored = spec;
  restored.memory_file = mem_path;
  restored.memory_private = true;
  auto argv = build_command_line(restored, m_options.accel, sys::tsc_khz(), m_options.binary);
  argv.insert(argv.end(), {"-incoming", "defer"});
  FCVM_TRY(launch(restored, std::move(argv)));
  auto fail_load = [&](Error e) -> Result<> {
    kill();
    return tl::unexpected<Error>(std::move(e));
  };
  if (auto r = m_qmp->execute("migrate-set-capabilities", ignore_shared_capability()); !r) {
    return fail_load(r.error());
  }
  if (auto r = m_qmp->execute("migrate-incoming", {{"uri", "exec:cat " + shell_quote(state_path)}});
      !r) {
    return fail_load(r.error());
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    if (auto st = m_process.try_wait(); st && *st) {
      return fail(ErrorCode::kSystem, fmt::format("qemu exited while loading the snapshot ({}): {}",
                                                  (*st)->describe(), vmm_log_tail()));
    }
    auto info = m_qmp->execute("query-status");
    if (!info) return fail_load(info.error().wrap("query-status"));
    auto status = info->value("status", std::string());
    if (status != "inmigrate") break;
    if (std::chrono::steady_clock::now() > deadline) {
      return fail_load(Error(ErrorCode::kTimeout, "qemu: loading the snapshot took over 60 s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (resume_guest) {
    if (auto r = resume(); !r) return fail_load(r.error());
  }
  return {};
}

Result<UniqueFd> QemuBackend::connect_agent(std::chrono::milliseconds timeout) {
  return unix_connect(paths_for(m_spec).agent_socket, timeout);
}

Result<UniqueFd> QemuBackend::connect_serial_port(const std::string& name,
                                                  std::chrono::milliseconds timeout) {
  return unix_connect(serial_port_socket(m_spec, name), timeout);
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
  remove_memory_file();
  return {};
}

Result<std::optional<ExitStatus>> QemuBackend::wait_exit(std::chrono::milliseconds timeout) {
  if (m_process.pid() <= 0) return std::optional<ExitStatus>(ExitStatus{true, 0});
  auto st = m_process.wait_for(timeout);
  if (st && *st) remove_memory_file();
  return st;
}

std::vector<std::string> QemuBackend::vcpu_report() {
  if (!m_qmp || !m_process.running()) return {};
  auto text = m_qmp->execute("human-monitor-command", {{"command-line", "info registers -a"}},
                             std::chrono::seconds(3));
  if (!text) return {"vCPUs: not known (" + text.error().to_string() + ")"};
  if (!text->is_string()) return {};
  auto report = summarise_registers(text->get<std::string>());
  // The guest kernel's text is placed at random (KASLR): the handler of IDT vector 0, read from
  // the guest's memory, is one text address of this boot, so that any /proc/kallsyms of the same
  // kernel turns the RIPs above into symbols.
  if (auto idt = idt_base(text->get<std::string>())) {
    auto gate = m_qmp->execute("human-monitor-command",
                               {{"command-line", fmt::format("x /2gx 0x{:x}", *idt)}},
                               std::chrono::seconds(3));
    if (gate && gate->is_string()) {
      if (auto handler = idt_gate_handler(gate->get<std::string>())) {
        report.push_back(
            fmt::format("IDT vector 0 handler (asm_exc_divide_error): {:x}", *handler));
      }
    }
  }
  return report;
}

namespace {
// A whole word of hex digits ("0x" first when `prefix`); nullopt otherwise.
std::optional<uint64_t> parse_hex(std::string_view word, bool prefix) {
  if (prefix) {
    if (word.rfind("0x", 0) != 0) return std::nullopt;
    word.remove_prefix(2);
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), v, 16);
  if (word.empty() || ec != std::errc() || end != word.data() + word.size()) return std::nullopt;
  return v;
}
}  // namespace

std::optional<uint64_t> idt_base(const std::string& info_registers) {
  // "IDT=     fffffe0000000000 00000fff" (the first vCPU's; the IDT is the same on every vCPU).
  auto at = info_registers.find("IDT=");
  if (at == std::string::npos) return std::nullopt;
  std::istringstream in(info_registers.substr(at + 4, 64));
  std::string base;
  if (!(in >> base)) return std::nullopt;
  auto v = parse_hex(base, false);
  if (!v || *v == 0) return std::nullopt;
  return v;
}

std::optional<uint64_t> idt_gate_handler(const std::string& x_output) {
  // "fffffe0000000000: 0x83e08e0000100a40 0x00000000ffffffff": a 64-bit interrupt gate, its
  // handler's address in bits 0-15 and 48-63 of the first word and 0-31 of the second.
  auto colon = x_output.find(": ");
  if (colon == std::string::npos) return std::nullopt;
  std::istringstream in(x_output.substr(colon + 2));
  std::string fields[2];
  if (!(in >> fields[0] >> fields[1])) return std::nullopt;
  auto low = parse_hex(fields[0], true);
  auto high = parse_hex(fields[1], true);
  if (!low || !high) return std::nullopt;
  uint64_t handler = (*low & 0xffff) | ((*low >> 48) << 16) | ((*high & 0xffffffff) << 32);
  if (handler == 0) return std::nullopt;
  return handler;
}

std::vector<std::string> summarise_registers(const std::string& info_registers) {
  // Each vCPU's dump starts with "CPU#N" and has a line "RIP=... RFL=... CPL=N ... HLT=N".
  std::vector<std::string> out;
  std::string cpu;
  for (auto raw : split(info_registers, '\n')) {
    std::string line(trim(raw));
    if (line.rfind("CPU#", 0) == 0) {
      cpu = line.substr(4);
      continue;
    }
    if (line.rfind("RIP=", 0) != 0) continue;
    auto field = [&line](std::string_view name) -> std::string {
      auto at = line.find(std::string(name) + "=");
      if (at == std::string::npos) return "?";
      at += name.size() + 1;
      return line.substr(at, line.find(' ', at) - at);
    };
    out.push_back(fmt::format("vCPU {}: RIP={} CPL={} HLT={}", cpu.empty() ? "?" : cpu,
                              field("RIP"), field("CPL"), field("HLT")));
  }
  return out;
}

void QemuBackend::kill() {
  if (m_process.running()) {
    (void)m_process.signal(SIGKILL);
    (void)m_process.wait();
  }
  m_qmp.reset();
  remove_memory_file();
}

// How long the KVM probe may take to show a booting kernel: nested guests print their first
// "VFS:" line about 5-10 s after QEMU starts (measured inside a TCG guest with nested SVM).
constexpr std::chrono::seconds k_kvm_probe_timeout{60};

Accel choose_accel(const std::string& kernel, const std::string& cache_file,
                   const std::string& forced, std::string& why) {
  if (forced == "kvm" || forced == "tcg") {
    why = fmt::format("FCVM_ACCEL={}", forced);
    return forced == "kvm" ? Accel::kKvm : Accel::kTcg;
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
  // The probe: boot the kernel without a root disk. A working KVM prints the kernel's "VFS:" lines
  // (then panics for want of a root; panic=-1 and -no-reboot end QEMU) within a second or two on
  // a fast host and within ~10 s under nested virtualisation; a KVM that cannot run a guest makes
  // QEMU fail at once or print nothing. The probe ends as soon as one of those is seen.
  // The probe's console goes beside the cache, or to a private /tmp directory when the cache's
  // directory is not writable (a read-only home).
  auto dir = cache_file + ".d";
  if (!make_dirs(dir) || ::access(dir.c_str(), W_OK) != 0) {
    std::string tmpl = "/tmp/fcvm-kvm-probe.XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) dir = tmpl;
  }
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
    auto booted = [&console] {
      auto text = read_file(console);
      return text && (text->find("Kernel panic") != std::string::npos ||
                      text->find("VFS:") != std::string::npos);
    };
    auto deadline = std::chrono::steady_clock::now() + k_kvm_probe_timeout;
    for (;;) {
      auto st = child->wait_for(std::chrono::milliseconds(50));
      ok = booted();
      if (ok || !st || *st || std::chrono::steady_clock::now() >= deadline) break;
    }
    if (child->running()) (void)child->terminate(std::chrono::milliseconds(200));
  }
  why = ok ? "kvm: probe boot succeeded"
           : "tcg: /dev/kvm exists but a probe guest did not boot with it; using TCG (slow)";
  (void)write_file_atomic(cache_file, key + "\n" + why + "\n");
  (void)remove_all(dir);
  return ok ? Accel::kKvm : Accel::kTcg;
}

}  // namespace fcvm::vmm::qemu
