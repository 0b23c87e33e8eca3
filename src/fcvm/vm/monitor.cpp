#include "fcvm/vm/monitor.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <list>
#include <memory>
#include <optional>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/net/rootless.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/container_log.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/plan.hpp"
#include "fcvm/vm/setup.hpp"
#include "fcvm/vm/snapshot.hpp"
#include "fcvm/vm/timings.hpp"

namespace fcvm::vm {
namespace {

using namespace std::chrono_literals;
namespace proto = agent_proto;
using Clock = std::chrono::steady_clock;

// A connection on the control socket: an attached `run`, an `exec` session, or a one-shot request.
struct Client {
  UniqueFd fd;
  proto::Decoder decoder;
  bool attach = false;
  uint32_t guest_stream = 0;  // the exec stream in the guest this client drives (0: none)
  bool closed = false;
};

class Monitor {
 public:
  Monitor(Context& ctx, state::VmStore& store, state::VmRecord record, int ready_fd, bool fresh,
          bool wait_attach)
      : m_ctx(ctx),
        m_store(store),
        m_rec(std::move(record)),
        m_ready_fd(ready_fd),
        m_fresh(fresh),
        m_wait_attach(wait_attach),
        m_timings(std::getenv("FCVM_TIMINGS") ? std::getenv("FCVM_TIMINGS") : "") {}
  int run();

 private:
  void loop();
  void teardown();
  // Block volumes of host directories: the images' files back into the directories, when the
  // guest ended cleanly (the VMM has exited).
  void write_back_volumes();
  // An sshfs volume's server that ended leaves the guest's mount hanging: the VM stops.
  void check_volume_servers();
  // Runs argv in the guest OS and waits for its exit code (the agent channel is served meanwhile).
  Result<int> run_in_guest(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);
  // `fcvm volume sync`: each writable block volume of a directory written back while the VM
  // runs, from a copy taken with the guest's file system frozen.
  Result<size_t> sync_volumes_live();
  void save();
  void report_ready(const std::string& line);
  void gate_passed();
  // --save-snapshot: false when it failed (the VM is then being stopped).
  bool save_snapshot_on_ready();
  Result<state::SnapshotRecord> snapshot(const std::string& name, bool then_stop);
  void gate_tick();
  void begin_stop(int timeout_s);
  void on_signal();
  Result<> on_agent_bytes();
  Result<> on_agent_frame(const proto::Frame& frame);
  Result<> on_agent_control(const nlohmann::json& msg);
  void on_client_bytes(Client& c);
  void on_client_frame(Client& c, const proto::Frame& frame);
  void on_client_control(Client& c, nlohmann::json msg);
  void send_agent(const std::string& control);
  void maybe_send_plan();
  void send_client(Client& c, proto::Kind kind, uint32_t stream, std::string_view payload);
  Client* client_for_stream(uint32_t stream);
  std::string console_tail() const;

