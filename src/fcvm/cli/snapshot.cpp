// fcvm snapshot create VM NAME | ls [--json] [-q] [-f F] [--format F] | inspect NAME... |
// rm [-f] NAME...
#include "fcvm/vm/snapshot.hpp"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/format.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/describe.hpp"
#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {
namespace {

// A missing snapshot named on the command line is bad input (exit 2).
Error not_found_is_usage(Error e) {
  if (e.code() == ErrorCode::kNotFound) return Error(ErrorCode::kInvalidInput, e.message());
  return e;
}

int create(const std::string& vm_ref, const std::string& name) {
  if (auto r = vm::validate_snapshot_name(name); !r) {
    return report_error(r.error().wrap("snapshot create"));
  }
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error());
  auto who = fmt::format("snapshot create {} {}", vm_ref, name);
  auto rec = resolve(s, vm_ref);
  if (!rec) return report_error(not_found_is_usage(rec.error()).wrap(who));
  if (auto r = vm::check_snapshot_name_free(*s.store, name); !r)
    return report_error(r.error().wrap(who));
  if (!vm::is_active(*rec)) {
    return report_error(
        Error(ErrorCode::kInvalidInput, fmt::format("VM {} is not running", rec->name)).wrap(who));
  }
  auto client = vm::ControlClient::connect(*rec);
  if (!client) return report_error(client.error().wrap(who));
  auto made = client->call(vm::control::Snapshot{name, false});
  if (!made) return report_error(made.error().wrap(who));
  fmt::print("{}\n", made->id);
  return k_exit_ok;
}

int list(bool json, bool quiet, const std::vector<std::string>& filters,
         const std::string& format_text) {
  static const std::vector<std::string> fields = {"Name",    "ID",   "Image",  "Source",
                                                  "Backend", "Size", "Created"};
  auto format = parse_output_format(format_text, fields);
  if (!format) return report_error(format.error().wrap("snapshot ls"));
  if (format->kind == OutputFormat::Kind::kJson) json = true;
  auto filter = vm::parse_field_filters(filters, {"name", "id", "image", "source"});
  if (!filter) return report_error(filter.error().wrap("snapshot ls"));
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("snapshot ls"));
  auto all = vm::list_snapshots(*s.store);
  if (!all) return report_error(all.error().wrap("snapshot ls"));
  std::vector<state::SnapshotRecord> snaps;
  for (auto& snap : *all) {
    bool shown = vm::matches(*filter, [&](const std::string& key, const std::string& value) {
      if (key == "name") return snap.name.find(value) != std::string::npos;
      if (key == "id") return snap.id.rfind(value, 0) == 0;
      if (key == "image") return snap.image.find(value) != std::string::npos;
      return snap.source_name == value || snap.source_id.rfind(value, 0) == 0;  // source
    });
    if (shown) snaps.push_back(std::move(snap));
  }
  if (json) {
    auto arr = nlohmann::json::array();
    for (const auto& snap : snaps) arr.push_back(vm::snapshot_json(*s.store, snap));
    fmt::print("{}\n", arr.dump(2));
    return k_exit_ok;
  }
  auto now = state::now_ms();
  std::string out;
  if (format->kind == OutputFormat::Kind::kTemplate) {
    if (format->header) out += render_header(format->row_template) + "\n";
    for (const auto& snap : snaps) {
      out += render_row(format->row_template,
                        [&](const std::string& field) -> std::string {
                          if (field == "Name") return snap.name;
                          if (field == "ID") return snap.id.substr(0, 12);
                          if (field == "Image") return snap.image;
                          if (field == "Source") return snap.source_name;
                          if (field == "Backend") return snap.backend;
                          if (field == "Size") return human_size(snap.size_bytes);
                          return human_duration(now - snap.created_ms) + " ago";  // Created
                        }) +
             "\n";
    }
    fmt::print("{}", out);
    return k_exit_ok;
  }
  if (!quiet) {
    out = fmt::format("{:<20} {:<12} {:<32} {:<20} {:<11} {:<10} {}\n", "NAME", "ID", "IMAGE",
                      "SOURCE", "BACKEND", "SIZE", "CREATED");
  }
  for (const auto& snap : snaps) {
    if (quiet) {
      out += snap.name + "\n";
      continue;
    }
    auto image =
        snap.image.size() > 32 ? "..." + snap.image.substr(snap.image.size() - 29) : snap.image;
    out += fmt::format("{:<20} {:<12} {:<32} {:<20} {:<11} {:<10} {}\n", snap.name,
                       snap.id.substr(0, 12), image, snap.source_name, snap.backend,
                       human_size(snap.size_bytes), human_duration(now - snap.created_ms) + " ago");
  }
  fmt::print("{}", out);
  return k_exit_ok;
}

