#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "fcvm/vm/options.hpp"
#include "fcvm/vm/plan.hpp"
#include "fcvm/vm/validate.hpp"
#include "scratch.hpp"

using namespace fcvm;

TEST(Options, Ulimits) {
  auto both = vm::parse_ulimit("nofile=1024:4096");
  ASSERT_TRUE(both) << both.error().to_string();
  EXPECT_EQ(both->name, "nofile");
  EXPECT_EQ(both->soft, 1024);
  EXPECT_EQ(both->hard, 4096);
  auto one = vm::parse_ulimit("nproc=100");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->hard, 100);
  auto unlimited = vm::parse_ulimit("core=-1");
  ASSERT_TRUE(unlimited);
  EXPECT_EQ(unlimited->soft, -1);
  EXPECT_TRUE(vm::parse_ulimit("memlock=1024:-1"));
  EXPECT_EQ(vm::ulimit_text(*both), "nofile=1024:4096");
  for (const char* bad : {"nofile", "files=10", "nofile=abc", "nofile=10:x", "nofile=20:10",
                          "nofile=-1:10", "nofile=-2", "=10", "nofile=1:2:3"}) {
    auto r = vm::parse_ulimit(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.error().message();
  }
}

TEST(Options, Names) {
  EXPECT_TRUE(vm::validate_name("web1"));
  EXPECT_TRUE(vm::validate_name("a.b_c-d"));
  EXPECT_TRUE(vm::validate_name(std::string(63, 'a')));
  for (const std::string& bad :
       std::vector<std::string>{"", "-a", ".a", "a b", "a/b", std::string(64, 'a'), "é"}) {
    auto r = vm::validate_name(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    }
  }
}

TEST(Options, Env) {
  EXPECT_EQ(*vm::normalize_env("A=1", vm::process_env()), "A=1");
  EXPECT_EQ(*vm::normalize_env("A=", vm::process_env()), "A=");
  EXPECT_EQ(*vm::normalize_env("A=b=c", vm::process_env()), "A=b=c");
  setenv("FCVM_TEST_VAR", "xyz", 1);
  EXPECT_EQ(*vm::normalize_env("FCVM_TEST_VAR", vm::process_env()), "FCVM_TEST_VAR=xyz");
  unsetenv("FCVM_TEST_UNSET");
  EXPECT_FALSE(vm::normalize_env("FCVM_TEST_UNSET", vm::process_env()));
  EXPECT_FALSE(vm::normalize_env("=1", vm::process_env()));
  EXPECT_FALSE(vm::normalize_env("1A=1", vm::process_env()));
  EXPECT_FALSE(vm::normalize_env("A-B=1", vm::process_env()));
}

TEST(Options, EnvFile) {
  std::string path = test::scratch_path("env");
  std::ofstream(path) << "# comment\n\nA=1\n  B=two words  \n";
  auto env = vm::read_env_file(path, vm::process_env());
  ASSERT_TRUE(env);
  EXPECT_EQ(*env, (std::vector<std::string>{"A=1", "B=two words"}));
  std::ofstream(path) << "A=1\nnot valid\n";
  auto bad = vm::read_env_file(path, vm::process_env());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find(":2:"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(vm::read_env_file("/nonexistent/env", vm::process_env()));
}

// The network mode survives the record (a stopped privileged VM starts privileged again); records
// written before the option existed are rootless.
TEST(Options, NetworkModeRoundTrips) {
  vm::RunOptions o;
  o.image = *storage::parse_image_ref("busybox");
  o.network = vm::NetworkMode::kPrivileged;
  auto back = vm::options_from_json(vm::options_to_json(o));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->network, vm::NetworkMode::kPrivileged);
  auto old = vm::options_from_json(R"({"image":"busybox"})");
  ASSERT_TRUE(old) << old.error().message();
  EXPECT_EQ(old->network, vm::NetworkMode::kRootless);
  EXPECT_FALSE(vm::options_from_json(R"({"image":"busybox","network":"bogus"})"));
}

// The VMM and network modes are enums inside; their names are the CLI's, the file's and the
// record's, and every registered VMM (and only those) is a valid choice.
TEST(Options, ModesParseByNameAndRoundTrip) {
  EXPECT_EQ(*vm::parse_network_mode("privileged"), vm::NetworkMode::kPrivileged);
  auto bad = vm::parse_network_mode("bridge");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(bad.error().message().find("invalid --network \"bridge\""), std::string::npos);
  EXPECT_FALSE(vm::parse_vmm_choice("auto")->has_value());
  for (const auto& b : vmm::registered_backends()) {
    auto c = vm::parse_vmm_choice(b.name);
    ASSERT_TRUE(c && *c) << b.name;
    EXPECT_EQ(**c, b.kind);
    EXPECT_EQ(vm::vmm_choice_name(*c), b.name);
  }
  auto unknown = vm::parse_vmm_choice("kvmtool");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("\"kvmtool\""), std::string::npos);
  vm::RunOptions o;
  o.image = *storage::parse_image_ref("busybox");
  o.vmm = vmm::VmmKind::kFirecracker;
  auto back = vm::options_from_json(vm::options_to_json(o));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->vmm, vmm::VmmKind::kFirecracker);
  EXPECT_FALSE(vm::options_from_json(R"({"image":"busybox","vmm":"kvmtool"})"));
}

