#include "fake_firecracker/vmm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <regex>

#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fake_fc {

using nlohmann::json;

namespace {

constexpr const char* k_post_boot =
    "The requested operation is not supported after starting the "
    "microVM.";
constexpr const char* k_pre_boot =
    "The requested operation is not supported before starting the "
    "microVM.";

// Firecracker's message for a file it could not open, e.g. "No such file or directory (os error
// 2)".
std::string os_error(int e) { return fmt::format("{} (os error {})", std::strerror(e), e); }

std::optional<int> open_error(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return std::nullopt;
}

bool matches(const std::string& pattern, const std::string& call) {
  if (!pattern.empty() && pattern.back() == '*') {
    return call.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  }
  return pattern == call;
}

// Firecracker's checked_id: resource ids in paths are letters, digits and '_'.
bool checked_id(const std::string& id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (c != '_' && std::isalnum(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

uint32_t agent_port_from(const std::string& boot_args, uint32_t fallback) {
  std::smatch m;
  static const std::regex k_agent(R"((^|\s)fcvm\.agent=vsock:(\d+))");
  if (std::regex_search(boot_args, m, k_agent)) return static_cast<uint32_t>(std::stoul(m[2]));
  return fallback;
}

}  // namespace

HttpAnswer fault(const std::string& message) {
  return {400, json{{"fault_message", message}}.dump()};
}

FakeVmm::FakeVmm(const fcvm::testing::FirecrackerSpec& spec, VmmOptions options)
    : m_spec(spec), m_options(std::move(options)) {}

HttpAnswer FakeVmm::handle(const HttpRequest& request) {
  std::optional<json> body;
  HttpAnswer answer;
  if (!fcvm::trim(request.body).empty()) {
    json parsed = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      answer = fault(
          "An error occurred when deserializing the json body of a request: invalid "
          "JSON");
      record(request, std::nullopt, answer);
      return answer;
    }
    body = parsed;
  }
  auto call = request.method + " " + request.path;
  auto valid = m_spec.validate_request(request.method, request.path, body);
  if (!valid) {
    answer = fault(valid.error().message());
  } else if (std::any_of(m_options.fail_calls.begin(), m_options.fail_calls.end(),
                         [&](const std::string& p) { return matches(p, call); })) {
    answer = fault(m_options.fail_message);
  } else {
    answer = dispatch(request.method, request.path, body.value_or(json()));
  }
  record(request, body, answer);
  return answer;
}

HttpAnswer FakeVmm::dispatch(const std::string& method, const std::string& path, const json& body) {
  if (method == "GET") return get(path);
  auto param = [&path](const char* prefix) { return path.substr(std::strlen(prefix)); };
  if (method == "PATCH") {
    if (path == "/vm") return patch_vm(body);
    if (path.rfind("/drives/", 0) == 0) return patch_drive(param("/drives/"), body);
    if (path == "/mmds") {
      m_mmds.merge_patch(body);
      return {};
    }
    if (path == "/machine-config") {
      if (started()) return fault(k_post_boot);
      m_machine.merge_patch(body);
      return {};
    }
    return fault(fmt::format("Invalid request method and/or path: {} {}.", method, path));
  }
  // PUT
  if (path == "/actions") return action(body);
  if (path == "/mmds") {
    m_mmds = body;
    return {};
  }
  if (path == "/snapshot/create") return snapshot_create(body);
  if (path == "/snapshot/load") return snapshot_load(body);
  if (path == "/metrics" || path == "/logger") {
    const char* key = path == "/metrics" ? "metrics_path" : "log_path";
    auto& slot = path == "/metrics" ? m_metrics : m_logger;
    if (path == "/metrics" && m_metrics) return fault("Reinitialization of metrics not allowed.");
    if (body.contains(key)) {
      // Firecracker opens these files; it does not create them.
      if (auto e = open_error(body[key].get<std::string>(), O_WRONLY | O_NONBLOCK)) {
        return fault(fmt::format("{} error: Failed to open target file: {}",
                                 path == "/metrics" ? "Metrics" : "Logger", os_error(*e)));
      }
    }
    slot = body;
    return {};
  }
  if (started()) return fault(k_post_boot);
  if (path == "/machine-config") {
    m_machine = body;
    m_machine_set = true;
    return {};
  }
  if (path == "/boot-source") {
    auto kernel = body["kernel_image_path"].get<std::string>();
    if (auto e = open_error(kernel, O_RDONLY)) {
      return fault("The kernel file cannot be opened: " + os_error(*e));
    }
    if (body.contains("initrd_path")) {
      if (auto e = open_error(body["initrd_path"].get<std::string>(), O_RDONLY)) {
        return fault("The initrd file cannot be opened: " + os_error(*e));
      }
    }
    m_boot_source = body;
    return {};
  }
  if (path == "/serial") {
    m_serial = body;
    return {};
  }
  if (path.rfind("/drives/", 0) == 0) return put_drive(param("/drives/"), body);
  if (path.rfind("/network-interfaces/", 0) == 0) {
    return put_network(param("/network-interfaces/"), body);
  }
  if (path == "/vsock") return put_vsock(body);
  if (path == "/mmds/config") return put_mmds_config(body);
  return fault(fmt::format("Invalid request method and/or path: {} {}.", method, path));
}

HttpAnswer FakeVmm::put_drive(const std::string& id, const json& body) {
  if (!checked_id(id)) {
    return fault("API Resource IDs can only contain alphanumeric characters and underscores.");
  }
  if (body["drive_id"] != id)
    return fault("The id from the path does not match the id from the body!");
  if (!body.contains("path_on_host")) return fault("Unable to create the block device: no path");
  auto path = body["path_on_host"].get<std::string>();
  bool read_only = body.value("is_read_only", false);
  if (auto e = open_error(path, read_only ? O_RDONLY : O_RDWR)) {
    return fault(fmt::format("Unable to create the virtio block device: BackingFile({}, \"{}\")",
                             os_error(*e), path));
  }
  bool root = body["is_root_device"].get<bool>();
  for (auto& d : m_drives) {
    if (d["drive_id"] == id) {
      d = body;
      return {};
    }
    if (root && d["is_root_device"].get<bool>())
      return fault("A root block device already exists!");
  }
  m_drives.push_back(body);
  return {};
}

HttpAnswer FakeVmm::patch_drive(const std::string& id, const json& body) {
  if (!started()) return fault(k_pre_boot);
  if (body["drive_id"] != id)
    return fault("The id from the path does not match the id from the body!");
  for (auto& d : m_drives) {
    if (d["drive_id"] != id) continue;
    if (body.contains("path_on_host")) {
      auto path = body["path_on_host"].get<std::string>();
      if (auto e = open_error(path, d.value("is_read_only", false) ? O_RDONLY : O_RDWR)) {
        return fault(fmt::format("Unable to patch the block device: BackingFile({}, \"{}\")",
                                 os_error(*e), path));
      }
      d["path_on_host"] = path;
    }
    return {};
  }
  return fault(fmt::format("Unable to patch the block device: drive {} not found", id));
}

HttpAnswer FakeVmm::put_network(const std::string& id, const json& body) {
  if (!checked_id(id)) {
    return fault("API Resource IDs can only contain alphanumeric characters and underscores.");
  }
  if (body["iface_id"] != id)
    return fault("The id from the path does not match the id from the body!");
  static const std::regex k_mac("^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$");
  if (body.contains("guest_mac") &&
      !std::regex_match(body["guest_mac"].get<std::string>(), k_mac)) {
    return fault(fmt::format("Invalid MAC address: {}", body["guest_mac"].get<std::string>()));
  }
  for (auto& n : m_networks) {
    if (n["iface_id"] == id) {
      n = body;
      return {};
    }
    if (n["host_dev_name"] == body["host_dev_name"]) {
      return fault("Could not create the network device: the host device is already in use");
    }
  }
  m_networks.push_back(body);
  return {};
}

HttpAnswer FakeVmm::put_vsock(const json& body) {
  auto uds = body["uds_path"].get<std::string>();
  // Like Firecracker, bind at once: an existing file is "Address in use".
  if (::access(uds.c_str(), F_OK) == 0) {
    return fault(
        fmt::format("Cannot create backend for vsock device: UnixBind({})", os_error(EADDRINUSE)));
  }
  auto listener = fcvm::unix_listen(uds);
  if (!listener) {
    return fault("Cannot create backend for vsock device: " + listener.error().to_string());
  }
  if (m_vsock) ::unlink((*m_vsock)["uds_path"].get<std::string>().c_str());
  m_vsock_listener = std::move(*listener);
  m_vsock = body;
  return {};
}

HttpAnswer FakeVmm::put_mmds_config(const json& body) {
  if (body["network_interfaces"].empty()) {
    return fault("The list of network interface IDs that allow forwarding MMDS requests is empty.");
  }
  for (const auto& id : body["network_interfaces"]) {
    bool found = std::any_of(m_networks.begin(), m_networks.end(),
                             [&](const json& n) { return n["iface_id"] == id; });
    if (!found) {
      return fault(
          "The list of network interface IDs provided contains at least one ID that does "
          "not correspond to any existing network interface.");
    }
  }
  m_mmds_config = body;
  return {};
}

HttpAnswer FakeVmm::action(const json& body) {
  auto type = body["action_type"].get<std::string>();
  if (type == "InstanceStart") {
    if (started()) return fault(k_post_boot);
    if (!m_boot_source) return fault("Cannot start microvm without kernel configuration.");
    m_state = "Running";
    start_guest(false);
    return {};
  }
  if (type == "SendCtrlAltDel") {
    if (!started()) return fault(k_pre_boot);
    m_powered_off = true;  // the guest reboots, which ends Firecracker (reboot=k)
    return {};
  }
  // FlushMetrics
  if (!m_metrics) return fault("Metrics system not initialized.");
  return {};
}

HttpAnswer FakeVmm::patch_vm(const json& body) {
  if (!started()) return fault(k_pre_boot);
  bool pause = body["state"] == "Paused";
  m_state = pause ? "Paused" : "Running";
  m_guest.set_paused(pause);
  return {};
}

void FakeVmm::start_guest(bool paused) {
  GuestOptions options = m_options.guest;
  if (m_boot_source) {
    options.agent_port =
        agent_port_from(m_boot_source->value("boot_args", std::string()), options.agent_port);
  }
  if (m_vsock_listener && !m_guest.started()) {
    m_guest.start(std::move(m_vsock_listener), options, paused);
  }
}

json FakeVmm::full_config() const {
  json j = {
      {"machine-config", m_machine}, {"drives", m_drives}, {"network-interfaces", m_networks}};
  auto put = [&j](const char* key, const std::optional<json>& v) {
    if (v) j[key] = *v;
  };
  put("boot-source", m_boot_source);
  put("logger", m_logger);
  put("metrics", m_metrics);
  put("vsock", m_vsock);
  put("mmds-config", m_mmds_config);
  return j;
}

HttpAnswer FakeVmm::get(const std::string& path) {
  if (path == "/") {
    return {200, json{{"id", m_options.id},
                      {"state", m_state},
                      {"vmm_version", m_options.version},
                      {"app_name", "Firecracker"}}
                     .dump()};
  }
  if (path == "/version") return {200, json{{"firecracker_version", m_options.version}}.dump()};
  if (path == "/machine-config") return {200, m_machine.dump()};
  if (path == "/vm/config") return {200, full_config().dump()};
  if (path == "/mmds") return {200, m_mmds.dump()};
  return fault(fmt::format("Invalid request method and/or path: GET {}.", path));
}

void FakeVmm::record(const HttpRequest& request, const std::optional<json>& body,
                     const HttpAnswer& answer) const {
  if (m_options.record_path.empty()) return;
  json line = {{"method", request.method},
               {"path", request.path},
               {"body", body.value_or(json())},
               {"status", answer.status},
               {"pid", ::getpid()}};
  if (answer.status >= 400) {
    json parsed = json::parse(answer.body, nullptr, false);
    if (parsed.is_object()) line["fault_message"] = parsed.value("fault_message", "");
  }
  // One write() per line on an O_APPEND descriptor: lines stay whole, nothing is buffered.
  int fd = ::open(m_options.record_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  auto text = line.dump() + "\n";
  ssize_t ignored = ::write(fd, text.data(), text.size());
  (void)ignored;
  ::close(fd);
}

}  // namespace fake_fc
