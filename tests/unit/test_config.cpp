// The configuration file: valid documents, every bad value, unknown keys, and which file wins.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "fcvm/config/config.hpp"
#include "fcvm/util/fs.hpp"

namespace fcvm::config {
namespace {

class ConfigDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/fcvm-config-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    m_dir = templ;
  }
  void TearDown() override { (void)remove_all(m_dir); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = m_dir + "/" + name;
    EXPECT_TRUE(write_file_atomic(p, text));
    return p;
  }
  std::string m_dir;
};

// The error message of parsing `text`, which must fail with kInvalidInput.
std::string error_of(const std::string& text) {
  auto c = parse(text, "/etc/fcvm/config.yml");
  if (c) return "(parsed)";
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput) << c.error().message();
  return c.error().message();
}

TEST(Config, EmptyDocumentIsTheDefaults) {
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    auto c = parse(text, "x.yml");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->vmm, "auto");
    EXPECT_EQ(c->network, "rootless");
    EXPECT_EQ(c->defaults.mem_mib, 1024);
    EXPECT_EQ(c->defaults.vcpus, 2);
    EXPECT_EQ(c->defaults.stop_timeout_s, 10);
    EXPECT_EQ(c->defaults.boot_timeout_s, 180);
    EXPECT_TRUE(c->insecure_registries.empty());
    EXPECT_EQ(c->data_dir, "");
    EXPECT_EQ(c->source, "x.yml");
  }
}

