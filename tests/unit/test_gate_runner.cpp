#include <gtest/gtest.h>

#include "fcvm/readiness/gate_runner.hpp"

using namespace fcvm;
using readiness::GateRunner;
using V = GateRunner::Verdict;
using namespace std::chrono_literals;

namespace {
GateRunner runner(const char* spec) {
  if (spec == nullptr) return GateRunner(std::nullopt);
  auto gate = readiness::parse_gate(spec);
  EXPECT_TRUE(gate) << spec;
  return GateRunner(*gate);
}
const auto t0 = GateRunner::Clock::time_point{} + 1000s;
}  // namespace

TEST(GateRunner, WithoutAGateTheRunningContainerIsReady) {
  auto r = runner(nullptr);
  r.on_hello();
  EXPECT_EQ(r.verdict(), V::kPending);
  EXPECT_FALSE(r.tick(t0));
  r.on_container_running(t0);
  EXPECT_EQ(r.verdict(), V::kPassed);
  EXPECT_EQ(r.mode_name(), "container");
}

TEST(GateRunner, AContainerThatExitsFirstCountsAsReadyWithoutAGate) {
  auto r = runner(nullptr);
  r.on_container_exit(0);
  EXPECT_EQ(r.verdict(), V::kPassed);
  auto agent = runner("mode=agent");
  agent.on_container_exit(3);
  EXPECT_EQ(agent.verdict(), V::kPassed);
}

TEST(GateRunner, AgentModePassesOnHello) {
  auto r = runner("mode=agent");
  EXPECT_EQ(r.verdict(), V::kPending);
  r.on_hello();
  EXPECT_EQ(r.verdict(), V::kPassed);
}

TEST(GateRunner, LogModePassesOnAMatchingLineEvenBeforeRunning) {
  auto r = runner("mode=log,pattern=listening on [0-9]+");
  r.on_output("starting\nlisten");
  EXPECT_EQ(r.verdict(), V::kPending);
  r.on_output("ing on 80");
  EXPECT_EQ(r.verdict(), V::kPassed);
}

TEST(GateRunner, HttpProbesOneAtATimeEveryIntervalUntilOnePasses) {
  auto r = runner("mode=http,url=http://127.0.0.1:8080/,timeout=10");
  EXPECT_FALSE(r.tick(t0)) << "no probe before the container runs";
  r.on_container_running(t0);
  auto p = r.tick(t0);
  ASSERT_TRUE(p) << "the first probe runs at once";
  EXPECT_TRUE(p->in_vm);
  EXPECT_FALSE(p->argv.empty());
  EXPECT_FALSE(r.tick(t0 + 1s)) << "one probe in flight at most";
  r.on_probe_exit(1, t0 + 1s);
  EXPECT_FALSE(r.tick(t0 + 1s + 100ms)) << "the next probe waits for the interval";
  ASSERT_TRUE(r.tick(t0 + 1s + GateRunner::k_probe_interval));
  r.on_probe_exit(0, t0 + 2s);
  EXPECT_EQ(r.verdict(), V::kPassed);
  EXPECT_FALSE(r.tick(t0 + 3s)) << "no probe after the verdict";
}

TEST(GateRunner, ExecGateFailsAtItsDeadlineAndStaysFailed) {
  auto r = runner("mode=exec,timeout=5,cmd=test -f /ready");
  r.on_container_running(t0);
  ASSERT_TRUE(r.tick(t0));
  EXPECT_FALSE(r.tick(t0 + 5s)) << "not failed at the deadline itself";
  EXPECT_EQ(r.verdict(), V::kPending);
  EXPECT_FALSE(r.tick(t0 + 5s + 1ms));
  ASSERT_EQ(r.verdict(), V::kFailed);
  EXPECT_EQ(r.failure().code(), ErrorCode::kTimeout);
  EXPECT_NE(r.failure().message().find("did not pass within 5 s"), std::string::npos)
      << r.failure().message();
  r.on_probe_exit(0, t0 + 6s);
  EXPECT_EQ(r.verdict(), V::kFailed) << "a verdict never changes";
}

TEST(GateRunner, AContainerThatExitsBeforeItsGateFailsIt) {
  auto r = runner("mode=http,url=http://127.0.0.1/");
  r.on_container_running(t0);
  r.on_container_exit(7);
  ASSERT_EQ(r.verdict(), V::kFailed);
  EXPECT_NE(r.failure().message().find("exited (code 7) before"), std::string::npos);
  auto passed = runner("mode=log,pattern=up");
  passed.on_output("up\n");
  passed.on_container_exit(0);
  EXPECT_EQ(passed.verdict(), V::kPassed) << "an exit after the gate passed changes nothing";
}
