#include "fcvm/net/rootless.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::net {
namespace {

// Child side of the holder: async-signal-safe calls only (we may have threads).
[[noreturn]] void holder_main(int ready_fd, int wait_fd, pid_t parent, bool user, bool ip_forward,
                              const char* uid_map, const char* gid_map) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // A forked copy of fcvm: give it its own name in ps/pgrep.
  ::prctl(PR_SET_NAME, "fcvm-netns");
  int err = 0;
  if (::getppid() != parent) ::_exit(1);
  if (::unshare(CLONE_NEWNET | (user ? CLONE_NEWUSER : 0)) != 0) err = errno;
  auto write_file = [&](const char* path, const char* text) {
    if (err) return;
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, text, std::strlen(text)) < 0) err = errno;
    if (fd >= 0) ::close(fd);
  };
  if (user) {
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", uid_map);
    write_file("/proc/self/gid_map", gid_map);
  }
  // /proc/sys/net resolves to the opener's network namespace: this sets the new one only.
  if (ip_forward) write_file("/proc/sys/net/ipv4/ip_forward", "1");
  ssize_t ignored = ::write(ready_fd, &err, sizeof err);
  (void)ignored;
  ::close(ready_fd);
  if (err) ::_exit(1);
  char c;
  while (::read(wait_fd, &c, 1) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

}  // namespace

Result<NamespaceHolder> NamespaceHolder::create(bool with_user_namespace, bool ip_forward) {
  auto uid_map = fmt::format("0 {} 1", ::geteuid());
  auto gid_map = fmt::format("0 {} 1", ::getegid());
  int ready[2], hold[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  if (::pipe2(hold, O_CLOEXEC) != 0) return fail_errno("pipe2");
  // The holder keeps its own copy of hold[1], so its read(hold[0]) blocks until it is killed:
  // by ChildProcess (teardown) or by PDEATHSIG when its parent dies.
  UniqueFd hold_r(hold[0]), hold_w(hold[1]);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork namespace holder");
  if (pid == 0) {
    holder_main(ready_w.get(), hold_r.get(), parent, with_user_namespace, ip_forward,
                uid_map.c_str(), gid_map.c_str());
  }
  ready_w.reset();
  hold_r.reset();
  auto child = ChildProcess::adopt(pid);
  if (!child) {
    ::kill(pid, SIGKILL);
    return tl::unexpected<Error>(child.error());
  }
  NamespaceHolder holder;
  holder.m_process = std::move(*child);
  holder.m_user = with_user_namespace;
  int err = 0;
  auto r = read_exact(ready_r.get(), &err, sizeof err);
  if (!r) return fail(ErrorCode::kSystem, "namespace holder died during set-up");
  if (err != 0) {
    return fail_errno(
        with_user_namespace ? "create user and network namespaces" : "create network namespace",
        err);
  }
  return holder;
}

Result<std::unique_ptr<RootlessNetwork>> RootlessNetwork::create(const RootlessConfig& config,
                                                                 sys::CommandRunner& runner) {
  std::unique_ptr<RootlessNetwork> net(new RootlessNetwork());
  net->m_host_loopback = config.allow_host_loopback;
  // 1. Namespaces: a user namespace only when we are not root.
  auto holder = NamespaceHolder::create(::geteuid() != 0);
  if (!holder) return tl::unexpected<Error>(std::move(holder.error()).wrap("network namespace"));
  net->m_holder = std::move(*holder);
  pid_t ns = net->m_holder.pid();

  // 2. Devices inside the namespace, in one `ip -batch`: the bridge joins the VM's tap and the
  //    tap that slirp4netns attaches to.
  auto batch_path = config.dir + "/net.batch";
  auto batch = fmt::format(
      "link set lo up\n"
      "link add br0 type bridge\n"
      "tuntap add dev {0} mode tap{2}\n"
      "tuntap add dev slirp0 mode tap\n"
      "link set {0} master br0\n"
      "link set slirp0 master br0\n"
      "link set {0} mtu {1} up\n"
      "link set slirp0 mtu {1} up\n"
      "link set br0 up\n",
      net->m_tap, net->m_guest.mtu, tap_owner_args(config.tap_owner));
  FCVM_TRY(write_file_atomic(batch_path, batch));
  FCVM_TRY_CTX(runner.run({"ip", "-batch", batch_path}, ns), "set up network namespace");
  ::unlink(batch_path.c_str());

  // 3. slirp4netns attaches to slirp0 and serves as gateway, DNS and port forwarder.
  int ready[2], exit_pipe[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(exit_pipe, O_CLOEXEC) != 0)
    return fail_errno("pipe2");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]), exit_r(exit_pipe[0]);
  net->m_slirp_exit_fd.reset(exit_pipe[1]);
  net->m_api_socket = config.dir + "/slirp.sock";
  auto log_path = config.dir + "/slirp4netns.log";
  UniqueFd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd) return fail_errno(fmt::format("open {}", log_path));
  SpawnOptions opts;
  opts.argv = {"slirp4netns",
               fmt::format("--mtu={}", net->m_guest.mtu),
               "--api-socket",
               net->m_api_socket,
               fmt::format("--ready-fd={}", ready_w.get()),
               fmt::format("--exit-fd={}", exit_r.get())};
  if (!config.allow_host_loopback) opts.argv.push_back("--disable-host-loopback");
  opts.argv.push_back(std::to_string(ns));
  opts.argv.push_back("slirp0");
  opts.keep_fds = {ready_w.get(), exit_r.get()};
  opts.stdout_fd = log_fd.get();
  opts.stderr_fd = log_fd.get();
  auto slirp = ChildProcess::spawn(opts);
  if (!slirp) return tl::unexpected<Error>(std::move(slirp.error()).wrap("start slirp4netns"));
  net->m_slirp = std::move(*slirp);
  ready_w.reset();
  exit_r.reset();
  net->m_slirp_ready = std::move(ready_r);
  net->m_slirp_log = log_path;
  net->m_ports = config.ports;
  // 4. (finish) slirp4netns readiness and the port forwards: they need only slirp4netns, so
  //    they proceed while the VMM starts.
  return net;
}

