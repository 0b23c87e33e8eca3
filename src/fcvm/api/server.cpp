#include "fcvm/api/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "fcvm/api/requests.hpp"
#include "fcvm/api/token.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/container_log.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/describe.hpp"
#include "fcvm/vm/events.hpp"
#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/images.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/logs.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::api {
namespace {

using nlohmann::json;
using Request = httplib::Request;
using Response = httplib::Response;

constexpr size_t k_max_body = 1 << 20;       // request bodies (stdin chunks included)
constexpr int k_keepalive_idle_polls = 150;  // ~15 s of silence on a stream: a blank line
constexpr size_t k_workers = 64;             // connections served at once (streams hold one)

std::string_view code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidInput:
      return "invalid_input";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kProtocol:
      return "protocol";
    case ErrorCode::kSystem:
      return "system";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

// The CLI's exit code 2 (bad input, unknown name, taken name) splits into 400, 404 and 409.
int http_status(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidInput:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    default:
      return 500;
  }
}

json error_json(const Error& e) {
  return {{"error", {{"code", code_name(e.code())}, {"message", e.to_string()}}}};
}

void reply_error(Response& res, const Error& e) {
  res.status = http_status(e.code());
  res.set_content(error_json(e).dump() + "\n", "application/json");
}

void reply_json(Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump() + "\n", "application/json");
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string param(const Request& req, const char* key) {
  return req.has_param(key) ? req.get_param_value(key) : std::string();
}

std::vector<std::string> repeated(const Request& req, const char* key) {
  std::vector<std::string> values;
  for (size_t i = 0; i < req.get_param_value_count(key); ++i) {
    values.push_back(req.get_param_value(key, i));
  }
  return values;
}

// A streaming response's writer: one JSON value a line.
struct LineSink {
  httplib::DataSink& sink;
  bool line(const json& j) {
    auto text = j.dump() + "\n";
    return sink.write(text.data(), text.size());
  }
  bool keepalive() { return sink.write("\n", 1); }
};

// An exec in progress: its stdio pipes, its control and the thread that runs it.
class ExecSession {
 public:
  ExecSession(std::string id, state::VmRecord rec, vm::ExecRequest req)
      : m_id(std::move(id)), m_rec(std::move(rec)), m_req(std::move(req)) {}
  ~ExecSession() { finish(true); }

  Result<> start() {
    int in[2] = {-1, -1}, out[2], err[2];
    if (m_req.interactive && ::pipe2(in, O_CLOEXEC) != 0) return fail_errno("pipe");
    m_stdin_r.reset(in[0]);
    m_stdin_w.reset(in[1]);
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return fail_errno("pipe");
    m_out_r.reset(out[0]);
    m_err_r.reset(err[0]);
    auto out_w = std::make_shared<UniqueFd>(out[1]);
    auto err_w = std::make_shared<UniqueFd>(err[1]);
    m_thread = std::thread([this, out_w, err_w] {
      vm::Stdio io{m_stdin_r ? m_stdin_r.get() : -1, out_w->get(), err_w->get()};
      auto code = vm::exec_in_vm(m_rec, m_req, io, &m_control);
      out_w->reset();
      err_w->reset();
      std::lock_guard lock(m_mutex);
      m_result = std::move(code);
    });
    return {};
  }

  const std::string& id() const { return m_id; }
  vm::ExecControl& control() { return m_control; }

  Result<> write_stdin(std::string_view data, bool close) {
    std::lock_guard lock(m_stdin_mutex);
    if (!m_stdin_w) {
      return fail(ErrorCode::kConflict,
                  fmt::format("exec {}: stdin is closed (or was not asked for with \"stdin\": "
                              "true)",
                              m_id));
    }
    if (!data.empty()) FCVM_TRY(write_all(m_stdin_w.get(), data));
    if (close) m_stdin_w.reset();
    return {};
  }

