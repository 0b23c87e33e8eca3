#pragma once
// `fcvm serve`: the HTTP/1.1 API over the engine (vm/), the same calls as the CLI's. docs/api.yaml
// describes it; routes() is what the server registers (a test holds the two together).
#include <functional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/validate.hpp"

namespace fcvm::api {

struct Route {
  std::string method;  // GET, POST, PUT, DELETE
  std::string path;    // with {parameters}: /v1/vms/{id}
};
const std::vector<Route>& routes();

struct ServeOptions {
  std::string listen{};  // unix:PATH, /PATH or HOST:PORT (requests.hpp); empty: default_socket
  bool allow_remote = false;
  std::string token_file{};  // for TCP
  std::string default_socket{};
  // A listening socket handed over by systemd (LISTEN_FDS); -1: bind `listen` instead.
  int activated_fd = -1;
};

// The default socket: /run/fcvm/api.sock for root, $XDG_RUNTIME_DIR/fcvm/api.sock otherwise
// (else <data dir>/api.sock).
std::string default_socket_path(const std::string& xdg_runtime_dir, const std::string& data_dir);

// Serves until SIGINT or SIGTERM. `listening` is told where, once requests are accepted
// ("unix:/run/fcvm/api.sock", "127.0.0.1:41234").
Result<> serve(vm::Context& ctx, const vm::RunDefaults& defaults, const ServeOptions& options,
               const std::function<void(const std::string&)>& listening);

}  // namespace fcvm::api
