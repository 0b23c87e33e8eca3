// fcvm serve [--listen ADDR] [--allow-remote] [--token-file PATH] [--rotate-token]
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "fcvm/api/server.hpp"
#include "fcvm/api/token.hpp"
#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::cli {
namespace {

// The socket systemd passed (socket activation): LISTEN_PID is this process and LISTEN_FDS >= 1.
int activated_socket() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (pid == nullptr || fds == nullptr) return -1;
  auto p = parse_int(pid, 1, INT32_MAX);
  auto n = parse_int(fds, 1, 64);
  if (!p || !n || *p != ::getpid()) return -1;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return 3;  // SD_LISTEN_FDS_START
}

}  // namespace

Command add_serve(CLI::App& app) {
  struct Args {
    std::string listen;
    bool allow_remote = false;
    std::string token_file;
    bool rotate = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "serve", "Serve the HTTP API (JSON over HTTP/1.1; docs/api.yaml) until SIGINT or SIGTERM");
  cmd->footer(
      "By default on a Unix socket: /run/fcvm/api.sock for root, $XDG_RUNTIME_DIR/fcvm/api.sock "
      "otherwise (mode 0600 in a 0700 directory: only this user reaches it). On TCP every request "
      "needs 'Authorization: Bearer TOKEN', the token in the data directory's api-token file "
      "(made on first use, 0600). There is no TLS: put a proxy in front of a remote listener. "
      "Started by systemd socket activation (fcvm-api.socket), it serves the socket it is given. "
      "The address it listens on is printed on stdout.");
  cmd->add_option("--listen", args->listen,
                  "unix:PATH, /PATH, or HOST:PORT on TCP (a loopback address; port 0: any free "
                  "port)")
      ->option_text("ADDR");
  cmd->add_flag("--allow-remote", args->allow_remote,
                "Allow --listen on an address that is not loopback (anyone who reaches it with "
                "the token runs VMs as this user)");
  cmd->add_option("--token-file", args->token_file,
                  "The bearer token for TCP (default: <data dir>/api-token)")
      ->option_text("PATH");
  cmd->add_flag("--rotate-token", args->rotate,
                "Write a new token, print the file's path and exit (a running server takes it "
                "from its next request)");
  return {cmd, [args]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("serve"));
            auto token_file =
                args->token_file.empty() ? s.paths.data_dir + "/api-token" : args->token_file;
            if (args->rotate) {
              if (auto r = api::rotate_token(token_file); !r) {
                return report_error(r.error().wrap("serve --rotate-token"));
              }
              fmt::print("{}\n", token_file);
              return k_exit_ok;
            }
            const char* runtime = std::getenv("XDG_RUNTIME_DIR");
            api::ServeOptions options{
                args->listen, args->allow_remote, token_file,
                api::default_socket_path(runtime != nullptr ? runtime : "", s.paths.data_dir),
                activated_socket()};
            auto served = api::serve(
                *s.ctx, run_defaults(s.config), options, [&](const std::string& address) {
                  fmt::print("{}\n", address);
                  std::fflush(stdout);
                  fmt::print(stderr, "fcvm: serving the API on {}{}\n", address,
                             address.rfind("unix:", 0) == 0
                                 ? ""
                                 : fmt::format(" (bearer token in {})", token_file));
                });
            if (!served) return report_error(served.error().wrap("serve"));
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
