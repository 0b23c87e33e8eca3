// fcvm pull | images | rmi | image {pull, ls, inspect, rm}: the host image store.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/format.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/image/oci.hpp"
#include "fcvm/vm/describe.hpp"
#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/images.hpp"

namespace fcvm::cli {
namespace {

using nlohmann::json;

std::string short_id(const std::string& id) { return image::digest_hex(id).substr(0, 12); }

}  // namespace

// Progress of a pull on a terminal ("pulling X: fetching ... 1.2 s"); nothing in a pipe.
image::Progress pull_progress(const std::string& what) {
  if (::isatty(STDERR_FILENO) == 0) return [](std::string_view) {};
  auto start =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [what, start](std::string_view step) {
    auto s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *start).count();
    fmt::print(stderr, "{}: {} ({:.1f} s)\n", what, step, s);
  };
}

namespace {

int pull(const std::string& ref, const std::vector<std::string>& insecure,
         const std::string& authfile, bool quiet) {
  Session s;
  if (auto r = load_config(s); !r) return report_error(r.error().wrap("pull"));
  auto request = vm::validate_pull(ref, insecure, authfile, run_defaults(s.config));
  if (!request) return report_error(request.error().wrap("pull"));
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("pull"));
  auto start = std::chrono::steady_clock::now();
  auto img = vm::pull_image(
      *s.ctx, *s.store, *request,
      quiet ? image::Progress([](std::string_view) {}) : pull_progress("pull " + ref));
  if (!img) return report_error(img.error().wrap("pull " + ref));
  if (!quiet && ::isatty(STDERR_FILENO) != 0) {
    fmt::print(stderr, "pull {}: done ({:.1f} s, disk {})\n", ref,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
               human_size(img->size_bytes));
  }
  fmt::print("{}\n", img->id);
  return k_exit_ok;
}

int list(bool as_json, bool quiet, const std::vector<std::string>& filters,
         const std::string& format_text) {
  static const std::vector<std::string> fields = {"Name", "ID", "Created", "Content", "Disk"};
  auto format = parse_output_format(format_text, fields);
  if (!format) return report_error(format.error().wrap("images"));
  if (format->kind == OutputFormat::Kind::kJson) as_json = true;
  auto filter = vm::parse_field_filters(filters, {"reference", "id", "dangling"});
  if (!filter) return report_error(filter.error().wrap("images"));
  for (const auto& value : filter->values["dangling"]) {
    if (value != "true" && value != "false") {
      return report_error(Error(ErrorCode::kInvalidInput,
                                fmt::format("invalid --filter \"dangling={}\": expected true or "
                                            "false",
                                            value))
                              .wrap("images"));
    }
  }
  if (filter->values["dangling"].empty()) filter->values.erase("dangling");
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("images"));
  vm::reconcile_images(*s.ctx, *s.store);
  auto all = vm::list_images(*s.store);
  if (!all) return report_error(all.error().wrap("images"));
  std::vector<state::ImageRecord> images;
  for (auto& i : *all) {
    bool shown = vm::matches(*filter, [&](const std::string& key, const std::string& value) {
      if (key == "reference") {
        return std::any_of(i.names.begin(), i.names.end(), [&](const std::string& n) {
          return n.find(value) != std::string::npos;
        });
      }
      if (key == "id") {
        return image::digest_hex(i.id).rfind(value, 0) == 0 || i.id.rfind(value, 0) == 0;
      }
      return i.names.empty() == (value == "true");  // dangling: no name left
    });
    if (shown) images.push_back(std::move(i));
  }
  if (as_json) {
    auto arr = json::array();
    for (const auto& i : images) arr.push_back(vm::image_json(i));
    fmt::print("{}\n", arr.dump(2));
    return k_exit_ok;
  }
  if (quiet) {
    std::string out;
    for (const auto& i : images) out += short_id(i.id) + "\n";
    fmt::print("{}", out);
    return k_exit_ok;
  }
  auto now = state::now_ms();
  std::string out;
  if (format->kind == OutputFormat::Kind::kTemplate) {
    if (format->header) out += render_header(format->row_template) + "\n";
    for (const auto& i : images) {
      auto names = i.names.empty() ? std::vector<std::string>{"<none>"} : i.names;
      for (const auto& n : names) {
        out += render_row(format->row_template,
                          [&](const std::string& field) -> std::string {
                            if (field == "Name") return n;
                            if (field == "ID") return short_id(i.id);
                            if (field == "Created") {
                              return human_duration(now - i.created_ms) + " ago";
                            }
                            if (field == "Content") return human_size(i.content_bytes);
                            return human_size(i.size_bytes);  // Disk
                          }) +
               "\n";
      }
    }
    fmt::print("{}", out);
    return k_exit_ok;
  }
  out = fmt::format("{:<48} {:<12} {:<14} {:>10} {:>10}\n", "NAME", "ID", "CREATED", "CONTENT",
                    "DISK");
  for (const auto& i : images) {
    auto names = i.names.empty() ? std::vector<std::string>{"<none>"} : i.names;
    for (const auto& n : names) {
      auto shown = n.size() > 48 ? "..." + n.substr(n.size() - 45) : n;
      out += fmt::format("{:<48} {:<12} {:<14} {:>10} {:>10}\n", shown, short_id(i.id),
                         human_duration(now - i.created_ms) + " ago", human_size(i.content_bytes),
                         human_size(i.size_bytes));
    }
  }
  fmt::print("{}", out);
  return k_exit_ok;
}