TEST(Options, RestartPolicies) {
  using Kind = vm::RestartPolicy::Kind;
  EXPECT_EQ(vm::parse_restart_policy("no")->kind, Kind::kNo);
  EXPECT_EQ(vm::parse_restart_policy("always")->kind, Kind::kAlways);
  EXPECT_EQ(vm::parse_restart_policy("unless-stopped")->kind, Kind::kUnlessStopped);
  auto on_failure = vm::parse_restart_policy("on-failure");
  ASSERT_TRUE(on_failure);
  EXPECT_EQ(*on_failure, (vm::RestartPolicy{Kind::kOnFailure, 0}));
  auto three = vm::parse_restart_policy("on-failure:3");
  ASSERT_TRUE(three);
  EXPECT_EQ(three->max_retries, 3);
  for (const char* text : {"on-failure:3", "on-failure", "always", "unless-stopped", "no"}) {
    EXPECT_EQ(vm::to_string(*vm::parse_restart_policy(text)), text);
  }
  for (const char* bad : {"", "yes", "on-failure:", "on-failure:0", "on-failure:x", "on-failure:-1",
                          "always:2", "on-failurex"}) {
    auto r = vm::parse_restart_policy(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(fmt::format("\"{}\"", bad)), std::string::npos);
  }
  // The decision: a stop asked for never restarts; on-failure counts its retries.
  vm::RunOutcome failed{1, false, {}};
  vm::RunOutcome ok{0, false, {}};
  vm::RunOutcome crashed{std::nullopt, false, {}};
  vm::RunOutcome stopped{143, true, {}};
  EXPECT_FALSE(vm::restart_due({Kind::kNo, 0}, failed, 0));
  EXPECT_TRUE(vm::restart_due(*three, failed, 0));
  EXPECT_TRUE(vm::restart_due(*three, crashed, 2));
  EXPECT_FALSE(vm::restart_due(*three, failed, 3));
  EXPECT_FALSE(vm::restart_due(*three, ok, 0));
  EXPECT_TRUE(vm::restart_due(*on_failure, failed, 1000));
  EXPECT_TRUE(vm::restart_due({Kind::kAlways, 0}, ok, 5));
  EXPECT_TRUE(vm::restart_due({Kind::kUnlessStopped, 0}, ok, 5));
  for (auto kind : {Kind::kOnFailure, Kind::kAlways, Kind::kUnlessStopped}) {
    EXPECT_FALSE(vm::restart_due({kind, 0}, stopped, 0));
  }
  // Back-off: 100 ms doubling, capped.
  EXPECT_EQ(vm::restart_delay(0).count(), 100);
  EXPECT_EQ(vm::restart_delay(1).count(), 200);
  EXPECT_EQ(vm::restart_delay(3).count(), 800);
  EXPECT_EQ(vm::restart_delay(100), vm::k_restart_delay_max);
  // Kept in the record's options; records from before the option say no.
  vm::RunOptions o;
  o.image = *storage::parse_image_ref("busybox");
  o.restart = *three;
  auto back = vm::options_from_json(vm::options_to_json(o));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->restart, *three);
  EXPECT_EQ(vm::options_from_json(R"({"image":"busybox"})")->restart.kind, Kind::kNo);
}

// --restart needs -d (a foreground run's VM ends with its container).
TEST(Options, RestartNeedsDetach) {
  vm::RunRequest r;
  r.image_and_command = {"busybox"};
  r.restart = "always";
  auto refused = vm::validate_run(r, {}, vm::process_env());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(refused.error().message().find("--restart always needs -d"), std::string::npos);
  r.detach = true;
  auto ok = vm::validate_run(r, {}, vm::process_env());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->restart.kind, vm::RestartPolicy::Kind::kAlways);
  r.restart = "sometimes";
  EXPECT_FALSE(vm::validate_run(r, {}, vm::process_env()));
}

TEST(Plan, LoopbackRegistryIsMirroredThroughTheGateway) {
  vm::RunOptions o;
  o.image = *storage::parse_image_ref("127.0.0.1:5055/nginx:latest");
  o.env = {"A=1"};
  o.command = {"nginx", "-g", "daemon off;"};
  net::GuestNetwork guest;
  auto plan = vm::make_plan(o, "abc", "web", guest);
  EXPECT_TRUE(vm::needs_host_loopback(o));
  EXPECT_EQ(plan.image.ref, "127.0.0.1:5055/nginx:latest");
  ASSERT_EQ(plan.image.mirrors.size(), 1u);
  EXPECT_EQ(plan.image.mirrors[0].prefix, "127.0.0.1:5055");
  EXPECT_EQ(plan.image.mirrors[0].location, "10.0.2.2:5055");
  EXPECT_TRUE(plan.image.mirrors[0].insecure);
  EXPECT_EQ(plan.network.address, "10.0.2.15/24");
  EXPECT_EQ(plan.network.gateway, "10.0.2.2");
  EXPECT_EQ(plan.hostname, "web");
  EXPECT_EQ(plan.command, o.command);
  EXPECT_GT(plan.time_unix_ns, 0);
}

TEST(Plan, RemoteRegistryHasNoMirrorAndNoLoopback) {
  vm::RunOptions o;
  o.image = *storage::parse_image_ref("registry.example:5000/app");
  o.insecure_registries = {"registry.example:5000"};
  auto plan = vm::make_plan(o, "abc", "web", net::GuestNetwork{});
  EXPECT_FALSE(vm::needs_host_loopback(o));
  EXPECT_TRUE(plan.image.mirrors.empty());
  EXPECT_EQ(plan.image.insecure_registries, std::vector<std::string>{"registry.example:5000"});
  EXPECT_TRUE(plan.image.archive_serial.empty());
}
