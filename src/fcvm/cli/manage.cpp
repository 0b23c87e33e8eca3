// fcvm wait NAME...   fcvm rename NAME NEWNAME   fcvm port NAME [PORT[/PROTO]]
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::cli {

Command add_wait(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand(
      "wait",
      "Wait for VMs to stop and print each one's exit code (a VM that never ran, or failed "
      "without one: an error)");
  cmd->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("wait"));
            int rc = k_exit_ok;
            for (const auto& ref : *refs) {
              auto rec = resolve(s, ref);
              auto code = rec ? vm::wait_vm(*s.store, *rec)
                              : Result<std::optional<int64_t>>(tl::unexpected(rec.error()));
              if (code && !*code) {
                code = fail(
                    ErrorCode::kInvalidInput,
                    fmt::format("VM {} has no exit code (it did not run to an exit)", rec->name));
              }
              if (!code) {
                rc = std::max(rc, report_error(code.error().wrap(fmt::format("wait {}", ref))));
                continue;
              }
              fmt::print("{}\n", **code);
              std::fflush(stdout);
            }
            return rc;
          }};
}

Command add_rename(CLI::App& app) {
  struct Args {
    std::string ref, name;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("rename", "Give a VM a new name (also while it runs)");
  cmd->add_option("vm", args->ref, "VM name or id")->required();
  cmd->add_option("name", args->name, "The new name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63)")
      ->required();
  return {cmd, [args]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("rename"));
            auto rec = resolve(s, args->ref);
            auto renamed = rec ? vm::rename_vm(*s.store, *rec, args->name)
                               : Result<state::VmRecord>(tl::unexpected(rec.error()));
            if (!renamed) {
              return report_error(renamed.error().wrap(fmt::format("rename {}", args->ref)));
            }
            fmt::print("{}\n", renamed->name);
            return k_exit_ok;
          }};
}

Command add_port(CLI::App& app) {
  struct Args {
    std::string ref, port;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "port",
      "List a VM's published ports (\"80/tcp -> 127.0.0.1:8080\"), or the host addresses of one "
      "guest port");
  cmd->add_option("vm", args->ref, "VM name or id")->required();
  cmd->add_option("port", args->port, "A guest port, PORT or PORT/tcp|udp");
  return {cmd, [args]() -> int {
            std::optional<int64_t> want_port;
            std::string want_proto;
            if (!args->port.empty()) {
              auto parts = split(args->port, '/');
              want_port = parse_int(parts[0], 1, 65535);
              if (parts.size() == 2) want_proto = std::string(parts[1]);
              if (!want_port || parts.size() > 2 ||
                  (!want_proto.empty() && want_proto != "tcp" && want_proto != "udp")) {
                return report_error(
                    Error(ErrorCode::kInvalidInput,
                          fmt::format("port: invalid port \"{}\": expected PORT or PORT/tcp|udp",
                                      args->port)));
              }
            }
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("port"));
            auto rec = resolve(s, args->ref);
            if (!rec) return report_error(rec.error().wrap(fmt::format("port {}", args->ref)));
            bool found = false;
            for (const auto& p : vm::published_ports(rec->ports)) {
              if (want_port) {
                if (p.guest_port != *want_port || (!want_proto.empty() && p.proto != want_proto)) {
                  continue;
                }
                fmt::print("{}:{}\n", p.host_ip, p.host_port);
              } else {
                fmt::print("{}/{} -> {}:{}\n", p.guest_port, p.proto, p.host_ip, p.host_port);
              }
              found = true;
            }
            if (want_port && !found) {
              return report_error(Error(ErrorCode::kNotFound,
                                        fmt::format("port {}: VM {} does not publish guest port {}",
                                                    args->ref, rec->name, args->port)));
            }
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
