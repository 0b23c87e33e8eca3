#pragma once
// Task events to containerd, in order: containerd.services.events.ttrpc.v1.Events/Forward on
// $TTRPC_ADDRESS (what containerd's own shims do), from a queue on a thread of its own so that
// a slow containerd never holds up a Task call. A failed send is retried (reconnecting), five
// times at most, as containerd's shim library does.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "fcvm/shim/task.hpp"

namespace fcvm::shim {

class Publisher {
 public:
  Publisher(std::string address, std::string ns);
  ~Publisher();  // sends what is queued (bounded by flush's limit), then stops
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void publish(TaskEvent event);
  // Waits until everything queued was sent (or given up), at most `limit`.
  void flush(std::chrono::milliseconds limit);

 private:
  void loop();
  std::string m_address;
  std::string m_ns;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<std::pair<TaskEvent, int64_t>> m_queue;  // event, its time (ns)
  bool m_busy = false;
  bool m_stop = false;
  std::thread m_thread;
};

}  // namespace fcvm::shim
