#pragma once
// QemuBackend: runs one VM with qemu-system-x86_64 (-machine microvm). Owns the QEMU process
// (ChildProcess: killed if this object dies while it runs) and its QMP connection.
//
// Snapshots: guest RAM is a file mapped shared (VmSpec::memory_file), so a snapshot is `stop`,
// a migration stream with the x-ignore-shared capability (device state only, well under 1 MB)
// and a copy of the RAM file. A clone starts QEMU with the same devices, the snapshot's RAM file
// mapped private (copy on write) and `-incoming defer`, loads the device state, and continues.
#include <memory>
#include <optional>
#include <string>

#include "fcvm/vmm/backend.hpp"
#include "fcvm/vmm/qemu/command_line.hpp"
#include "fcvm/vmm/qemu/qmp_client.hpp"

namespace fcvm::vmm::qemu {

struct QemuOptions {
  Accel accel = Accel::kTcg;
  std::string binary = "qemu-system-x86_64";
};

class QemuBackend final : public Backend {
 public:
  explicit QemuBackend(QemuOptions options) : m_options(std::move(options)) {}
  ~QemuBackend() override = default;

  std::string_view name() const override { return "qemu"; }
  DiskFormat root_disk_format() const override { return DiskFormat::kQcow2; }
  bool wants_uncompressed_kernel() const override { return false; }

  Result<> start(const VmSpec& spec) override;
  Result<UniqueFd> connect_agent(std::chrono::milliseconds timeout) override;
  Result<UniqueFd> connect_serial_port(const std::string& name,
                                       std::chrono::milliseconds timeout) override;
  Result<> pause() override;
  Result<> resume() override;
  Result<> shutdown() override;
  Result<std::optional<ExitStatus>> wait_exit(std::chrono::milliseconds timeout) override;
  void kill() override;
  pid_t pid() const override { return m_process.pid(); }
  pid_t detach() override { return m_process.detach(); }
  std::vector<std::string> vcpu_report() override;
  Result<> snapshot_create(const std::string& mem_path, const std::string& state_path,
                           const std::vector<std::string>& disk_paths = {}) override;
  Result<> snapshot_load(const VmSpec& spec, const std::string& mem_path,
                         const std::string& state_path, bool resume) override;

  Accel accel() const { return m_options.accel; }

 private:
  std::string vmm_log_tail() const;
  Result<> launch(const VmSpec& spec, std::vector<std::string> argv);
  Result<> hold_memory_file();
  void remove_memory_file();
  QemuOptions m_options;
  VmSpec m_spec;
  ChildProcess m_process;
  std::optional<QmpClient> m_qmp;
  UniqueFd m_memory_fd;  // the guest RAM file (shared mapping), unlinked once QEMU runs
};

// "info registers -a" (QEMU's human monitor) → one line per vCPU: "vCPU N: RIP=... CPL=...
// HLT=...".
std::vector<std::string> summarise_registers(const std::string& info_registers);
// The IDT's base address in "info registers" output; nullopt when absent.
std::optional<uint64_t> idt_base(const std::string& info_registers);
// The handler address of the 64-bit interrupt gate that "x /2gx IDT_BASE" printed.
std::optional<uint64_t> idt_gate_handler(const std::string& x_output);

// Decides between KVM and TCG. KVM is used only when a probe proves that it boots the kernel
// (a device node that exists is not enough: some hosts expose a KVM that cannot run a stock
// kernel). The verdict is cached in cache_file per boot id and kernel. `forced` ("kvm" or "tcg",
// from FCVM_ACCEL) overrides. `why` receives a one-line reason for the log.
Accel choose_accel(const std::string& kernel, const std::string& cache_file,
                   const std::string& forced, std::string& why);

}  // namespace fcvm::vmm::qemu
