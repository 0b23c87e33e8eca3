// `ls --filter` and the run options it reads (labels, user, hostname, read-only, init).
#include <gtest/gtest.h>

#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/options.hpp"
#include "fcvm/vm/validate.hpp"

using namespace fcvm;

namespace {
state::VmRecord record(const std::string& name, const std::string& id, state::VmStatus status,
                       std::map<std::string, std::string> labels) {
  vm::RunOptions o;
  o.image.original = "busybox";
  o.labels = std::move(labels);
  state::VmRecord r;
  r.name = name;
  r.id = id;
  r.status = status;
  r.options_json = vm::options_to_json(o);
  return r;
}
}  // namespace

TEST(VmFilter, KeysAndValues) {
  auto web = record("web1", "abc123", state::VmStatus::kRunning, {{"app", "web"}, {"tier", ""}});
  auto db = record("db1", "def456", state::VmStatus::kExited, {{"app", "db"}});
  auto check = [](std::vector<std::string> specs, const state::VmRecord& r) {
    auto f = vm::parse_vm_filters(specs);
    EXPECT_TRUE(f) << (f ? "" : f.error().message());
    return f && vm::matches(*f, r);
  };
  EXPECT_TRUE(check({}, web));
  EXPECT_TRUE(check({"label=app"}, web));
  EXPECT_TRUE(check({"label=app=web"}, web));
  EXPECT_FALSE(check({"label=app=web"}, db));
  EXPECT_TRUE(check({"label=tier="}, web));  // an empty value is a value
  EXPECT_FALSE(check({"label=tier=x"}, web));
  // Labels: all must match; other keys: any of one key, all keys.
  EXPECT_FALSE(check({"label=app=web", "label=missing"}, web));
  EXPECT_TRUE(check({"name=web", "name=db"}, web));
  EXPECT_TRUE(check({"name=eb"}, web));
  EXPECT_FALSE(check({"name=web", "status=exited"}, web));
  EXPECT_TRUE(check({"status=exited", "status=running"}, db));
  EXPECT_TRUE(check({"id=abc"}, web));
  EXPECT_FALSE(check({"id=bc"}, web));
  EXPECT_TRUE(check({"status=restarting"}, record("r", "r1", state::VmStatus::kRestarting, {})));
}

TEST(VmFilter, RestartPolicy) {
  auto plain = record("plain", "aaa111", state::VmStatus::kExited, {});
  vm::RunOptions o;
  o.image.original = "busybox";
  o.restart = *vm::parse_restart_policy("on-failure:3");
  auto retried = plain;
  retried.options_json = vm::options_to_json(o);
  auto check = [](std::vector<std::string> specs, const state::VmRecord& r) {
    auto f = vm::parse_vm_filters(specs);
    EXPECT_TRUE(f) << (f ? "" : f.error().message());
    return f && vm::matches(*f, r);
  };
  EXPECT_TRUE(check({"restart-policy=no"}, plain));
  EXPECT_FALSE(check({"restart-policy=always"}, plain));
  EXPECT_TRUE(check({"restart-policy=on-failure"}, retried));
  EXPECT_TRUE(check({"restart-policy=always", "restart-policy=on-failure"}, retried));
}

TEST(VmFilter, BadFiltersNameTheValue) {
  for (const char* bad : {"label", "label=", "label==x", "color=red", "status=asleep",
                          "name=", "restart-policy=sometimes", "restart-policy=on-failure:3"}) {
    auto f = vm::parse_vm_filters({bad});
    ASSERT_FALSE(f) << bad;
    EXPECT_EQ(f.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(f.error().message().find(bad), std::string::npos) << f.error().message();
  }
}

TEST(VmFilter, NewRunOptionsSurviveTheRecord) {
  vm::RunOptions o;
  o.image.original = "busybox";
  o.user = "app:staff";
  o.hostname = "web.local";
  o.read_only = true;
  o.init = true;
  o.labels = {{"a", "1"}, {"b", ""}};
  auto back = vm::options_from_json(vm::options_to_json(o));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->user, "app:staff");
  EXPECT_EQ(back->hostname, "web.local");
  EXPECT_TRUE(back->read_only);
  EXPECT_TRUE(back->init);
  EXPECT_EQ(back->labels, o.labels);
}

TEST(VmFilter, LabelHostnameAndUserChecks) {
  auto kv = vm::parse_label("team=infra=core");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->first, "team");
  EXPECT_EQ(kv->second, "infra=core");
  EXPECT_EQ(vm::parse_label("flag")->second, "");
  EXPECT_FALSE(vm::parse_label("=x"));
  EXPECT_FALSE(vm::parse_label("a\nb=1"));
  EXPECT_TRUE(vm::validate_hostname("web-1.example"));
  const std::vector<std::string> bad_names = {
      "-web", "web-", "a..b", "under_score", "", "x.", std::string(64, 'a')};
  for (const auto& bad : bad_names) {
    EXPECT_FALSE(vm::validate_hostname(bad)) << bad;
  }
  for (const char* good : {"nginx", "101", "101:101", "app:staff", "www-data"}) {
    EXPECT_TRUE(vm::validate_user(good)) << good;
  }
  for (const char* bad : {"", ":", "a:", ":b", "a:b:c", "a b", "-x"}) {
    EXPECT_FALSE(vm::validate_user(bad)) << bad;
  }
}

// snapshot ls / images --filter: known keys only; any value of a key, every key.
TEST(FieldFilter, AnyOfAKeyAllKeys) {
  auto f = vm::parse_field_filters({"name=web", "name=db", "image=busybox"}, {"name", "image"});
  ASSERT_TRUE(f) << f.error().message();
  auto obj = [](std::string name, std::string image) {
    return [=](const std::string& key, const std::string& value) {
      return (key == "name" ? name : image).find(value) != std::string::npos;
    };
  };
  EXPECT_TRUE(vm::matches(*f, obj("db-snap", "busybox:latest")));
  EXPECT_FALSE(vm::matches(*f, obj("db-snap", "nginx")));
  EXPECT_FALSE(vm::matches(*f, obj("cache", "busybox")));
  auto none = vm::parse_field_filters({}, {"name"});
  ASSERT_TRUE(none);
  EXPECT_TRUE(vm::matches(*none, obj("x", "y")));
  for (const char* bad : {"colour=red", "name", "name=", "=web"}) {
    auto r = vm::parse_field_filters({bad}, {"name", "image"});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(std::string("\"") + bad + "\""), std::string::npos);
    EXPECT_NE(r.error().message().find("name=, image="), std::string::npos);
  }
}
