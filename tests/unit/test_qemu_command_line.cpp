#include <gtest/gtest.h>

#include <algorithm>

#include "fcvm/vmm/qemu/backend.hpp"
#include "fcvm/vmm/qemu/command_line.hpp"

using namespace fcvm;
using namespace fcvm::vmm;

namespace {
VmSpec sample() {
  VmSpec s;
  s.id = "0123";
  s.name = "web";
  s.dir = "/run/vm";
  s.kernel = "/k/vmlinuz";
  s.initrd = "/k/initrd.img";
  s.kernel_args = {"fcvm.root=fcvm-root"};
  s.vcpus = 2;
  s.mem_mib = 768;
  s.disks = {{"/run/vm/root.qcow2", DiskFormat::kQcow2, false, "fcvm-root", true},
             {"/img/app.tar", DiskFormat::kRaw, true, "fcvm-image", false}};
  s.net = NetSpec{"tap0", "06:00:0a:00:02:0f"};
  s.console_log = "/run/vm/console.log";
  return s;
}
std::string after(const std::vector<std::string>& argv, const std::string& flag, int nth = 0) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag && nth-- == 0) return argv[i + 1];
  }
  return "<missing>";
}
}  // namespace

TEST(QemuCommandLine, MicrovmUnderTcgHasTscHint) {
  auto argv = qemu::build_command_line(sample(), qemu::Accel::kTcg, 2600000);
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_EQ(after(argv, "-machine"), "microvm,pit=on,acpi=on,rtc=on,memory-backend=ram");
  // Guest RAM is the VM's own file, shared: a snapshot needs only the device state beside it.
  EXPECT_EQ(after(argv, "-object"),
            "memory-backend-file,id=ram,size=768M,mem-path=/run/vm/memory.ram,share=on");
  EXPECT_EQ(after(argv, "-accel"), "tcg");
  EXPECT_EQ(after(argv, "-smp"), "2");
  EXPECT_EQ(after(argv, "-m"), "768M");
  EXPECT_EQ(after(argv, "-append"),
            "console=ttyS0 reboot=t panic=-1 quiet loglevel=3 fcvm.agent=serial:fcvm.agent "
            "tsc=reliable tsc_early_khz=2600000 fcvm.root=fcvm-root");
  EXPECT_EQ(after(argv, "-drive", 0),
            "file=/run/vm/root.qcow2,if=none,id=disk0,format=qcow2,discard=unmap");
  EXPECT_EQ(after(argv, "-drive", 1), "file=/img/app.tar,if=none,id=disk1,format=raw,readonly=on");
  EXPECT_EQ(after(argv, "-netdev"), "tap,id=net0,ifname=tap0,script=no,downscript=no");
  EXPECT_EQ(after(argv, "-qmp"), "unix:/run/vm/qmp.sock,server=on,wait=off");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "-no-reboot"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "virtio-blk-device,drive=disk0,serial=fcvm-root"),
            argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "virtserialport,chardev=agent,name=fcvm.agent"),
            argv.end());
}

TEST(QemuCommandLine, RestoredVmMapsTheSnapshotMemoryPrivately) {
  auto spec = sample();
  spec.memory_file = "/snap/a,b/memory.ram";
  spec.memory_private = true;
  auto argv = qemu::build_command_line(spec, qemu::Accel::kTcg, 2600000);
  // Copy on write: clones share the file's clean pages and never change it. The comma in the
  // path is escaped as QEMU's option syntax wants.
  EXPECT_EQ(after(argv, "-object"),
            "memory-backend-file,id=ram,size=768M,mem-path=/snap/a,,b/memory.ram,share=off");
}

TEST(QemuCommandLine, KvmUsesHostCpuAndNoTscHint) {
  auto argv = qemu::build_command_line(sample(), qemu::Accel::kKvm, 2600000);
  EXPECT_EQ(after(argv, "-accel"), "kvm");
  EXPECT_EQ(after(argv, "-cpu"), "host");
  EXPECT_EQ(after(argv, "-append").find("tsc_early_khz"), std::string::npos);
  // KVM guests have kvm-clock.
  EXPECT_EQ(after(argv, "-append").find("tsc=reliable"), std::string::npos);
}

TEST(QemuRegisters, OneLinePerVcpu) {
  // As QEMU 7.2's "info registers -a" prints it (abridged: the other registers of each vCPU).
  const char* dump =
      "\r\nCPU#0\r\n"
      "RAX=00000001d14c1bb6 RBX=00000000000005dc RCX=0000000000000000 RDX=000000000025c306\r\n"
      "RIP=ffffffffb49c3643 RFL=00000283 [--S---C] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n"
      "CR0=80050033 CR2=ff33635247400000 CR3=0000000006610000 CR4=00751eb0\r\n"
      "\r\nCPU#1\r\n"
      "RAX=ffffffffb406ab00 RBX=0000000000000001 RCX=00000000c0000080 RDX=0000000000000000\r\n"
      "RIP=00007f2a9c1e5d10 RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=1\r\n";
  EXPECT_EQ(fcvm::vmm::qemu::summarise_registers(dump),
            (std::vector<std::string>{"vCPU 0: RIP=ffffffffb49c3643 CPL=0 HLT=0",
                                      "vCPU 1: RIP=00007f2a9c1e5d10 CPL=3 HLT=1"}));
  EXPECT_TRUE(fcvm::vmm::qemu::summarise_registers("").empty());
}

TEST(QemuRegisters, KernelTextAddressFromTheIdt) {
  // The IDT's base from "info registers", then vector 0's gate from "x /2gx BASE".
  EXPECT_EQ(fcvm::vmm::qemu::idt_base("GDT=     fffffe0000001000 0000007f\r\n"
                                      "IDT=     fffffe0000000000 00000fff\r\n"),
            0xfffffe0000000000ULL);
  EXPECT_FALSE(fcvm::vmm::qemu::idt_base("RIP=ffffffffb49c3643\r\n"));
  EXPECT_FALSE(fcvm::vmm::qemu::idt_base("IDT=     zz 00000fff\r\n"));
  EXPECT_EQ(fcvm::vmm::qemu::idt_gate_handler(
                "fffffe0000000000: 0x83e08e0000100a40 0x00000000ffffffff\r\n"),
            0xffffffff83e00a40ULL);
  EXPECT_FALSE(fcvm::vmm::qemu::idt_gate_handler("Cannot access memory\r\n"));
  EXPECT_FALSE(fcvm::vmm::qemu::idt_gate_handler("fffffe0000000000: 0x83e08e0000100a40\r\n"));
}
