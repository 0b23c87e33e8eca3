#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/vmm/registry.hpp"

using namespace fcvm;
using namespace std::chrono_literals;

namespace {
bool alive(pid_t pid) {
  // A reaped child is gone; kill(pid, 0) fails with ESRCH.
  return ::kill(pid, 0) == 0;
}
}  // namespace

TEST(ChildProcess, ReportsExitCodesAndSignals) {
  auto ok = ChildProcess::spawn({.argv = {"sh", "-c", "exit 3"}});
  ASSERT_TRUE(ok) << ok.error().to_string();
  auto st = ok->wait();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exited);
  EXPECT_EQ(st->code, 3);
  EXPECT_EQ(st->shell_code(), 3);
  auto killed = ChildProcess::spawn({.argv = {"sh", "-c", "kill -TERM $$"}});
  ASSERT_TRUE(killed);
  auto kst = killed->wait();
  ASSERT_TRUE(kst);
  EXPECT_FALSE(kst->exited);
  EXPECT_EQ(kst->shell_code(), 128 + SIGTERM);
}

TEST(ChildProcess, AMissingProgramFailsAtSpawnNamingIt) {
  auto r = ChildProcess::spawn({.argv = {"/nonexistent/fcvm-no-such-program"}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().to_string().find("fcvm-no-such-program"), std::string::npos)
      << r.error().to_string();
}

TEST(ChildProcess, TheDestructorKillsAndReapsUnlessDetached) {
  pid_t pid = 0;
  {
    auto c = ChildProcess::spawn({.argv = {"sleep", "600"}});
    ASSERT_TRUE(c);
    pid = c->pid();
    EXPECT_TRUE(alive(pid));
  }
  EXPECT_FALSE(alive(pid)) << "the child outlived its ChildProcess";
  pid_t kept = 0;
  {
    auto c = ChildProcess::spawn({.argv = {"sleep", "600"}, .die_with_parent = false});
    ASSERT_TRUE(c);
    kept = c->detach();
  }
  EXPECT_TRUE(alive(kept)) << "a detached child must survive";
  ::kill(kept, SIGKILL);
  auto adopted = ChildProcess::adopt(kept);
  if (adopted) (void)adopted->wait();
}

TEST(ChildProcess, WaitForTimesOutThenTerminateEndsIt) {
  auto c = ChildProcess::spawn({.argv = {"sleep", "600"}});
  ASSERT_TRUE(c);
  auto st = c->wait_for(50ms);
  ASSERT_TRUE(st);
  EXPECT_FALSE(*st) << "still running after 50 ms";
  auto end = c->terminate(1s);
  EXPECT_FALSE(end.exited);
  EXPECT_FALSE(c->running());
}

TEST(ChildProcess, KeepsOnlyTheDescriptorsAskedFor) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  auto out = run_capture({"sh", "-c", "ls /proc/self/fd | wc -l"});
  ASSERT_TRUE(out);
  // 0, 1, 2 and the directory ls reads: the pipe's close-on-exec ends are not inherited.
  EXPECT_LE(std::stoi(out->out), 4) << out->out;
}

namespace {
std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}
bool gone(pid_t pid) {  // no such process, or a zombie nobody has reaped yet
  std::string stat;
  auto out = run_capture({"ps", "-o", "stat=", "-p", std::to_string(pid)});
  return !out || out->out.empty() || out->out[0] == 'Z';
}
}  // namespace

