// A failure at any step of start() surfaces the call and Firecracker's fault_message and leaves no
// process and no socket behind. Also the fake's own Firecracker rules.
#include <gtest/gtest.h>

#include "support/firecracker_backend_fixture.hpp"

namespace fcvm::testing {
namespace {

using std::chrono::milliseconds;
using vmm::firecracker::ApiClient;
using vmm::firecracker::FirecrackerBackend;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class FirecrackerStepFailure : public FirecrackerBackendTest,
                               public ::testing::WithParamInterface<const char*> {};

TEST_P(FirecrackerStepFailure, StartFailsNamingTheCallAndLeavesNothing) {
  std::string call = GetParam();
  set_env("FAKE_FC_FAIL", call);
  set_env("FAKE_FC_FAIL_MESSAGE", "injected: " + call);
  FirecrackerBackend backend{fake_options()};
  auto started = backend.start(vm_spec(m_dir.path()));
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().message(), call + ": 400 injected: " + call);

  auto lines = read_json_lines(record_path());
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(
      lines.back()["method"].get<std::string>() + " " + lines.back()["path"].get<std::string>(),
      call);
  EXPECT_EQ(lines.back()["status"], 400);
  EXPECT_TRUE(pid_gone(lines.back()["pid"].get<pid_t>()));
  EXPECT_EQ(backend.pid(), 0);
  EXPECT_EQ(sockets_in(m_dir.path()), std::vector<std::string>{});
  EXPECT_FALSE(path_exists(m_dir.file("firecracker.log")));
  EXPECT_FALSE(path_exists(m_dir.file("firecracker.metrics")));
  // The backend can be started again afterwards.
  set_env("FAKE_FC_FAIL", std::nullopt);
  EXPECT_TRUE(backend.start(vm_spec(m_dir.path())));
  EXPECT_TRUE(backend.shutdown());
}

INSTANTIATE_TEST_SUITE_P(EveryStep, FirecrackerStepFailure,
                         ::testing::Values("PUT /logger", "PUT /metrics", "PUT /machine-config",
                                           "PUT /boot-source", "PUT /serial",
                                           "PUT /drives/fcvm_root", "PUT /drives/fcvm_data",
                                           "PUT /network-interfaces/eth0", "PUT /vsock",
                                           "PUT /mmds/config", "PUT /mmds", "PUT /actions"),
                         [](const ::testing::TestParamInfo<const char*>& param) {
                           std::string name = param.param;
                           for (char& ch : name) {
                             if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
                           }
                           return name;
                         });

TEST_F(FirecrackerBackendTest, AMissingKernelIsReportedLikeFirecrackerDoes) {
  auto spec = vm_spec(m_dir.path());
  spec.kernel = m_dir.file("no-such-vmlinux");
  FirecrackerBackend backend{fake_options()};
  auto started = backend.start(spec);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().message(),
            "PUT /boot-source: 400 The kernel file cannot be opened: No such file or directory "
            "(os error 2)");
  EXPECT_EQ(sockets_in(m_dir.path()), std::vector<std::string>{});
}

TEST_F(FirecrackerBackendTest, BadSpecsFailBeforeAnythingIsSpawned) {
  auto spec = vm_spec(m_dir.path());
  spec.disks[0].format = vmm::DiskFormat::kQcow2;
  FirecrackerBackend backend{fake_options()};
  auto r = backend.start(spec);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  spec = vm_spec(m_dir.path());
  spec.kernel = m_dir.file("initrd.img");  // not an ELF vmlinux
  EXPECT_TRUE(contains(backend.start(spec).error().message(), "not an uncompressed ELF vmlinux"));
  spec = vm_spec(m_dir.path());
  spec.id = "has_underscore";
  EXPECT_EQ(backend.start(spec).error().code(), ErrorCode::kInvalidInput);
  EXPECT_FALSE(path_exists(record_path()));
}

TEST_F(FirecrackerBackendTest, TheFakeNeedsItsSpec) {
  set_env("FAKE_FC_SPEC", std::nullopt);
  FirecrackerBackend backend{fake_options()};
  auto r = backend.start(vm_spec(m_dir.path()));
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "exited (exit code 2) before its API socket answered"))
      << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "no API spec: pass --spec PATH or set FAKE_FC_SPEC"));
}

TEST_F(FirecrackerBackendTest, TheFakeEnforcesFirecrackersRules) {
  FirecrackerBackend backend{fake_options()};
  ASSERT_TRUE(backend.start(vm_spec(m_dir.path())));
  auto api = ApiClient::for_socket(backend.api_socket());
  auto info = api.get("/");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_TRUE(m_checker->validate_response("GET", "/", 200, *info));
  EXPECT_EQ((*info)["state"], "Running");
  auto machine = api.get("/machine-config");
  ASSERT_TRUE(machine);
  EXPECT_TRUE(m_checker->validate_response("GET", "/machine-config", 200, *machine));
  EXPECT_EQ((*machine)["vcpu_count"], 2);
  EXPECT_EQ((*machine)["mem_size_mib"], 256);
  ASSERT_TRUE(backend.pause());
  EXPECT_EQ((*api.get("/"))["state"], "Paused");

  auto late = api.put("/machine-config", {{"vcpu_count", 1}, {"mem_size_mib", 128}});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().message(),
            "PUT /machine-config: 400 The requested operation is not supported after starting "
            "the microVM.");
  auto unknown = api.put("/boot-source", {{"kernel_image_path", "/k"}, {"kernel_args", "x"}});
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(contains(unknown.error().message(), "body.kernel_args: unknown field"));
  EXPECT_TRUE(backend.shutdown());
}

TEST_F(FirecrackerBackendTest, TheFakeRefusesToStartWithoutABootSource) {
  vmm::firecracker::ProcessOptions o;
  o.firecracker_bin = FAKE_FIRECRACKER_BIN;
  o.id = "bare";
  o.api_sock = m_dir.file("bare.sock");
  auto vmm = vmm::firecracker::spawn_firecracker(o);
  ASSERT_TRUE(vmm) << vmm.error().to_string();
  auto api = ApiClient::for_socket(vmm->api_sock);
  auto r = api.put("/actions", {{"action_type", "InstanceStart"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "PUT /actions: 400 Cannot start microvm without kernel configuration.");
  r = api.put("/drives/fcvm-root",
              {{"drive_id", "fcvm-root"}, {"path_on_host", "/x"}, {"is_root_device", false}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "alphanumeric characters and underscores"));
  r = api.patch("/vm", {{"state", "Paused"}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "not supported before starting the microVM"));
  ASSERT_TRUE(api.put("/machine-config", {{"vcpu_count", 1}, {"mem_size_mib", 128}}));
  r = api.put("/snapshot/load",
              {{"snapshot_path", "/s"},
               {"mem_backend", {{"backend_type", "File"}, {"backend_path", "/m"}}}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "not allowed after configuring boot-specific"));
}

}  // namespace
}  // namespace fcvm::testing
