// Every model's JSON against the official spec: with only the required fields (optional ones must
// be left out) and with every field set. Also the pure helpers of the backend.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/vmm/firecracker/api_client.hpp"
#include "fcvm/vmm/firecracker/backend.hpp"
#include "fcvm/vmm/firecracker/models.hpp"
#include "support/firecracker_test_util.hpp"

namespace fcvm::vmm::firecracker {
namespace {

using nlohmann::json;
using testing::FirecrackerSpec;

void expect_valid(const FirecrackerSpec& spec, const char* method, const std::string& path,
                  const json& body) {
  auto r = spec.validate_request(method, path, body);
  EXPECT_TRUE(r) << r.error().message() << "\n" << body.dump();
}

TEST(FirecrackerModels, MinimalBodiesOmitOptionalFieldsAndMatchTheSpec) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  Logger logger{"/l"};
  EXPECT_EQ(logger.to_json(), json({{"log_path", "/l"}}));
  expect_valid(spec, "PUT", Logger::path(), logger.to_json());
  expect_valid(spec, "PUT", Metrics::path(), Metrics{"/m"}.to_json());
  MachineConfiguration machine;
  EXPECT_EQ(machine.to_json(), json({{"vcpu_count", 1}, {"mem_size_mib", 128}}));
  expect_valid(spec, "PUT", MachineConfiguration::path(), machine.to_json());
  BootSource boot{"/k"};
  EXPECT_EQ(boot.to_json(), json({{"kernel_image_path", "/k"}}));
  expect_valid(spec, "PUT", BootSource::path(), boot.to_json());
  EXPECT_EQ(SerialDevice{}.to_json(), json::object());
  expect_valid(spec, "PUT", SerialDevice::path(), SerialDevice{}.to_json());
  Drive drive{"root", "/d"};
  EXPECT_EQ(drive.to_json(),
            json({{"drive_id", "root"}, {"path_on_host", "/d"}, {"is_root_device", false}}));
  expect_valid(spec, "PUT", drive.path(), drive.to_json());
  NetworkInterface net{"eth0", "tap0"};
  EXPECT_EQ(net.to_json(), json({{"iface_id", "eth0"}, {"host_dev_name", "tap0"}}));
  expect_valid(spec, "PUT", net.path(), net.to_json());
  expect_valid(spec, "PUT", Vsock::path(), Vsock{3, "/v"}.to_json());
  MmdsConfig mmds{{"eth0"}};
  EXPECT_EQ(mmds.to_json(), json({{"network_interfaces", {"eth0"}}}));
  expect_valid(spec, "PUT", MmdsConfig::path(), mmds.to_json());
  SnapshotCreateParams create{"/mem", "/state"};
  EXPECT_EQ(create.to_json(), json({{"mem_file_path", "/mem"}, {"snapshot_path", "/state"}}));
  expect_valid(spec, "PUT", SnapshotCreateParams::path(), create.to_json());
  SnapshotLoadParams load{"/state", {MemoryBackend::Type::kFile, "/mem"}};
  EXPECT_EQ(load.to_json(),
            json({{"snapshot_path", "/state"},
                  {"mem_backend", {{"backend_type", "File"}, {"backend_path", "/mem"}}}}));
  expect_valid(spec, "PUT", SnapshotLoadParams::path(), load.to_json());
}

TEST(FirecrackerModels, FullBodiesMatchTheSpec) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  expect_valid(spec, "PUT", Logger::path(),
               Logger{"/l", "Debug", true, false, "api_server"}.to_json());
  expect_valid(spec, "PUT", MachineConfiguration::path(),
               MachineConfiguration{2, 512, false, true, "2M"}.to_json());
  expect_valid(spec, "PUT", BootSource::path(), BootSource{"/k", "/i", "console=ttyS0"}.to_json());
  expect_valid(spec, "PUT", SerialDevice::path(), SerialDevice{"/console.log"}.to_json());
  Drive drive{"data_1", "/d", true, true, "0eaa91a0-01", "Writeback", "Async"};
  expect_valid(spec, "PUT", drive.path(), drive.to_json());
  NetworkInterface net{"eth0", "tap0", "06:00:0a:00:02:0f", 1500};
  expect_valid(spec, "PUT", net.path(), net.to_json());
  expect_valid(spec, "PUT", MmdsConfig::path(),
               MmdsConfig{{"eth0"}, "V2", "169.254.169.254", false}.to_json());
  for (auto type :
       {ActionType::kInstanceStart, ActionType::kSendCtrlAltDel, ActionType::kFlushMetrics}) {
    expect_valid(spec, "PUT", InstanceActionInfo::path(), InstanceActionInfo{type}.to_json());
  }
  for (auto state : {VmState::kPaused, VmState::kResumed}) {
    expect_valid(spec, "PATCH", Vm::path(), Vm{state}.to_json());
  }
  for (auto type : {SnapshotType::kFull, SnapshotType::kDiff}) {
    expect_valid(spec, "PUT", SnapshotCreateParams::path(),
                 SnapshotCreateParams{"/m", "/s", type}.to_json());
  }
  SnapshotLoadParams load{
      "/s", {MemoryBackend::Type::kUffd, "/uffd.sock"}, true, true, {{"eth0", "tap9"}}, "/v.sock"};
  expect_valid(spec, "PUT", SnapshotLoadParams::path(), load.to_json());
}