  Context& m_ctx;
  state::VmStore& m_store;
  state::VmRecord m_rec;
  int m_ready_fd;
  bool m_fresh;
  // A foreground run attaches to see all output: the plan (and so the container) waits for it.
  bool m_wait_attach;
  bool m_plan_pending = false;
  Clock::time_point m_attach_deadline = Clock::now() + 30s;
  Timings m_timings;
  std::unique_ptr<VmResources> m_vm;
  UniqueFd m_listen;
  UniqueFd m_log_fd;
  std::unique_ptr<ContainerLogWriter> m_log;
  std::list<Client> m_clients;
  proto::Decoder m_agent_decoder;
  bool m_channel_open = false;
  bool m_hello = false;
  bool m_ready = false;              // reported ready (gate passed, or running without a gate)
  bool m_container_running = false;  // the agent said the container runs
  // Readiness gate (--wait-ready); probes of http/exec gates run as internal exec streams.
  std::optional<readiness::Gate> m_gate;
  std::unique_ptr<readiness::LogMatcher> m_matcher;
  std::optional<Clock::time_point> m_gate_deadline;
  Clock::time_point m_next_probe{};
  uint32_t m_probe_stream = 0;
  bool m_stop_sent = false;
  uint32_t m_next_stream = 1;
  std::optional<Clock::time_point> m_stop_deadline;
  std::optional<Clock::time_point> m_poweroff_deadline;
  std::optional<int> m_exit_code;
  std::optional<Error> m_error;
  std::optional<state::SnapshotRecord> m_restore_from;  // a clone's first start
  // run_in_guest: the stream it waits for and what became of it.
  uint32_t m_sync_stream = 0;
  std::optional<int> m_sync_exit;
};

std::string Monitor::console_tail() const {
  auto text = read_file(m_rec.dir + "/console.log");
  if (!text) return {};
  auto lines = split(trim(*text), '\n');
  std::string out;
  size_t first = lines.size() > 8 ? lines.size() - 8 : 0;
  for (size_t i = first; i < lines.size(); ++i) out += fmt::format("\n  {}", lines[i]);
  return out.empty() ? out
                     : fmt::format("\nlast console lines ({}/console.log):{}", m_rec.dir, out);
}

void Monitor::save() {
  if (auto r = m_store.update(m_rec); !r)
    FCVM_LOG(kError, "monitor", "save state: {}", r.error().to_string());
}

void Monitor::gate_passed() {
  if (m_ready) return;
  m_timings.mark("ready", m_gate ? std::string(m_gate->mode_name()) : std::string("container"));
  if (!save_snapshot_on_ready()) return;
  m_rec.status = m_stop_deadline ? state::VmStatus::kStopping : state::VmStatus::kRunning;
  save();
  report_ready("ok");
}

Result<state::SnapshotRecord> Monitor::snapshot(const std::string& name, bool then_stop) {
  auto snap = take_snapshot(m_ctx, m_store, m_rec, *m_vm, name, /*resume_after=*/!then_stop);
  if (!snap) return snap;
  m_timings.mark("snapshot_saved", snap->name);
  FCVM_LOG(kInfo, "monitor", "snapshot {} written ({} bytes)", snap->name, snap->size_bytes);
  if (then_stop) {
    // The snapshot holds the running container; this VM has served its purpose.
    m_exit_code = 0;
    m_stop_deadline = Clock::now();
    m_vm->backend->kill();
  }
  return snap;
}

bool Monitor::save_snapshot_on_ready() {
  const auto& name = m_vm->options.save_snapshot;
  if (name.empty() || !m_fresh || m_vm->restored) return true;
  auto snap = snapshot(name, m_vm->options.snapshot_then_stop);
  if (snap) return true;
  m_error =
      Error(snap.error().code(), fmt::format("save snapshot {}: {}", name, snap.error().message()));
  begin_stop(0);
  return false;
}

// Runs the next probe of an http or exec gate, and fails the gate at its deadline.
void Monitor::gate_tick() {
  if (!m_gate || m_ready || !m_container_running || m_error || m_stop_deadline) return;
  auto now = Clock::now();
  if (m_gate_deadline && now > *m_gate_deadline) {
    m_error =
        Error(ErrorCode::kTimeout, fmt::format("readiness gate \"{}\" did not pass within {} s",
                                               m_gate->spec, m_gate->timeout_s));
    if (m_vm->options.keep_on_failure) {
      report_ready("error: " + m_error->to_string() + " (the VM is kept: --keep-on-failure)");
      m_error.reset();
      m_gate.reset();
    } else {
      begin_stop(0);
    }
    return;
  }
  if (m_probe_stream != 0 || now < m_next_probe) return;
  if (m_gate->mode != readiness::Mode::kHttp && m_gate->mode != readiness::Mode::kExec) return;
  m_probe_stream = m_next_stream++;
  send_agent(nlohmann::json{
      {"type", "exec"},
      {"stream", m_probe_stream},
      {"argv", m_gate->probe_argv()},
      {"in_vm", m_gate->runs_in_vm()},
      {"tty", false},
      {"stdin",
       false}}.dump());
}

void Monitor::report_ready(const std::string& line) {
  if (line == "ok") m_ready = true;
  if (m_ready_fd < 0) return;
  (void)write_all(m_ready_fd, line + "\n");
  ::close(m_ready_fd);
  m_ready_fd = -1;
}

void Monitor::send_agent(const std::string& control) {
  if (!m_channel_open) return;
  auto r =
      proto::write_frame(m_vm->channel.get(), proto::Kind::kControl, proto::k_main_stream, control);
  if (!r) FCVM_LOG(kWarn, "monitor", "send to agent: {}", r.error().to_string());
}

void Monitor::send_client(Client& c, proto::Kind kind, uint32_t stream, std::string_view payload) {
  if (c.closed) return;
  if (!proto::write_frame(c.fd.get(), kind, stream, payload)) c.closed = true;
}

void Monitor::maybe_send_plan() {
  if (!m_plan_pending) return;
  bool attached = false;
  for (const auto& c : m_clients) attached = attached || (c.attach && !c.closed);
  if (m_wait_attach && !attached && Clock::now() < m_attach_deadline) return;
  m_plan_pending = false;
  send_agent(proto::encode_plan(m_vm->plan));
}

Client* Monitor::client_for_stream(uint32_t stream) {
  for (auto& c : m_clients) {
    if (!c.closed && c.guest_stream == stream) return &c;
  }
  return nullptr;
}

void Monitor::begin_stop(int timeout_s) {
  if (m_stop_deadline) return;
  FCVM_LOG(kInfo, "monitor", "stopping (timeout {} s)", timeout_s);
  m_rec.status = state::VmStatus::kStopping;
  save();
  if (m_hello && m_channel_open) {
    m_stop_sent = true;
    send_agent(proto::encode_stop({timeout_s}));
    // The container gets SIGTERM, SIGKILL after timeout_s; then the guest powers off.
    m_stop_deadline = Clock::now() + std::chrono::seconds(timeout_s) + 20s;
  } else {
    // Still booting: there is no container to stop yet.
    m_vm->backend->kill();
    m_stop_deadline = Clock::now();
  }
}

void Monitor::on_signal() {
  signalfd_siginfo info{};
  if (::read(m_vm->signals.fd(), &info, sizeof info) != sizeof info) return;
  FCVM_LOG(kInfo, "monitor", "signal {}", info.ssi_signo);
  if (m_stop_deadline) {
    m_vm->backend->kill();  // a second request: no more waiting
  } else {
    begin_stop(m_vm->options.stop_timeout_s);
  }
}

Result<> Monitor::on_agent_control(const nlohmann::json& msg) {
  auto type = msg["type"].get<std::string>();
  if (type == proto::k_hello) {
    auto version = msg.value("version", 0u);
    if (version != proto::k_protocol_version) {
      return fail(
          ErrorCode::kProtocol,
          fmt::format("guest agent speaks protocol version {}, this fcvm speaks {}: rebuild "
                      "the guest image with scripts/fcvm-init.sh",
                      version, proto::k_protocol_version));
    }
    m_timings.mark_guest("agent_hello", msg.value("uptime_ms", 0LL));
    if (!m_hello) {
      m_hello = true;
      m_plan_pending = true;
      maybe_send_plan();
    }
    if (m_gate && m_gate->mode == readiness::Mode::kAgent) gate_passed();
  } else if (type == proto::k_event) {
    m_timings.mark_guest(msg.value("name", "event"), msg.value("uptime_ms", 0LL));
  } else if (type == proto::k_ready) {
    m_timings.mark("container_running");
    m_container_running = true;
    if (!m_gate) {
      gate_passed();
    } else if (!m_gate_deadline) {
      m_gate_deadline = Clock::now() + std::chrono::seconds(m_gate->timeout_s);
    }
  } else if (type == proto::k_exit) {
    auto stream = msg.value("stream", 0u);
    if (stream == proto::k_main_stream) {
      m_exit_code = msg.value("code", 1);
      m_timings.mark("container_exited", std::to_string(*m_exit_code));
      if (m_log) m_log->flush();
      if (!m_gate || m_gate->mode == readiness::Mode::kAgent) {
        report_ready("ok");  // it ran: a short-lived container may exit before `ready`
      } else if (!m_ready && !m_error) {
        m_error = Error(ErrorCode::kSystem,
                        fmt::format("the container exited (code {}) before the readiness gate "
                                    "\"{}\" passed",
                                    *m_exit_code, m_gate->spec));
      }
    } else if (stream == m_sync_stream && m_sync_stream != 0) {
      m_sync_exit = msg.value("code", 1);
    } else if (stream == m_probe_stream) {
      m_probe_stream = 0;
      if (msg.value("code", 1) == 0) {
        gate_passed();
      } else {
        m_next_probe = Clock::now() + 500ms;
      }
    } else if (auto* c = client_for_stream(stream)) {
      send_client(*c, proto::Kind::kControl, stream, msg.dump());
      c->guest_stream = 0;
    }
  } else if (type == proto::k_error) {
    m_error = Error(ErrorCode::kSystem, fmt::format("guest: {}: {}", msg.value("stage", "?"),
                                                    msg.value("message", "?")));
  } else if (type == "exec_error" && m_sync_stream != 0 &&
             msg.value("stream", 0u) == m_sync_stream) {
    FCVM_LOG(kWarn, "monitor", "guest command refused: {}", msg.value("message", ""));
  } else if (type == "exec_error" && msg.value("stream", 0u) == m_probe_stream &&
             m_probe_stream != 0) {
    // A refused probe (e.g. the container is not up yet): the exit that follows retries it.
    FCVM_LOG(kInfo, "monitor", "readiness probe refused: {}", msg.value("message", ""));
  } else if (type == "exec_error") {
    if (auto* c = client_for_stream(msg.value("stream", 0u))) {
      send_client(*c, proto::Kind::kControl, c->guest_stream, msg.dump());
      c->guest_stream = 0;
    }
  } else if (type == proto::k_log) {
    FCVM_LOG(kInfo, "agent", "{}", msg.value("message", ""));
  }
  return {};
}

Result<> Monitor::on_agent_frame(const proto::Frame& frame) {
  if (frame.kind == proto::Kind::kControl) {
    auto msg = proto::parse_control(frame.payload);
    if (!msg) return tl::unexpected<Error>(msg.error());
    return on_agent_control(*msg);
  }
  if (frame.kind != proto::Kind::kStdout && frame.kind != proto::Kind::kStderr) {
    return fail(ErrorCode::kProtocol, "unexpected frame kind from the guest");
  }
  if (frame.stream == proto::k_main_stream) {
    if (m_matcher && !m_ready && m_matcher->feed(frame.payload)) gate_passed();
    if (m_log) {
      m_log->write(frame.kind == proto::Kind::kStdout ? LogStream::kStdout : LogStream::kStderr,
                   frame.payload);
    }
    for (auto& c : m_clients) {
      if (c.attach) send_client(c, frame.kind, 0, frame.payload);
    }
  } else if (auto* c = client_for_stream(frame.stream)) {
    send_client(*c, frame.kind, frame.stream, frame.payload);
  }
  return {};
}

Result<> Monitor::on_agent_bytes() {
  char buf[65536];
  ssize_t n = ::read(m_vm->channel.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return {};
  if (n <= 0) {
    m_channel_open = false;  // the VMM is going away; its exit status tells how
    return {};
  }
  m_agent_decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto frame = m_agent_decoder.next();
    if (!frame) return tl::unexpected<Error>(std::move(frame.error()).wrap("guest agent"));
    if (!*frame) return {};
    FCVM_TRY(on_agent_frame(**frame));
  }
}

void Monitor::on_client_control(Client& c, nlohmann::json msg) {
  auto type = msg["type"].get<std::string>();
  auto reply = [&](const nlohmann::json& j) { send_client(c, proto::Kind::kControl, 0, j.dump()); };
  if (type == "attach") {
    c.attach = true;
    reply({{"type", "ok"}, {"id", m_rec.id}});
    maybe_send_plan();
  } else if (type == "stop") {
    begin_stop(msg.value("timeout_s", m_vm->options.stop_timeout_s));
    reply({{"type", "ok"}});
  } else if (type == "kill") {
    m_vm->backend->kill();
    reply({{"type", "ok"}});
  } else if (type == "volume_sync") {
    if (!m_container_running || m_exit_code || m_stop_deadline || !m_channel_open) {
      reply({{"type", "error"},
             {"message", fmt::format("VM {} is not running a container", m_rec.name)}});
      return;
    }
    auto synced = sync_volumes_live();
    if (!synced) {
      reply({{"type", "error"}, {"message", synced.error().message()}});
    } else {
      reply({{"type", "ok"}, {"volumes", *synced}});
    }
  } else if (type == "snapshot") {
    if (!m_ready || m_exit_code || m_stop_deadline || !m_channel_open) {
      reply({{"type", "error"},
             {"message", fmt::format("VM {} is not running a container", m_rec.name)}});
      return;
    }
    auto snap = snapshot(msg.value("name", ""), msg.value("then_stop", false));
    if (!snap) {
      reply({{"type", "error"},
             {"code", snap.error().code() == ErrorCode::kInvalidInput ? 2 : 1},
             {"message", snap.error().message()}});
    } else {
      reply({{"type", "ok"}, {"id", snap->id}, {"name", snap->name}});
    }
  } else if (type == "exec") {
    if (!m_container_running || m_exit_code || m_stop_deadline || !m_channel_open) {
      reply({{"type", "exec_error"},
             {"message", fmt::format("VM {} is not running a container", m_rec.name)}});
      return;
    }
    c.guest_stream = m_next_stream++;
    msg["stream"] = c.guest_stream;
    send_agent(msg.dump());
  } else if (type == "resize" || type == "signal") {
    if (c.guest_stream == 0) return;
    msg["stream"] = c.guest_stream;
    send_agent(msg.dump());
  } else {
    reply({{"type", "error"}, {"message", fmt::format("unknown request \"{}\"", type)}});
  }
}

void Monitor::on_client_frame(Client& c, const proto::Frame& frame) {
  switch (frame.kind) {
    case proto::Kind::kControl: {
      auto msg = proto::parse_control(frame.payload);
      if (!msg) {
        c.closed = true;
        return;
      }
      on_client_control(c, std::move(*msg));
      return;
    }
    case proto::Kind::kStdin:
    case proto::Kind::kStdinEof:
      if (c.guest_stream != 0 && m_channel_open) {
        (void)proto::write_frame(m_vm->channel.get(), frame.kind, c.guest_stream, frame.payload);
      }
      return;
    default:
      c.closed = true;
  }
}

void Monitor::on_client_bytes(Client& c) {
  char buf[65536];
  ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    c.closed = true;
    return;
  }
  c.decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto frame = c.decoder.next();
    if (!frame || !*frame) {
      if (!frame) c.closed = true;
      return;
    }
    on_client_frame(c, **frame);
  }
}