  // Streams the output to `out` until the exec ends; false when the client went away.
  bool stream(LineSink& out, const std::atomic<bool>& stopping) {
    if (!out.line({{"exec_id", m_id}})) return false;
    int idle = 0;
    bool open[2] = {true, true};
    int fds_raw[2] = {m_out_r.get(), m_err_r.get()};
    const char* names[2] = {"stdout", "stderr"};
    while (open[0] || open[1]) {
      pollfd fds[2] = {{open[0] ? fds_raw[0] : -1, POLLIN, 0},
                       {open[1] ? fds_raw[1] : -1, POLLIN, 0}};
      int r = ::poll(fds, 2, 100);
      if (r < 0 && errno != EINTR) return false;
      if (r <= 0) {
        if (stopping) return false;
        if (++idle >= k_keepalive_idle_polls) {
          idle = 0;
          if (!out.keepalive()) return false;
        }
        continue;
      }
      idle = 0;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[32768];
        ssize_t n = ::read(fds_raw[i], buf, sizeof buf);
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          open[i] = false;
          continue;
        }
        if (!out.line({{"stream", names[i]},
                       {"data", base64(std::string_view(buf, static_cast<size_t>(n)))}})) {
          return false;
        }
      }
    }
    finish(false);
    std::lock_guard lock(m_mutex);
    if (!m_result)
      return out.line({{"exit_code", nullptr},
                       {"error", error_json(Error(ErrorCode::kInternal,
                                                  "the exec ended without a result"))["error"]}});
    if (!*m_result)
      return out.line({{"exit_code", nullptr}, {"error", error_json(m_result->error())["error"]}});
    return out.line({{"exit_code", **m_result}});
  }

  // Ends the exec: with `kill`, the process is killed and its output no longer read.
  void finish(bool kill) {
    if (!m_thread.joinable()) return;
    if (kill) {
      m_control.signal("KILL");
      m_out_r.reset();  // a writer blocked on a full pipe gets EPIPE
      m_err_r.reset();
    }
    {
      std::lock_guard lock(m_stdin_mutex);
      if (kill) m_stdin_w.reset();
    }
    m_thread.join();
  }

 private:
  std::string m_id;
  state::VmRecord m_rec;
  vm::ExecRequest m_req;
  vm::ExecControl m_control;
  UniqueFd m_stdin_r, m_stdin_w, m_out_r, m_err_r;
  std::mutex m_stdin_mutex;
  std::mutex m_mutex;
  std::optional<Result<int>> m_result;
  std::thread m_thread;
};

class Api {
 public:
  Api(vm::Context& ctx, vm::RunDefaults defaults) : m_ctx(ctx), m_defaults(std::move(defaults)) {}

  using Handler = void (Api::*)(const Request&, Response&);
  struct Entry {
    const char* method;
    const char* path;
    Handler handler;
  };
  static const std::vector<Entry>& table();

  void stop() { m_stopping = true; }

  void ping(const Request&, Response& res) { res.set_content("OK", "text/plain"); }

  void version(const Request&, Response& res) {
    reply_json(res, 200, {{"version", FCVM_VERSION}, {"api", "v1"}});
  }

