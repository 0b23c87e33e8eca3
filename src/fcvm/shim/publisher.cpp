#include "fcvm/shim/publisher.hpp"

#include <optional>

#include "containerd/events.pb.h"
#include "fcvm/ttrpc/client.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/events.hpp"

namespace fcvm::shim {

using namespace std::chrono_literals;

Publisher::Publisher(std::string address, std::string ns)
    : m_address(std::move(address)), m_ns(std::move(ns)), m_thread([this] { loop(); }) {}

Publisher::~Publisher() {
  flush(5s);
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_changed.notify_all();
  m_thread.join();
}

void Publisher::publish(TaskEvent event) {
  {
    std::lock_guard lock(m_mutex);
    m_queue.emplace_back(std::move(event), vm::now_ns());
  }
  m_changed.notify_all();
}

void Publisher::flush(std::chrono::milliseconds limit) {
  std::unique_lock lock(m_mutex);
  m_changed.wait_for(lock, limit, [this] { return m_queue.empty() && !m_busy; });
}

void Publisher::loop() {
  std::optional<ttrpc::Client> client;
  for (;;) {
    std::pair<TaskEvent, int64_t> item;
    {
      std::unique_lock lock(m_mutex);
      m_changed.wait(lock, [this] { return m_stop || !m_queue.empty(); });
      if (m_queue.empty()) return;
      item = std::move(m_queue.front());
      m_queue.pop_front();
      m_busy = true;
    }
    ::containerd::events::ForwardRequest req;
    auto* env = req.mutable_envelope();
    env->mutable_timestamp()->set_seconds(item.second / 1000000000);
    env->mutable_timestamp()->set_nanos(static_cast<int32_t>(item.second % 1000000000));
    env->set_namespace_(m_ns);
    env->set_topic(item.first.topic);
    env->mutable_event()->set_type_url(item.first.type_url);
    env->mutable_event()->set_value(item.first.payload);
    auto payload = req.SerializeAsString();
    for (int attempt = 0; attempt < 5 && !m_address.empty(); ++attempt) {
      if (!client) {
        auto c = ttrpc::Client::connect(m_address, 2s);
        if (!c) {
          FCVM_LOG(kWarn, "shim", "events: {}", c.error().to_string());
          std::unique_lock lock(m_mutex);
          m_changed.wait_for(lock, 100ms * (attempt + 1), [this] { return m_stop; });
          continue;
        }
        client.emplace(std::move(*c));
      }
      auto r = client->call("containerd.services.events.ttrpc.v1.Events", "Forward", payload, 5s);
      if (r) break;
      FCVM_LOG(kWarn, "shim", "events: {} {}", item.first.topic, r.error().to_string());
      client.reset();
    }
    {
      std::lock_guard lock(m_mutex);
      m_busy = false;
    }
    m_changed.notify_all();
  }
}

}  // namespace fcvm::shim
