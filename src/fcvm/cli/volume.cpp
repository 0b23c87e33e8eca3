// fcvm volume sync VM...
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {
namespace {

Result<size_t> sync_one(Session& s, const std::string& ref) {
  auto rec = resolve(s, ref);
  if (!rec) return tl::unexpected<Error>(rec.error());
  if (!vm::is_active(*rec)) {
    return fail(ErrorCode::kInvalidInput, fmt::format("VM {} is not running", rec->name));
  }
  FCVM_TRY_ASSIGN(auto client, vm::ControlClient::connect(*rec));
  FCVM_TRY_ASSIGN(auto ok, client.call(vm::control::VolumeSync{}));
  return static_cast<size_t>(ok.count.value_or(0));
}

}  // namespace

Command add_volume(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("volume", "Volumes of running VMs");
  cmd->require_subcommand(1);
  auto* sync = cmd->add_subcommand(
      "sync",
      "Write the block volumes of host directories back now, while the VM runs (the guest's "
      "file system is frozen for the moment its image is copied)");
  sync->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("volume sync"));
            int rc = k_exit_ok;
            for (const auto& ref : *refs) {
              auto n = sync_one(s, ref);
              if (!n) {
                rc = std::max(rc, report_error(n.error().wrap("volume sync " + ref)));
                continue;
              }
              fmt::print("{}: {} volume(s) written back\n", ref, *n);
            }
            return rc;
          }};
}

}  // namespace fcvm::cli