// Same keys at every object level and the same JSON types (arrays: their first elements).
void expect_same_shape(const json& want, const json& got, const std::string& where) {
  ASSERT_EQ(want.type_name(), got.type_name()) << where;
  if (want.is_object()) {
    for (const auto& [key, value] : want.items()) {
      ASSERT_TRUE(got.contains(key)) << where << "." << key << " missing";
      expect_same_shape(value, got[key], where + "." + key);
    }
    for (const auto& [key, value] : got.items()) {
      EXPECT_TRUE(want.contains(key)) << where << "." << key << " not in the template";
    }
  } else if (want.is_array() && !want.empty() && !got.empty()) {
    expect_same_shape(want[0], got[0], where + "[0]");
  }
}

TEST(FirecrackerModels, MmdsContentHasTheShapeOfTheTemplate) {
  auto text = read_file(std::string(FCVM_SOURCE_DIR) + "/templates/mmds-plan-example.json");
  ASSERT_TRUE(text) << text.error().to_string();
  json example = json::parse(*text);
  agent_proto::Plan plan;
  plan.vm_id = "0123456789abcdef";
  plan.name = plan.hostname = "web1";
  plan.image.ref = "docker.io/library/busybox:latest";
  plan.image.archive_serial = "fcvm-image";
  plan.image.archive_format = "oci-archive";
  plan.image.insecure_registries = {"10.0.2.2:5000"};
  plan.image.mirrors.push_back({"127.0.0.1:5000", "10.0.2.2:5000", true});
  plan.command = {"echo", "hi"};
  plan.entrypoint = {"/bin/sh"};
  plan.env = {"A=1"};
  plan.workdir = "/";
  plan.network = {"eth0", "10.0.2.15/24", "10.0.2.2", {"10.0.2.3"}, 1500};
  plan.time_unix_ns = 1;
  auto document = mmds_document(agent_proto::to_json(plan).dump());
  ASSERT_TRUE(document) << document.error().to_string();
  expect_same_shape(example, *document, "mmds");
  // And the template is itself a plan the guest accepts.
  EXPECT_TRUE(agent_proto::plan_from_json(example["fcvm"]["plan"]));
  EXPECT_FALSE(mmds_document("[1,2]"));
  EXPECT_FALSE(mmds_document("{\"no\": \"plan\"}"));
}

