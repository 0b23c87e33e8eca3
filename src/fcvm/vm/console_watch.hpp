#pragma once
// ConsoleWatch: reads a guest's serial console log as it grows and recognises a guest kernel
// that has hung: a soft or hard lockup, an RCU stall, a panic. The monitor asks it while a VM
// has not yet become ready; a hung guest then fails at once with the console's words instead of
// at the end of a 180 s deadline, and a first start is retried once (monitor.cpp).
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
  // The first hang line in `text` (complete lines only), or nullopt.
  static std::optional<std::string> scan(std::string_view text);
  // Forget what was read (the console file was replaced by a new boot).
  void restart();

 private:
  std::string m_path;
  long long m_offset = 0;
  std::string m_partial;
  bool m_reported = false;
};

}  // namespace fcvm::vm
