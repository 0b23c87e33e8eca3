#pragma once
// Fixture for FirecrackerBackend against fake-firecracker: a VM directory with dummy kernel,
// initrd and disks, the environment that points the backend at the fake (and the fake at the
// spec and its record file), and a host-side agent conversation.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/vmm/firecracker/backend.hpp"
#include "support/firecracker_test_util.hpp"

namespace fcvm::testing {

// What the host saw of one run of the guest's main container.
struct Conversation {
  std::vector<std::string> events;
  bool ready = false;
  std::string out;
  int exit_code = -1;
};

inline agent_proto::Plan example_plan() {
  agent_proto::Plan plan;
  plan.vm_id = "vm-1";
  plan.name = "web1";
  plan.hostname = "web1";
  plan.image.ref = "docker.io/library/busybox:latest";
  plan.command = {"echo", "hello"};
  plan.env = {"GREETING=hi", "A=1"};
  plan.network = {"eth0", "10.0.2.15/24", "10.0.2.2", {"10.0.2.3"}, 1500};
  return plan;
}

// hello -> plan -> events/ready/output -> [stop] -> exit, as vm:: will do it.
inline Result<Conversation> converse(int fd, const agent_proto::Plan& plan, bool send_stop) {
  namespace proto = agent_proto;
  Conversation c;
  auto hello = proto::read_frame(fd);
  if (!hello) return tl::unexpected<Error>(hello.error());
  auto msg = proto::parse_control(hello->payload);
  if (!msg || (*msg)["type"] != proto::k_hello) {
    return fail(ErrorCode::kProtocol, "first frame is not hello: " + hello->payload);
  }
  FCVM_TRY(proto::write_frame(fd, proto::Kind::kControl, 0, proto::encode_plan(plan)));
  for (;;) {
    auto frame = proto::read_frame(fd);
    if (!frame) return tl::unexpected<Error>(frame.error());
    if (frame->kind == proto::Kind::kStdout) {
      c.out += frame->payload;
      if (send_stop) {
        FCVM_TRY(proto::write_frame(fd, proto::Kind::kControl, 0, proto::encode_stop({1})));
      }
      continue;
    }
    if (frame->kind != proto::Kind::kControl) continue;
    auto m = proto::parse_control(frame->payload);
    if (!m) return tl::unexpected<Error>(m.error());
    auto type = (*m)["type"].get<std::string>();
    if (type == proto::k_event) c.events.push_back((*m)["name"].get<std::string>());
    if (type == proto::k_ready) c.ready = true;
    if (type == proto::k_exit) {
      c.exit_code = (*m)["code"].get<int>();
      return c;
    }
  }
}

class FirecrackerBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spec_path = find_spec_file(FCVM_SOURCE_DIR);
    if (!spec_path) GTEST_SKIP() << spec_missing_reason(FCVM_SOURCE_DIR);
    auto loaded = FirecrackerSpec::load(*spec_path);
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    m_checker = std::make_unique<FirecrackerSpec>(std::move(*loaded));
    set_env("FAKE_FC_SPEC", *spec_path);
    set_env("FAKE_FC_RECORD", record_path());
    for (const char* name :
         {"FAKE_FC_FAIL", "FAKE_FC_FAIL_MESSAGE", "FAKE_FC_EXIT_CODE", "FAKE_FC_RUN_UNTIL_STOP",
          "FAKE_FC_GUEST_DELAY_MS", "FAKE_FC_START_DELAY_MS"}) {
      set_env(name, std::nullopt);
    }
    write_dummy_kernel(m_dir.file("vmlinux"));
    write_text(m_dir.file("initrd.img"), "initramfs");
    write_text(m_dir.file("root.raw"), std::string(1 << 16, '\0'));
    write_text(m_dir.file("data.raw"), std::string(1 << 16, '\0'));
  }

  // Options that run fake-firecracker.
  static vmm::firecracker::FirecrackerOptions fake_options() {
    vmm::firecracker::FirecrackerOptions o;
    o.firecracker_bin = FAKE_FIRECRACKER_BIN;
    return o;
  }

  void set_env(const std::string& name, const std::optional<std::string>& value) {
    m_env.push_back(std::make_unique<ScopedEnv>(name, value));
  }

  std::string record_path() const { return m_dir.file("record.jsonl"); }

  vmm::VmSpec vm_spec(const std::string& vm_dir, const std::string& tap = "tap0") const {
    vmm::VmSpec s;
    s.id = "vm-1";
    s.name = "web1";
    s.dir = vm_dir;
    s.kernel = m_dir.file("vmlinux");
    s.initrd = m_dir.file("initrd.img");
    s.kernel_args = {"fcvm.root=fcvm-root"};
    s.vcpus = 2;
    s.mem_mib = 256;
    s.disks = {{vm_dir + "/data.raw", vmm::DiskFormat::kRaw, true, "fcvm-data", false},
               {vm_dir + "/root.raw", vmm::DiskFormat::kRaw, false, "fcvm-root", true}};
    s.net = vmm::NetSpec{tap, "06:00:0a:00:02:0f"};
    s.console_log = vm_dir + "/console.log";
    s.vmm_log = vm_dir + "/vmm.log";
    s.mmds_json = agent_proto::to_json(example_plan()).dump();
    return s;
  }

  // Each recorded call is valid per the spec; answers the "METHOD PATH" list without GETs.
  std::vector<std::string> checked_calls(const std::string& record) const {
    std::vector<std::string> calls;
    for (const auto& line : read_json_lines(record)) {
      std::optional<nlohmann::json> body;
      if (!line["body"].is_null()) body = line["body"];
      auto method = line["method"].get<std::string>();
      auto path = line["path"].get<std::string>();
      auto valid = m_checker->validate_request(method, path, body);
      EXPECT_TRUE(valid) << valid.error().message();
      if (method != "GET") calls.push_back(method + " " + path);
    }
    return calls;
  }

  TempDir m_dir;
  std::unique_ptr<FirecrackerSpec> m_checker;
  std::vector<std::unique_ptr<ScopedEnv>> m_env;
};

}  // namespace fcvm::testing
