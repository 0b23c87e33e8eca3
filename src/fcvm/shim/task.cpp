#include "fcvm/shim/task.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "containerd/events.pb.h"
#include "containerd/shim.pb.h"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/events.hpp"

namespace fcvm::shim {
namespace {

namespace task = ::containerd::task::v2;
namespace ev = ::containerd::events;

using namespace std::chrono_literals;

// A SIGKILL the container did not die of within this long ends the VM.
constexpr auto k_kill_grace = 10s;

template <typename M>
Result<M> decode(const std::string& payload, const char* what) {
  M m;
  if (!m.ParseFromString(payload)) {
    return fail(ErrorCode::kInvalidInput, fmt::format("{}: not a valid message", what));
  }
  return m;
}

void set_time(google::protobuf::Timestamp* t, int64_t ns) {
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

Result<std::string> read_config(const std::string& bundle) {
  std::ifstream in(bundle + "/config.json");
  if (!in) {
    return fail(ErrorCode::kInvalidInput, fmt::format("bundle {} has no config.json", bundle));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TaskService::TaskService(std::string ns, EngineFactory engines, Publish publish,
                         std::function<void()> shutdown)
    : m_ns(std::move(ns)),
      m_engines(std::move(engines)),
      m_publish(std::move(publish)),
      m_shutdown(std::move(shutdown)) {}

TaskService::~TaskService() {
  // Workers end with their process; a task still running when the shim is destroyed (tests) is
  // ended first.
  bool running = false;
  {
    std::lock_guard lock(m_mutex);
    running = m_main && m_main->worker.joinable() && m_main->status != Status::kStopped;
  }
  if (running && m_engine) (void)m_engine->kill_vm();
  if (m_main && m_main->worker.joinable()) m_main->worker.join();
  for (auto& [id, p] : m_execs) {
    if (p->worker.joinable()) {
      if (p->status != Status::kStopped) p->control.signal("KILL");
      p->worker.join();
    }
  }
}

void TaskService::register_handlers(ttrpc::Registry& registry) {
  for (const char* m : {"Create", "Start", "Wait", "State", "Delete", "Kill", "Connect", "Shutdown",
                        "CloseIO", "ResizePty", "Pids", "Exec", "Pause", "Resume"}) {
    registry.add(k_task_service, m, [this, m](const ttrpc::Call& c) { return call(m, c.payload); });
  }
}

Result<std::string> TaskService::call(const std::string& method, const std::string& payload) {
  auto out = dispatch(method, payload);
  if (!out) FCVM_LOG(kWarn, "shim", "{}: {}", method, out.error().to_string());
  return out;
}

Result<std::string> TaskService::dispatch(const std::string& method, const std::string& payload) {
  if (method == "Create") return create(payload);
  if (method == "Start") return start(payload);
  if (method == "Wait") return wait(payload);
  if (method == "State") return state(payload);
  if (method == "Delete") return remove(payload);
  if (method == "Kill") return kill(payload);
  if (method == "Connect") return connect(payload);
  if (method == "Shutdown") return shutdown(payload);
  if (method == "CloseIO") return close_io(payload);
  if (method == "ResizePty") return resize_pty(payload);
  if (method == "Pids") return pids(payload);
  if (method == "Exec") return exec(payload);
  if (method == "Pause") return pause(payload, true);
  if (method == "Resume") return pause(payload, false);
  return fail(ErrorCode::kUnavailable, fmt::format("the Task service has no method {}", method));
}

void TaskService::publish(const std::string& topic, const std::string& type,
                          const std::string& bytes) {
  if (m_publish) m_publish({topic, type, bytes});
}

Result<TaskService::Process*> TaskService::find(const std::string& id, const std::string& exec_id) {
  if (!m_main || id != m_id || m_deleted) {
    return fail(ErrorCode::kNotFound, fmt::format("task {}: not found", id));
  }
  if (exec_id.empty()) return m_main.get();
  auto it = m_execs.find(exec_id);
  if (it == m_execs.end()) {
    return fail(ErrorCode::kNotFound, fmt::format("exec {} of task {}: not found", exec_id, id));
  }
  return it->second.get();
}

Result<std::string> TaskService::create(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::CreateTaskRequest>(payload, "CreateTaskRequest"));
  {
    std::lock_guard lock(m_mutex);
    if (m_main || !m_id.empty()) {
      return fail(ErrorCode::kAlreadyExists,
                  fmt::format("this shim runs task {} already; {} needs its own", m_id, req.id()));
    }
    m_id = req.id();  // reserved while the VM boots
  }
  auto fail_create = [&](Error e) -> Result<std::string> {
    std::lock_guard lock(m_mutex);
    m_id.clear();
    return tl::unexpected(std::move(e));
  };
  if (!req.checkpoint().empty()) {
    return fail_create(Error(ErrorCode::kInvalidInput, "restoring a checkpoint is not supported"));
  }
  if (auto r = check_runtime_options(req.has_options() ? req.options().type_url() : ""); !r) {
    return fail_create(r.error());
  }
  CreateParams params;
  params.ns = m_ns;
  params.id = req.id();
  params.bundle = req.bundle();
  auto config = read_config(req.bundle());
  if (!config) return fail_create(config.error());
  auto spec = parse_container_spec(*config);
  if (!spec) return fail_create(spec.error().wrap(req.bundle() + "/config.json"));
  params.spec = std::move(*spec);
  std::vector<MountSpec> mounts;
  for (const auto& m : req.rootfs()) {
    mounts.push_back({m.type(), m.source(), {m.options().begin(), m.options().end()}});
  }
  auto layers = rootfs_layers(mounts);
  if (!layers) return fail_create(layers.error());
  params.layers = std::move(layers->lower);
  params.upper = std::move(layers->upper);
  params.io = {req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  params.spec.process.terminal = req.terminal();
  m_engine = m_engines(params.spec);
  auto pid = m_engine->create(params);
  if (!pid) return fail_create(pid.error());

  std::lock_guard lock(m_mutex);
  m_bundle = req.bundle();
  m_pid = *pid;
  m_main = std::make_unique<Process>();
  m_main->io = params.io;
  ev::TaskCreate e;
  e.set_container_id(m_id);
  e.set_bundle(m_bundle);
  *e.mutable_rootfs() = req.rootfs();
  e.mutable_io()->set_stdin(req.stdin());
  e.mutable_io()->set_stdout(req.stdout());
  e.mutable_io()->set_stderr(req.stderr());
  e.mutable_io()->set_terminal(req.terminal());
  e.set_pid(m_pid);
  publish("/tasks/create", "containerd.events.TaskCreate", e.SerializeAsString());
  task::CreateTaskResponse out;
  out.set_pid(m_pid);
  return out.SerializeAsString();
}

void TaskService::exited(Process& p, int code) {
  // With m_mutex held.
  if (p.status == Status::kStopped) return;
  p.status = Status::kStopped;
  p.exit_status = static_cast<uint32_t>(code);
  p.exited_at_ns = vm::now_ns();
  ev::TaskExit e;
  e.set_container_id(m_id);
  e.set_id(p.exec_id.empty() ? m_id : p.exec_id);
  e.set_pid(m_pid);
  e.set_exit_status(p.exit_status);
  set_time(e.mutable_exited_at(), p.exited_at_ns);
  publish("/tasks/exit", "containerd.events.TaskExit", e.SerializeAsString());
  m_changed.notify_all();
}

Result<std::string> TaskService::start(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::StartRequest>(payload, "StartRequest"));
  std::unique_lock lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  if (p->status != Status::kCreated || p->worker.joinable()) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} {} was started already", p->exec_id.empty() ? "task" : "exec",
                            p->exec_id.empty() ? m_id : p->exec_id));
  }
  if (p->exec_id.empty()) {
    p->worker = std::thread([this, p] {
      auto code = m_engine->run(p->io, p->control, [this, p](Result<> r) {
        std::lock_guard inner(m_mutex);
        if (p->started) return;
        if (r) {
          p->status = Status::kRunning;
          ev::TaskStart e;
          e.set_container_id(m_id);
          e.set_pid(m_pid);
          publish("/tasks/start", "containerd.events.TaskStart", e.SerializeAsString());
        } else {
          p->start_error = r.error();
        }
        p->started = true;
        m_changed.notify_all();
      });
      std::lock_guard inner(m_mutex);
      if (!p->started) {
        p->started = true;
        p->start_error =
            code ? Error(ErrorCode::kSystem, "the container did not start") : code.error();
      }
      if (!code) FCVM_LOG(kWarn, "shim", "task {}: {}", m_id, code.error().to_string());
      exited(*p, code ? *code : 255);
    });
    m_changed.wait(lock, [p] { return p->started; });
    if (p->start_error) return tl::unexpected(*p->start_error);
  } else {
    if (m_main->status != Status::kRunning) {
      return fail(ErrorCode::kConflict, fmt::format("task {} is not running", m_id));
    }
    p->status = Status::kRunning;
    p->started = true;
    ev::TaskExecStarted e;
    e.set_container_id(m_id);
    e.set_exec_id(p->exec_id);
    e.set_pid(m_pid);
    publish("/tasks/exec-started", "containerd.events.TaskExecStarted", e.SerializeAsString());
    p->worker = std::thread([this, p] {
      auto code = m_engine->exec(p->spec, p->io, p->control);
      if (!code) FCVM_LOG(kWarn, "shim", "exec {}: {}", p->exec_id, code.error().to_string());
      std::lock_guard inner(m_mutex);
      exited(*p, code ? *code : 126);
    });
  }
  task::StartResponse out;
  out.set_pid(m_pid);
  return out.SerializeAsString();
}

