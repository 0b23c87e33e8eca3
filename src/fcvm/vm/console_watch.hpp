#pragma once
// ConsoleWatch: reads a guest's serial console log as it grows and recognises a guest kernel
// that has hung: a soft or hard lockup, an RCU stall, a panic. The monitor asks it while a VM
// has not yet become ready; a hung guest then fails at once with the console's words instead of
// at the end of its boot deadline, and a first start is retried once (monitor.cpp). It also
// notes whether the guest's own userspace (fc-init, then fc-agent) ever wrote to the console: a
// boot that runs out of time without that never left its kernel, and is retried too.
//
// Pure apart from reading the file: scan() takes text, so the rules are unit-tested.
#include <optional>
#include <string>
#include <string_view>

namespace fcvm::vm {

class ConsoleWatch {
 public:
  explicit ConsoleWatch(std::string path) : m_path(std::move(path)) {}
  // Reads what the console gained since the last call; the first line that shows a hung guest
  // kernel, once, or nullopt.
  std::optional<std::string> poll();
  // True once a complete line of the guest's init or agent was read (by poll or scan).
  bool reached_userspace() const { return m_userspace; }
  // The first hang line in `text` (complete lines only), or nullopt. Sets *userspace when a
  // line of the guest's init or agent comes first.
  static std::optional<std::string> scan(std::string_view text, bool* userspace = nullptr);
  // Forget what was read (the console file was replaced by a new boot).
  void restart();

 private:
  std::string m_path;
  long long m_offset = 0;
  std::string m_partial;
  bool m_reported = false;
  bool m_userspace = false;
};

}  // namespace fcvm::vm