  void list_vms(const Request& req, Response& res) {
    auto all = query_bool("all", param(req, "all"), false);
    if (!all) return reply_error(res, all.error());
    // label=K[=V] (as ls --filter label=...), or any ls filter as filter=KEY=VALUE.
    auto specs = repeated(req, "filter");
    for (auto& v : repeated(req, "label")) specs.push_back("label=" + v);
    auto filter = vm::parse_vm_filters(specs);
    if (!filter) return reply_error(res, filter.error());
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto vms, vm::list_vms(store));
      auto arr = json::array();
      for (const auto& r : vms) {
        if (!*all && !vm::is_active(r)) continue;
        if (vm::matches(*filter, r)) arr.push_back(vm::vm_json(r));
      }
      reply_json(res, 200, arr);
      return {};
    });
  }

  void create_vm(const Request& req, Response& res) {
    auto body = parse_create_vm(req.body);
    if (!body) return reply_error(res, body.error());
    // A bare "K" in env takes no value from the server's environment.
    auto options = vm::validate_run(body->request, m_defaults,
                                    [](const std::string&) { return std::nullopt; });
    if (!options) return reply_error(res, options.error());
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY(vm::check_run(m_ctx, store, *options));
      FCVM_TRY(vm::resolve_image(m_ctx, store, *options, [](std::string_view) {}));
      FCVM_TRY_ASSIGN(auto rec, vm::create_vm(m_ctx, store, *options, body->rm));
      FCVM_TRY_ASSIGN(auto now, launch(store, rec));
      reply_json(res, 201, vm::vm_json(now));
      return {};
    });
  }

  void inspect_vm(const Request& req, Response& res) {
    on_vm(req, res, [&](state::VmStore&, const state::VmRecord& rec) -> Result<> {
      reply_json(res, 200, vm::vm_json(rec));
      return {};
    });
  }

  void remove_vm(const Request& req, Response& res) {
    auto force = query_bool("force", param(req, "force"), false);
    if (!force) return reply_error(res, force.error());
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY(vm::remove_vm(store, rec, *force));
      res.status = 204;
      return {};
    });
  }

  void start_vm(const Request& req, Response& res) {
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      // start_vm's steps, with the monitor reaped by this server when it ends.
      FCVM_TRY_ASSIGN(auto monitor, vm::begin_start(m_ctx, store, rec, false));
      FCVM_TRY(follow_monitor(monitor, rec));
      return reply_current(store, rec, res);
    });
  }

  void stop_vm(const Request& req, Response& res) {
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      int timeout = 10;
      if (auto o = vm::options_from_json(rec.options_json)) timeout = o->stop_timeout_s;
      if (req.has_param("timeout")) {
        FCVM_TRY_ASSIGN(auto t, query_int("timeout", param(req, "timeout"), 0, 3600));
        timeout = static_cast<int>(t);
      }
      FCVM_TRY(vm::stop_vm(store, rec, timeout));
      return reply_current(store, rec, res);
    });
  }

  void kill_vm(const Request& req, Response& res) {
    auto signal = parse_signal(req.body, "KILL");
    if (!signal) return reply_error(res, signal.error());
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY(vm::signal_container(store, rec, *signal));
      return reply_current(store, rec, res);
    });
  }

  void wait_vm(const Request& req, Response& res) {
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY_ASSIGN(auto code, vm::wait_vm(store, rec));
      reply_json(res, 200, {{"exit_code", code ? json(*code) : json(nullptr)}});
      return {};
    });
  }

  void pause_vm(const Request& req, Response& res) { pause(req, res, true); }
  void resume_vm(const Request& req, Response& res) { pause(req, res, false); }

  void ttl_vm(const Request& req, Response& res) {
    auto seconds = parse_ttl(req.body);
    if (!seconds) return reply_error(res, seconds.error());
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY_ASSIGN(auto now, vm::set_ttl(store, rec, *seconds));
      reply_json(res, 200, vm::vm_json(now));
      return {};
    });
  }

  void logs(const Request& req, Response& res) {
    vm::LogQuery query;
    auto follow = query_bool("follow", param(req, "follow"), false);
    auto stamps = query_bool("timestamps", param(req, "timestamps"), false);
    auto console = query_bool("console", param(req, "console"), false);
    auto tail = vm::parse_tail(req.has_param("tail") ? param(req, "tail") : "all", "tail");
    for (const auto* r : {&follow, &stamps, &console}) {
      if (!*r) return reply_error(res, r->error());
    }
    if (!tail) return reply_error(res, tail.error());
    query.follow = *follow;
    query.console = *console;
    query.tail = *tail;
    bool timestamps = *stamps;
    on_vm(req, res, [&](state::VmStore&, const state::VmRecord& rec) -> Result<> {
      res.set_chunked_content_provider(
          "application/x-ndjson", [this, rec, query, timestamps](size_t, httplib::DataSink& sink) {
            LineSink out{sink};
            auto store = vm::open_store(m_ctx);
            if (!store) {
              out.line(error_json(store.error()));
              sink.done();
              return true;
            }
            bool gone = false;
            int idle = 0;
            auto read = vm::read_logs(
                *store, rec, query,
                [&](const std::string& line) {
                  json j;
                  if (query.console) {
                    j = {{"line", line}};
                  } else {
                    auto r = vm::parse_log_line(line);
                    if (!r) return true;
                    j = {{"stream", r->stream == vm::LogStream::kStdout ? "stdout" : "stderr"},
                         {"line", r->text}};
                    if (r->partial) j["partial"] = true;
                    if (timestamps) j["time"] = r->time;
                  }
                  idle = 0;
                  gone = !out.line(j);
                  return !gone;
                },
                [&] {
                  if (m_stopping) return false;
                  if (++idle < k_keepalive_idle_polls) return true;
                  idle = 0;
                  gone = !out.keepalive();
                  return !gone;
                });
            if (gone) return false;
            if (!read) out.line(error_json(read.error()));
            sink.done();
            return true;
          });
      return {};
    });
  }

  void exec(const Request& req, Response& res) {
    auto body = parse_exec(req.body);
    if (!body) return reply_error(res, body.error());
    on_vm(req, res, [&](state::VmStore&, const state::VmRecord& rec) -> Result<> {
      if (!vm::is_active(rec)) {
        return fail(ErrorCode::kConflict, fmt::format("VM {} is not running (status: {})", rec.name,
                                                      state::status_name(rec.status)));
      }
      auto size = body->size;
      body->request.window_size = [size] { return size; };
      auto session = std::make_shared<ExecSession>(sys::random_hex(16), rec, body->request);
      FCVM_TRY(session->start());
      {
        std::lock_guard lock(m_exec_mutex);
        m_execs[session->id()] = session;
      }
      res.set_chunked_content_provider(
          "application/x-ndjson",
          [this, session](size_t, httplib::DataSink& sink) {
            LineSink out{sink};
            bool ok = session->stream(out, m_stopping);
            forget_exec(session->id());
            if (!ok) return false;
            sink.done();
            return true;
          },
          [this, session](bool) { forget_exec(session->id()); });
      return {};
    });
  }

  void exec_stdin(const Request& req, Response& res) {
    auto close = query_bool("close", param(req, "close"), false);
    if (!close) return reply_error(res, close.error());
    on_exec(req, res, [&](ExecSession& s) { return s.write_stdin(req.body, *close); });
  }

  void exec_signal(const Request& req, Response& res) {
    auto signal = parse_signal(req.body, "TERM");
    if (!signal) return reply_error(res, signal.error());
    on_exec(req, res, [&](ExecSession& s) -> Result<> {
      s.control().signal(*signal);
      return {};
    });
  }

  void exec_resize(const Request& req, Response& res) {
    auto size = parse_resize(req.body);
    if (!size) return reply_error(res, size.error());
    on_exec(req, res, [&](ExecSession& s) -> Result<> {
      s.control().resize(*size);
      return {};
    });
  }

  void create_snapshot(const Request& req, Response& res) {
    auto name = parse_snapshot_create(req.body);
    if (!name) return reply_error(res, name.error());
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY(vm::check_snapshot_name_free(store, *name));
      if (!vm::is_active(rec)) {
        return fail(ErrorCode::kConflict, fmt::format("VM {} is not running", rec.name));
      }
      FCVM_TRY_ASSIGN(auto client, vm::ControlClient::connect(rec));
      FCVM_TRY_ASSIGN(auto made, client.call(vm::control::Snapshot{*name, false}));
      FCVM_TRY_ASSIGN(auto snap, vm::find_snapshot(store, made.id));
      reply_json(res, 201, vm::snapshot_json(store, snap));
      return {};
    });
  }

  void list_snapshots(const Request&, Response& res) {
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY(vm::reconcile_snapshots(store));
      FCVM_TRY_ASSIGN(auto snaps, vm::list_snapshots(store));
      auto arr = json::array();
      for (const auto& s : snaps) arr.push_back(vm::snapshot_json(store, s));
      reply_json(res, 200, arr);
      return {};
    });
  }

  void inspect_snapshot(const Request& req, Response& res) {
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto snap, vm::find_snapshot(store, req.matches[1]));
      reply_json(res, 200, vm::snapshot_json(store, snap));
      return {};
    });
  }

  void remove_snapshot(const Request& req, Response& res) {
    auto force = query_bool("force", param(req, "force"), false);
    if (!force) return reply_error(res, force.error());
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto snap, vm::find_snapshot(store, req.matches[1]));
      FCVM_TRY(vm::remove_snapshot(store, snap, *force));
      res.status = 204;
      return {};
    });
  }

  void clone(const Request& req, Response& res) {
    auto body = parse_clone_vm(req.body);
    if (!body) return reply_error(res, body.error());
    auto c = vm::validate_clone(body->request);
    if (!c) return reply_error(res, c.error());
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto snap, vm::find_snapshot(store, req.matches[1]));
      FCVM_TRY_ASSIGN(auto options, vm::clone_run_options(snap, *c));
      FCVM_TRY_ASSIGN(auto rec, vm::create_clone(m_ctx, store, snap, options, body->rm));
      FCVM_TRY_ASSIGN(auto now, launch(store, rec));
      reply_json(res, 201, vm::vm_json(now));
      return {};
    });
  }

  void list_images(const Request&, Response& res) {
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto images, vm::list_images(store));
      auto arr = json::array();
      for (const auto& i : images) arr.push_back(vm::image_json(i));
      reply_json(res, 200, arr);
      return {};
    });
  }

  void events(const Request& req, Response& res) {
    // filter=vm=NAME (URL-encoded), or vm=NAME and event=TYPE themselves.
    auto specs = repeated(req, "filter");
    for (const char* key : {"vm", "event"}) {
      for (auto& v : repeated(req, key)) specs.push_back(std::string(key) + "=" + v);
    }
    auto filter = vm::parse_event_filters(specs, "filter");
    if (!filter) return reply_error(res, filter.error());
    std::optional<int64_t> since, until;
    for (auto [key, out] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
      if (!req.has_param(key)) continue;
      auto t = vm::parse_event_time(key, param(req, key));
      if (!t) return reply_error(res, t.error());
      *out = *t;
    }
    auto stream = query_bool("stream", param(req, "stream"), true);
    if (!stream) return reply_error(res, stream.error());
    auto opened = vm::JournalFollower::open(vm::journal_path(m_ctx.paths.data_dir),
                                            since.has_value() || !*stream);
    if (!opened) return reply_error(res, opened.error());
    auto follower = std::make_shared<vm::JournalFollower>(std::move(*opened));
    bool keep_streaming = *stream;
    res.set_chunked_content_provider(
        "application/x-ndjson", [this, follower, filter = *filter, since, until, keep_streaming](
                                    size_t, httplib::DataSink& sink) {
          LineSink out{sink};
          int idle = 0;
          for (bool first = true;; first = false) {
            if (m_stopping || (until && vm::now_ns() > *until)) break;
            auto events = follower->next(first ? 0 : 100);
            if (!events) {
              out.line(error_json(events.error()));
              break;
            }
            for (const auto& e : *events) {
              if (until && e.time_ns > *until) {
                sink.done();
                return true;
              }
              if ((since && e.time_ns < *since) || !filter.match(e)) continue;
              auto j = vm::to_json(e);
              j["time"] = vm::rfc3339(e.time_ns);
              if (!out.line(j)) return false;
              idle = 0;
            }
            if (first && !keep_streaming) break;
            if (++idle >= k_keepalive_idle_polls) {
              idle = 0;
              if (!out.keepalive()) return false;
            }
          }
          sink.done();
          return true;
        });
  }

 private:
  void pause(const Request& req, Response& res, bool on) {
    on_vm(req, res, [&](state::VmStore& store, const state::VmRecord& rec) -> Result<> {
      FCVM_TRY(vm::pause_vm(store, rec, on));
      return reply_current(store, rec, res);
    });
  }

  Result<> reply_current(state::VmStore& store, const state::VmRecord& rec, Response& res) {
    FCVM_TRY_ASSIGN(auto now, store.get(rec.id));
    if (!now) {
      res.status = 204;  // removed (an auto-remove VM that ended)
      return {};
    }
    reply_json(res, 200, vm::vm_json(*now));
    return {};
  }

  // A fresh store connection per request: SQLite connections are not shared between threads.
  template <class F>
  void with_store(Response& res, F&& f) {
    auto store = vm::open_store(m_ctx);
    if (!store) return reply_error(res, store.error());
    if (auto r = f(*store); !r) reply_error(res, r.error());
  }

  template <class F>
  void on_vm(const Request& req, Response& res, F&& f) {
    with_store(res, [&](state::VmStore& store) -> Result<> {
      FCVM_TRY_ASSIGN(auto rec, vm::find_vm(store, req.matches[1]));
      return f(store, rec);
    });
  }

  template <class F>
  void on_exec(const Request& req, Response& res, F&& f) {
    std::shared_ptr<ExecSession> session;
    {
      std::lock_guard lock(m_exec_mutex);
      auto it = m_execs.find(req.matches[2]);
      if (it != m_execs.end()) session = it->second.lock();
    }
    if (!session) {
      return reply_error(res, Error(ErrorCode::kNotFound, fmt::format("no exec \"{}\" in progress",
                                                                      req.matches[2].str())));
    }
    if (auto r = f(*session); !r) return reply_error(res, r.error());
    res.status = 204;
  }

  void forget_exec(const std::string& id) {
    std::lock_guard lock(m_exec_mutex);
    m_execs.erase(id);
  }

  // A monitor this server started outlives the request: a thread of its own reaps it when it
  // ends (the server is its parent; only that pid is waited for). Then its ready line.
  Result<> follow_monitor(vm::MonitorProcess& monitor, const state::VmRecord& rec) {
    pid_t pid = monitor.process.detach();
    std::thread([pid] {
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }).detach();
    return vm::wait_ready(monitor.ready.get(), rec);
  }

  // The monitor of a new VM, in the background; returns the record once it is ready (or the
  // error that ended its start, which removed it).
  Result<state::VmRecord> launch(state::VmStore& store, const state::VmRecord& rec) {
    auto monitor = vm::spawn_monitor(m_ctx, rec, {true, false, {}});
    if (!monitor) {
      (void)vm::remove_vm(store, rec, true);
      return tl::unexpected<Error>(monitor.error());
    }
    FCVM_TRY(follow_monitor(*monitor, rec));
    FCVM_TRY_ASSIGN(auto now, store.get(rec.id));
    if (!now)
      return fail(ErrorCode::kNotFound, fmt::format("VM {} ended and was removed", rec.name));
    return *now;
  }

  vm::Context& m_ctx;
  vm::RunDefaults m_defaults;
  std::atomic<bool> m_stopping{false};
  std::mutex m_exec_mutex;
  std::map<std::string, std::weak_ptr<ExecSession>> m_execs;
};

