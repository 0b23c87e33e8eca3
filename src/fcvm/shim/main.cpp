#include "fcvm/shim/main.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "containerd/shim.pb.h"
#include "fcvm/config/config.hpp"
#include "fcvm/shim/publisher.hpp"
#include "fcvm/shim/sandbox.hpp"
#include "fcvm/shim/task.hpp"
#include "fcvm/shim/vm_engine.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/ttrpc/client.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/events.hpp"

namespace fcvm::shim {
namespace {

using namespace std::chrono_literals;

struct Args {
  std::map<std::string, std::string> flags;
  bool debug = false;
  std::string action;
  std::string flag(const std::string& name) const {
    auto it = flags.find(name);
    return it == flags.end() ? std::string() : it->second;
  }
};

// Go's flag syntax: -name value, -name=value, --name value; -debug alone.
Result<Args> parse_args(int argc, char** argv) {
  static const std::set<std::string> known = {"namespace", "address", "publish-binary",
                                              "id",        "bundle",  "socket"};
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 1 && arg[0] == '-') {
      std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
      std::string value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (name == "debug") {
        a.debug = true;
        continue;
      }
      if (known.count(name) == 0) {
        return fail(ErrorCode::kInvalidInput, fmt::format("unknown flag -{}", name));
      }
      if (!has_value) {
        if (i + 1 >= argc)
          return fail(ErrorCode::kInvalidInput, fmt::format("-{} needs a value", name));
        value = argv[++i];
      }
      a.flags[name] = value;
    } else if (a.action.empty()) {
      a.action = arg;
    } else {
      return fail(ErrorCode::kInvalidInput, fmt::format("unexpected argument \"{}\"", arg));
    }
  }
  if (a.action != "start" && a.action != "delete" && a.action != "serve") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("action \"{}\": use start, delete or serve", a.action));
  }
  if (a.flag("namespace").empty() || a.flag("id").empty()) {
    return fail(ErrorCode::kInvalidInput, "-namespace and -id are required");
  }
  return a;
}

struct Setup {
  vm::Paths paths;
  config::Config config;
};

Result<Setup> setup() {
  Setup s;
  FCVM_TRY_ASSIGN(s.config, config::load());
  auto env = vm::Environment::capture();
  FCVM_TRY_ASSIGN(s.paths, vm::resolve_paths(env, s.config.data_dir, s.config.guest_dir));
  return s;
}

vm::Context context(const Setup& s) {
  auto env = vm::Environment::capture();
  return vm::Context{s.paths, sys::default_runner(), env.accel, vm::firecracker_bin(env, s.paths),
                     vm::jailer_bin(env, s.paths)};
}

// The shim's socket: short (a socket path has 108 bytes), private, one per (address, ns, id).
std::string socket_path(const Args& a) {
  std::string dir;
  if (::geteuid() == 0) {
    dir = "/run/fcvm/s";
  } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    dir = std::string(xdg) + "/fcvm/s";
  } else {
    dir = fmt::format("/tmp/fcvm-{}/s", ::geteuid());
  }
  auto id = layers_image_id({a.flag("address"), a.flag("namespace"), a.flag("id")});
  return fmt::format("{}/{}.sock", dir, id.substr(7, 32));
}

