#include "fcvm/vmm/qemu/command_line.hpp"

#include <fmt/format.h>

#include "fcvm/util/strings.hpp"

namespace fcvm::vmm::qemu {

QemuPaths paths_for(const VmSpec& spec) {
  return {spec.dir + "/qmp.sock", spec.dir + "/agent.sock",
          spec.memory_file.empty() ? spec.dir + "/memory.ram" : spec.memory_file};
}

std::string serial_port_socket(const VmSpec& spec, const std::string& port) {
  return fmt::format("{}/{}.sock", spec.dir, port);
}

std::string qemu_option_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';  // QEMU's escape for a comma inside an option value
  }
  return out;
}

std::vector<std::string> base_kernel_args(Accel accel, std::optional<long> tsc_khz) {
  std::vector<std::string> args = {"console=ttyS0", "reboot=t",   "panic=-1",
                                   "quiet",         "loglevel=3", "fcvm.agent=serial:fcvm.agent"};
  if (accel == Accel::kTcg) {
    // TCG's TSC is one counter for the whole VM (the host's, monotonic across vCPUs), but the
    // guest sees no invariant-TSC flag and, with more than one vCPU of a non-Intel vendor, marks
    // it unstable and falls back to the refined-jiffies clocksource: periodic ticks on every
    // vCPU (measured: 6x the idle VM's host CPU) and time kept by counting ticks. tsc=reliable
    // keeps the TSC, so the guest runs tickless and its time follows the host's.
    args.push_back("tsc=reliable");
    if (tsc_khz) args.push_back(fmt::format("tsc_early_khz={}", *tsc_khz));
  }
  return args;
}

std::vector<std::string> build_command_line(const VmSpec& spec, Accel accel,
                                            std::optional<long> tsc_khz,
                                            const std::string& qemu_binary) {
  auto paths = paths_for(spec);
  auto kernel_args = base_kernel_args(accel, tsc_khz);
  kernel_args.insert(kernel_args.end(), spec.kernel_args.begin(), spec.kernel_args.end());

  std::vector<std::string> argv = {
      qemu_binary,
      "-name",
      fmt::format("fcvm-{},debug-threads=on", spec.name),
      "-machine",
      "microvm,pit=on,acpi=on,rtc=on,memory-backend=ram",
      "-accel",
      accel == Accel::kKvm ? "kvm" : "tcg",
      "-cpu",
      accel == Accel::kKvm ? "host" : "max",
      "-smp",
      std::to_string(spec.vcpus),
      "-m",
      fmt::format("{}M", spec.mem_mib),
      // Guest RAM in a file: shared while the file is this VM's RAM, private (copy on write) when
      // it is a snapshot's that clones map side by side.
      "-object",
      fmt::format("memory-backend-file,id=ram,size={}M,mem-path={},share={}", spec.mem_mib,
                  qemu_option_value(paths.memory_file), spec.memory_private ? "off" : "on"),
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-no-reboot",
      "-kernel",
      spec.kernel,
      "-append",
      join(kernel_args, " "),
      "-chardev",
      fmt::format("file,id=console,path={}", qemu_option_value(spec.console_log)),
      "-serial",
      "chardev:console",
      "-device",
      "virtio-serial-device",
      "-chardev",
      fmt::format("socket,id=agent,path={},server=on,wait=off",
                  qemu_option_value(paths.agent_socket)),
      "-device",
      "virtserialport,chardev=agent,name=fcvm.agent",
      "-qmp",
      fmt::format("unix:{},server=on,wait=off", qemu_option_value(paths.qmp_socket)),
  };
  if (!spec.initrd.empty()) {
    argv.insert(argv.end(), {"-initrd", spec.initrd});
  }
  for (const auto& port : spec.serial_ports) {
    argv.insert(argv.end(),
                {"-chardev",
                 fmt::format("socket,id={},path={},server=on,wait=off", port,
                             qemu_option_value(serial_port_socket(spec, port))),
                 "-device", fmt::format("virtserialport,chardev={},name={}", port, port)});
  }
  int index = 0;
  for (const auto& disk : spec.disks) {
    auto id = fmt::format("disk{}", index++);
    argv.insert(argv.end(),
                {"-drive",
                 fmt::format("file={},if=none,id={},format={}{}", qemu_option_value(disk.path), id,
                             disk.format == DiskFormat::kQcow2 ? "qcow2" : "raw",
                             disk.read_only ? ",readonly=on" : ",discard=unmap"),
                 "-device", fmt::format("virtio-blk-device,drive={},serial={}", id, disk.serial)});
  }
  if (spec.net) {
    argv.insert(
        argv.end(),
        {"-netdev", fmt::format("tap,id=net0,ifname={},script=no,downscript=no", spec.net->tap),
         "-device", fmt::format("virtio-net-device,netdev=net0,mac={}", spec.net->mac)});
  }
  return argv;
}

}  // namespace fcvm::vmm::qemu
