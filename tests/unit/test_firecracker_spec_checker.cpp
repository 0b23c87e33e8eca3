// The spec checker must be able to fail: good bodies pass, each kind of violation is caught and
// named.
#include <gtest/gtest.h>

#include "support/firecracker_spec.hpp"
#include "support/firecracker_test_util.hpp"

namespace fcvm::testing {
namespace {

using nlohmann::json;

::testing::AssertionResult rejects(const FirecrackerSpec& spec, const char* method,
                                   const std::string& path, const std::optional<json>& body,
                                   const std::string& expected_in_message) {
  auto r = spec.validate_request(method, path, body);
  if (r) return ::testing::AssertionFailure() << method << " " << path << " was accepted";
  if (r.error().message().find(expected_in_message) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message \"" << r.error().message() << "\" lacks \"" << expected_in_message << "\"";
  }
  return ::testing::AssertionSuccess();
}

TEST(FirecrackerSpecChecker, LoadsTheSpec) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_EQ(spec.version(), "1.16.1");
}

TEST(FirecrackerSpecChecker, AcceptsValidRequests) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(spec.validate_request("GET", "/", std::nullopt));
  EXPECT_TRUE(spec.validate_request("PUT", "/boot-source", json{{"kernel_image_path", "/k"}}));
  EXPECT_TRUE(spec.validate_request(
      "PUT", "/drives/rootfs",
      json{{"drive_id", "rootfs"},
           {"path_on_host", "/d"},
           {"is_root_device", false},
           {"is_read_only", true},
           {"cache_type", "Writeback"},
           {"io_engine", "Sync"},
           {"rate_limiter", {{"bandwidth", {{"size", 100}, {"refill_time", 10}}}}}}));
  EXPECT_TRUE(spec.validate_request("PUT", "/actions", json{{"action_type", "InstanceStart"}}));
  EXPECT_TRUE(spec.validate_request("PATCH", "/vm", json{{"state", "Paused"}}));
  EXPECT_TRUE(spec.validate_request("PUT", "/mmds", json{{"any", {{"nested", {1, 2}}}}}));
  EXPECT_TRUE(spec.validate_request(
      "PUT", "/logger", json{{"log_path", "/l"}, {"level", "Off"}, {"show_level", true}}));
  EXPECT_TRUE(spec.validate_request(
      "PUT", "/snapshot/load",
      json{{"snapshot_path", "/s"},
           {"mem_backend", {{"backend_type", "File"}, {"backend_path", "/m"}}},
           {"network_overrides", {{{"iface_id", "eth0"}, {"host_dev_name", "tap1"}}}},
           {"vsock_override", {{"uds_path", "/v"}}},
           {"resume_vm", true}}));
}

TEST(FirecrackerSpecChecker, RejectsUnknownPathsAndMethods) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(rejects(spec, "PUT", "/no-such-thing", json::object(), "no such path"));
  EXPECT_TRUE(rejects(spec, "GET", "/actions", std::nullopt, "method not allowed"));
  EXPECT_TRUE(rejects(spec, "PUT", "/drives", json::object(), "no such path"));
  EXPECT_TRUE(rejects(spec, "PUT", "/drives/a/b", json::object(), "no such path"));
}

TEST(FirecrackerSpecChecker, RejectsMissingRequiredFields) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(rejects(spec, "PUT", "/drives/root",
                      json{{"drive_id", "root"}, {"path_on_host", "/d"}},
                      "body.is_root_device: required field missing"));
  EXPECT_TRUE(rejects(spec, "PUT", "/snapshot/load",
                      json{{"snapshot_path", "/s"}, {"mem_backend", {{"backend_type", "File"}}}},
                      "body.mem_backend.backend_path: required field missing"));
  EXPECT_TRUE(rejects(spec, "PUT", "/actions", std::nullopt, "body required"));
}

TEST(FirecrackerSpecChecker, RejectsWrongTypes) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(rejects(spec, "PUT", "/machine-config",
                      json{{"vcpu_count", "2"}, {"mem_size_mib", 256}},
                      "body.vcpu_count: expected integer, got string"));
  EXPECT_TRUE(rejects(spec, "PUT", "/machine-config",
                      json{{"vcpu_count", 2}, {"mem_size_mib", 1.5}},
                      "body.mem_size_mib: expected integer"));
  EXPECT_TRUE(rejects(spec, "PUT", "/drives/root",
                      json{{"drive_id", "root"}, {"path_on_host", "/d"}, {"is_root_device", "no"}},
                      "expected boolean"));
  EXPECT_TRUE(rejects(spec, "PUT", "/mmds/config", json{{"network_interfaces", {1}}},
                      "body.network_interfaces[0]: expected string"));
  EXPECT_TRUE(
      rejects(spec, "PUT", "/mmds/config", json{{"network_interfaces", "eth0"}}, "expected array"));
  EXPECT_TRUE(rejects(spec, "PUT", "/boot-source", json::array(), "expected object"));
}

TEST(FirecrackerSpecChecker, RejectsValuesOutsideEnumsAndRanges) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(rejects(spec, "PUT", "/actions", json{{"action_type", "Start"}},
                      "\"Start\" is not one of [FlushMetrics, InstanceStart, SendCtrlAltDel]"));
  EXPECT_TRUE(rejects(spec, "PATCH", "/vm", json{{"state", "Running"}}, "is not one of"));
  EXPECT_TRUE(rejects(spec, "PUT", "/machine-config", json{{"vcpu_count", 0}, {"mem_size_mib", 1}},
                      "below the minimum 1"));
  EXPECT_TRUE(rejects(spec, "PUT", "/machine-config", json{{"vcpu_count", 33}, {"mem_size_mib", 1}},
                      "above the maximum 32"));
  EXPECT_TRUE(rejects(spec, "PUT", "/vsock", json{{"guest_cid", 2}, {"uds_path", "/v"}},
                      "below the minimum 3"));
}

TEST(FirecrackerSpecChecker, RejectsUnknownFields) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_TRUE(rejects(spec, "PUT", "/boot-source", json{{"kernel_image_path", "/k"}, {"foo", 1}},
                      "body.foo: unknown field"));
  EXPECT_TRUE(rejects(
      spec, "PUT", "/snapshot/load",
      json{{"snapshot_path", "/s"},
           {"mem_backend", {{"backend_type", "File"}, {"backend_path", "/m"}, {"x", true}}}},
      "body.mem_backend.x: unknown field"));
  EXPECT_TRUE(rejects(spec, "GET", "/", json{{"a", 1}}, "takes no body"));
}

TEST(FirecrackerSpecChecker, ValidatesAnswers) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  json info = {
      {"id", "vm1"}, {"state", "Running"}, {"vmm_version", "1.16.1"}, {"app_name", "Firecracker"}};
  EXPECT_TRUE(spec.validate_response("GET", "/", 200, info));
  info["state"] = "Booting";
  EXPECT_FALSE(spec.validate_response("GET", "/", 200, info));
  EXPECT_TRUE(spec.validate_response("PUT", "/boot-source", 400, json{{"fault_message", "x"}}));
}

TEST(FirecrackerSpecChecker, MatchesPathTemplates) {
  FCVM_LOAD_SPEC_OR_SKIP(spec);
  EXPECT_EQ(spec.match_path("/drives/fcvm_root"), "/drives/{drive_id}");
  EXPECT_EQ(spec.match_path("/network-interfaces/eth0"), "/network-interfaces/{iface_id}");
  EXPECT_EQ(spec.match_path("/"), "/");
  EXPECT_FALSE(spec.match_path("/drives/"));
}

}  // namespace
}  // namespace fcvm::testing
