#pragma once
// containerd's Task service (containerd.task.v2.Task, runtime v2) over one fcvm VM: the state
// machine of the task and its execs, as ttrpc handlers. One shim serves one task.
//
//   Create  -> created (the VM booted, its container waits)    event /tasks/create
//   Start   -> running (the container runs)                     event /tasks/start
//   exit    -> stopped (exit status and time kept)               event /tasks/exit
//   Delete  -> the VM is removed                                 event /tasks/delete
// Execs: Exec (added, /tasks/exec-added) -> Start (/tasks/exec-started) -> exit (/tasks/exit)
// -> Delete. Wait blocks until the process stopped; Kill with SIGKILL always ends the task (the
// VM is ended when its container cannot take the signal). A call the service does not have
// answers Unimplemented (the ttrpc registry).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "fcvm/shim/engine.hpp"
#include "fcvm/ttrpc/server.hpp"

namespace fcvm::shim {

inline constexpr const char* k_task_service = "containerd.task.v2.Task";

// An event for containerd: its topic ("/tasks/exit"), its type ("containerd.events.TaskExit")
// and the message, serialized.
struct TaskEvent {
  std::string topic;
  std::string type_url;
  std::string payload;
};
using Publish = std::function<void(TaskEvent)>;

class TaskService {
 public:
  // `ns`: containerd's namespace (-namespace); `engines` makes the engine of the task Create
  // asks for (a VM, or a pod sandbox's placeholder); `shutdown` is called when containerd asks
  // the shim to go and no task is left.
  using EngineFactory = std::function<std::unique_ptr<Engine>(const ContainerSpec&)>;
  TaskService(std::string ns, EngineFactory engines, Publish publish,
              std::function<void()> shutdown);
  ~TaskService();
  TaskService(const TaskService&) = delete;
  TaskService& operator=(const TaskService&) = delete;

  void register_handlers(ttrpc::Registry& registry);
  // The handlers, by method name (request and response serialized).
  Result<std::string> call(const std::string& method, const std::string& payload);

 private:
  enum class Status { kCreated = 1, kRunning = 2, kStopped = 3, kPaused = 4 };
  struct Process {
    std::string exec_id;  // "" : the container's main process
    IoPaths io;
    ProcessSpec spec{};  // execs
    Status status = Status::kCreated;
    uint32_t exit_status = 0;
    int64_t exited_at_ns = 0;
    vm::ExecControl control;
    std::thread worker;
    std::optional<Error> start_error{};
    bool started = false;
  };

  Result<std::string> dispatch(const std::string& method, const std::string& payload);
  Result<std::string> create(const std::string& payload);
  Result<std::string> start(const std::string& payload);
  Result<std::string> wait(const std::string& payload);
  Result<std::string> state(const std::string& payload);
  Result<std::string> remove(const std::string& payload);
  Result<std::string> kill(const std::string& payload);
  Result<std::string> connect(const std::string& payload);
  Result<std::string> shutdown(const std::string& payload);
  Result<std::string> close_io(const std::string& payload);
  Result<std::string> resize_pty(const std::string& payload);
  Result<std::string> pids(const std::string& payload);
  Result<std::string> exec(const std::string& payload);
  Result<std::string> pause(const std::string& payload, bool pause);

  // With m_mutex held: the process, or kNotFound.
  Result<Process*> find(const std::string& id, const std::string& exec_id);
  void exited(Process& p, int code);
  void publish(const std::string& topic, const std::string& type, const std::string& bytes);

  std::string m_ns;
  EngineFactory m_engines;
  std::unique_ptr<Engine> m_engine;  // set by Create, before the task exists
  Publish m_publish;
  std::function<void()> m_shutdown;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::string m_id;  // the task's id once created
  std::string m_bundle;
  uint32_t m_pid = 0;
  std::unique_ptr<Process> m_main;
  std::map<std::string, std::unique_ptr<Process>> m_execs;
  bool m_deleted = false;
};

}  // namespace fcvm::shim