TEST(Config, EveryKey) {
  auto c = parse(
      "vmm: firecracker\n"
      "network: privileged\n"
      "defaults:\n"
      "  mem_mib: 512\n"
      "  vcpus: 4\n"
      "  stop_timeout_s: 0\n"
      "  boot_timeout_s: 600\n"
      "insecure_registries: [127.0.0.1:5000, registry.local]\n"
      "data_dir: /var/lib/fcvm\n"
      "guest_dir: /opt/fcvm/guest\n",
      "x.yml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->vmm, "firecracker");
  EXPECT_EQ(c->network, "privileged");
  EXPECT_EQ(c->defaults.mem_mib, 512);
  EXPECT_EQ(c->defaults.vcpus, 4);
  EXPECT_EQ(c->defaults.stop_timeout_s, 0);
  EXPECT_EQ(c->defaults.boot_timeout_s, 600);
  EXPECT_EQ(c->insecure_registries, (std::vector<std::string>{"127.0.0.1:5000", "registry.local"}));
  EXPECT_EQ(c->data_dir, "/var/lib/fcvm");
  EXPECT_EQ(c->guest_dir, "/opt/fcvm/guest");
}

TEST(Config, PartialDefaultsKeepTheRest) {
  auto c = parse("defaults:\n  vcpus: 1\nvmm: qemu\n", "x.yml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->defaults.vcpus, 1);
  EXPECT_EQ(c->defaults.mem_mib, 1024);
  EXPECT_EQ(c->vmm, "qemu");
  // An empty section (all children commented out) is fine.
  EXPECT_TRUE(parse("defaults:\ninsecure_registries:\n", "x.yml"));
}

TEST(Config, HomeInPaths) {
  const char* home = ::getenv("HOME");
  if (home == nullptr || *home == '\0') GTEST_SKIP() << "HOME is not set";
  auto c = parse("data_dir: ~/fcvm-data\n", "x.yml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->data_dir, std::string(home) + "/fcvm-data");
}

TEST(Config, BadValuesNameFileLineKeyAndValue) {
  struct Case {
    const char* text;
    const char* key;
    const char* value;
  };
  const Case cases[] = {
      {"vmm: kvm\n", "vmm", "\"kvm\""},
      {"vmm:\n", "vmm", "(empty)"},
      {"network: bridged\n", "network", "\"bridged\""},
      {"defaults:\n  mem_mib: lots\n", "defaults.mem_mib", "\"lots\""},
      {"defaults:\n  mem_mib: 64\n", "defaults.mem_mib", "\"64\""},
      {"defaults:\n  vcpus: 0\n", "defaults.vcpus", "\"0\""},
      {"defaults:\n  vcpus: 65\n", "defaults.vcpus", "\"65\""},
      {"defaults:\n  stop_timeout_s: -1\n", "defaults.stop_timeout_s", "\"-1\""},
      {"defaults:\n  stop_timeout_s: 1.5\n", "defaults.stop_timeout_s", "\"1.5\""},
      {"defaults:\n  boot_timeout_s: 5\n", "defaults.boot_timeout_s", "\"5\""},
      {"defaults:\n  boot_timeout_s: 3601\n", "defaults.boot_timeout_s", "\"3601\""},
      {"defaults: 3\n", "defaults", "\"3\""},
      {"insecure_registries: 127.0.0.1:5000\n", "insecure_registries", "\"127.0.0.1:5000\""},
      {"insecure_registries: [http://x]\n", "insecure_registries", "\"http://x\""},
      {"data_dir: relative/dir\n", "data_dir", "\"relative/dir\""},
      {"guest_dir: [a, b]\n", "guest_dir", "(a list)"},
  };
  for (const auto& c : cases) {
    auto msg = error_of(c.text);
    EXPECT_NE(msg.find("config /etc/fcvm/config.yml:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(c.key) + ": invalid value " + c.value), std::string::npos)
        << c.text << " -> " << msg;
  }
  // The line is the value's.
  EXPECT_NE(error_of("vmm: qemu\ndefaults:\n  vcpus: x\n").find("config.yml:3:"),
            std::string::npos);
}

TEST(Config, UnknownKeys) {
  auto msg = error_of("vmm: qemu\nvmn: firecracker\n");
  EXPECT_NE(msg.find("config.yml:2: unknown key \"vmn\" (value \"firecracker\")"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("known keys:"), std::string::npos) << msg;
  msg = error_of("defaults:\n  memory: 512\n");
  EXPECT_NE(msg.find("unknown key \"defaults.memory\" (value \"512\")"), std::string::npos) << msg;
}

TEST(Config, MalformedDocuments) {
  EXPECT_NE(error_of("- vmm: qemu\n").find("(top level): invalid value (a list)"),
            std::string::npos);
  EXPECT_NE(error_of("vmm: qemu\nvmm: auto\n").find("\"vmm\" appears twice"), std::string::npos);
  auto msg = error_of("vmm: [qemu\n");
  EXPECT_NE(msg.find("config /etc/fcvm/config.yml:"), std::string::npos) << msg;
}

// The documented example is valid and shows the built-in defaults.
TEST(Config, ExampleFileIsTheDefaults) {
  auto c = load_file(FCVM_SOURCE_DIR "/config/fcvm.example.yml");
  ASSERT_TRUE(c) << c.error().message();
  Config defaults;
  EXPECT_EQ(c->vmm, defaults.vmm);
  EXPECT_EQ(c->network, defaults.network);
  EXPECT_EQ(c->defaults.mem_mib, defaults.defaults.mem_mib);
  EXPECT_EQ(c->defaults.vcpus, defaults.defaults.vcpus);
  EXPECT_EQ(c->defaults.stop_timeout_s, defaults.defaults.stop_timeout_s);
  EXPECT_EQ(c->defaults.boot_timeout_s, defaults.defaults.boot_timeout_s);
  EXPECT_TRUE(c->insecure_registries.empty());
  EXPECT_EQ(c->data_dir, "");
  EXPECT_EQ(c->guest_dir, "");
}

TEST_F(ConfigDir, PrecedenceOfFiles) {
  auto explicit_file = write("explicit.yml", "vmm: qemu\n");
  auto user = write("user.yml", "vmm: firecracker\n");
  auto system = write("system.yml", "vmm: auto\ndefaults: {vcpus: 3}\n");

  Locations where{explicit_file, user, system};
  auto c = load(where);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->vmm, "qemu");
  EXPECT_EQ(c->source, explicit_file);

  where.explicit_file.clear();
  c = load(where);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->vmm, "firecracker");
  EXPECT_EQ(c->source, user);

  where.user_file = m_dir + "/missing.yml";
  c = load(where);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->defaults.vcpus, 3);  // files are not merged: only the system file counts
  EXPECT_EQ(c->source, system);

  where.system_file = m_dir + "/also-missing.yml";
  c = load(where);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->source, "");
  EXPECT_EQ(c->vmm, "auto");
}

TEST_F(ConfigDir, ExplicitFileMustExist) {
  Locations where{m_dir + "/nope.yml", write("user.yml", "vmm: qemu\n"), ""};
  auto c = load(where);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(c.error().message().find("nope.yml (from FCVM_CONFIG) does not exist"),
            std::string::npos);
}

TEST_F(ConfigDir, BadFileNamesItself) {
  auto file = write("bad.yml", "vmm: kvm\n");
  auto c = load_file(file);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("config " + file + ":1: vmm: invalid value \"kvm\""),
            std::string::npos)
      << c.error().message();
}

TEST(Config, DefaultLocationsFollowTheEnvironment) {
  auto keep = [](const char* n) {
    const char* v = ::getenv(n);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto old_config = keep("FCVM_CONFIG"), old_xdg = keep("XDG_CONFIG_HOME"), old_home = keep("HOME");
  ::setenv("FCVM_CONFIG", "/x/explicit.yml", 1);
  ::setenv("XDG_CONFIG_HOME", "/xdg", 1);
  ::setenv("HOME", "/home/u", 1);
  auto where = default_locations();
  EXPECT_EQ(where.explicit_file, "/x/explicit.yml");
  EXPECT_EQ(where.user_file, "/xdg/fcvm/config.yml");
  EXPECT_EQ(where.system_file, "/etc/fcvm/config.yml");
  ::unsetenv("FCVM_CONFIG");
  ::unsetenv("XDG_CONFIG_HOME");
  where = default_locations();
  EXPECT_EQ(where.explicit_file, "");
  EXPECT_EQ(where.user_file, "/home/u/.config/fcvm/config.yml");
  auto restore = [](const char* n, const std::optional<std::string>& v) {
    if (v) {
      ::setenv(n, v->c_str(), 1);
    } else {
      ::unsetenv(n);
    }
  };
  restore("FCVM_CONFIG", old_config);
  restore("XDG_CONFIG_HOME", old_xdg);
  restore("HOME", old_home);
}

}  // namespace
}  // namespace fcvm::config