int inspect(const std::vector<std::string>& refs) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("snapshot inspect"));
  auto arr = nlohmann::json::array();
  int rc = k_exit_ok;
  for (const auto& ref : refs) {
    auto snap = vm::find_snapshot(*s.store, ref);
    if (!snap) {
      rc = std::max(rc, report_error(not_found_is_usage(snap.error()).wrap("snapshot inspect")));
      continue;
    }
    arr.push_back(vm::snapshot_json(*s.store, *snap));
  }
  if (!arr.empty()) fmt::print("{}\n", arr.dump(2));
  return rc;
}

int remove(const std::vector<std::string>& refs, bool force) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("snapshot rm"));
  int rc = k_exit_ok;
  for (const auto& ref : refs) {
    auto who = "snapshot rm " + ref;
    auto snap = vm::find_snapshot(*s.store, ref);
    if (!snap) {
      rc = std::max(rc, report_error(not_found_is_usage(snap.error()).wrap(who)));
      continue;
    }
    if (auto r = vm::remove_snapshot(*s.store, *snap, force); !r) {
      rc = std::max(rc, report_error(r.error().wrap(who)));
      continue;
    }
    fmt::print("{}\n", snap->name);
  }
  return rc;
}

}  // namespace

Command add_snapshot(CLI::App& app) {
  struct Args {
    std::string vm;
    std::string name;
    std::vector<std::string> refs;
    bool json = false;
    bool quiet = false;
    bool force = false;
    std::vector<std::string> filters;
    std::string format;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("snapshot", "Manage snapshots: create, ls, inspect, rm");
  cmd->require_subcommand(1);
  auto* create_cmd = cmd->add_subcommand(
      "create", "Snapshot a running VM: pause it, write memory, devices and disk, resume it");
  create_cmd->add_option("vm", args->vm, "The VM (name or id)")->required();
  create_cmd->add_option("name", args->name, "The snapshot's name")->required();
  auto* ls_cmd = cmd->add_subcommand("ls", "List complete snapshots");
  ls_cmd->add_flag("--json", args->json, "Print JSON (the objects inspect prints)");
  ls_cmd->add_flag("-q,--quiet", args->quiet, "Print names only");
  ls_cmd
      ->add_option("-f,--filter", args->filters,
                   "Show only snapshots that match: name=TEXT, id=PREFIX, image=TEXT, "
                   "source=VM (repeatable; one key: any matches; keys: all)")
      ->allow_extra_args(false);
  ls_cmd->add_option("--format", args->format,
                     "json, table, or a template such as '{{.Name}} {{.Size}}' (\"table \" "
                     "before it adds a header). Fields: Name, ID, Image, Source, Backend, Size, "
                     "Created");
  auto* inspect_cmd = cmd->add_subcommand("inspect", "Show snapshots as JSON");
  inspect_cmd->add_option("snapshot", args->refs, "Snapshot names or ids")->required();
  auto* rm_cmd = cmd->add_subcommand(
      "rm", "Remove snapshots (refused while VMs restored from them exist, unless -f)");
  rm_cmd->add_flag("-f,--force", args->force, "Stop and remove the VMs restored from it first");
  rm_cmd->add_option("snapshot", args->refs, "Snapshot names or ids")->required();
  return {cmd, [=]() -> int {
            if (create_cmd->parsed()) return create(args->vm, args->name);
            if (ls_cmd->parsed()) {
              return list(args->json, args->quiet, args->filters, args->format);
            }
            if (inspect_cmd->parsed()) return inspect(args->refs);
            return remove(args->refs, args->force);
          }};
}

}  // namespace fcvm::cli