const std::vector<Api::Entry>& Api::table() {
  static const std::vector<Entry> entries = {
      {"GET", "/v1/_ping", &Api::ping},
      {"GET", "/v1/version", &Api::version},
      {"GET", "/v1/vms", &Api::list_vms},
      {"POST", "/v1/vms", &Api::create_vm},
      {"GET", "/v1/vms/{id}", &Api::inspect_vm},
      {"DELETE", "/v1/vms/{id}", &Api::remove_vm},
      {"POST", "/v1/vms/{id}/start", &Api::start_vm},
      {"POST", "/v1/vms/{id}/stop", &Api::stop_vm},
      {"POST", "/v1/vms/{id}/kill", &Api::kill_vm},
      {"POST", "/v1/vms/{id}/wait", &Api::wait_vm},
      {"POST", "/v1/vms/{id}/pause", &Api::pause_vm},
      {"POST", "/v1/vms/{id}/resume", &Api::resume_vm},
      {"PUT", "/v1/vms/{id}/ttl", &Api::ttl_vm},
      {"GET", "/v1/vms/{id}/logs", &Api::logs},
      {"POST", "/v1/vms/{id}/exec", &Api::exec},
      {"POST", "/v1/vms/{id}/exec/{exec_id}/stdin", &Api::exec_stdin},
      {"POST", "/v1/vms/{id}/exec/{exec_id}/signal", &Api::exec_signal},
      {"POST", "/v1/vms/{id}/exec/{exec_id}/resize", &Api::exec_resize},
      {"POST", "/v1/vms/{id}/snapshots", &Api::create_snapshot},
      {"GET", "/v1/snapshots", &Api::list_snapshots},
      {"GET", "/v1/snapshots/{name}", &Api::inspect_snapshot},
      {"DELETE", "/v1/snapshots/{name}", &Api::remove_snapshot},
      {"POST", "/v1/snapshots/{name}/clone", &Api::clone},
      {"GET", "/v1/images", &Api::list_images},
      {"GET", "/v1/events", &Api::events},
  };
  return entries;
}