void Monitor::loop() {
  auto boot_deadline = Clock::now() + 180s;
  for (;;) {
    // Clients that went away: an exec loses its process, an attached foreground run its VM.
    for (auto it = m_clients.begin(); it != m_clients.end();) {
      if (!it->closed) {
        ++it;
        continue;
      }
      if (it->guest_stream != 0) {
        send_agent(
            nlohmann::json{{"type", "signal"}, {"stream", it->guest_stream}, {"signal", "KILL"}}
                .dump());
      }
      bool was_attach = it->attach;
      it = m_clients.erase(it);
      bool attached_left = false;
      for (auto& c : m_clients) attached_left = attached_left || c.attach;
      if (was_attach && !attached_left && m_rec.auto_remove && !m_exit_code) {
        FCVM_LOG(kInfo, "monitor", "the attached client left: stopping the VM");
        begin_stop(m_vm->options.stop_timeout_s);
      }
    }
    auto status = m_vm->backend->wait_exit(0ms);
    if (!status || *status) {
      // What the guest said last (its exit code) may still wait in the channel.
      while (m_channel_open && wait_readable(m_vm->channel.get(), 0ms).value_or(false)) {
        if (auto e = on_agent_bytes(); !e) {
          if (!m_error) m_error = e.error();
          break;
        }
      }
      if (!m_exit_code && !m_error && !m_stop_deadline) {
        m_error = Error(ErrorCode::kSystem,
                        fmt::format("the VM stopped before its container finished ({} {}){}",
                                    m_vm->backend->name(),
                                    status ? (*status)->describe() : status.error().to_string(),
                                    console_tail()));
      }
      return;
    }
    maybe_send_plan();  // the attach deadline may have passed
    gate_tick();
    check_volume_servers();
    auto now = Clock::now();
    if (!m_hello && now > boot_deadline) {
      m_error = Error(ErrorCode::kTimeout,
                      fmt::format("the guest agent did not answer within 180 s{}", console_tail()));
      m_vm->backend->kill();
      continue;
    }
    if ((m_exit_code || m_error) && !m_poweroff_deadline) m_poweroff_deadline = now + 15s;
    if ((m_poweroff_deadline && now > *m_poweroff_deadline) ||
        (m_stop_deadline && now > *m_stop_deadline)) {
      FCVM_LOG(kWarn, "monitor", "the guest did not power off in time: stopping the VMM");
      (void)m_vm->backend->shutdown();
      continue;
    }
    std::vector<pollfd> fds;
    fds.push_back({m_channel_open ? m_vm->channel.get() : -1, POLLIN, 0});
    fds.push_back({m_vm->signals.fd(), POLLIN, 0});
    fds.push_back({m_listen.get(), POLLIN, 0});
    for (auto& c : m_clients) fds.push_back({c.fd.get(), POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), 100);
    if (r <= 0) continue;
    if (fds[0].revents) {
      if (auto e = on_agent_bytes(); !e) {
        m_error = e.error();
        m_vm->backend->kill();
      }
    }
    if (fds[1].revents & POLLIN) on_signal();
    if (fds[2].revents & POLLIN) {
      UniqueFd conn(::accept4(m_listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn) m_clients.push_back(Client{std::move(conn), {}, false, 0, false});
    }
    size_t i = 3;
    for (auto& c : m_clients) {
      if (i >= fds.size()) break;
      if (fds[i++].revents) on_client_bytes(c);
    }
  }
}

void Monitor::teardown() {
  if (m_vm) {
    m_vm->backend->kill();
    m_vm->network.reset();
    write_back_volumes();
  }
  if (m_log) m_log->flush();
  for (const char* sock : {"control.sock", "agent.sock", "qmp.sock", "slirp.sock",
                           "firecracker.sock", "vsock.sock", "memory.ram"}) {
    ::unlink((m_rec.dir + "/" + sock).c_str());
  }
  ::unlink(memory_file_path(m_rec).c_str());
  m_rec.status = state::VmStatus::kExited;
  m_rec.finished_ms = state::now_ms();
  m_rec.exit_code = m_exit_code ? std::optional<int64_t>(*m_exit_code) : std::nullopt;
  m_rec.error = m_error ? m_error->to_string() : std::string();
  m_rec.monitor = {};
  m_rec.vmm = {};
  m_rec.helper = {};
  // Attached clients learn the end before the record may disappear.
  for (auto& c : m_clients) {
    if (!c.attach) continue;
    if (m_exit_code) {
      send_client(c, proto::Kind::kControl, 0, proto::encode_exit({0, *m_exit_code}));
    } else {
      send_client(c, proto::Kind::kControl, 0,
                  proto::encode_error({"vm", m_error ? m_error->to_string() : "stopped"}));
    }
  }
  bool never_ran = !m_ready;
  // A VM that never got to run its container on its first start leaves nothing behind; one that
  // asked to be removed when it ends goes too. Before the starting command hears of the failure:
  // when `run -d` returns, nothing of the VM is left.
  if (m_rec.auto_remove || (m_fresh && never_ran)) {
    (void)remove_all(m_rec.dir);
    (void)m_store.remove(m_rec.id);
  } else {
    ::unlink((m_rec.dir + "/control.sock").c_str());
    save();
  }
  if (never_ran)
    report_ready("error: " + (m_error ? m_error->to_string() : "stopped during start-up"));
  m_clients.clear();
}

Result<int> Monitor::run_in_guest(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
  m_sync_stream = m_next_stream++;
  m_sync_exit.reset();
  send_agent(nlohmann::json{
      {"type", "exec"},
      {"stream", m_sync_stream},
      {"argv", argv},
      {"in_vm", true},
      {"tty", false},
      {"stdin",
       false}}.dump());
  auto deadline = Clock::now() + timeout;
  while (!m_sync_exit && m_channel_open && Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto readable =
        wait_readable(m_vm->channel.get(), std::min(left, std::chrono::milliseconds(100)));
    if (readable && *readable) FCVM_TRY(on_agent_bytes());
  }
  m_sync_stream = 0;
  if (!m_sync_exit) {
    return fail(ErrorCode::kTimeout,
                fmt::format("{} did not finish in the guest", join(argv, " ")));
  }
  return *m_sync_exit;
}

Result<size_t> Monitor::sync_volumes_live() {
  size_t done = 0;
  const auto& maps = m_vm->options.volumes;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    if (m.mode != storage::VolumeMode::kBlock || !m.host_is_dir || m.read_only) continue;
    auto mount = fmt::format("/run/fcvm/volumes/{}", i);
    auto image = volume_image_path(m_rec, i);
    auto copy = fmt::format("{}/vol-{}.frozen", m_rec.dir, i);
    ::unlink(copy.c_str());
    // Frozen, the guest's file system is consistent on the disk (journal flushed) and stays so
    // while the host copies the image; the container's writes wait meanwhile.
    auto frozen = run_in_guest({"fsfreeze", "--freeze", mount}, std::chrono::seconds(30));
    if (!frozen || *frozen != 0) {
      return fail(ErrorCode::kSystem,
                  fmt::format("volume {}: the guest could not freeze it{}", m.guest,
                              frozen ? "" : ": " + frozen.error().message()));
    }
    auto copied = clone_file_data(image, copy, false, 0600);
    auto thawed = run_in_guest({"fsfreeze", "--unfreeze", mount}, std::chrono::seconds(30));
    if (!copied) return fail(copied.error().wrap("volume " + m.guest));
    if (!thawed || *thawed != 0) {
      FCVM_LOG(kError, "monitor", "volume {}: unfreeze failed", m.guest);
    }
    auto synced = storage::sync_image_to_dir(m_ctx.runner, copy, m.host,
                                             fmt::format("{}/vol-{}.sync", m_rec.dir, i),
                                             /*check_fs=*/false);
    ::unlink(copy.c_str());
    if (!synced) return fail(synced.error().wrap(fmt::format("write volume {} back", m.guest)));
    ++done;
  }
  return done;
}

