#include "fcvm/shim/sandbox.hpp"

#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <optional>

namespace fcvm::shim {
namespace {

class SandboxEngine final : public Engine {
 public:
  Result<uint32_t> create(const CreateParams&) override {
    return static_cast<uint32_t>(::getpid());
  }
  Result<int> run(const IoPaths&, vm::ExecControl&,
                  const std::function<void(Result<>)>& started) override {
    started({});
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [this] { return m_exit.has_value(); });
    return *m_exit;
  }
  Result<int> exec(const ProcessSpec&, const IoPaths&, vm::ExecControl&) override {
    return fail(ErrorCode::kUnavailable,
                "a pod sandbox runs no processes under fcvm: exec in the pod's container");
  }
  Result<> signal(int signo) override {
    // pause ends on these, and ignores the rest.
    if (signo == SIGTERM || signo == SIGINT || signo == SIGKILL) end(128 + signo);
    return {};
  }
  Result<> kill_vm() override {
    end(128 + SIGKILL);
    return {};
  }
  Result<> pause(bool) override { return {}; }
  Result<> remove() override {
    end(128 + SIGKILL);
    return {};
  }

 private:
  void end(int code) {
    std::lock_guard lock(m_mutex);
    if (!m_exit) m_exit = code;
    m_changed.notify_all();
  }
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::optional<int> m_exit;
};

}  // namespace

bool is_pod_sandbox(const ContainerSpec& spec) {
  auto it = spec.annotations.find(k_annotation_container_type);
  return it != spec.annotations.end() && it->second == "sandbox";
}

std::unique_ptr<Engine> make_sandbox_engine() { return std::make_unique<SandboxEngine>(); }

}  // namespace fcvm::shim
