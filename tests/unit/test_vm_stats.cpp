// The /proc parsers behind `fcvm stats`, and `fcvm top`'s script as sh reads it.
#include <gtest/gtest.h>

#include <cstdio>

#include "fcvm/vm/copy.hpp"
#include "fcvm/vm/stats.hpp"
#include "fcvm/vm/top.hpp"

using namespace fcvm;

TEST(VmStats, ProcStatCountsFieldsAfterTheLastParenthesis) {
  // A command name with spaces and a ") " inside.
  const char* stat =
      "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 1000 "
      "500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
  auto s = vm::parse_proc_stat(stat);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->utime_ticks, 250);
  EXPECT_EQ(s->stime_ticks, 50);
  EXPECT_EQ(s->start_ticks, 12345);
  EXPECT_FALSE(vm::parse_proc_stat("garbage"));
  EXPECT_FALSE(vm::parse_proc_stat("1 (x) S 1 2"));
}

TEST(VmStats, StatusIoAndNetDev) {
  const char* status = "Name:\tqemu\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nVmRSSx:\t1 kB\n";
  EXPECT_EQ(vm::parse_status_kib(status, "VmRSS"), 123456);
  EXPECT_FALSE(vm::parse_status_kib(status, "VmSwap"));
  EXPECT_EQ(vm::parse_io_field("rchar: 10\nread_bytes: 4096\nwrite_bytes: 8192\n", "write_bytes"),
            8192);
  const char* dev =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
      "drop fifo colls carrier compressed\n"
      "    lo:     100       1    0    0    0     0          0         0      100       1    0 "
      "   0    0     0       0          0\n"
      "  tap0:    5000      40    0    0    0     0          0         0    70000      60    0 "
      "   0    0     0       0          0\n";
  auto tap = vm::parse_net_dev(dev, "tap0");
  ASSERT_TRUE(tap);
  EXPECT_EQ(tap->first, 5000);
  EXPECT_EQ(tap->second, 70000);
  EXPECT_FALSE(vm::parse_net_dev(dev, "eth0"));
}

TEST(VmStats, CpuPercent) {
  vm::VmSample a, b;
  a.cpu_seconds = 10;
  a.uptime_seconds = 40;
  a.taken_ns = 1'000'000'000;
  EXPECT_DOUBLE_EQ(vm::cpu_percent(a, std::nullopt), 25.0);
  b.cpu_seconds = 10.5;
  b.taken_ns = 2'000'000'000;
  EXPECT_DOUBLE_EQ(vm::cpu_percent(b, a), 50.0);
}

TEST(VmTop, TheScriptIsValidSh) {
  auto script = vm::top_script();
  // sh -n reads without running: a syntax error fails here rather than in a guest.
  FILE* p = ::popen("sh -n", "w");
  ASSERT_NE(p, nullptr);
  std::fwrite(script.data(), 1, script.size(), p);
  EXPECT_EQ(::pclose(p), 0);
}

TEST(VmCopy, RenameTransformEscapesTheName) {
  EXPECT_EQ(vm::tar_rename_transform("a.txt", "b"), R"(--transform=s,^a\.txt(/|$),b\1,Sx)");
  EXPECT_EQ(vm::tar_rename_transform("x,(1)*", "n&m,\\"),
            R"(--transform=s,^x\,\(1\)\*(/|$),n\&m\,\\\1,Sx)");
}

TEST(VmCopy, TheScriptIsValidSh) {
  auto script = vm::copy_script();
  FILE* p = ::popen("sh -n", "w");
  ASSERT_NE(p, nullptr);
  std::fwrite(script.data(), 1, script.size(), p);
  EXPECT_EQ(::pclose(p), 0);
}