// /v1/vms/{id} -> ^/v1/vms/([^/]+)$ (httplib matches the whole path).
std::string path_regex(const std::string& path) {
  return std::regex_replace(path, std::regex(R"(\{[a-z_]+\})"), "([^/]+)");
}

// systemd hands a socket over as it is: a server that owns the socket it listens on.
class Server : public httplib::Server {
 public:
  void adopt(int fd) { svr_sock_ = fd; }
  // The library listens with a backlog of 5, compiled into Debian's build of it: a Unix socket
  // refuses a non-blocking connect at once when its backlog is full (the seventh client to come
  // before the accept loop runs again; 20 clients at once on a busy host met it). listen() on a
  // listening socket sets a new backlog.
  bool widen_backlog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }
};

std::string socket_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (ss.ss_family == AF_UNIX) {
    return std::string("unix:") + reinterpret_cast<sockaddr_un*>(&ss)->sun_path;
  }
  char host[64] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return fmt::format("{}:{}", host, port);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return fmt::format("[{}]:{}", host, ntohs(in6->sin6_port));
}

// A socket file left by a server that is gone is removed; one that answers is someone's.
Result<> claim_socket_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) {
    return fail(ErrorCode::kConflict, fmt::format("{} exists and is not a socket", path));
  }
  if (auto c = unix_connect(path, std::chrono::milliseconds(500))) {
    return fail(ErrorCode::kConflict,
                fmt::format("another server is listening on {} (stop it first)", path));
  }
  if (::unlink(path.c_str()) != 0) return fail_errno(fmt::format("remove {}", path));
  return {};
}

}  // namespace