Result<> RootlessNetwork::finish() {
  if (m_finished) return {};
  auto readable = wait_readable(m_slirp_ready.get(), std::chrono::seconds(10));
  char c = 0;
  if (!readable || !*readable || ::read(m_slirp_ready.get(), &c, 1) != 1) {
    auto log = read_file(m_slirp_log);
    return fail(ErrorCode::kSystem,
                fmt::format("slirp4netns did not become ready{}{}", log ? ": " : "",
                            log ? std::string(trim(*log)) : ""));
  }
  m_slirp_ready.reset();
  for (const auto& port : m_ports) {
    FCVM_TRY_CTX(add_port_forward(port), fmt::format("publish {}", port.to_string()));
  }
  m_finished = true;
  return {};
}

Result<> RootlessNetwork::add_port_forward(const PortMapping& port) {
  auto fd = unix_connect(m_api_socket, std::chrono::seconds(2));
  if (!fd) return tl::unexpected<Error>(fd.error());
  nlohmann::json req = {{"execute", "add_hostfwd"},
                        {"arguments",
                         {{"proto", std::string(proto_name(port.proto))},
                          {"host_addr", port.host_ip},
                          {"host_port", port.host_port},
                          {"guest_addr", m_guest.ip},
                          {"guest_port", port.guest_port}}}};
  FCVM_TRY(write_all(fd->get(), req.dump()));
  ::shutdown(fd->get(), SHUT_WR);
  std::string reply;
  char buf[512];
  for (;;) {
    auto ok = wait_readable(fd->get(), std::chrono::seconds(5));
    if (!ok || !*ok) return fail(ErrorCode::kTimeout, "slirp4netns API did not answer");
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  auto j = nlohmann::json::parse(reply, nullptr, false);
  if (j.is_discarded())
    return fail(ErrorCode::kProtocol, fmt::format("slirp4netns API: {}", reply));
  if (j.contains("error")) {
    return fail(ErrorCode::kSystem,
                fmt::format("slirp4netns: {}", j["error"].value("desc", j["error"].dump())));
  }
  FCVM_LOG(kDebug, "net", "port forward {} -> {}:{}", port.to_string(), m_guest.ip,
           port.guest_port);
  return {};
}

nlohmann::json RootlessNetwork::describe() const {
  return {{"mode", "rootless"},         {"guest_address", m_guest.address},
          {"gateway", m_guest.gateway}, {"dns", m_guest.dns},
          {"mac", m_guest.mac},         {"host_loopback", m_host_loopback}};
}

RootlessNetwork::~RootlessNetwork() {
  m_slirp_exit_fd.reset();
  if (m_slirp.running()) (void)m_slirp.terminate(std::chrono::milliseconds(500));
  // The holder's death frees the namespace with its bridge and taps.
}

void RootlessNetwork::detach() {
  m_slirp.detach();
  m_holder.process().detach();
  (void)m_slirp_exit_fd.release();
}

}  // namespace fcvm::net