int inspect(const std::vector<std::string>& refs) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("image inspect"));
  auto arr = json::array();
  int rc = k_exit_ok;
  for (const auto& ref : refs) {
    auto img = vm::find_image(*s.store, ref);
    if (!img) {
      rc = report_error(img.error().wrap("image inspect"));
      continue;
    }
    arr.push_back(vm::image_json(*img));
  }
  if (!arr.empty()) fmt::print("{}\n", arr.dump(2));
  return rc;
}

int remove(const std::vector<std::string>& refs, bool force) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("rmi"));
  int rc = k_exit_ok;
  for (const auto& ref : refs) {
    auto done = vm::remove_image(*s.ctx, *s.store, ref, force);
    if (!done) {
      rc = report_error(done.error().wrap("rmi"));
      continue;
    }
    for (const auto& v : done->removed_vms) fmt::print("Removed VM: {}\n", v);
    for (const auto& n : done->removed_snapshots) fmt::print("Removed snapshot: {}\n", n);
    for (const auto& n : done->untagged) fmt::print("Untagged: {}\n", n);
    if (!done->deleted.empty()) fmt::print("Deleted: {}\n", done->deleted);
  }
  return rc;
}

struct ImageArgs {
  std::string ref;
  std::vector<std::string> refs;
  std::vector<std::string> insecure;
  std::string authfile;
  bool json = false;
  bool quiet = false;
  bool force = false;
  std::vector<std::string> filters;
  std::string format;
};

void pull_options(CLI::App* cmd, const std::shared_ptr<ImageArgs>& args) {
  cmd->add_option("image", args->ref,
                  "A registry reference, oci-archive:PATH or docker-archive:PATH")
      ->required();
  cmd->add_option("--insecure-registry", args->insecure,
                  "HOST[:PORT] of a registry reached over plain HTTP (a registry on this host's "
                  "loopback always is); may be repeated");
  cmd->add_option("--authfile", args->authfile,
                  "Registry credentials (podman's auth.json format; default: podman's)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress, only the image id");
}

void list_options(CLI::App* cmd, const std::shared_ptr<ImageArgs>& args) {
  cmd->add_flag("--json", args->json, "Print JSON (the objects image inspect prints)");
  cmd->add_flag("-q,--quiet", args->quiet, "Print ids only");
  cmd->add_option("-f,--filter", args->filters,
                  "Show only images that match: reference=TEXT (a name contains it), id=PREFIX, "
                  "dangling=true|false (repeatable; one key: any matches; keys: all)")
      ->allow_extra_args(false);
  cmd->add_option("--format", args->format,
                  "json, table, or a template such as '{{.Name}} {{.ID}}' (\"table \" before it "
                  "adds a header). Fields: Name, ID, Created, Content, Disk");
}

void rm_options(CLI::App* cmd, const std::shared_ptr<ImageArgs>& args) {
  cmd->add_flag("-f,--force", args->force, "Also remove the VMs and snapshots that use the image");
  cmd->add_option("image", args->refs, "Image names or ids")->required();
}

constexpr const char* k_pull_help =
    "Fetch an image into the host image store and build its read-only disk (once per image): "
    "fcvm run uses it without fetching anything in the VM";

}  // namespace

Command add_pull(CLI::App& app) {
  auto args = std::make_shared<ImageArgs>();
  auto* cmd = app.add_subcommand("pull", k_pull_help);
  pull_options(cmd, args);
  return {cmd,
          [args]() -> int { return pull(args->ref, args->insecure, args->authfile, args->quiet); }};
}

Command add_images(CLI::App& app) {
  auto args = std::make_shared<ImageArgs>();
  auto* cmd = app.add_subcommand("images", "List the images in the host image store");
  list_options(cmd, args);
  return {cmd,
          [args]() -> int { return list(args->json, args->quiet, args->filters, args->format); }};
}

Command add_rmi(CLI::App& app) {
  auto args = std::make_shared<ImageArgs>();
  auto* cmd = app.add_subcommand(
      "rmi", "Remove images from the host image store (refused while a VM or snapshot uses one)");
  rm_options(cmd, args);
  return {cmd, [args]() -> int { return remove(args->refs, args->force); }};
}

Command add_image(CLI::App& app) {
  auto args = std::make_shared<ImageArgs>();
  auto* cmd = app.add_subcommand("image", "Manage the host image store: pull, ls, inspect, rm");
  cmd->require_subcommand(1);
  auto* pull_cmd = cmd->add_subcommand("pull", k_pull_help);
  pull_options(pull_cmd, args);
  auto* ls_cmd = cmd->add_subcommand("ls", "List the images in the host image store");
  list_options(ls_cmd, args);
  auto* inspect_cmd = cmd->add_subcommand("inspect", "Show images as JSON");
  inspect_cmd->add_option("image", args->refs, "Image names or ids")->required();
  auto* rm_cmd = cmd->add_subcommand("rm", "Remove images (refused while in use, unless -f)");
  rm_options(rm_cmd, args);
  return {cmd, [=]() -> int {
            if (pull_cmd->parsed()) {
              return pull(args->ref, args->insecure, args->authfile, args->quiet);
            }
            if (ls_cmd->parsed()) return list(args->json, args->quiet, args->filters, args->format);
            if (inspect_cmd->parsed()) return inspect(args->refs);
            return remove(args->refs, args->force);
          }};
}

}  // namespace fcvm::cli