TEST(FirecrackerModels, BootArgsAddTheAgentTransportOnce) {
  VmSpec spec;
  spec.kernel_args = {"fcvm.root=123", "quiet"};
  EXPECT_EQ(boot_args(spec, 1024),
            "console=ttyS0 reboot=k panic=1 pci=off fcvm.agent=vsock:1024 fcvm.root=123 quiet");
  spec.kernel_args = {"fcvm.agent=vsock:2000"};
  EXPECT_EQ(boot_args(spec, 1024), "console=ttyS0 reboot=k panic=1 pci=off fcvm.agent=vsock:2000");
  // A plan that goes to MMDS (it needs the network interface) is announced to the agent.
  spec.mmds_json = R"({"version": 1})";
  EXPECT_EQ(boot_args(spec, 1024), "console=ttyS0 reboot=k panic=1 pci=off fcvm.agent=vsock:2000");
  spec.net = NetSpec{"tap0", ""};
  EXPECT_EQ(boot_args(spec, 1024),
            "console=ttyS0 reboot=k panic=1 pci=off fcvm.mmds=1 fcvm.agent=vsock:2000");
}

TEST(FirecrackerModels, DrivesAreRootFirstWithValidUniqueIds) {
  std::vector<DiskSpec> disks = {{"/data", DiskFormat::kRaw, false, "fcvm-data", false},
                                 {"/root", DiskFormat::kRaw, false, "fcvm-root", true},
                                 {"/x", DiskFormat::kRaw, true, "fcvm.data", false},
                                 {"/y", DiskFormat::kRaw, true, "", false}};
  auto planned = plan_drives(disks);
  ASSERT_EQ(planned.size(), 4u);
  EXPECT_EQ(planned[0].drive_id, "fcvm_root");
  EXPECT_EQ(planned[0].disk.path, "/root");
  EXPECT_EQ(planned[1].drive_id, "fcvm_data");
  EXPECT_EQ(planned[2].drive_id, "fcvm_data_2");
  EXPECT_EQ(planned[3].drive_id, "disk3");
  for (const auto& p : planned) EXPECT_TRUE(valid_resource_id(p.drive_id)) << p.drive_id;
}

TEST(FirecrackerModels, DiskSerialIsDerivedFromTheBackingFile) {
  testing::TempDir dir;
  auto path = dir.file("disk.raw");
  testing::write_text(path, std::string(4096, '\0'));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  auto want = fmt::format("{}{}{}", st.st_dev, st.st_rdev, st.st_ino).substr(0, 20);
  auto serial = firecracker_disk_serial(path);
  ASSERT_TRUE(serial) << serial.error().to_string();
  EXPECT_EQ(*serial, want);
  FirecrackerBackend backend;
  EXPECT_EQ(*backend.guest_disk_serial({path, DiskFormat::kRaw, false, "fcvm-root", true}), want);
  EXPECT_FALSE(firecracker_disk_serial(dir.file("missing")));
}

TEST(FirecrackerModels, FaultTextIsFirecrackersMessageVerbatim) {
  EXPECT_EQ(fault_text(R"({"fault_message": "Invalid kernel path \"/x\": No such file"})"),
            "Invalid kernel path \"/x\": No such file");
  EXPECT_EQ(fault_text("  plain text\n"), "plain text");
  EXPECT_EQ(fault_text(""), "(empty answer)");
}

TEST(FirecrackerModels, Ids) {
  EXPECT_TRUE(valid_resource_id("fcvm_root1"));
  EXPECT_FALSE(valid_resource_id("fcvm-root"));
  EXPECT_FALSE(valid_resource_id(""));
  EXPECT_EQ(to_resource_id("fcvm-root.1"), "fcvm_root_1");
  EXPECT_TRUE(valid_instance_id("3f9c2a7e-51d0"));
  EXPECT_FALSE(valid_instance_id("a_b"));
  EXPECT_FALSE(valid_instance_id(std::string(65, 'a')));
}

}  // namespace
}  // namespace fcvm::vmm::firecracker