void Monitor::check_volume_servers() {
  if (m_stop_deadline || m_error) return;
  for (size_t i = 0; i < m_vm->volume_servers.size(); ++i) {
    auto st = m_vm->volume_servers[i].try_wait();
    if (!st || !*st) continue;
    m_error = Error(ErrorCode::kSystem,
                    fmt::format("a volume's server on the host exited ({}); see {}/sftp-*.log "
                                "or {}/nfs.log",
                                (*st)->describe(), m_rec.dir, m_rec.dir));
    begin_stop(0);
    return;
  }
}

void Monitor::write_back_volumes() {
  const auto& maps = m_vm->options.volumes;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    if (m.mode == storage::VolumeMode::kSshfs && !m.read_only && m_rec.started_ms) {
      // sshfs renames a file deleted while open to .fuse_hidden*; with the VM gone nothing holds
      // those of this run any more.
      auto removed = storage::remove_fuse_hidden(m.host, *m_rec.started_ms);
      if (removed && *removed > 0) {
        FCVM_LOG(kInfo, "monitor", "volume {}: removed {} .fuse_hidden files", m.guest, *removed);
      }
      continue;
    }
    if (m.mode != storage::VolumeMode::kBlock || !m.host_is_dir) continue;
    auto image = volume_image_path(m_rec, i);
    if (!path_exists(image)) continue;
    auto clean = storage::ext4_image_clean(image);
    // Only a container that ended and a guest that unmounted the volume give a complete state;
    // otherwise the directory keeps the state it had when the VM started.
    if (m.read_only) {
      // nothing to write back
    } else if (!m_exit_code || !clean || !*clean) {
      FCVM_LOG(kWarn, "monitor",
               "volume {}: the guest did not end cleanly; {} keeps its state from before the start",
               m.guest, m.host);
    } else {
      m_timings.mark("volume_writing_back", m.host);
      auto synced = storage::sync_image_to_dir(m_ctx.runner, image, m.host,
                                               fmt::format("{}/vol-{}.sync", m_rec.dir, i));
      if (!synced) {
        auto e = synced.error().wrap(fmt::format("write volume {} back to {}", m.guest, m.host));
        FCVM_LOG(kError, "monitor", "{}", e.to_string());
        if (!m_error) m_error = e;
      } else {
        m_timings.mark("volume_written_back", m.host);
      }
    }
    ::unlink(image.c_str());
  }
}

