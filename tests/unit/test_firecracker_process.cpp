// Command lines (direct and jailed), the jail layout, binary resolution, spawning and the probe.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fcvm/vmm/firecracker/probe.hpp"
#include "fcvm/vmm/firecracker/process.hpp"
#include "support/firecracker_test_util.hpp"

namespace fcvm::vmm::firecracker {
namespace {

using std::chrono::milliseconds;
using Argv = std::vector<std::string>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void write_script(const std::string& path, const std::string& body) {
  testing::write_text(path, "#!/bin/sh\n" + body + "\n");
  ::chmod(path.c_str(), 0755);
}

TEST(FirecrackerProcess, DirectCommandLine) {
  EXPECT_EQ(firecracker_argv("/usr/bin/firecracker", "/run/vm/fc.sock", "vm-1"),
            (Argv{"/usr/bin/firecracker", "--api-sock", "/run/vm/fc.sock", "--id", "vm-1"}));
  EXPECT_EQ(firecracker_argv("fc", "/s", ""), (Argv{"fc", "--api-sock", "/s"}));
}

TEST(FirecrackerProcess, JailerCommandLineMinimal) {
  ProcessOptions o;
  o.firecracker_bin = "/usr/bin/firecracker";
  o.id = "vm-1";
  o.jailer = JailerOptions{};
  o.jailer->uid = 123;
  o.jailer->gid = 100;
  EXPECT_EQ(jailer_argv("/usr/bin/jailer", o),
            (Argv{"/usr/bin/jailer", "--id", "vm-1", "--exec-file", "/usr/bin/firecracker", "--uid",
                  "123", "--gid", "100", "--chroot-base-dir", "/srv/jailer", "--", "--api-sock",
                  "/firecracker.socket"}));
}

TEST(FirecrackerProcess, JailerCommandLineFull) {
  ProcessOptions o;
  o.firecracker_bin = "/opt/fc/firecracker-v1.16";
  o.id = "551e7604-e35c";
  JailerOptions j;
  j.uid = 1000;
  j.gid = 1001;
  j.chroot_base_dir = "/var/lib/fcvm/jail";
  j.parent_cgroup = "fcvm";
  j.cgroup_version = 2;
  j.cgroups = {"cpu.max=50000 100000", "memory.max=536870912"};
  j.resource_limits = {"no-file=1024", "fsize=250000000"};
  j.netns = "/var/run/netns/fcvm-1";
  j.new_pid_ns = true;  // fcvm's own namespace: never the jailer's --new-pid-ns
  o.jailer = j;
  // The jailer passes --id to Firecracker itself: only --api-sock follows "--".
  EXPECT_EQ(jailer_argv("jailer", o), (Argv{"jailer",
                                            "--id",
                                            "551e7604-e35c",
                                            "--exec-file",
                                            "/opt/fc/firecracker-v1.16",
                                            "--uid",
                                            "1000",
                                            "--gid",
                                            "1001",
                                            "--chroot-base-dir",
                                            "/var/lib/fcvm/jail",
                                            "--parent-cgroup",
                                            "fcvm",
                                            "--cgroup-version",
                                            "2",
                                            "--cgroup",
                                            "cpu.max=50000 100000",
                                            "--cgroup",
                                            "memory.max=536870912",
                                            "--resource-limit",
                                            "no-file=1024",
                                            "--resource-limit",
                                            "fsize=250000000",
                                            "--netns",
                                            "/var/run/netns/fcvm-1",
                                            "--",
                                            "--api-sock",
                                            "/firecracker.socket"}));
}

TEST(FirecrackerProcess, JailLayoutAndExpose) {
  testing::TempDir dir;
  JailerOptions j;
  j.chroot_base_dir = dir.path();
  j.uid = ::getuid();
  j.gid = ::getgid();
  JailLayout jail(j, "/usr/local/bin/firecracker", "vm-1");
  EXPECT_EQ(jail.instance_dir(), dir.path() + "/firecracker/vm-1");
  EXPECT_EQ(jail.root(), dir.path() + "/firecracker/vm-1/root");
  EXPECT_EQ(jail.host_path("/run/firecracker.socket"),
            dir.path() + "/firecracker/vm-1/root/run/firecracker.socket");
  ASSERT_TRUE(make_dirs(jail.root()));
  testing::write_text(dir.file("vmlinux"), "kernel");
  auto inside = jail.expose(dir.file("vmlinux"));
  ASSERT_TRUE(inside) << inside.error().to_string();
  EXPECT_EQ(*inside, "/vmlinux");
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat(dir.file("vmlinux").c_str(), &a), 0);
  ASSERT_EQ(::stat((jail.root() + "/vmlinux").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);                  // a hard link, not a copy
  EXPECT_TRUE(jail.expose(dir.file("vmlinux")));  // idempotent
  EXPECT_FALSE(jail.expose(dir.file("missing")));
  // A read-only file keeps its owner (a base image is shared) and becomes readable in the jail.
  testing::write_text(dir.file("base.ext4"), "image");
  ASSERT_EQ(::chmod(dir.file("base.ext4").c_str(), 0600), 0);
  ASSERT_TRUE(jail.expose(dir.file("base.ext4"), /*writable=*/false));
  ASSERT_EQ(::stat(dir.file("base.ext4").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 0777, 0604u);
  EXPECT_EQ(a.st_uid, ::getuid());
  // Under a name of the caller's: another file there is replaced (a drive pointed elsewhere).
  auto named = jail.expose(dir.file("base.ext4"), false, false, "drive-root");
  ASSERT_TRUE(named) << named.error().to_string();
  EXPECT_EQ(*named, "/drive-root");
  ASSERT_TRUE(jail.expose(dir.file("vmlinux"), true, false, "drive-root"));
  ASSERT_EQ(::stat((jail.root() + "/drive-root").c_str(), &b), 0);
  ASSERT_EQ(::stat(dir.file("vmlinux").c_str(), &a), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST(FirecrackerProcess, ResolvesTheBinary) {
  testing::TempDir dir;
  write_script(dir.file("firecracker"), "exit 0");
  testing::ScopedEnv path("PATH", dir.path());
  EXPECT_EQ(*resolve_firecracker_bin(dir.file("firecracker")), dir.file("firecracker"));
  EXPECT_FALSE(resolve_firecracker_bin("/nonexistent/firecracker"));  // explicit path wins
  EXPECT_EQ(*resolve_firecracker_bin(), dir.file("firecracker"));
  {
    // The variable is the front end's: the vmm layer reads no environment of its own.
    testing::ScopedEnv env("FCVM_FIRECRACKER_BIN", "/nonexistent/firecracker");
    EXPECT_EQ(*resolve_firecracker_bin(), dir.file("firecracker"));
  }
  testing::ScopedEnv empty_path("PATH", "/nonexistent");
  auto r = resolve_firecracker_bin();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(contains(r.error().message(), "none found in PATH")) << r.error().message();
}

TEST(FirecrackerProcess, AProcessThatDiesEarlyIsReportedWithItsLog) {
  testing::TempDir dir;
  write_script(dir.file("firecracker"), "echo \"cannot start: $*\" >&2\nexit 3");
  ProcessOptions o;
  o.firecracker_bin = dir.file("firecracker");
  o.id = "vm-1";
  o.api_sock = dir.file("fc.sock");
  o.log_path = dir.file("vmm.log");
  auto r = spawn_firecracker(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "exited (exit code 3) before its API socket answered"))
      << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "cannot start: --api-sock " + dir.file("fc.sock")))
      << r.error().message();
}

TEST(FirecrackerProcess, ASilentProcessTimesOutAndIsKilled) {
  testing::TempDir dir;
  write_script(dir.file("firecracker"), "echo $$ > \"$(dirname \"$0\")/pid\"\nexec sleep 30");
  ProcessOptions o;
  o.firecracker_bin = dir.file("firecracker");
  o.api_sock = dir.file("fc.sock");
  o.ready_timeout = milliseconds(300);
  auto r = spawn_firecracker(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  auto pid = read_file(dir.file("pid"));
  ASSERT_TRUE(pid);
  EXPECT_TRUE(testing::pid_gone(std::stoi(*pid)));
}

TEST(FirecrackerProbe, SaysNoWithoutABinary) {
  if (find_executable("firecracker")) GTEST_SKIP() << "a firecracker binary is installed here";
  auto r = firecracker_available();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(contains(r.error().message(), "no firecracker binary")) << r.error().message();
}

TEST(FirecrackerProbe, SaysNoWithoutKvm) {
  ProbeOptions o;
  o.firecracker_bin = FAKE_FIRECRACKER_BIN;  // answers --version like Firecracker
  o.kvm_device = "/nonexistent/kvm";
  auto r = firecracker_available(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "/nonexistent/kvm is missing")) << r.error().message();
}

TEST(FirecrackerProbe, AFailingBootProbeIsTheReason) {
  ProbeOptions o;
  o.firecracker_bin = FAKE_FIRECRACKER_BIN;
  o.boot_probe = []() -> Result<> { return fail(ErrorCode::kTimeout, "no serial output in 5 s"); };
  auto r = firecracker_available(o);
  ASSERT_FALSE(r);  // either /dev/kvm is unusable here, or the boot probe says so
  auto m = r.error().message();
  EXPECT_TRUE(contains(m, "KVM cannot boot a guest here: no serial output in 5 s") ||
              contains(m, "/dev/kvm"))
      << m;
}

}  // namespace
}  // namespace fcvm::vmm::firecracker
