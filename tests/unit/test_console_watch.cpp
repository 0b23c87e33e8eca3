#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "fcvm/vm/console_watch.hpp"

using fcvm::vm::ConsoleWatch;

TEST(ConsoleWatch, RecognisesAHungGuestKernel) {
  for (const char* line :
       {"[  712.345678] watchdog: BUG: soft lockup - CPU#0 stuck for 700s! [ext4lazyinit:123]",
        "[   45.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [conmon:402]",
        "[ 100.0] rcu: INFO: rcu_sched self-detected stall on CPU",
        "[   3.2] Kernel panic - not syncing: VFS: Unable to mount root fs",
        "[ 9.9] NMI watchdog: Watchdog detected hard LOCKUP on cpu 1"}) {
    auto hit = ConsoleWatch::scan(std::string(line) + "\n");
    ASSERT_TRUE(hit) << line;
    EXPECT_EQ(*hit, line);
  }
  EXPECT_FALSE(ConsoleWatch::scan("[ 1.0] Linux version 6.1.0\n[ 2.0] fc-agent starting\n"));
  // A program that prints the words is not the kernel.
  EXPECT_FALSE(ConsoleWatch::scan(
      "fc-agent: [ 18.0] exec stream 4: sh -c echo 'watchdog: BUG: soft lockup - CPU#1'\n"));
  EXPECT_FALSE(ConsoleWatch::scan("[ 5.0] sh[252]: watchdog: BUG: soft lockup, said a script\n"));
  EXPECT_FALSE(ConsoleWatch::scan("[ 1.0] watchdog: BUG: soft lockup - CPU#0")) << "no newline yet";
}

TEST(ConsoleWatch, NotesTheGuestsUserspace) {
  bool userspace = false;
  EXPECT_FALSE(ConsoleWatch::scan("[ 1.0] Linux version 6.1.0\n[ 2.0] Run /init\n", &userspace));
  EXPECT_FALSE(userspace) << "the kernel's own lines are not userspace";
  EXPECT_FALSE(ConsoleWatch::scan("fc-init: starting fc-agent (uptime 4.64 s)", &userspace));
  EXPECT_FALSE(userspace) << "no newline yet";
  EXPECT_FALSE(ConsoleWatch::scan("fc-init: starting fc-agent (uptime 4.64 s)\r\n", &userspace));
  EXPECT_TRUE(userspace);
  userspace = false;
  EXPECT_FALSE(ConsoleWatch::scan("fc-agent: [ 4.737] fc-agent 0.1.0 starting\n", &userspace));
  EXPECT_TRUE(userspace);
  userspace = false;
  EXPECT_FALSE(ConsoleWatch::scan("[ 3.0] echo fc-init: x\n", &userspace));
  EXPECT_FALSE(userspace) << "only at the start of a line";
}

TEST(ConsoleWatch, FollowsTheFileAndReportsOnce) {
  char tmpl[] = "/tmp/fcvm-console.XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ConsoleWatch watch(tmpl);
  EXPECT_FALSE(watch.poll());
  EXPECT_FALSE(watch.reached_userspace());
  std::ofstream(tmpl, std::ios::app) << "[ 1.0] booting\n[ 2.0] watchdog: BUG: soft lo";
  EXPECT_FALSE(watch.poll()) << "half a line is not a verdict";
  std::ofstream(tmpl, std::ios::app) << "ckup - CPU#0 stuck for 23s! [x]\n";
  auto hit = watch.poll();
  ASSERT_TRUE(hit);
  EXPECT_NE(hit->find("soft lockup"), std::string::npos);
  std::ofstream(tmpl, std::ios::app) << "[ 3.0] watchdog: BUG: soft lockup - CPU#1 stuck\n";
  EXPECT_FALSE(watch.poll()) << "reported once";
  EXPECT_FALSE(watch.reached_userspace());
  // A new boot rewrites the console file.
  std::ofstream(tmpl, std::ios::trunc)
      << "fc-init: starting\n[ 1.0] Kernel panic - not syncing: x\n";
  watch.restart();
  EXPECT_TRUE(watch.poll());
  EXPECT_TRUE(watch.reached_userspace());
  watch.restart();
  EXPECT_FALSE(watch.reached_userspace()) << "a new boot starts over";
  ::unlink(tmpl);
}