int Monitor::run() {
  m_timings.mark("monitor_started");
  // The control socket comes first: a foreground `run` attaches while the VM boots.
  auto listen = unix_listen(m_rec.dir + "/control.sock");
  if (!listen) {
    m_error = listen.error();
  } else {
    m_listen = std::move(*listen);
    m_log_fd.reset(::open((m_rec.dir + "/container.log").c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    m_log = std::make_unique<ContainerLogWriter>(m_log_fd.get());
    // A clone's first start restores its snapshot; later starts boot its own disk.
    if (!m_rec.snapshot.empty() && m_fresh) {
      auto snap = state::SnapshotStore(m_store.db()).get(m_rec.snapshot);
      if (!snap || !*snap || (**snap).status != state::SnapshotStatus::kComplete) {
        m_error = Error(ErrorCode::kNotFound, "the snapshot of this clone is gone");
      } else {
        m_restore_from = **snap;
      }
    }
    auto setup = m_error ? Result<std::unique_ptr<VmResources>>(tl::unexpected<Error>(*m_error))
                         : setup_vm(
                               m_ctx, m_rec, m_timings, [this] { save(); },
                               m_restore_from ? &*m_restore_from : nullptr);
    if (!setup) {
      m_error = setup.error();
    } else {
      m_vm = std::move(*setup);
      m_channel_open = true;
      // The restored agent is mid-plan and may not notice the new connection: ask for a hello
      // (its answer gets the clone's plan: id, clock, fresh entropy).
      if (m_vm->restored) send_agent(nlohmann::json{{"type", proto::k_hello}}.dump());
      if (!m_vm->options.wait_ready.empty()) {
        auto gate = readiness::parse_gate(m_vm->options.wait_ready);
        if (gate) {
          m_gate = *gate;
          if (m_gate->mode == readiness::Mode::kLog) {
            m_matcher = std::make_unique<readiness::LogMatcher>(m_gate->pattern);
          }
        } else {
          m_error = gate.error();
        }
      }
      if (!m_error) loop();
    }
  }
  m_timings.mark("vm_ended");
  teardown();
  return 0;
}

}  // namespace

int monitor_main(Context& ctx, const std::string& id, int ready_fd, bool fresh, bool wait_attach) {
  auto store = open_store(ctx);
  if (!store) {
    if (ready_fd >= 0) (void)write_all(ready_fd, "error: " + store.error().to_string() + "\n");
    return 1;
  }
  auto rec = store->get(id);
  if (!rec || !*rec) {
    if (ready_fd >= 0) (void)write_all(ready_fd, fmt::format("error: no VM with id {}\n", id));
    return 1;
  }
  Monitor monitor(ctx, *store, std::move(**rec), ready_fd, fresh, wait_attach);
  return monitor.run();
}

}  // namespace fcvm::vm
