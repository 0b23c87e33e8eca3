#pragma once
// The fake Firecracker's VMM: answers API requests the way Firecracker does. Every request is
// first checked against the official spec (400 with a fault_message on a violation), then against
// Firecracker's rules (pre-boot-only resources, InstanceStart needs a boot source, files must
// exist, snapshot load only on a fresh process, ...). Every call is recorded as one JSON line:
//   {"method":"PUT","path":"/boot-source","body":{...},"status":204,"pid":1234}
// Failure injection: calls listed in FAKE_FC_FAIL ("PUT /boot-source,PUT /drives/*") answer 400
// with FAKE_FC_FAIL_MESSAGE (default "injected failure").
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fake_firecracker/guest.hpp"
#include "fake_firecracker/http.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "support/firecracker_spec.hpp"

namespace fake_fc {

// The version the fake plays (FAKE_FC_VERSION): the spec's by default; "1.14.2" plays v1.14's
// dialect too (PUT /snapshot/load without vsock_override and clock_realtime, as the real v1.14.2
// answers).
inline constexpr const char* k_default_version = "1.16.1";

struct VmmOptions {
  std::string id = "anonymous-instance";
  std::string record_path{};
  std::vector<std::string> fail_calls{};
  std::string fail_message = "injected failure";
  std::string version = k_default_version;
  GuestOptions guest{};  // agent_port is replaced by fcvm.agent=vsock:N from the boot args
};

class FakeVmm {
 public:
  FakeVmm(const fcvm::testing::FirecrackerSpec& spec, VmmOptions options);

  HttpAnswer handle(const HttpRequest& request);
  // Set once the VM powered off (SendCtrlAltDel); the guest thread signals its own power-off
  // through guest().poweroff_fd().
  bool powered_off() const { return m_powered_off; }
  const FakeGuest& guest() const { return m_guest; }

 private:
  using json = nlohmann::json;
  HttpAnswer dispatch(const std::string& method, const std::string& path, const json& body);
  HttpAnswer put_drive(const std::string& id, const json& body);
  HttpAnswer patch_drive(const std::string& id, const json& body);
  HttpAnswer put_network(const std::string& id, const json& body);
  HttpAnswer put_vsock(const json& body);
  HttpAnswer put_mmds_config(const json& body);
  HttpAnswer action(const json& body);
  HttpAnswer patch_vm(const json& body);
  HttpAnswer snapshot_create(const json& body);
  HttpAnswer snapshot_load(const json& body);
  HttpAnswer get(const std::string& path);
  void start_guest(bool paused);
  json full_config() const;
  bool started() const { return m_state != "Not started"; }
  bool older_than_1_16() const {
    int major = 0, minor = 0;
    return std::sscanf(m_options.version.c_str(), "%d.%d", &major, &minor) == 2 &&
           (major < 1 || (major == 1 && minor < 16));
  }
  void record(const HttpRequest& request, const std::optional<json>& body,
              const HttpAnswer& answer) const;

  const fcvm::testing::FirecrackerSpec& m_spec;
  VmmOptions m_options;
  std::string m_state = "Not started";
  bool m_powered_off = false;
  // Configuration, keyed like GET /vm/config answers it.
  std::optional<json> m_logger, m_metrics, m_boot_source, m_serial, m_vsock, m_mmds_config;
  json m_machine = {{"vcpu_count", 1},
                    {"mem_size_mib", 128},
                    {"smt", false},
                    {"track_dirty_pages", false},
                    {"huge_pages", "None"}};
  bool m_machine_set = false;
  std::vector<json> m_drives;
  std::vector<json> m_networks;
  json m_mmds = json::object();
  fcvm::UniqueFd m_vsock_listener;
  FakeGuest m_guest;
};

// Firecracker's error body.
HttpAnswer fault(const std::string& message);

}  // namespace fake_fc