Result<std::string> TaskService::wait(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::WaitRequest>(payload, "WaitRequest"));
  std::unique_lock lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  m_changed.wait(lock, [p] { return p->status == Status::kStopped; });
  task::WaitResponse out;
  out.set_exit_status(p->exit_status);
  set_time(out.mutable_exited_at(), p->exited_at_ns);
  return out.SerializeAsString();
}

Result<std::string> TaskService::state(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::StateRequest>(payload, "StateRequest"));
  std::lock_guard lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  task::StateResponse out;
  out.set_id(p->exec_id.empty() ? m_id : p->exec_id);
  out.set_exec_id(p->exec_id);
  out.set_bundle(m_bundle);
  out.set_pid(m_pid);
  out.set_status(static_cast<::containerd::v1::types::Status>(p->status));
  out.set_stdin(p->io.in);
  out.set_stdout(p->io.out);
  out.set_stderr(p->io.err);
  out.set_terminal(p->io.terminal);
  if (p->status == Status::kStopped) {
    out.set_exit_status(p->exit_status);
    set_time(out.mutable_exited_at(), p->exited_at_ns);
  }
  return out.SerializeAsString();
}

Result<std::string> TaskService::remove(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::DeleteRequest>(payload, "DeleteRequest"));
  std::unique_lock lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  if (p->status == Status::kRunning || p->status == Status::kPaused) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} {} is running: kill it first", p->exec_id.empty() ? "task" : "exec",
                            p->exec_id.empty() ? m_id : p->exec_id));
  }
  task::DeleteResponse out;
  out.set_pid(m_pid);
  out.set_exit_status(p->exit_status);
  set_time(out.mutable_exited_at(), p->exited_at_ns ? p->exited_at_ns : vm::now_ns());
  if (!p->exec_id.empty()) {
    std::thread worker = std::move(p->worker);
    m_execs.erase(p->exec_id);
    lock.unlock();
    if (worker.joinable()) worker.join();
    return out.SerializeAsString();
  }
  lock.unlock();
  if (auto r = m_engine->remove(); !r) return tl::unexpected(r.error());
  if (m_main->worker.joinable()) m_main->worker.join();
  lock.lock();
  m_deleted = true;
  ev::TaskDelete e;
  e.set_container_id(m_id);
  e.set_id(m_id);
  e.set_pid(m_pid);
  e.set_exit_status(m_main->exit_status);
  *e.mutable_exited_at() = out.exited_at();
  publish("/tasks/delete", "containerd.events.TaskDelete", e.SerializeAsString());
  m_changed.notify_all();
  return out.SerializeAsString();
}

