#pragma once
// What the Task service needs of a VM, one VM per task: the real one drives vm:: (vm_engine.hpp),
// the unit tests a fake. Calls may come from several threads at once.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fcvm/shim/bundle.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/vm/attach.hpp"

namespace fcvm::shim {

// containerd's FIFOs of a process ("" : no such stream).
struct IoPaths {
  std::string in{};
  std::string out{};
  std::string err{};
  bool terminal = false;
};

struct CreateParams {
  std::string ns;
  std::string id;
  std::string bundle;
  ContainerSpec spec;
  std::vector<std::string> layers;  // the root filesystem, top first
  std::string upper{};              // the overlay's upper dir (may hold earlier writes)
  IoPaths io;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Builds the root filesystem's disk, creates the VM and boots it: the container waits for
  // run(). Returns the pid containerd shows for the task (the VM's monitor).
  virtual Result<uint32_t> create(const CreateParams& params) = 0;
  // Runs the container: its output goes to the FIFOs until it ends, then they are closed.
  // `started` is called once, when the container runs or could not start (with the error).
  // Returns the exit code (128+N for a signal).
  virtual Result<int> run(const IoPaths& io, vm::ExecControl& control,
                          const std::function<void(Result<>)>& started) = 0;
  // A process in the running container (ctr task exec), the same way.
  virtual Result<int> exec(const ProcessSpec& process, const IoPaths& io,
                           vm::ExecControl& control) = 0;
  // A signal for the container's main process.
  virtual Result<> signal(int signo) = 0;
  // Ends the VM now (SIGKILL that the container could not receive: not started, or stuck).
  virtual Result<> kill_vm() = 0;
  virtual Result<> pause(bool pause) = 0;
  // Removes the VM and everything it holds; nothing when it is gone already.
  virtual Result<> remove() = 0;
};

}  // namespace fcvm::shim