int start(const Args& a) {
  auto path = socket_path(a);
  auto address = "unix://" + path;
  // Started already (containerd retried): the same address.
  if (auto c = unix_connect(path, 200ms)) {
    std::cout << address;
    return 0;
  }
  auto dir = path.substr(0, path.rfind('/'));
  if (auto r = make_dirs(dir, 0700); !r) {
    std::cerr << "start: " << r.error().to_string() << "\n";
    return 1;
  }
  mode_t old = ::umask(0177);
  auto listener = unix_listen(path);
  ::umask(old);
  if (!listener) {
    std::cerr << "start: " << listener.error().to_string() << "\n";
    return 1;
  }
  if (listener->get() != 3) {
    if (::dup2(listener->get(), 3) < 0) {
      std::cerr << "start: dup2: " << std::strerror(errno) << "\n";
      return 1;
    }
    listener->reset(3);
  }
  // The server's log goes to the bundle's `log` FIFO, which containerd reads.
  UniqueFd log(::open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (log) ::fcntl(log.get(), F_SETFL, 0);
  SpawnOptions opts;
  opts.argv = {"/proc/self/exe",
               "-namespace",
               a.flag("namespace"),
               "-address",
               a.flag("address"),
               "-publish-binary",
               a.flag("publish-binary"),
               "-id",
               a.flag("id"),
               "-socket",
               path};
  if (a.debug) opts.argv.push_back("-debug");
  opts.argv.push_back("serve");
  opts.keep_fds = {3};
  opts.stderr_fd = log ? log.get() : -1;
  opts.new_session = true;
  opts.die_with_parent = false;
  auto child = ChildProcess::spawn(opts);
  if (!child) {
    ::unlink(path.c_str());
    std::cerr << "start: " << child.error().to_string() << "\n";
    return 1;
  }
  child->detach();
  (void)write_file_atomic("address", address, 0600);
  std::cout << address;
  return 0;
}

int remove(const Args& a) {
  // The shim's socket, when its server is gone (first: a dead shim's VM may take a while).
  std::string bundle = a.flag("bundle").empty() ? std::string(".") : a.flag("bundle");
  if (auto text = read_file(bundle + "/address")) {
    auto addr = std::string(trim(*text));
    if (addr.rfind("unix://", 0) == 0 && !unix_connect(addr.substr(7), 200ms)) {
      ::unlink(addr.substr(7).c_str());
    }
  }
  ::containerd::task::v2::DeleteResponse out;
  auto s = setup();
  int status = 137;
  if (!s) {
    std::cerr << "delete: " << s.error().to_string() << "\n";
  } else {
    auto ctx = context(*s);
    auto removed = remove_task_vm(ctx, a.flag("namespace"), a.flag("id"));
    if (!removed) {
      std::cerr << "delete: " << removed.error().to_string() << "\n";
      return 1;
    }
    if (*removed) status = **removed;
  }
  out.set_exit_status(static_cast<uint32_t>(status));
  auto now = vm::now_ns();
  out.mutable_exited_at()->set_seconds(now / 1000000000);
  out.mutable_exited_at()->set_nanos(static_cast<int32_t>(now % 1000000000));
  std::string bytes = out.SerializeAsString();
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  return 0;
}

bool same_user(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

int serve(const Args& a) {
  ::signal(SIGPIPE, SIG_IGN);
  if (a.debug) log::set_level(log::Level::kDebug);
  auto s = setup();
  if (!s) {
    FCVM_LOG(kError, "shim", "{}", s.error().to_string());
    return 1;
  }
  const auto& d = s->config.defaults;
  vm::RunDefaults defaults{
      d.mem_mib,     d.vcpus,          d.stop_timeout_s,  d.boot_timeout_s,
      s->config.vmm, s->config.jailer, s->config.network, s->config.insecure_registries};
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  // SIGTERM and SIGINT end the server as Shutdown does (its VM stays for containerd's delete).
  SignalFd signals({SIGTERM, SIGINT});
  const char* events_address = std::getenv("TTRPC_ADDRESS");
  Publisher publisher(events_address != nullptr ? events_address : "", a.flag("namespace"));
  auto ctx = context(*s);
  TaskService tasks(
      a.flag("namespace"),
      [&ctx, &defaults](const ContainerSpec& spec) {
        return is_pod_sandbox(spec) ? make_sandbox_engine() : make_vm_engine(ctx, defaults);
      },
      [&publisher](TaskEvent e) { publisher.publish(std::move(e)); },
      [&stop] {
        uint64_t one = 1;
        (void)!::write(stop.get(), &one, sizeof one);
      });
  ttrpc::Registry registry;
  tasks.register_handlers(registry);
  FCVM_LOG(kInfo, "shim", "serving task {} of namespace {}", a.flag("id"), a.flag("namespace"));
  for (;;) {
    pollfd fds[3] = {{3, POLLIN, 0}, {stop.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[1].revents | fds[2].revents) & POLLIN) break;
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(3, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (!same_user(fd)) {
        FCVM_LOG(kWarn, "shim", "refused a connection from another user");
        ::close(fd);
        continue;
      }
      std::thread([fd, &registry] {
        (void)ttrpc::serve_connection(fd, registry);
        ::close(fd);
      }).detach();
    }
  }
  FCVM_LOG(kInfo, "shim", "shutting down");
  publisher.flush(5s);
  if (!a.flag("socket").empty()) ::unlink(a.flag("socket").c_str());
  std::fflush(nullptr);
  ::_exit(0);  // connections still open go with the process
}

}  // namespace

int shim_main(int argc, char** argv) {
  auto args = parse_args(argc, argv);
  if (!args) {
    std::cerr << "containerd-shim-fcvm-v2: " << args.error().message() << "\n";
    return 2;
  }
  if (args->action == "start") return start(*args);
  if (args->action == "delete") return remove(*args);
  return serve(*args);
}

}  // namespace fcvm::shim