Result<std::string> TaskService::kill(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::KillRequest>(payload, "KillRequest"));
  if (req.signal() == 0 || req.signal() > 64) {
    return fail(ErrorCode::kInvalidInput, fmt::format("signal {} is not a signal", req.signal()));
  }
  int signo = static_cast<int>(req.signal());
  std::unique_lock lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  if (p->status == Status::kStopped) {
    return fail(ErrorCode::kNotFound, "process already finished");
  }
  if (!p->exec_id.empty()) {
    p->control.signal(std::to_string(signo));
    return std::string();
  }
  if (p->status == Status::kCreated || (p->status == Status::kPaused && signo == SIGKILL)) {
    // Nothing runs that could take it: the VM goes.
    lock.unlock();
    FCVM_TRY(m_engine->kill_vm());
    lock.lock();
    if (!p->worker.joinable()) exited(*p, 128 + signo);
    return std::string();
  }
  lock.unlock();
  FCVM_TRY(m_engine->signal(signo));
  if (signo == SIGKILL) {
    lock.lock();
    if (!m_changed.wait_for(lock, k_kill_grace, [p] { return p->status == Status::kStopped; })) {
      lock.unlock();
      FCVM_LOG(kWarn, "shim", "task {} outlived SIGKILL: ending its VM", m_id);
      FCVM_TRY(m_engine->kill_vm());
    }
  }
  return std::string();
}

