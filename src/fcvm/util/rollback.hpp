#pragma once
// Rollback: each completed setup step registers how to undo it; commit() keeps everything; the
// destructor (or undo_now()) runs the undo steps of an uncommitted rollback in reverse order.
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace fcvm {

class Rollback {
 public:
  Rollback() = default;
  ~Rollback() { undo_now(); }
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;

  void add(std::string what, std::function<void()> undo) {
    m_steps.emplace_back(std::move(what), std::move(undo));
  }
  void commit() { m_steps.clear(); }
  void undo_now() {
    while (!m_steps.empty()) {
      auto step = std::move(m_steps.back());
      m_steps.pop_back();
      step.second();
    }
  }
  size_t size() const { return m_steps.size(); }

 private:
  std::vector<std::pair<std::string, std::function<void()>>> m_steps;
};

}  // namespace fcvm
