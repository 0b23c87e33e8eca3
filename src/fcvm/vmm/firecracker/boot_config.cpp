// Pure helpers of FirecrackerBackend: kernel command line, MMDS document, drive ids and serials.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vmm/firecracker/backend.hpp"
#include "fcvm/vmm/firecracker/models.hpp"

namespace fcvm::vmm::firecracker {

std::string boot_args(const VmSpec& spec, uint32_t agent_port) {
  std::string args = k_base_boot_args;
  bool has_agent = false;
  for (const auto& a : spec.kernel_args) has_agent = has_agent || a.rfind("fcvm.agent=", 0) == 0;
  if (!has_agent) args += fmt::format(" fcvm.agent=vsock:{}", agent_port);
  // The plan is in MMDS (configure() puts it there when the VM has a network interface).
  if (spec.net && !spec.mmds_json.empty()) args += " fcvm.mmds=1";
  for (const auto& a : spec.kernel_args) {
    if (!a.empty()) args += " " + a;
  }
  return args;
}

Result<nlohmann::json> mmds_document(const std::string& plan_json) {
  auto plan = nlohmann::json::parse(plan_json, nullptr, /*allow_exceptions=*/false);
  if (plan.is_discarded() || !plan.is_object()) {
    return fail(ErrorCode::kInvalidInput, "MMDS content is not a JSON object");
  }
  // The same check the guest applies: it must be a run plan.
  auto parsed = agent_proto::plan_from_json(plan);
  if (!parsed) return fail(parsed.error().wrap("MMDS content"));
  return nlohmann::json{{"fcvm", {{"plan", plan}}}};
}

Result<std::string> firecracker_disk_serial(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail_errno(fmt::format("stat {}", path));
  // Firecracker answers VIRTIO_BLK_T_GET_ID with these three numbers in decimal, cut to
  // VIRTIO_BLK_ID_BYTES (20); the guest kernel shows it up to the first NUL.
  auto id = fmt::format("{}{}{}", static_cast<uint64_t>(st.st_dev),
                        static_cast<uint64_t>(st.st_rdev), static_cast<uint64_t>(st.st_ino));
  if (id.size() > 20) id.resize(20);
  return id;
}

std::vector<PlannedDrive> plan_drives(const std::vector<DiskSpec>& disks) {
  std::vector<DiskSpec> ordered = disks;
  std::stable_partition(ordered.begin(), ordered.end(), [](const DiskSpec& d) { return d.root; });
  std::vector<PlannedDrive> planned;
  std::set<std::string> used;
  for (size_t i = 0; i < ordered.size(); ++i) {
    auto id =
        ordered[i].serial.empty() ? fmt::format("disk{}", i) : to_resource_id(ordered[i].serial);
    if (used.count(id) != 0) id += fmt::format("_{}", i);
    used.insert(id);
    planned.push_back({id, ordered[i]});
  }
  return planned;
}

}  // namespace fcvm::vmm::firecracker