Result<std::string> TaskService::connect(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::ConnectRequest>(payload, "ConnectRequest"));
  std::lock_guard lock(m_mutex);
  task::ConnectResponse out;
  out.set_shim_pid(static_cast<uint32_t>(::getpid()));
  out.set_task_pid(m_pid);
  out.set_version("fcvm " FCVM_VERSION);
  return out.SerializeAsString();
}

Result<std::string> TaskService::shutdown(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::ShutdownRequest>(payload, "ShutdownRequest"));
  std::lock_guard lock(m_mutex);
  if (m_main && !m_deleted) return std::string();  // a task is left: the shim stays
  if (m_shutdown) m_shutdown();
  return std::string();
}

Result<std::string> TaskService::close_io(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::CloseIORequest>(payload, "CloseIORequest"));
  std::lock_guard lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  if (req.stdin()) p->control.close_stdin();
  return std::string();
}

Result<std::string> TaskService::resize_pty(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::ResizePtyRequest>(payload, "ResizePtyRequest"));
  if (req.width() == 0 && req.height() == 0) return std::string();  // a console without a size
  if (req.width() == 0 || req.height() == 0 || req.width() > 65535 || req.height() > 65535) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("terminal size {}x{} is out of range", req.width(), req.height()));
  }
  std::lock_guard lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(req.id(), req.exec_id()));
  p->control.resize({static_cast<uint16_t>(req.height()), static_cast<uint16_t>(req.width())});
  return std::string();
}

Result<std::string> TaskService::pids(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::PidsRequest>(payload, "PidsRequest"));
  std::lock_guard lock(m_mutex);
  FCVM_TRY(find(req.id(), {}));
  task::PidsResponse out;
  out.add_processes()->set_pid(m_pid);
  return out.SerializeAsString();
}

Result<std::string> TaskService::exec(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto req, decode<task::ExecProcessRequest>(payload, "ExecProcessRequest"));
  if (req.exec_id().empty()) return fail(ErrorCode::kInvalidInput, "an exec needs an exec id");
  FCVM_TRY_ASSIGN(auto spec, parse_process_spec(req.spec().value()));
  spec.terminal = req.terminal();
  std::lock_guard lock(m_mutex);
  FCVM_TRY(find(req.id(), {}));
  if (m_main->status != Status::kRunning) {
    return fail(ErrorCode::kConflict, fmt::format("task {} is not running", m_id));
  }
  if (m_execs.count(req.exec_id()) != 0) {
    return fail(ErrorCode::kAlreadyExists, fmt::format("exec {} exists already", req.exec_id()));
  }
  auto p = std::make_unique<Process>();
  p->exec_id = req.exec_id();
  p->io = {req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  p->spec = std::move(spec);
  m_execs[req.exec_id()] = std::move(p);
  ev::TaskExecAdded e;
  e.set_container_id(m_id);
  e.set_exec_id(req.exec_id());
  publish("/tasks/exec-added", "containerd.events.TaskExecAdded", e.SerializeAsString());
  return std::string();
}

Result<std::string> TaskService::pause(const std::string& payload, bool pause) {
  std::string id;
  if (pause) {
    FCVM_TRY_ASSIGN(auto req, decode<task::PauseRequest>(payload, "PauseRequest"));
    id = req.id();
  } else {
    FCVM_TRY_ASSIGN(auto req, decode<task::ResumeRequest>(payload, "ResumeRequest"));
    id = req.id();
  }
  std::unique_lock lock(m_mutex);
  FCVM_TRY_ASSIGN(auto* p, find(id, {}));
  auto want = pause ? Status::kRunning : Status::kPaused;
  if (p->status != want) {
    return fail(ErrorCode::kConflict,
                fmt::format("task {} is not {}", m_id, pause ? "running" : "paused"));
  }
  lock.unlock();
  FCVM_TRY(m_engine->pause(pause));
  lock.lock();
  if (p->status == want) p->status = pause ? Status::kPaused : Status::kRunning;
  if (pause) {
    ev::TaskPaused e;
    e.set_container_id(m_id);
    publish("/tasks/paused", "containerd.events.TaskPaused", e.SerializeAsString());
  } else {
    ev::TaskResumed e;
    e.set_container_id(m_id);
    publish("/tasks/resumed", "containerd.events.TaskResumed", e.SerializeAsString());
  }
  return std::string();
}

}  // namespace fcvm::shim