TEST(ChildProcess, ANewPidNamespaceEndsWithItsInit) {
  if (::geteuid() != 0) GTEST_SKIP() << "a new PID namespace needs root";
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  // The program is PID 2 (the init is 1) and its exit code is the init's.
  auto c = ChildProcess::spawn(
      {.argv = {"sh", "-c", "echo $$; exit 7"}, .stdout_fd = w.get(), .new_pid_namespace = true});
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(read_line(r.get()), "2");
  auto st = c->wait();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exited);
  EXPECT_EQ(st->code, 7);
  // SIGTERM reaches the program through the init.
  auto t = ChildProcess::spawn(
      {.argv = {"sh", "-c", "trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done"},
       .stdout_fd = w.get(),
       .new_pid_namespace = true});
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(read_line(r.get()), "ready");
  ASSERT_TRUE(t->signal(SIGTERM));
  auto tst = t->wait();
  ASSERT_TRUE(tst);
  EXPECT_EQ(tst->shell_code(), 9);
  // SIGKILL of the init takes the program with it.
  auto k = ChildProcess::spawn({.argv = {"sh", "-c", "echo $PPID; exec sleep 600"},
                                .stdout_fd = w.get(),
                                .new_pid_namespace = true});
  ASSERT_TRUE(k) << k.error().to_string();
  EXPECT_EQ(read_line(r.get()), "1");
  std::string children;
  for (int i = 0; i < 200 && children.empty(); ++i) {
    auto text = run_capture({"cat", fmt::format("/proc/{0}/task/{0}/children", k->pid())});
    if (text) children = text->out;
    if (children.empty()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(children.empty()) << "the init has no child";
  pid_t program = std::stoi(children);
  ASSERT_TRUE(k->signal(SIGKILL));
  (void)k->wait();
  bool ended = false;
  for (int i = 0; i < 500 && !ended; ++i) {
    ended = gone(program);
    if (!ended) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(ended) << "the program outlived its namespace's init";
}

TEST(Rollback, UndoesInReverseUnlessCommitted) {
  std::vector<int> order;
  {
    Rollback undo;
    undo.add("one", [&] { order.push_back(1); });
    undo.add("two", [&] { order.push_back(2); });
    undo.add("three", [&] { order.push_back(3); });
    EXPECT_EQ(undo.size(), 3u);
  }
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
  order.clear();
  {
    Rollback undo;
    undo.add("one", [&] { order.push_back(1); });
    undo.commit();
  }
  EXPECT_TRUE(order.empty());
  Rollback now;
  now.add("x", [&] { order.push_back(9); });
  now.undo_now();
  now.undo_now();
  EXPECT_EQ(order, (std::vector<int>{9})) << "each step runs once";
}

TEST(SignalFd, DeliversBlockedSignalsAndRestoresTheMask) {
  sigset_t before;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &before);
  {
    SignalFd signals({SIGUSR1});
    ASSERT_TRUE(signals.valid());
    EXPECT_FALSE(signals.take());
    ::raise(SIGUSR1);
    EXPECT_EQ(signals.take(), SIGUSR1);
    EXPECT_FALSE(signals.take());
  }
  sigset_t after;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &after);
  EXPECT_EQ(sigismember(&before, SIGUSR1), sigismember(&after, SIGUSR1));
}

TEST(BackendRegistry, EveryVmmHasTraitsAndUnknownNamesAreRefused) {
  for (const auto& b : vmm::registered_backends()) {
    auto t = vmm::backend_traits(b.name);
    ASSERT_TRUE(t);
    EXPECT_EQ((*t)->kind, b.kind);
    EXPECT_EQ(&vmm::backend_traits(b.kind), *t);
    EXPECT_FALSE(b.root_disk_file.empty());
    EXPECT_FALSE(b.snapshot.disk_file.empty());
    auto backend = vmm::make_backend(b.kind, {});
    ASSERT_TRUE(backend);
    EXPECT_EQ(backend->name(), b.name);
    EXPECT_EQ(backend->root_disk_format(), b.root_disk_format);
    EXPECT_EQ(backend->wants_uncompressed_kernel(), b.kernel == vmm::KernelKind::kUncompressed);
  }
  auto bad = vmm::backend_traits("bochs");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(bad.error().message().find("\"bochs\""), std::string::npos);
  auto files = vmm::all_runtime_files();
  for (const char* f : {"qmp.sock", "firecracker.sock", "vsock.sock", "memory.ram"}) {
    EXPECT_NE(std::find(files.begin(), files.end(), f), files.end()) << f;
  }
}
