// fake-firecracker: a stand-in for the firecracker binary in tests. It takes Firecracker's command
// line (--api-sock PATH, --id ID; other flags are ignored), serves the API on the Unix socket,
// checks every request against Firecracker's official OpenAPI spec, and after InstanceStart plays
// a guest running fc-agent behind the vsock socket (guest.hpp). See vmm.hpp for the API rules,
// recording and failure injection.
//
//   --spec PATH | FAKE_FC_SPEC       the spec file (required)
//   --record FILE | FAKE_FC_RECORD   append one JSON line per API call
//   FAKE_FC_FAIL, FAKE_FC_FAIL_MESSAGE, FAKE_FC_EXIT_CODE, FAKE_FC_RUN_UNTIL_STOP,
//   FAKE_FC_GUEST_DELAY_MS, FAKE_FC_START_DELAY_MS
//
// Exits 0 when the VM powers off (the guest finished, or SendCtrlAltDel).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fake_firecracker/http.hpp"
#include "fake_firecracker/vmm.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "support/firecracker_spec.hpp"

namespace {

struct Args {
  std::string api_sock = "/run/firecracker.socket";
  std::string id = "anonymous-instance";
  std::string spec;
  std::string record;
  bool version = false;
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

Args parse_args(int argc, char** argv) {
  Args a;
  a.spec = env_or("FAKE_FC_SPEC", "");
  a.record = env_or("FAKE_FC_RECORD", "");
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    auto eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto take = [&](std::string& out) {
      if (inline_value) {
        out = value;
      } else if (i + 1 < argc) {
        out = argv[++i];
      }
    };
    if (arg == "--api-sock") {
      take(a.api_sock);
    } else if (arg == "--id") {
      take(a.id);
    } else if (arg == "--spec") {
      take(a.spec);
    } else if (arg == "--record") {
      take(a.record);
    } else if (arg == "--version") {
      a.version = true;
    }
  }
  return a;
}

fake_fc::VmmOptions vmm_options(const Args& args) {
  fake_fc::VmmOptions o;
  o.id = args.id;
  o.record_path = args.record;
  const std::string fail_calls = env_or("FAKE_FC_FAIL", "");
  for (auto call : fcvm::split(fail_calls, ',')) {
    auto c = fcvm::trim(call);
    if (!c.empty()) o.fail_calls.emplace_back(c);
  }
  o.fail_message = env_or("FAKE_FC_FAIL_MESSAGE", o.fail_message);
  o.version = env_or("FAKE_FC_VERSION", o.version);
  o.guest.exit_code =
      static_cast<int>(fcvm::parse_int(env_or("FAKE_FC_EXIT_CODE", "0"), 0, 255).value_or(0));
  o.guest.run_until_stop = env_or("FAKE_FC_RUN_UNTIL_STOP", "") == "1";
  o.guest.boot_delay = std::chrono::milliseconds(
      fcvm::parse_int(env_or("FAKE_FC_GUEST_DELAY_MS", "0"), 0, 600000).value_or(0));
  o.guest.start_delay = std::chrono::milliseconds(
      fcvm::parse_int(env_or("FAKE_FC_START_DELAY_MS", "0"), 0, 600000).value_or(0));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  if (args.version) {
    std::printf("Firecracker v%s\n", env_or("FAKE_FC_VERSION", fake_fc::k_default_version).c_str());
    return 0;
  }
  if (args.spec.empty()) {
    std::fprintf(stderr,
                 "fake-firecracker: no API spec: pass --spec PATH or set FAKE_FC_SPEC to "
                 "Firecracker's firecracker.yaml\n");
    return 2;
  }
  auto spec = fcvm::testing::FirecrackerSpec::load(args.spec);
  if (!spec) {
    std::fprintf(stderr, "fake-firecracker: %s\n", spec.error().to_string().c_str());
    return 2;
  }
  auto listener = fcvm::unix_listen(args.api_sock);
  if (!listener) {
    std::fprintf(stderr, "fake-firecracker: API socket: %s\n",
                 listener.error().to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "fake-firecracker %s: API on %s\n", args.id.c_str(), args.api_sock.c_str());
  fake_fc::FakeVmm vmm(*spec, vmm_options(args));
  std::map<int, std::unique_ptr<fake_fc::HttpConnection>> connections;

  for (;;) {
    std::vector<pollfd> fds = {{listener->get(), POLLIN, 0},
                               {vmm.guest().poweroff_fd(), POLLIN, 0}};
    for (const auto& [fd, conn] : connections) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[1].revents != 0) {
      std::fprintf(stderr, "fake-firecracker: guest powered off\n");
      std::_Exit(0);  // like a VM: no orderly teardown of the guest thread
    }
    if (fds[0].revents != 0) {
      int fd = ::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) connections[fd] = std::make_unique<fake_fc::HttpConnection>(fcvm::UniqueFd(fd));
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto& conn = *connections.at(fds[i].fd);
      bool open = conn.fill();
      while (open) {
        auto request = conn.next_request();
        if (!request) {
          (void)conn.send(fake_fc::fault(request.error().message()));
          open = false;
          break;
        }
        if (!*request) break;
        auto answer = vmm.handle(**request);
        open = conn.send(answer).has_value() && (*request)->keep_alive;
        if (vmm.powered_off()) {
          std::fprintf(stderr, "fake-firecracker: SendCtrlAltDel: powering off\n");
          std::_Exit(0);
        }
      }
      if (!open) connections.erase(fds[i].fd);
    }
  }
}
