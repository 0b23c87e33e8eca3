#pragma once
// Builds the QEMU command line for a VmSpec. Pure: unit-tested for exact argv.
//
// Machine: `microvm` (virtio-mmio devices, like Firecracker) with the PIT and ACPI on. Under TCG
// the kernel needs tsc_early_khz= or it may hang calibrating the TSC against the PIT, and
// tsc=reliable to keep the TSC as its clocksource (see DESIGN.md "Acceleration").
// Devices: serial console to a file, the agent's virtio-serial port ("fcvm.agent") on a Unix
// socket, virtio-blk disks found by serial, virtio-net on the tap inside the VM's namespace,
// QMP on a Unix socket. -no-reboot: a guest reboot (reboot=t) ends QEMU, which is how the agent
// powers the VM off.
#include <optional>
#include <string>
#include <vector>

#include "fcvm/vmm/backend.hpp"

namespace fcvm::vmm::qemu {

enum class Accel { kTcg, kKvm };

struct QemuPaths {
  std::string qmp_socket;
  std::string agent_socket;
  std::string memory_file;  // guest RAM (VmSpec::memory_file or DIR/memory.ram)
};

// The Unix socket behind an extra virtio-serial port (VmSpec::serial_ports).
std::string serial_port_socket(const VmSpec& spec, const std::string& port);

// A value for a QEMU -option key=value list: commas doubled.
std::string qemu_option_value(const std::string& value);

QemuPaths paths_for(const VmSpec& spec);

// The guest kernel command line this backend boots with (before spec.kernel_args).
std::vector<std::string> base_kernel_args(Accel accel, std::optional<long> tsc_khz);

std::vector<std::string> build_command_line(const VmSpec& spec, Accel accel,
                                            std::optional<long> tsc_khz,
                                            const std::string& qemu_binary = "qemu-system-x86_64");

}  // namespace fcvm::vmm::qemu
