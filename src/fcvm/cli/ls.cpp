// fcvm ls [-a] [--json] [-q]
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/format.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/describe.hpp"
#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/images.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {
namespace {

std::string status_text(const state::VmRecord& r, int64_t now) {
  switch (r.status) {
    case state::VmStatus::kExited: {
      std::string code = r.exit_code ? fmt::format("({})", *r.exit_code) : std::string("(error)");
      return fmt::format("exited {} {} ago", code,
                         human_duration(now - r.finished_ms.value_or(now)));
    }
    case state::VmStatus::kRunning: {
      auto up = fmt::format("up {}", human_duration(now - r.started_ms.value_or(now)));
      return r.restart_count > 0 ? fmt::format("{} ({} restarts)", up, r.restart_count) : up;
    }
    case state::VmStatus::kRestarting: {
      std::string code = r.exit_code ? fmt::format("({})", *r.exit_code) : std::string("(error)");
      return fmt::format("restarting {} #{}", code, r.restart_count);
    }
    case state::VmStatus::kPaused:
      return fmt::format("up {} (paused)", human_duration(now - r.started_ms.value_or(now)));
    default:
      return std::string(state::status_name(r.status));
  }
}

}  // namespace

Command add_ls(CLI::App& app) {
  struct Args {
    bool all = false;
    bool json = false;
    bool quiet = false;
    std::vector<std::string> filters;
    std::string format;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("ls", "List VMs (running ones; -a for all)");
  cmd->alias("ps");
  cmd->add_flag("-a,--all", args->all, "Show all VMs, not only running ones");
  cmd->add_flag("--json", args->json, "Print JSON (an array of the same objects as inspect)");
  cmd->add_flag("-q,--quiet", args->quiet, "Print ids only");
  cmd->add_option("--format", args->format,
                  "json, table, or a template such as '{{.Name}} {{.Status}}' (\"table \" before "
                  "it adds a header). Fields: Name, ID, Image, Status, Created, Backend, Ports, "
                  "Labels, ExitCode, Restarts");
  cmd->add_option("-f,--filter", args->filters,
                  "Show only VMs that match: label=KEY[=VALUE], name=TEXT, id=PREFIX, "
                  "status=STATUS (repeatable; one key: any matches, labels: all match)")
      ->allow_extra_args(false);
  return {cmd, [args]() -> int {
            static const std::vector<std::string> fields = {
                "Name",    "ID",    "Image",  "Status",   "Created",
                "Backend", "Ports", "Labels", "ExitCode", "Restarts"};
            auto format = parse_output_format(args->format, fields);
            if (!format) return report_error(format.error().wrap("ls"));
            if (format->kind == OutputFormat::Kind::kJson) args->json = true;
            auto filter = vm::parse_vm_filters(args->filters);
            if (!filter) return report_error(filter.error().wrap("ls"));
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("ls"));
            auto vms = vm::list_vms(*s.store);
            if (!vms) return report_error(vms.error().wrap("ls"));
            vm::reconcile_images(*s.ctx, *s.store);
            auto now = state::now_ms();
            std::vector<const state::VmRecord*> shown;
            for (const auto& r : *vms) {
              // A status filter names what to show: it implies -a.
              bool listed = args->all || !filter->statuses.empty() || vm::is_active(r);
              if (listed && vm::matches(*filter, r)) shown.push_back(&r);
            }
            if (args->json) {
              auto arr = nlohmann::json::array();
              for (const auto* r : shown) arr.push_back(vm::vm_json(*r));
              fmt::print("{}\n", arr.dump(2));
              return k_exit_ok;
            }
            if (format->kind == OutputFormat::Kind::kTemplate) {
              std::string out;
              if (format->header) out += render_header(format->row_template) + "\n";
              for (const auto* r : shown) {
                out += render_row(format->row_template,
                                  [&](const std::string& field) {
                                    if (field == "Name") return r->name;
                                    if (field == "ID") return r->id.substr(0, 12);
                                    if (field == "Image") return r->image;
                                    if (field == "Status") return status_text(*r, now);
                                    if (field == "Created")
                                      return human_duration(now - r->created_ms) + " ago";
                                    if (field == "Backend") return r->backend;
                                    if (field == "Ports") return r->ports;
                                    if (field == "Restarts") {
                                      return std::to_string(r->restart_count);
                                    }
                                    if (field == "ExitCode") {
                                      return r->exit_code ? std::to_string(*r->exit_code)
                                                          : std::string();
                                    }
                                    // Labels: K=V,K=V as podman prints them.
                                    std::string labels;
                                    auto options = vm::options_from_json(r->options_json);
                                    if (options) {
                                      for (const auto& [k, v] : options->labels) {
                                        labels += (labels.empty() ? "" : ",") + k + "=" + v;
                                      }
                                    }
                                    return labels;
                                  }) +
                       "\n";
              }
              fmt::print("{}", out);
              return k_exit_ok;
            }
            if (args->quiet) {
              std::string out;
              for (const auto* r : shown) out += r->id.substr(0, 12) + "\n";
              fmt::print("{}", out);
              return k_exit_ok;
            }
            std::string out = fmt::format("{:<20} {:<12} {:<32} {:<24} {:<12} {:<11} {}\n", "NAME",
                                          "ID", "IMAGE", "STATUS", "CREATED", "BACKEND", "PORTS");
            for (const auto* r : shown) {
              auto image =
                  r->image.size() > 32 ? "..." + r->image.substr(r->image.size() - 29) : r->image;
              out += fmt::format("{:<20} {:<12} {:<32} {:<24} {:<12} {:<11} {}\n", r->name,
                                 r->id.substr(0, 12), image, status_text(*r, now),
                                 human_duration(now - r->created_ms) + " ago",
                                 r->backend.empty() ? "-" : r->backend, r->ports);
            }
            fmt::print("{}", out);
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