const std::vector<Route>& routes() {
  static const std::vector<Route> list = [] {
    std::vector<Route> r;
    for (const auto& e : Api::table()) r.push_back({e.method, e.path});
    return r;
  }();
  return list;
}

std::string default_socket_path(const std::string& xdg_runtime_dir, const std::string& data_dir) {
  if (::geteuid() == 0) return "/run/fcvm/api.sock";
  if (!xdg_runtime_dir.empty()) return xdg_runtime_dir + "/fcvm/api.sock";
  return data_dir + "/api.sock";
}

Result<> serve(vm::Context& ctx, const vm::RunDefaults& defaults, const ServeOptions& options,
               const std::function<void(const std::string&)>& listening) {
  // Before any thread starts: every thread inherits the blocked signals, which come here.
  SignalFd signals({SIGINT, SIGTERM});
  ::signal(SIGPIPE, SIG_IGN);

  Server svr;
  Api api(ctx, defaults);
  bool tcp = false;
  std::string address;  // where it listens, for `listening`
  std::string unlink_at_exit;
  if (options.activated_fd >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(options.activated_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return fail_errno("the socket systemd passed (LISTEN_FDS)");
    }
    tcp = ss.ss_family != AF_UNIX;
    svr.adopt(options.activated_fd);
    address = socket_address(options.activated_fd);
  } else {
    FCVM_TRY_ASSIGN(
        auto where,
        parse_listen(options.listen.empty() ? "unix:" + options.default_socket : options.listen,
                     options.allow_remote));
    tcp = where.tcp;
    if (!tcp) {
      // The default directory is made private; a path given is the caller's to protect, but the
      // socket itself is always 0600.
      auto dir = where.path.substr(0, where.path.rfind('/'));
      if (options.listen.empty()) {
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
          return fail_errno(fmt::format("create {}", dir));
        }
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0) return fail_errno(fmt::format("stat {}", dir));
        if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
          return fail(ErrorCode::kConflict,
                      fmt::format("{} must be a directory of this user with mode 0700 (it is "
                                  "{:o}, owner {})",
                                  dir, st.st_mode & 07777, st.st_uid));
        }
      }
      FCVM_TRY(claim_socket_path(where.path));
      svr.set_address_family(AF_UNIX);
      mode_t old = ::umask(077);
      bool bound = svr.bind_to_port(where.path, 80);
      ::umask(old);
      if (!bound || !svr.widen_backlog())
        return fail_errno(fmt::format("listen on {}", where.path));
      if (::chmod(where.path.c_str(), 0600) != 0)
        return fail_errno(fmt::format("chmod {}", where.path));
      unlink_at_exit = where.path;
      address = "unix:" + where.path;
    } else {
      int port = where.port;
      if (port == 0) {
        port = svr.bind_to_any_port(where.host);
        if (port < 0) return fail_errno(fmt::format("listen on {}", options.listen));
      } else if (!svr.bind_to_port(where.host, where.port)) {
        return fail_errno(fmt::format("listen on {}", options.listen));
      }
      if (!svr.widen_backlog()) return fail_errno(fmt::format("listen on {}", options.listen));
      address = where.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", where.host, port)
                                                          : fmt::format("{}:{}", where.host, port);
    }
  }

  std::string token_file = options.token_file;
  if (tcp) FCVM_TRY(ensure_token(token_file));

  svr.new_task_queue = [] { return new httplib::ThreadPool(k_workers); };
  svr.set_payload_max_length(k_max_body);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_keep_alive_timeout(5);
  // On TCP every request carries the token (re-read per request: rotation needs no restart).
  // A Unix socket's permissions are its authentication.
  svr.set_pre_routing_handler([tcp, token_file](const Request& req, Response& res) {
    if (!tcp) return httplib::Server::HandlerResponse::Unhandled;
    auto token = read_token(token_file);
    if (token && authorized(req.get_header_value("Authorization"), *token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    reply_json(res, 401,
               error_json(Error(ErrorCode::kInvalidInput,
                                "missing or wrong bearer token (Authorization: Bearer TOKEN; "
                                "the token is in the server's api-token file)")));
    res.status = 401;
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler([](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    auto message = res.status == 404 ? fmt::format("no route {} {}", req.method, req.path)
                   : res.status == 413
                       ? fmt::format("the request body exceeds {} bytes", k_max_body)
                       : fmt::format("HTTP {}", res.status);
    auto code = res.status == 404 ? "not_found" : res.status >= 500 ? "internal" : "invalid_input";
    res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump() + "\n",
                    "application/json");
  });
  svr.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_error(res, Error(ErrorCode::kInternal, what));
  });
  for (const auto& e : Api::table()) {
    auto handler = [&api, fn = e.handler](const Request& req, Response& res) {
      (api.*fn)(req, res);
    };
    std::string pattern = path_regex(e.path);
    std::string_view m = e.method;
    if (m == "GET") svr.Get(pattern, handler);
    if (m == "POST") svr.Post(pattern, handler);
    if (m == "PUT") svr.Put(pattern, handler);
    if (m == "DELETE") svr.Delete(pattern, handler);
  }

  std::mutex mutex;
  std::condition_variable cv;
  bool ended = false;
  std::thread loop([&] {
    svr.listen_after_bind();
    std::lock_guard lock(mutex);
    ended = true;
    cv.notify_all();
  });
  // Bound and listening already: connections wait in the backlog until the loop takes them.
  listening(address);
  for (;;) {
    pollfd p{signals.fd(), POLLIN, 0};
    if (::poll(&p, 1, 500) > 0 && signals.take()) break;
    std::lock_guard lock(mutex);
    if (ended) break;
  }
  FCVM_LOG(kInfo, "serve", "stopping");
  api.stop();
  svr.stop();
  // Streams see the stop within their next poll; a long-poll (wait) may not: it is left to the
  // process's exit.
  std::unique_lock lock(mutex);
  bool joined = cv.wait_for(lock, std::chrono::seconds(5), [&] { return ended; });
  lock.unlock();
  if (!unlink_at_exit.empty()) ::unlink(unlink_at_exit.c_str());
  if (!joined) {
    // A request still blocked (a long-poll wait) holds the server: end the process here rather
    // than destroy what its thread uses.
    std::fflush(nullptr);
    std::_Exit(0);
  }
  loop.join();
  return {};
}

}  // namespace fcvm::api
